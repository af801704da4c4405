package server

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// fakeClock is a clock a test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	haproxyAddr = netip.MustParseAddr("10.0.0.5")
	otherAddr   = netip.MustParseAddr("10.0.0.6")
)

// TestPrimaryWatchRecognisesHealthCheckers: which sequences of requests
// from one client look like a health checker's.
func TestPrimaryWatchRecognisesHealthCheckers(t *testing.T) {
	type req struct {
		after  time.Duration // since the previous request
		method string
	}
	every := func(d time.Duration, n int) []req {
		rs := make([]req, n)
		for i := range rs {
			rs[i] = req{d, http.MethodGet}
		}
		return rs
	}
	tests := []struct {
		name string
		reqs []req
		want []bool // checker, request by request
	}{
		{name: "OPTIONS is HAProxy's default httpchk method", reqs: []req{{0, http.MethodOptions}}, want: []bool{true}},
		{name: "HEAD is a checker's", reqs: []req{{0, http.MethodHead}}, want: []bool{true}},
		{name: "a single GET is a person's", reqs: []req{{0, http.MethodGet}}, want: []bool{false}},
		{name: "GETs every 3 s are a checker's from the fourth on", reqs: every(3*time.Second, 5),
			want: []bool{false, false, false, true, true}},
		{name: "GETs within a quarter of each other are steady", reqs: []req{{0, "GET"}, {2 * time.Second, "GET"}, {2400 * time.Millisecond, "GET"}, {2100 * time.Millisecond, "GET"}},
			want: []bool{false, false, false, true}},
		{name: "GETs at whim are not", reqs: []req{{0, "GET"}, {2 * time.Second, "GET"}, {9 * time.Second, "GET"}, {3 * time.Second, "GET"}},
			want: []bool{false, false, false, false}},
		{name: "a burst of GETs is not", reqs: every(10*time.Millisecond, 5), want: []bool{false, false, false, false, false}},
		{name: "GETs an hour apart are not", reqs: every(time.Hour, 5), want: []bool{false, false, false, false, false}},
		{name: "a GET after a break starts over", reqs: append(every(time.Second, 4), req{time.Minute, "GET"}, req{time.Second, "GET"}),
			want: []bool{false, false, false, true, false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{t: checkedAt}
			w := newPrimaryWatch(clock.Now)
			for i, r := range tt.reqs {
				clock.Advance(r.after)
				if got := w.checker(haproxyAddr, r.method); got != tt.want[i] {
					t.Errorf("request %d (%s after %s): checker = %v, want %v", i, r.method, r.after, got, tt.want[i])
				}
			}
		})
	}
}

// TestPrimaryWatchWarnsOncePerClientPerHour: the dedup of warnings, by
// client and by the hour.
func TestPrimaryWatchWarnsOncePerClientPerHour(t *testing.T) {
	clock := &fakeClock{t: checkedAt}
	w := newPrimaryWatch(clock.Now)
	steps := []struct {
		after  time.Duration
		client netip.Addr
		want   bool
	}{
		{0, haproxyAddr, true},
		{time.Second, haproxyAddr, false},
		{0, otherAddr, true},
		{59 * time.Minute, haproxyAddr, false},
		{time.Minute, haproxyAddr, true},
		{0, otherAddr, true},
		{time.Second, otherAddr, false},
	}
	for i, s := range steps {
		clock.Advance(s.after)
		if got := w.warnDue(s.client); got != s.want {
			t.Errorf("step %d (%s, +%s): warnDue = %v, want %v", i, s.client, s.after, got, s.want)
		}
	}
}

// TestPrimaryWatchIsBounded: past its bound the watch forgets the client
// seen least recently, and only it.
func TestPrimaryWatchIsBounded(t *testing.T) {
	clock := &fakeClock{t: checkedAt}
	w := newPrimaryWatch(clock.Now)
	w.max = 3
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.4")}
	for _, a := range addrs[:3] {
		clock.Advance(time.Second)
		w.warnDue(a)
	}
	clock.Advance(time.Second)
	w.checker(addrs[0], http.MethodOptions) // 10.0.0.2 is now the least recent
	clock.Advance(time.Second)
	w.checker(addrs[3], http.MethodOptions)
	if len(w.clients) != 3 {
		t.Fatalf("%d clients remembered, want the bound 3", len(w.clients))
	}
	if _, ok := w.clients[addrs[1]]; ok {
		t.Errorf("10.0.0.2, seen least recently, is still remembered")
	}
	if w.warnDue(addrs[0]) {
		t.Errorf("10.0.0.1, seen recently, was forgotten and warned about again")
	}
}

// lockedBuffer is a log destination the server's goroutines and the test
// share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) warnings() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range strings.Split(l.b.String(), "\n") {
		if strings.Contains(line, "level=WARN") {
			out = append(out, line)
		}
	}
	return out
}

