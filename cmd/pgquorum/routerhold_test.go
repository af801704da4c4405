package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/config"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/haproxy"
)

// TestReviewRouterHoldCoversHAProxy checks the claim of docs/quorum.md ("The
// router's hold"): the next primary's first 200 comes at least
// router_hold + (L - cache_ttl) after the last primary's last 200 (L =
// LeaseFor(cache_ttl): the lease outlives the verdict by a tenth), and by
// then HAProxy must have marked the last primary DOWN (the new one is UP
// after rise passed checks, inter apart, the first no earlier than its first
// 200). Rows with checks answered 503 pass; they are the controls.
//
// HAProxy's side, measured on this machine (HAProxy 2.6.12, inter 500ms
// fall 2, no "timeout check", as haproxy-config renders): a check is
// started inter after the previous one completed; a check answered 503
// fails at once, so the server goes DOWN fall x inter after its last
// passed check (measured 1.03 s); a check that gets no answer fails only
// at its timeout, which without "timeout check" is inter, so the server
// stays UP fall x 2 x inter (measured 2.05 s: 200 at 34.429, unanswered
// checks at 34.940 and 35.943, DOWN at 36.44-36.48).
//
// Unanswered checks at the moment the verdict expires are what a stalled
// refresh gives: Checker.Snapshot serves the cached 200 until cache_ttl,
// then joins the refresh in flight (singleflight) and waits for it: e.g. a
// state_dir write stuck in Ballot.Grant's Save (under the ballot's mutex,
// in the self-vote), or a probe stuck on a frozen database.
func TestRouterHoldCoversHAProxy(t *testing.T) {
	patroni := haproxy.DefaultOptions()
	patroni.Inter, patroni.Fall = 3*time.Second, 3 // docs/patroni.md: "inter 3s fall 3 rise 2 … unchanged"
	patroni.Rise = 2
	// failover.md's settings for each profile: --inter X --fall 2 --rise 1.
	withInter := func(inter time.Duration) haproxy.Options {
		o := haproxy.DefaultOptions()
		o.Inter, o.Fall, o.Rise = inter, 2, 1
		return o
	}
	tests := []struct {
		name    string
		profile string
		opts    haproxy.Options
		hung    bool // the old primary's checks get no answer (timeout = inter)
		// prescribed: the operator set consensus.router_hold to the minimum
		// haproxy-config writes at the top of the file (and warns about on
		// stderr when the default profile's falls short); otherwise the
		// profile's default is in force.
		prescribed bool
	}{
		{name: "haproxy-config's own defaults, router_hold as it prescribes, 503s", profile: "default", opts: haproxy.DefaultOptions(), prescribed: true},
		{name: "haproxy-config's own defaults, router_hold as it prescribes, unanswered checks", profile: "default", opts: haproxy.DefaultOptions(), hung: true, prescribed: true},
		{name: "--inter 500ms --fall 2 with the default profile, 503s", profile: "default", opts: withInter(500 * time.Millisecond)},
		{name: "--inter 500ms --fall 2 with the default profile, unanswered checks", profile: "default", opts: withInter(500 * time.Millisecond), hung: true},
		{name: "--inter 200ms --fall 2 with the fast profile, 503s", profile: "fast", opts: withInter(200 * time.Millisecond)},
		{name: "--inter 200ms --fall 2 with the fast profile, unanswered checks", profile: "fast", opts: withInter(200 * time.Millisecond), hung: true},
		{name: "Patroni's template, router_hold as docs/patroni.md prescribes, 503s", profile: "default", opts: patroni, prescribed: true},
		{name: "Patroni's template, router_hold as docs/patroni.md prescribes, unanswered checks", profile: "default", opts: patroni, hung: true, prescribed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hold, err := time.ParseDuration(config.Profiles[tt.profile]["consensus.router_hold"])
			if err != nil {
				t.Fatal(err)
			}
			if tt.prescribed {
				hold = tt.opts.RouterHold()
			}
			ttl, err := time.ParseDuration(config.Profiles[tt.profile]["consensus.cache_ttl"])
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := haproxy.Render(tt.opts, []haproxy.Server{{Name: "node1", Host: "10.0.0.1", Port: 5432, CheckPort: 5999}})
			if err != nil {
				t.Fatal(err)
			}
			// Without "timeout check" HAProxy times a check out after inter.
			timeout := time.Duration(0)
			if tt.hung {
				if strings.Contains(cfg, "timeout check") {
					t.Fatal("the model assumes no timeout check")
				}
				timeout = tt.opts.Inter
			}
			keptUp := time.Duration(tt.opts.Fall) * (tt.opts.Inter + timeout)
			// The new primary's first passed check comes at the earliest
			// with its first 200; rise-1 more follow, inter apart.
			gap := hold + consensus.LeaseFor(ttl) - ttl
			newUp := gap + time.Duration(tt.opts.Rise-1)*tt.opts.Inter
			if newUp < keptUp {
				t.Errorf("inter %s fall %d rise %d: HAProxy keeps the old primary UP for %s after its last passed check, but the new primary's first 200 may come %s after it (router_hold %s + lease margin %s) and it is UP after rise checks at %s: two write servers UP for %s (the rendered config asks for router_hold >= %s)",
					tt.opts.Inter, tt.opts.Fall, tt.opts.Rise, keptUp, gap, hold, consensus.LeaseFor(ttl)-ttl, newUp, keptUp-newUp, tt.opts.RouterHold())
			}
		})
	}
}
