#!/usr/bin/env bash
# Measures the write outage of a failover through HAProxy on real lab
# clusters: pgquorum's own controller (default and fast profiles) and, in the
# same run, repmgrd (its defaults, and 2 reconnect attempts x 1 s), for a
# SIGKILL of the primary's postmaster and for the loss of the whole primary
# node, and for a planned switchover (pgquorum). Prints the median and the
# maximum of each. Needs root.
#   bash scripts/bench-failover.sh [--runs 5] [--only "pgquorum fast"] [--fault switchover]
# With --sync first (make bench-sync), measures synchronous replication
# instead (tests/benchsync): pgbench TPS and p99 through HAProxy with
# failover.synchronous off, on k=1 and on k=2, as ratios to off, and the
# failover write outage of on k=1 against off.
#   bash scripts/bench-failover.sh --sync [--rounds 5] [--duration 30s] [--failover-runs 3] [--profile default] [--fsync]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

bench=benchfailover
if [ "${1:-}" = --sync ]; then
	bench=benchsync
	shift
fi
bash scripts/install-deps.sh
bin=$(mktemp -d /tmp/pgquorum-bench-XXXXXX)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/pgquorum" ./cmd/pgquorum
go build -o "$bin/$bench" "./tests/$bench"
"$bin/$bench" --pgquorum "$bin/pgquorum" "$@"
