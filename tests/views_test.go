package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
	"github.com/pgquorum/pgquorum/repmgr"
)

// TestPatroniStyleChecksFollowTheVerdict checks the role endpoints on a real
// cluster, including a replica held back by paused replay so that
// /replica?lag= has real lag to judge.
func TestPatroniStyleChecksFollowTheVerdict(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	ctx := context.Background()
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	waitState(t, n1, api.StatePrimary, settle)

	for _, tc := range []struct {
		node *lab.Node
		path string
		want int
	}{
		{n1, api.PathLeader, 200}, {n2, api.PathLeader, 503},
		{n1, api.PathReplica, 503}, {n2, api.PathReplica, 200}, {n2, api.PathReplica + "?lag=16MB", 200},
		{n1, api.PathReadOnly, 200}, {n2, api.PathReadOnly, 200},
		{n1, api.PathHealth, 200}, {n2, api.PathHealth, 200},
		{n1, api.PathReadiness, 200}, {n2, api.PathReadiness, 200},
		{n1, api.PathLiveness, 200},
		{n2, api.PathReplica + "?lag=lots", 400},
	} {
		waitPath(t, tc.node, tc.path, tc.want)
	}

	// Hold node2's replay back and write 4 MB on the primary.
	if err := n2.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	if err := n1.Exec(ctx, "CREATE TABLE filler AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 4000) g"); err != nil {
		t.Fatal(err)
	}
	waitPath(t, n2, api.PathReplica+"?lag=1MB", 503)
	waitPath(t, n2, api.PathReplica, 200) // still a streaming replica
	waitPath(t, n3, api.PathReplica+"?lag=1MB", 200)
	var b api.StateBody
	if _, err := n2.GetJSON(ctx, api.PathState, &b); err != nil || b.LagBytes == nil || *b.LagBytes < 1<<20 {
		t.Errorf("paused node2 /state lag_bytes = %v (%v), want ≥ 1 MB", b.LagBytes, err)
	}
	if err := n2.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	waitPath(t, n2, api.PathReplica+"?lag=1MB", 200)

	// A standby whose primary is gone is healthy but neither ready nor a replica.
	if err := n1.StopPG(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	waitPath(t, n1, api.PathHealth, 503)
	waitPath(t, n2, api.PathReadiness, 503)
	waitPath(t, n2, api.PathReplica, 503)
	waitPath(t, n2, api.PathHealth, 200)
	waitPath(t, n1, api.PathLiveness, 200)
}

func TestEventsAndMetrics(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	ctx := context.Background()
	n1 := c.Node("node1")
	waitState(t, n1, api.StatePrimary, settle)

	var events []repmgr.Event
	if status, err := n1.GetJSON(ctx, api.PathEvents, &events); err != nil || status != 200 {
		t.Fatalf("/events = %d %v", status, err)
	}
	seen := map[string]int{}
	for i, e := range events {
		seen[e.Event]++
		if i > 0 && e.Timestamp.After(events[i-1].Timestamp) {
			t.Errorf("/events not newest first: %v after %v", e.Timestamp, events[i-1].Timestamp)
		}
	}
	if seen["primary_register"] != 1 || seen["standby_register"] != 2 {
		t.Errorf("/events = %v, want one primary_register and two standby_register", seen)
	}
	if status, err := n1.GetJSON(ctx, api.PathEvents+"?limit=1", &events); err != nil || status != 200 || len(events) != 1 {
		t.Errorf("/events?limit=1 = %d, %d events, %v", status, len(events), err)
	}
	if status, _, _ := n1.Get(ctx, api.PathEvents+"?limit=0"); status != 400 {
		t.Errorf("/events?limit=0 = %d, want 400", status)
	}

	err := lab.WaitFor(ctx, settle, "node1 metrics", func(ctx context.Context) error {
		status, text, err := metricsText(ctx, n1)
		if err != nil {
			return err
		}
		for _, line := range []string{`pgquorum_state{state="Primary"} 1`, `pgquorum_state{state="Unknown"} 0`,
			`pgquorum_votes 3`, `pgquorum_votes_needed 2`, `pgquorum_peer_up{peer="node2"} 1`, `pgquorum_in_recovery 0`} {
			if status != 200 || !strings.Contains(text, line+"\n") {
				return fmt.Errorf("status %d, no line %q", status, line)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func TestClusterViewAndStatusCommand(t *testing.T) {
	t.Parallel()
	c := startCluster(t, threeNodes("dc1"), nil)
	ctx := context.Background()
	n1, n2 := c.Node("node1"), c.Node("node2")
	waitState(t, n1, api.StatePrimary, settle)

	var b api.ClusterBody
	err := lab.WaitFor(ctx, settle, "node2 /cluster with node1 primary and two streaming standbys", func(ctx context.Context) error {
		if status, err := n2.GetJSON(ctx, api.PathCluster, &b); err != nil || status != 200 {
			return fmt.Errorf("%d %v", status, err)
		}
		if b.RealPrimary == nil || *b.RealPrimary != "node1" || len(b.Nodes) != 3 {
			return fmt.Errorf("got %+v", b)
		}
		// Every vote, once every pgquorum is past its start-up quiet lease.
		if p := b.Nodes[0]; p.Votes != 3 {
			return fmt.Errorf("primary row %+v", p)
		}
		for _, n := range b.Nodes[1:] {
			if n.Status != 202 || n.Streaming == nil || !*n.Streaming || n.LagBytes == nil || n.Upstream != "node1" {
				return fmt.Errorf("standby %+v", n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if p := b.Nodes[0]; p.Name != "node1" || p.Type != repmgr.TypePrimary || p.Status != 200 || p.Votes != 3 || p.Needed != 2 {
		t.Errorf("/cluster primary row = %+v", p)
	}

	out, code := runPgquorum(t, "status", "--url", n2.QuorumURL())
	if code != 0 || !strings.Contains(out, "real primary: node1") || !strings.Contains(out, "Standby") {
		t.Errorf("pgquorum status = exit %d:\n%s", code, out)
	}
	out, code = runPgquorum(t, "status", "--json", "--url", n2.QuorumURL())
	var fromJSON api.ClusterBody
	if code != 0 || json.Unmarshal([]byte(out), &fromJSON) != nil || len(fromJSON.Nodes) != 3 {
		t.Errorf("pgquorum status --json = exit %d:\n%s", code, out)
	}

	if err := n1.StopPG(ctx, "immediate"); err != nil {
		t.Fatal(err)
	}
	waitState(t, n1, api.StateDown, settle)
	err = lab.WaitFor(ctx, settle, "status exit 1 without a primary", func(context.Context) error {
		out, code = runPgquorum(t, "status", "--url", n2.QuorumURL())
		if code != 1 || !strings.Contains(out, "no real primary") {
			return fmt.Errorf("exit %d:\n%s", code, out)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	stopQuorum(t, n2)
	if out, code = runPgquorum(t, "status", "--url", n2.QuorumURL()); code != 2 {
		t.Errorf("status against a stopped pgquorum = exit %d, want 2:\n%s", code, out)
	}
}
