#!/bin/sh
# One-shot setup of one cluster of the demo (docker-compose.yml: setup-a, setup-b). Waits for the
# cluster's isthmus server, registers the services given as arguments (Consul registration JSON),
# then, for each proxy in SIDECARS and GATEWAYS, creates a proxy token and writes the Envoy
# bootstrap `$BOOTSTRAP_DIR/<proxy id>.json` that the proxy's container starts from.
#
#   ISTHMUS_HTTP_ADDR   the server's HTTP API (HOST:PORT)        read by the isthmus CLI too; `isthmus
#                       envoy bootstrap` asks it for the xDS port's TLS roots and server name
#   ISTHMUS_HTTP_TOKEN  the server's --http-token                read by the isthmus CLI
#   ISTHMUS_XDS_ADDR    the xDS address Envoy dials (HOST:PORT)  read by `isthmus envoy bootstrap`
#   DATACENTER          the cluster's datacenter (node metadata of the bootstraps)
#   SIDECARS, GATEWAYS  proxy IDs (space separated) of sidecars and of mesh gateways
#   BOOTSTRAP_DIR       where bootstraps go (default /bootstrap)
#
# Safe to run again: registrations are replaced, and each run writes bootstraps with new tokens
# (the tokens of earlier runs stay valid, so running proxies keep their streams).
set -eu

: "${ISTHMUS_HTTP_ADDR:?ISTHMUS_HTTP_ADDR must be the server HTTP API address}"
: "${ISTHMUS_XDS_ADDR:?ISTHMUS_XDS_ADDR must be the xDS address Envoy dials}"
: "${DATACENTER:?DATACENTER must be the cluster datacenter}"
SIDECARS="${SIDECARS:-}"
GATEWAYS="${GATEWAYS:-}"
BOOTSTRAP_DIR="${BOOTSTRAP_DIR:-/bootstrap}"
WAIT_SECONDS="${WAIT_SECONDS:-90}"
export ISTHMUS_HTTP_ADDR ISTHMUS_XDS_ADDR

say() { echo "setup ($DATACENTER): $*" >&2; }

# The server may still be starting: poll its readiness probe (node is in the image; it starts far
# faster than the CLI), with a deadline.
ready() {
  node -e 'fetch(`http://${process.argv[1]}/readyz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1"
}

wait_for_api() {
  started=$(date +%s)
  until ready "$ISTHMUS_HTTP_ADDR"; do
    if [ $(($(date +%s) - started)) -ge "$WAIT_SECONDS" ]; then
      say "no ready isthmus HTTP API at $ISTHMUS_HTTP_ADDR after ${WAIT_SECONDS}s"
      exit 1
    fi
    sleep 1
  done
}

# bootstrap PROXY_ID [--gateway mesh]
bootstrap() {
  id=$1
  shift
  token=$(isthmus acl token create --proxy-id "$id")
  tmp="$BOOTSTRAP_DIR/.$id.json.tmp"
  # The token travels in the environment, not on a command line other processes can read.
  ISTHMUS_PROXY_TOKEN="$token" isthmus envoy bootstrap --proxy-id "$id" --datacenter "$DATACENTER" "$@" >"$tmp"
  # Envoy runs as its own user in its image: the file must be readable by it.
  chmod 0644 "$tmp"
  mv "$tmp" "$BOOTSTRAP_DIR/$id.json"
  say "wrote $BOOTSTRAP_DIR/$id.json (xDS $ISTHMUS_XDS_ADDR)"
}

wait_for_api
for registration in "$@"; do
  isthmus services register "$registration"
done
mkdir -p "$BOOTSTRAP_DIR"
for id in $SIDECARS; do bootstrap "$id"; done
for id in $GATEWAYS; do bootstrap "$id" --gateway mesh; done
say "done"
