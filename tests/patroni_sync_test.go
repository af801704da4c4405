package tests

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// syncListeners are the HAProxy listeners of TestPatroniSyncChecksThroughHAProxy,
// one per Patroni synchronous standby check, each with pgquorum's
// recommended timing.
var syncListeners = []struct{ name, path string }{
	{"sync", api.PathSync},
	{"quorum", api.PathQuorum},
	{"read_only_sync", api.PathReadOnlySync},
	{"read_only_quorum", api.PathReadOnlyQuorum},
	{"async", api.PathAsync},
}

// TestPatroniSyncChecksThroughHAProxy: Patroni's synchronous standby checks
// through real HAProxy (option httpchk OPTIONS /sync …), and by GET
// straight from each node, on three nodes with failover.synchronous on,
// k = 1 (docs/patroni.md, "Synchronous standbys"):
//   - ANY 1 ("node2", "node3"): both pass /quorum, neither /sync (a commit
//     can be acknowledged without either), the primary alone
//     /read-only-sync, nobody /async (both are members);
//   - node3's WAL receiver stopped: it leaves the set, and node2, the only
//     member, every commit waiting for it, passes /sync and
//     /read-only-sync; node3 passes nothing (it does not stream);
//   - node3 streaming again: it joins, and the answers are those of the
//     start again.
func TestPatroniSyncChecksThroughHAProxy(t *testing.T) {
	t.Parallel()
	c := startSyncCluster(t, api.SyncOn, nil)
	watchStates(t, c)
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	ports := make([]int, len(syncListeners)+1)
	for i := range ports {
		p, err := lab.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	var listeners []checkListener
	for i, l := range syncListeners {
		listeners = append(listeners, checkListener{l.name, ports[i], "OPTIONS " + l.path, "inter 500ms fall 2 rise 1"})
	}
	_, socket := c.HAProxyPaths()
	cfg := checkListeners(c, socket, ports[len(syncListeners)], listeners...)
	t.Logf("haproxy.cfg:\n%s", cfg)
	h := startHAProxy(t, c, cfg, ports[0], ports[1])

	both := map[string][]*lab.Node{"sync": nil, "quorum": {n2, n3}, "read_only_sync": {n1},
		"read_only_quorum": {n1, n2, n3}, "async": nil}
	waitSyncAnswers(t, c, h, "ANY 1 of node2 and node3", both)

	ctx := context.Background()
	if err := n3.Exec(ctx, "ALTER SYSTEM SET primary_conninfo = ''"); err != nil {
		t.Fatal(err)
	}
	if err := n3.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	waitSync(t, n1, "node3 gone from the set", func(s *api.SyncStatus) bool {
		return s.RPO == api.RPOZero && slices.Equal(s.Set, []string{"node2"}) && s.StandbyNames == `ANY 1 ("node2")`
	})
	waitSyncAnswers(t, c, h, "node2 alone in the set", map[string][]*lab.Node{"sync": {n2}, "quorum": {n2},
		"read_only_sync": {n1, n2}, "read_only_quorum": {n1, n2}, "async": nil})
	t.Logf("node2 alone passes /sync %s after node3's WAL receiver stopped", time.Since(stopped).Round(time.Millisecond))

	if err := n3.Repoint(ctx, n1); err != nil {
		t.Fatal(err)
	}
	waitSync(t, n1, "node3 back in the set", func(s *api.SyncStatus) bool {
		return s.RPO == api.RPOZero && slices.Equal(s.Set, []string{"node2", "node3"})
	})
	waitSyncAnswers(t, c, h, "ANY 1 of node2 and node3 again", both)
}

// waitSyncAnswers waits until, on every listener of syncListeners, exactly
// the nodes of want are UP after a passed check and every other one is
// DOWN after a 503 (an answer, not a failed connection), and every node
// answers a GET of each path the same. HAProxy's view and the nodes' are
// read in one attempt, so that both hold at one time.
func waitSyncAnswers(t *testing.T, c *lab.Cluster, h *labHAProxy, what string, want map[string][]*lab.Node) {
	t.Helper()
	start := time.Now()
	err := lab.WaitFor(context.Background(), syncBudget, what, func(ctx context.Context) error {
		stats, err := h.Stats(ctx)
		if err != nil {
			return err
		}
		var wrong []string
		for _, l := range syncListeners {
			for _, n := range c.Nodes {
				up := slices.Contains(want[l.name], n)
				s := stats[l.name+"/"+n.Name]
				switch {
				case up && !(strings.HasPrefix(s.Status, "UP") && s.CheckStatus == "L7OK"):
					wrong = append(wrong, fmt.Sprintf("%s/%s %q (%s %d), want UP", l.name, n.Name, s.Status, s.CheckStatus, s.CheckCode))
				case !up && !(strings.HasPrefix(s.Status, "DOWN") && s.CheckCode == http.StatusServiceUnavailable):
					wrong = append(wrong, fmt.Sprintf("%s/%s %q (%s %d), want DOWN by 503", l.name, n.Name, s.Status, s.CheckStatus, s.CheckCode))
				}
				wantStatus := http.StatusServiceUnavailable
				if up {
					wantStatus = http.StatusOK
				}
				if status, _, err := n.Get(ctx, l.path); err != nil || status != wantStatus {
					wrong = append(wrong, fmt.Sprintf("GET %s on %s = %d %v, want %d", l.path, n.Name, status, err, wantStatus))
				}
			}
		}
		if len(wrong) > 0 {
			return fmt.Errorf("%s", strings.Join(wrong, "; "))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: every listener and node as expected after %s", what, time.Since(start).Round(time.Millisecond))
}
