package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

func TestParseLog(t *testing.T) {
	cases := []struct {
		name         string
		log          string
		want         []int64
		failed       int
		errSubstring string
	}{
		{name: "latencies in microseconds, third field",
			log:  "0 0 1532 0 1764743000 123456\n1 0 2210 0 1764743000 124000\n",
			want: []int64{1532, 2210}},
		{name: "schedule lag column ignored",
			log:  "0 0 900 0 1764743000 123456 17\n",
			want: []int64{900}},
		{name: "failed transactions counted apart",
			log:  "0 0 900 0 1764743000 1\n0 1 failed 0 1764743000 2\n",
			want: []int64{900}, failed: 1},
		{name: "skipped without --rate is an error",
			log: "0 0 skipped 0 1764743000 1\n", errSubstring: "skipped"},
		{name: "short line is an error",
			log: "0 0 900\n", errSubstring: "3 fields"},
		{name: "negative latency is an error",
			log: "0 0 -5 0 1764743000 1\n", errSubstring: "latency"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, failed, err := parseLog(strings.NewReader(c.log))
			if c.errSubstring != "" {
				if err == nil || !strings.Contains(err.Error(), c.errSubstring) {
					t.Fatalf("err = %v, want one saying %q", err, c.errSubstring)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) || failed != c.failed {
				t.Fatalf("got %v, %d failed; want %v, %d failed", got, failed, c.want, c.failed)
			}
		})
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	hundred := make([]int64, 100)
	for i := range hundred {
		hundred[i] = int64(i + 1)
	}
	cases := []struct {
		name   string
		sorted []int64
		p      float64
		want   int64
	}{
		{"p99 of 1..100 is 99", hundred, 99, 99},
		{"p50 of 1..100 is 50", hundred, 50, 50},
		{"p100 is the maximum", hundred, 100, 100},
		{"p99 of one value", []int64{7}, 99, 7},
		{"p99 of 10 values is the largest", []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 1000}, 99, 1000},
		{"p0 is the minimum", []int64{3, 4}, 0, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := percentile(c.sorted, c.p); got != c.want {
				t.Fatalf("percentile(%v) = %d, want %d", c.p, got, c.want)
			}
		})
	}
}

func TestParseTPS(t *testing.T) {
	// pgbench 15's summary, trimmed.
	out := `number of transactions actually processed: 41023
number of failed transactions: 0 (0.000%)
latency average = 5.845 ms
initial connection time = 9.123 ms
tps = 1368.660218 (without initial connection time)
`
	got, err := parseTPS(out)
	if err != nil || got != 1368.660218 {
		t.Fatalf("parseTPS = %v, %v; want 1368.660218", got, err)
	}
	if _, err := parseTPS("latency average = 5.845 ms\n"); err == nil {
		t.Fatal("parseTPS found a tps in output without one")
	}
}

func TestStayedSynchronous(t *testing.T) {
	sync := api.SyncStatus{RPO: api.RPOZero, Fallbacks: 2}
	cases := []struct {
		name   string
		after  api.SyncStatus
		stayed bool
	}{
		{"same fallbacks, RPO 0", sync, true},
		{"a fallback counted during the run", api.SyncStatus{RPO: api.RPOZero, Fallbacks: 3}, false},
		{"degraded at the end", api.SyncStatus{RPO: "async since 06:00", Degraded: true, Fallbacks: 2}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := stayedSynchronous(&sync, &c.after); got != c.stayed {
				t.Fatalf("stayedSynchronous = %v, want %v", got, c.stayed)
			}
		})
	}
}

func TestPgbenchTableRatiosToOff(t *testing.T) {
	ms := time.Millisecond
	rs := []modeResult{
		{name: "off", samples: []sample{{tps: 1000, p50: 4 * ms, p99: 10 * ms}, {tps: 900, p50: 4 * ms, p99: 12 * ms}, {tps: 1100, p50: 4 * ms, p99: 8 * ms}}},
		{name: "on k=1", standbyNames: "ANY 1 (node2, node3)", samples: []sample{{tps: 500, p50: 8 * ms, p99: 20 * ms}, {tps: 600, p50: 8 * ms, p99: 25 * ms, fellBack: true}, {tps: 400, p50: 8 * ms, p99: 15 * ms}}},
	}
	var b bytes.Buffer
	pgbenchTable(&b, rs)
	out := b.String()
	for _, want := range []string{
		"off     ''                         3     1000  4.00    10.00   1.00     1.00", // medians of off, ratio 1
		"on k=1  ANY 1 (node2, node3)       2     450   8.00    17.50   0.45     1.75", // the run that fell back left out
		"600 25.00 async",
		"note: on k=1 fell back to asynchronous replication during 1 of 3 runs",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestOutageTable(t *testing.T) {
	rs := []outageResult{
		{name: "off", outages: []time.Duration{2 * time.Second, time.Second, 3 * time.Second}, lost: []int{1, 0, 0}},
		{name: "on k=1", outages: []time.Duration{3 * time.Second, 4 * time.Second}, lost: []int{0, 0}, failures: []string{"run 3: boom"}},
	}
	var b bytes.Buffer
	outageTable(&b, rs)
	out := b.String()
	for _, want := range []string{
		"off     3     2s      3s   1.00  2s 1s 3s  1 0 0",
		"on k=1  2     3.5s    4s   1.75  3s 4s     0 0",
		"failed: on k=1, run 3: boom",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
