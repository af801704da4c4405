package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// pgbenchBin is Debian's PostgreSQL 15 pgbench, beside the lab's servers.
const pgbenchBin = "/usr/lib/postgresql/15/bin/pgbench"

// load is how pgbench loads a cluster.
type load struct {
	scale, clients, jobs int
	duration             time.Duration
}

// sample is one pgbench run: its throughput and the latencies of its
// transactions, from its per-transaction log.
type sample struct {
	tps      float64
	p50, p99 time.Duration
	txns     int // transactions logged
	failed   int // transactions logged as failed (serialization, deadlock)
	// fellBack: the primary fell back to asynchronous replication during
	// the run (a mode other than off), which then measured the wrong thing.
	fellBack bool
}

// pgbenchArgs connect to host:port.
func pgbenchArgs(host string, port int) []string {
	return []string{"-h", host, "-p", strconv.Itoa(port), "-U", "repmgr", "-d", "repmgr"}
}

// initPgbench creates pgbench's tables at l.scale on host:port, the
// primary itself: loading is not measured, and a long statement of it
// (the primary key of pgbench_accounts) is not worth HAProxy's cutting it
// on a check that fails on a loaded machine.
func initPgbench(ctx context.Context, host string, port int, l load) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	args := append(pgbenchArgs(host, port), "-i", "-q", "-s", strconv.Itoa(l.scale))
	if out, err := exec.CommandContext(ctx, pgbenchBin, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("pgbench -i: %w\n%s", err, out)
	}
	return nil
}

// runPgbench runs the TPC-B-like script for l.duration through
// 127.0.0.1:port (HAProxy's read-write listener),
// logging every transaction under dir/prefix, and reads its figures. It
// keeps pgbench's vacuum before the run (no -n), which empties
// pgbench_history: every run starts from the same tables.
func runPgbench(ctx context.Context, port int, l load, dir, prefix string) (sample, error) {
	ctx, cancel := context.WithTimeout(ctx, l.duration+5*time.Minute)
	defer cancel()
	logPrefix := filepath.Join(dir, prefix)
	args := append(pgbenchArgs("127.0.0.1", port), "-c", strconv.Itoa(l.clients), "-j", strconv.Itoa(l.jobs),
		"-T", strconv.Itoa(int(l.duration.Seconds())), "--log", "--log-prefix", logPrefix)
	cmd := exec.CommandContext(ctx, pgbenchBin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return sample{}, fmt.Errorf("pgbench: %w\n%s", err, tail(string(out), 12))
	}
	tps, err := parseTPS(string(out))
	if err != nil {
		return sample{}, err
	}
	logs, err := filepath.Glob(logPrefix + ".*")
	if err != nil || len(logs) == 0 {
		return sample{}, fmt.Errorf("pgbench wrote no log %s.*: %v", logPrefix, err)
	}
	var lat []int64
	failed := 0
	for _, p := range logs {
		l, f, err := readLog(p)
		if err != nil {
			return sample{}, err
		}
		lat, failed = append(lat, l...), failed+f
		_ = os.Remove(p) // read: tens of thousands of lines per run
	}
	if len(lat) == 0 {
		return sample{}, fmt.Errorf("pgbench logged no transaction:\n%s", out)
	}
	slices.Sort(lat)
	us := func(p float64) time.Duration { return time.Duration(percentile(lat, p)) * time.Microsecond }
	return sample{tps: tps, p50: us(50), p99: us(99), txns: len(lat) + failed, failed: failed}, nil
}

var tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)

// parseTPS reads pgbench's throughput, without its connections' setup
// (pgbench connects once per client).
func parseTPS(out string) (float64, error) {
	m := tpsLine.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no tps line in pgbench's output:\n%s", out)
	}
	return strconv.ParseFloat(m[1], 64)
}

// readLog reads one per-transaction log of pgbench --log.
func readLog(path string) (latencies []int64, failed int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("read pgbench log: %w", err)
	}
	defer func() { _ = f.Close() }() // read only
	return parseLog(f)
}

// parseLog reads lines of pgbench --log (PostgreSQL 15):
//
//	client_id transaction_no time script_no time_epoch time_us [schedule_lag]
//
// where time is the transaction's latency in microseconds, or "failed"
// (a serialization or deadlock failure), or "skipped" (only with --rate
// and --latency-limit, which this benchmark does not use).
func parseLog(r io.Reader) (latencies []int64, failed int, err error) {
	s := bufio.NewScanner(r)
	for n := 1; s.Scan(); n++ {
		f := strings.Fields(s.Text())
		if len(f) < 6 {
			return nil, 0, fmt.Errorf("pgbench log line %d: %d fields, want 6 or more: %q", n, len(f), s.Text())
		}
		switch f[2] {
		case "failed":
			failed++
			continue
		case "skipped":
			return nil, 0, fmt.Errorf("pgbench log line %d: a skipped transaction, and no --rate was given", n)
		}
		us, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil || us < 0 {
			return nil, 0, fmt.Errorf("pgbench log line %d: latency %q", n, f[2])
		}
		latencies = append(latencies, us)
	}
	if err := s.Err(); err != nil {
		return nil, 0, fmt.Errorf("read pgbench log: %w", err)
	}
	return latencies, failed, nil
}

// percentile is the nearest-rank p-th percentile of sorted, which must
// not be empty: the smallest value with at least p % of them at or below it.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		panic("percentile of no values")
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// tail is the last n lines of s: an aborted pgbench prints a line per
// client and message received.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
