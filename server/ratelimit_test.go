package server

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// limiterStep is one request from client at offset after the start, and
// whether it must pass.
type limiterStep struct {
	at     time.Duration
	client string
	ok     bool
}

func TestViewLimiter(t *testing.T) {
	burst := func(client string, at time.Duration, n int) []limiterStep {
		var s []limiterStep
		for range n {
			s = append(s, limiterStep{at, client, true})
		}
		return s
	}
	cat := func(parts ...[]limiterStep) []limiterStep {
		var s []limiterStep
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	a, b := "10.0.0.1", "10.0.0.2"
	tests := []struct {
		name    string
		clients int // capacity of the limiter's memory; default maxViewClients
		steps   []limiterStep
	}{
		{name: "a burst passes, the next request does not",
			steps: cat(burst(a, 0, viewBurst), []limiterStep{{0, a, false}})},
		{name: "a token comes back after 1/rate",
			steps: cat(burst(a, 0, viewBurst), []limiterStep{{50 * time.Millisecond, a, false}, {100 * time.Millisecond, a, true},
				{100 * time.Millisecond, a, false}})},
		{name: "clients are counted apart",
			steps: cat(burst(a, 0, viewBurst), []limiterStep{{0, a, false}}, burst(b, 0, viewBurst))},
		{name: "one IPv6 /64 is one client",
			steps: cat(burst("2001:db8::1", 0, viewBurst/2), burst("2001:db8::2", 0, viewBurst/2),
				[]limiterStep{{0, "2001:db8::3", false}, {0, "2001:db8:0:1::1", true}})},
		{name: "an IPv4-mapped IPv6 address is its IPv4 address",
			steps: cat(burst(a, 0, viewBurst), []limiterStep{{0, "::ffff:" + a, false}})},
		{name: "memory full: a new client waits until a bucket refills", clients: 2,
			steps: []limiterStep{{0, a, true}, {0, b, true}, {0, "10.0.0.3", false},
				{time.Second, "10.0.0.3", false}, {2 * time.Second, "10.0.0.3", true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
			var now time.Time
			l := newViewLimiter(func() time.Time { return now })
			if tt.clients != 0 {
				l.clients = tt.clients
			}
			for i, s := range tt.steps {
				now = start.Add(s.at)
				ok, wait := l.allow(clientKey(netip.AddrPortFrom(netip.MustParseAddr(s.client), 40000).String()))
				if ok != s.ok {
					t.Fatalf("request %d from %s at %s: allowed %v, want %v", i, s.client, s.at, ok, s.ok)
				}
				if !ok && wait <= 0 {
					t.Fatalf("request %d refused with a wait of %s", i, wait)
				}
			}
		})
	}
}

// TestViewsRateLimitedChecksNot: one client over its rate gets 429 with
// Retry-After on every view, and is never refused a check.
func TestViewsRateLimitedChecksNot(t *testing.T) {
	url := startServer(t, New(Options{Events: &countingEvents{}}, &fakeVerdicts{snapshot: snapshotIn(api.StatePrimary, 2, 2),
		facts: snapshotIn(api.StatePrimary, 2, 2)}))
	for _, path := range []string{api.PathCluster, api.PathRealPrimary, api.PathEvents} {
		t.Run(path, func(t *testing.T) {
			refused := 0
			for range viewBurst + 5 {
				r := do(t, http.MethodGet, url+path)
				if r.status == http.StatusTooManyRequests {
					refused++
					if ra := r.header.Get("Retry-After"); ra != "1" {
						t.Errorf("Retry-After %q, want 1 (a token comes back within a second)", ra)
					}
				}
			}
			// A token may come back while the loop runs; most of the
			// excess is refused all the same.
			if refused == 0 {
				t.Errorf("%d requests in a burst, none refused", viewBurst+5)
			}
		})
	}
	for _, path := range []string{api.PathState, api.PathRoot, api.PathPrimary, api.PathLeader, api.PathHealth} {
		for range 10 * viewBurst {
			if r := do(t, http.MethodGet, url+path); r.status == http.StatusTooManyRequests {
				t.Fatalf("%s answered 429: checks must never be rate limited", path)
			}
		}
	}
}
