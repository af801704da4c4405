package main

import (
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/config"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/haproxy"
)

// TestReviewReloadBoundsOldWorkerSessions: "on-marked-down
// shutdown-sessions" is what cuts the clients of a demoted primary
// (FIELD-NOTES, the template's comment). After a reload (the drop-in's
// ExecReload: kill -USR2 of the master), the established sessions stay in
// the old worker, which runs no more checks, so nothing ever marks their
// server DOWN: they keep writing to the old primary after a failover, for as
// long as the client keeps them (timeout client 30m only bounds idle ones).
//
// Measured here (HAProxy 2.6.12, -W, inter 200ms fall 2, on-marked-down
// shutdown-sessions): a session opened before "kill -USR2"; the server's
// checks fail from 1.1 s after the reload; the new worker marks it DOWN
// ("0 sessions active"); the old worker ("Proxy rw stopped (cumulated conns:
// FE: 1, BE: 1)") carried 9 more round trips over the next 5 s, until the
// test's client stopped.
//
// The old primary is still a primary when it is cut off from its peers but
// not from HAProxy (failover.fence is off by default): the new one is
// confirmed router_hold + L after its last vote. Only "hard-stop-after" in
// the global section bounds the old worker; haproxy-config renders none.
func TestReloadBoundsOldWorkerSessions(t *testing.T) {
	o := haproxy.DefaultOptions()
	o.StatsSocket, o.ServerStateFile = "/run/haproxy/pgquorum.sock", "/var/lib/haproxy/pgquorum.state" // the reload path of deployment.md
	cfg, err := haproxy.Render(o, []haproxy.Server{{Name: "node1", Host: "10.0.0.1", Port: 5432, CheckPort: 5999}})
	if err != nil {
		t.Fatal(err)
	}
	hold, _ := time.ParseDuration(config.Profiles["default"]["consensus.router_hold"])
	ttl, _ := time.ParseDuration(config.Profiles["default"]["consensus.cache_ttl"])
	confirmAfter := consensus.LeaseFor(ttl) + hold // earliest confirmation of a successor after the last vote
	global, _, _ := strings.Cut(cfg, "\ndefaults")
	var bound time.Duration = -1
	for _, line := range strings.Split(global, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "hard-stop-after" {
			d, err := time.ParseDuration(f[1])
			if err != nil {
				t.Fatalf("hard-stop-after %q: %v", f[1], err)
			}
			bound = d
		}
	}
	if bound < 0 || bound > confirmAfter {
		t.Errorf("the rendered global section bounds the old worker's sessions after a reload by %v (-1: never), want at most %s (a successor may be confirmed that soon after the old primary's last vote):\n%s",
			bound, confirmAfter, global)
	}
}
