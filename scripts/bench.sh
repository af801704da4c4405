#!/usr/bin/env bash
# Benchmark harness: wrk against pgquorum's /state on a live demo cluster and
# against a bare Go net/http server (tests/benchref) in the same run, printed
# as ratios; plus pgquorum's memory and how many database probes the load
# cost. Also runs the in-process Go benchmarks. Needs root (the demo cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
bash scripts/install-deps.sh

threads=${BENCH_THREADS:-2} conns=${BENCH_CONNS:-32} dur=${BENCH_DURATION:-10s}
base=${BENCH_PORT_BASE:-26400}
work=$(mktemp -d /tmp/pgquorum-bench-XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -INT "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/pgquorum" ./cmd/pgquorum
go build -o "$work/demo" ./cmd/pgquorum-demo
go build -o "$work/benchref" ./tests/benchref

"$work/demo" --pgquorum "$work/pgquorum" --port-base "$base" --for 10m >"$work/demo.out" 2>&1 &
pids+=($!)
"$work/benchref" --listen "127.0.0.1:$((base + 300))" &
pids+=($!)

node1="http://127.0.0.1:$((base + 101))"
for _ in $(seq 1 120); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' "$node1/state" || true)" = 200 ] && break
	sleep 0.5
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$node1/state")" = 200 ] || { cat "$work/demo.out"; echo "bench: demo cluster did not come up" >&2; exit 1; }

# run_wrk URL → prints "req/s p50_ms p99_ms"
run_wrk() {
	wrk -t"$threads" -c"$conns" -d"$dur" --latency "$1" | awk '
		/Requests\/sec/ {rps=$2}
		/^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
		function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
		END {printf "%s %.3f %.3f\n", rps, ms(p50), ms(p99)}'
}

probes() { curl -s "$node1/metrics" | awk '/^pgquorum_db_probes_total/ {print $2}'; }
# The PID listening on node1's pgquorum port, only to read its memory.
qpid=$(ss -Hltnp "sport = :$((base + 101))" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)

echo "== wrk -t$threads -c$conns -d$dur, reference first, then pgquorum /state on the primary"
read -r ref_rps ref_p50 ref_p99 < <(run_wrk "http://127.0.0.1:$((base + 300))/state")
p0=$(probes); t0=$(date +%s.%N)
read -r q_rps q_p50 q_p99 < <(run_wrk "$node1/state")
p1=$(probes); t1=$(date +%s.%N)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$qpid/status")
ref_pid=${pids[1]}
ref_kb=$(awk '/VmHWM/ {print $2}' "/proc/$ref_pid/status")

awk -v rr="$ref_rps" -v r50="$ref_p50" -v r99="$ref_p99" -v qr="$q_rps" -v q50="$q_p50" -v q99="$q_p99" \
    -v p0="$p0" -v p1="$p1" -v t0="$t0" -v t1="$t1" -v qm="$rss_kb" -v rm="$ref_kb" 'BEGIN {
	printf "%-28s %12s %10s %10s\n", "", "req/s", "p50 ms", "p99 ms"
	printf "%-28s %12.0f %10.3f %10.3f\n", "bare Go net/http (reference)", rr, r50, r99
	printf "%-28s %12.0f %10.3f %10.3f\n", "pgquorum /state", qr, q50, q99
	printf "ratio pgquorum/reference: throughput %.2f, p50 %.2f, p99 %.2f\n", qr/rr, q50/r50, q99/r99
	printf "memory (peak RSS): pgquorum %.1f MiB, reference %.1f MiB, ratio %.2f\n", qm/1024, rm/1024, qm/rm
	printf "database probes during the pgquorum run: %d in %.1f s (refresh 1s), for %.0f requests\n", p1-p0, t1-t0, qr*(t1-t0)
}'

echo "== in-process Go benchmarks (handler vs bare handler)"
go test -run '^$' -bench . -benchmem ./server/
