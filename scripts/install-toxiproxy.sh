#!/usr/bin/env bash
# Builds Toxiproxy's server (the fault proxy test/faults/ drives) from its pinned Go module and
# prints the directory holding `toxiproxy-server`; put it on PATH. Needs Go. Built once per version
# into the user cache, so a second run is instant.
set -euo pipefail
version=v2.12.0
dir="${XDG_CACHE_HOME:-$HOME/.cache}/isthmus/toxiproxy-${version}"
if [ ! -x "$dir/toxiproxy-server" ]; then
  # Go's own install location when it is not on PATH.
  command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
  command -v go >/dev/null || { echo "install-toxiproxy: Go is needed to build toxiproxy-server ${version}" >&2; exit 1; }
  mkdir -p "$dir"
  GOBIN="$dir" GOFLAGS=-mod=mod go install "github.com/Shopify/toxiproxy/v2/cmd/server@${version}" >&2
  mv "$dir/server" "$dir/toxiproxy-server"
fi
echo "$dir"