// TestPrimaryHealthCheckIsWarnedAbout runs /primary through the server:
// its answer never changes; a checker's request on a node that is not the
// confirmed primary is counted, and warned about once an hour per client.
func TestPrimaryHealthCheckIsWarnedAbout(t *testing.T) {
	facts := &consensus.Snapshot{Facts: repmgr.Facts{Nodes: []repmgr.Node{{Name: "n1", Type: repmgr.TypePrimary, Active: true}}}}
	for _, st := range []api.State{api.StateStandby, api.StateUnknown, api.StateDown, api.StatePrimary} {
		t.Run(string(st), func(t *testing.T) {
			var logs lockedBuffer
			m := NewMetrics()
			s := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: m},
				&fakeVerdicts{snapshot: snapshotIn(st, 1, 2), facts: facts})
			clock := &fakeClock{t: checkedAt}
			s.primaryWatch.now = clock.Now
			url := startServer(t, s)
			ask := func(method string) {
				t.Helper()
				if r := do(t, method, url+api.PathPrimary); r.status != 200 {
					t.Fatalf("%s /primary = %d, want its unchanged 200", method, r.status)
				}
			}
			ask(http.MethodGet) // a person's
			ask(http.MethodOptions)
			ask(http.MethodHead)
			clock.Advance(30 * time.Minute)
			ask(http.MethodOptions)
			wantCount, wantWarnings := 3.0, 1
			if st == api.StatePrimary {
				wantCount, wantWarnings = 0, 0
			}
			counted := scrape(t, m, `pgquorum_patroni_primary_checks_total{method="OPTIONS"}`) + scrape(t, m, `pgquorum_patroni_primary_checks_total{method="HEAD"}`)
			if counted != wantCount {
				t.Errorf("pgquorum_patroni_primary_checks_total = %v, want %v", counted, wantCount)
			}
			if got := scrape(t, m, `pgquorum_patroni_primary_checks_total{method="GET"}`); got != 0 {
				t.Errorf("a single GET was counted as a checker's (%v)", got)
			}
			warns := logs.warnings()
			if len(warns) != wantWarnings {
				t.Fatalf("%d warnings, want %d:\n%s", len(warns), wantWarnings, strings.Join(warns, "\n"))
			}
			if wantWarnings == 0 {
				return
			}
			for _, want := range []string{`template_line="option httpchk OPTIONS /primary"`, `use_instead="option httpchk OPTIONS /read-write"`,
				"state=" + string(st), "client=127.0.0.1", "docs/patroni.md"} {
				if !strings.Contains(warns[0], want) {
					t.Errorf("warning %s\nlacks %s", warns[0], want)
				}
			}
			clock.Advance(30 * time.Minute)
			ask(http.MethodOptions)
			if n := len(logs.warnings()); n != 2 {
				t.Errorf("%d warnings an hour after the first, want 2", n)
			}
		})
	}
}

// scrape returns the value of series in m's /metrics, 0 when absent.
func scrape(t *testing.T, m *Metrics, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, api.PathMetrics, nil))
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// TestPrimaryGETsAtASteadyIntervalAreWarnedAbout: HAProxy's
// "option httpchk GET /primary" is recognised by its rhythm, from its
// fourth check on.
func TestPrimaryGETsAtASteadyIntervalAreWarnedAbout(t *testing.T) {
	var logs lockedBuffer
	m := NewMetrics()
	facts := &consensus.Snapshot{Facts: repmgr.Facts{Nodes: []repmgr.Node{{Name: "n1", Type: repmgr.TypePrimary, Active: true}}}}
	s := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Metrics: m},
		&fakeVerdicts{snapshot: snapshotIn(api.StateStandby, 0, 2), facts: facts})
	clock := &fakeClock{t: checkedAt}
	s.primaryWatch.now = clock.Now
	url := startServer(t, s)
	for i := 1; i <= 6; i++ {
		if r := do(t, http.MethodGet, url+api.PathPrimary); r.status != 200 {
			t.Fatalf("GET %d of /primary = %d, want its unchanged 200", i, r.status)
		}
		wantCount, wantWarnings := max(0, i-3), min(1, max(0, i-3))
		if got := scrape(t, m, `pgquorum_patroni_primary_checks_total{method="GET"}`); got != float64(wantCount) {
			t.Errorf("after GET %d: counted %v, want %d", i, got, wantCount)
		}
		warns := logs.warnings()
		if len(warns) != wantWarnings {
			t.Fatalf("after GET %d: %d warnings, want %d", i, len(warns), wantWarnings)
		}
		if wantWarnings == 1 && !strings.Contains(warns[0], `template_line="option httpchk GET /primary"`) {
			t.Errorf("warning %s does not name the GET line", warns[0])
		}
		clock.Advance(3 * time.Second)
	}
}
