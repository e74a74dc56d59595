#!/usr/bin/env bash
# Installs Jazzer.js (the coverage-guided fuzzer of test/fuzz/) and builds its native addon here,
# then prints the directory holding `node_modules/.bin/jazzer`. Built once into the user cache, so
# a second run is instant.
#
# Why a build: @jazzer.js/fuzzer 4.x ships only a prebuilt addon, linked against glibc 2.38 and
# GCC 13's libstdc++ (Debian 12 has 2.36 and GCC 12), and 2.x downloads its prebuilt addon, or
# else the libFuzzer sources it builds, from GitHub, which our machines and CI cannot reach. So we
# install @jazzer.js/core 2.1.0 (the last release that ships the addon's C++ sources) without its
# install script, take libFuzzer from Debian's own LLVM 16 source package, apply the small patch
# Jazzer.js's libFuzzer fork carries (scripts/jazzer/libfuzzer-jazzer.patch), and link the addon
# with Debian's g++ against Node's headers. Needs g++, patch, xz and apt-get (no root: apt runs on
# private state directories, with a deb-src line for the archive the system already uses).
set -euo pipefail
version=2.1.0
llvm=16
here="$(cd "$(dirname "$0")" && pwd)"
patch_file="$here/jazzer/libfuzzer-jazzer.patch"
# The inputs' contents, not their paths: every checkout on a machine shares one build.
stamp="jazzer ${version}, libFuzzer ${llvm} $(cat "$patch_file" "$here/jazzer/package-lock.json" | sha256sum | cut -c1-16), node $(node -p process.versions.modules)"
dir="${XDG_CACHE_HOME:-$HOME/.cache}/isthmus/jazzer-${version}"
addon="$dir/node_modules/@jazzer.js/fuzzer/build/Release/jazzerjs.node"
say() { echo "install-jazzer: $*" >&2; }

# Two checkouts installing at once: one builds, the other waits for it and finds the build ready.
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
if command -v flock >/dev/null; then flock 9; fi

if [ -f "$dir/ready" ] && [ "$(cat "$dir/ready")" = "$stamp" ] && [ -f "$addon" ]; then
  echo "$dir"
  exit 0
fi
for tool in g++ patch xz apt-get ar; do
  command -v "$tool" >/dev/null || { say "$tool is needed (Debian: build-essential, patch, xz-utils)"; exit 1; }
done
node_inc="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")/include/node"
[ -f "$node_inc/node_api.h" ] || node_inc=/usr/include/node
[ -f "$node_inc/node_api.h" ] || { say "Node's headers (node_api.h) are needed next to node"; exit 1; }

rm -rf "$dir"
mkdir -p "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

say "installing @jazzer.js/core ${version} into $dir"
cp "$here/jazzer/package.json" "$here/jazzer/package-lock.json" "$dir/"
(cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)

say "fetching libFuzzer's sources (Debian llvm-toolchain-${llvm})"
codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
# The same Debian archive the system's apt uses (deb822 .sources first, then sources.list).
archive="$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -1 || true)"
[ -n "$archive" ] || archive="$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)"
[ -n "$archive" ] && [ -n "$codename" ] || { say "no Debian archive found in /etc/apt to fetch llvm-toolchain-${llvm} from"; exit 1; }
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src"
echo "deb-src ${archive} ${codename} main" >"$work/apt/sources.list"
# apt on private lists and cache directories: no root needed, the system's apt state untouched.
apt_opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
  -o "APT::Sandbox::User=$(id -un)")
apt-get "${apt_opts[@]}" -qq update >&2
(cd "$work/src" && apt-get "${apt_opts[@]}" -qq source --download-only "llvm-toolchain-${llvm}" >&2)
tar -xJf "$work"/src/llvm-toolchain-"${llvm}"_*.orig.tar.xz -C "$work/src" \
  --wildcards '*/compiler-rt/lib/fuzzer/*.cpp' '*/compiler-rt/lib/fuzzer/*.h' '*/compiler-rt/lib/fuzzer/*.def'
mkdir -p "$work/inc"
mv "$work"/src/llvm-toolchain-*/compiler-rt/lib/fuzzer "$work/inc/fuzzer"
rm -rf "$work/src"
patch -s -d "$work/inc/fuzzer" -p1 <"$patch_file"

say "building libFuzzer and the Jazzer.js addon (a few minutes)"
mkdir -p "$work/obj"
find "$work/inc/fuzzer" -maxdepth 1 -name 'Fuzzer*.cpp' ! -name FuzzerMain.cpp ! -name FuzzerInterceptors.cpp -print0 |
  xargs -0 -P "$(nproc)" -I{} sh -c \
    'g++ -c -O2 -fPIC -std=c++17 -DNDEBUG -w "$1" -o "$2/$(basename "$1" .cpp).o"' _ {} "$work/obj"
ar rcs "$work/libfuzzer.a" "$work"/obj/*.o
fuzzer_pkg="$dir/node_modules/@jazzer.js/fuzzer"
napi_inc="$dir/node_modules/node-addon-api"
mkdir -p "$(dirname "$addon")"
g++ -shared -fPIC -O2 -std=c++17 -DNDEBUG -DNAPI_VERSION=4 -w \
  -I"$node_inc" -I"$napi_inc" -I"$fuzzer_pkg" -I"$work/inc" \
  "$fuzzer_pkg"/*.cpp "$fuzzer_pkg"/shared/*.cpp \
  -Wl,--whole-archive "$work/libfuzzer.a" -Wl,--no-whole-archive -o "$addon"
# Every symbol the addon needs must resolve now, not at the first call mid-fuzzing.
(cd "$dir" && LD_BIND_NOW=1 node -e 'require("@jazzer.js/fuzzer")') >&2
echo "$stamp" >"$dir/ready"
say "ready: $dir/node_modules/.bin/jazzer"
echo "$dir"
