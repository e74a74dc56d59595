#!/bin/sh
# One-shot peering of the demo's clusters (docker-compose.yml: peer). Cluster A accepts: it
# generates a token for the peer it calls `cluster-b`; cluster B dials: it establishes with that
# token under the name `cluster-a`. A then exports the services of EXPORTED_SERVICES (an
# exported-services config entry) to cluster-b. Exits 0 once both sides report ACTIVE.
#
#   A_HTTP_ADDR, B_HTTP_ADDR  the two servers' HTTP APIs (HOST:PORT)
#   ISTHMUS_HTTP_TOKEN        the servers' --http-token (read by the isthmus CLI)
#   EXPORTED_SERVICES         A's exported-services entry (JSON file)
#
# Safe to run again: an existing peering is left alone (only waited for), and the entry is rewritten.
# If a server lost its data (docker-compose down -v of one side only), start both afresh.
set -eu

: "${A_HTTP_ADDR:?A_HTTP_ADDR must be cluster A server HTTP API address}"
: "${B_HTTP_ADDR:?B_HTTP_ADDR must be cluster B server HTTP API address}"
: "${EXPORTED_SERVICES:?EXPORTED_SERVICES must be the exported-services entry of cluster A}"
WAIT_SECONDS="${WAIT_SECONDS:-90}"

say() { echo "peer: $*" >&2; }
on_a() { ISTHMUS_HTTP_ADDR="$A_HTTP_ADDR" isthmus "$@"; }
on_b() { ISTHMUS_HTTP_ADDR="$B_HTTP_ADDR" isthmus "$@"; }

# until_ok WHAT COMMAND...: retries COMMAND (quietly) until it succeeds, with a deadline.
until_ok() {
  what=$1
  shift
  started=$(date +%s)
  until "$@" >/dev/null 2>&1; do
    if [ $(($(date +%s) - started)) -ge "$WAIT_SECONDS" ]; then
      say "gave up after ${WAIT_SECONDS}s waiting for $what"
      "$@" >/dev/null # prints the last error, if the command has one
      exit 1
    fi
    sleep 1
  done
}

# state_of SIDE NAME: the state of that side's peering NAME (empty when there is none).
state_of() {
  "$1" peering read --name "$2" --format json 2>/dev/null | sed -n 's/^  "State": "\([A-Z]*\)",*$/\1/p'
}

# is_active SIDE NAME: whether that side's peering NAME is ACTIVE.
is_active() {
  [ "$(state_of "$1" "$2")" = ACTIVE ]
}

# ready HOST:PORT: the server's readiness probe (node is in the image; it starts far faster than the CLI).
ready() {
  node -e 'fetch(`http://${process.argv[1]}/readyz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1"
}

# establish: A generates a token for cluster-b, B establishes with it as cluster-a.
establish() {
  # generate-token repeats the token on stderr as a ready-made command: keep it out of the logs,
  # but show the error if there is one.
  errors=$(mktemp)
  if ! token=$(on_a peering generate-token --name cluster-b 2>"$errors"); then
    cat "$errors" >&2
    rm -f "$errors"
    exit 1
  fi
  rm -f "$errors"
  on_b peering establish --name cluster-a --peering-token "$token"
}

until_ok "cluster A's HTTP API at $A_HTTP_ADDR to be ready" ready "$A_HTTP_ADDR"
until_ok "cluster B's HTTP API at $B_HTTP_ADDR to be ready" ready "$B_HTTP_ADDR"

on_a config write "$EXPORTED_SERVICES"

# A peering that exists (after a restart its stream may still be reconnecting) is waited for, not
# established again; none, or one the peer terminated, is established with a new token.
state=$(state_of on_b cluster-a)
case "$state" in
"" | TERMINATED) establish ;;
*) say "cluster B already peers with cluster-a (state $state)" ;;
esac

until_ok "cluster B's peering cluster-a to be ACTIVE" is_active on_b cluster-a
until_ok "cluster A's peering cluster-b to be ACTIVE" is_active on_a cluster-b
say "done: cluster-a and cluster-b are peered (ACTIVE); A exports what $EXPORTED_SERVICES lists"
