#!/usr/bin/env bash
# The soak (make soak; not part of scripts/test.sh or CI): a real three-node
# cluster for SOAK_DURATION (default 5m) under HAProxy-like checks from many
# clients, with node1's PostgreSQL restarted every 30 s and node3's pgquorum
# flapping every 20 s. Prints a before/after table of goroutines, open FDs,
# RSS, pool size and PostgreSQL sessions of node1 and node2, and exits
# non-zero when any grew beyond its stated tolerance (tests/soak_test.go).
# Needs root, like the integration tests. The daemon is built without the
# race detector, as it ships. The output is also kept in soak.log.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

bash scripts/install-deps.sh
duration=${SOAK_DURATION:-5m}
echo "== soak for $duration" >&2
# The table and the verdicts are shown; the cluster's logs are in soak.log.
status=0
SOAK_DURATION="$duration" go test -tags soak -count=1 -timeout 60m -run '^TestSoak$' -v ./tests/ >soak.log 2>&1 || status=$?
grep -E '^SOAK\| |soak_test.go:[0-9]+:|^(--- |ok |FAIL|PASS)' soak.log | sed 's/^SOAK| //' || true
exit "$status"
