#!/usr/bin/env bash
# The pgquorum demo: three real PostgreSQL 15 nodes managed by repmgr, one
# pgquorum per node and HAProxy in front, all on 127.0.0.1. Prints what to
# curl, then runs until Ctrl-C; with --tour it walks through a failover under
# writes (the synchronous set before it, the acknowledged writes lost after
# it) and the return of the old primary, then stops. failover.synchronous is
# on unless --synchronous says otherwise. Everything it starts is stopped on
# exit. Needs root (PostgreSQL runs as the postgres OS user).
#   bash scripts/demo.sh [--tour] [--synchronous on|strict|off] [--for 10m] [--port-base 25400]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

bash scripts/install-deps.sh
bin=$(mktemp -d /tmp/pgquorum-bin-XXXXXX)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/pgquorum" ./cmd/pgquorum
go build -o "$bin/pgquorum-demo" ./cmd/pgquorum-demo
"$bin/pgquorum-demo" --pgquorum "$bin/pgquorum" "$@"
