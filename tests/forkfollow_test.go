package tests

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// TestForkedStandbyIsRewound: a standby that received more of the old
// primary's WAL than the node elected in its place cannot follow it
// (repmgr standby follow: "forked off current database system timeline
// ... before current recovery point"); pgquorum rewinds it.
//
// node3 has priority 0, so it is never a candidate; node2's WAL receiver
// is stopped while writes go on, so node3 is ahead of node2 when node1's
// postmaster is killed. node2 is elected and promoted; node3's history
// forked off node2's at node2's switch point. node3 must end streaming
// from node2 on node2's timeline within forkBudget, having shown the
// rewind and its reason in /state failover.rejoin and in its log.
func TestForkedStandbyIsRewound(t *testing.T) {
	const forkBudget = 90 * time.Second
	r := startFailoverRig(t, threeNodes("dc1"), withKeys(map[string]string{"failover.auto_rejoin": "true"}))
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	ctx := context.Background()
	if err := n1.Exec(ctx, "UPDATE repmgr.nodes SET priority = 0 WHERE node_name = 'node3'"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*lab.Node{n2, n3} {
		err := lab.WaitFor(ctx, settle, n.Name+" to see node3's priority 0", func(ctx context.Context) error {
			p, err := n.QueryInt(ctx, "SELECT priority FROM repmgr.nodes WHERE node_name = 'node3'")
			if err == nil && p != 0 {
				err = fmt.Errorf("priority %d", p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	waitWritesOn(t, r.w, n1)
	if err := n2.StopWALReceiver(ctx); err != nil {
		t.Fatal(err)
	}
	// node3 goes on receiving the writes, and a table's worth of WAL
	// written on node1: wait until it is ahead of node2 by more than a
	// few records.
	if err := n1.Exec(ctx, "CREATE TABLE fork_pad AS SELECT g FROM generate_series(1, 20000) g"); err != nil {
		t.Fatal(err)
	}
	receivedSQL := "SELECT (greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()) - '0/0')::bigint"
	var ahead2, ahead3 int64
	err := lab.WaitFor(ctx, settle, "node3 to receive more WAL than node2", func(ctx context.Context) error {
		var err error
		if ahead2, err = n2.QueryInt(ctx, receivedSQL); err != nil {
			return err
		}
		if ahead3, err = n3.QueryInt(ctx, receivedSQL); err != nil {
			return err
		}
		if ahead3 < ahead2+64*1024 {
			return fmt.Errorf("node2 at %X, node3 at %X", ahead2, ahead3)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node2 received up to %X, node3 up to %X", ahead2, ahead3)

	// Watch node3's /state for the rewind, which lasts seconds (the
	// standby's patience, pg_rewind, the start).
	watch, stopWatch := context.WithCancel(ctx)
	var mu sync.Mutex
	var shown string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			var b api.StateBody
			if _, err := n3.GetJSON(watch, api.PathState, &b); err == nil && b.Failover != nil && b.Failover.Rejoin != nil &&
				strings.HasPrefix(b.Failover.Rejoin.Reason, "rewinding: forked off node2's timeline") && b.Failover.State == api.FailoverRejoining {
				mu.Lock()
				if shown == "" {
					shown = b.Failover.Reason
				}
				mu.Unlock()
			}
			select {
			case <-watch.Done():
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { stopWatch(); wg.Wait() }()

	fault := time.Now()
	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	p := r.failedOver(t, 2, "node1", fault)
	if p != n2 {
		t.Fatalf("%s was elected, want node2 (node3 has priority 0)", p.Name)
	}
	fork, err := n2.ForkLSN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ahead3 <= fork {
		t.Fatalf("node3 received up to %X, not past node2's fork at %X: no fork to rewind", ahead3, fork)
	}
	t.Logf("node2's timeline forked at %X; node3 had received up to %X", fork, ahead3)

	started := waitLog(t, n3, `msg="rejoin attempt started"`, 1, forkBudget)
	if lines := n3.LogLines(`reason="rewinding: forked off node2's timeline`); len(lines) == 0 {
		t.Error("node3's rejoin attempt logged no fork as its reason")
	}
	if lines := n3.LogLines("this standby cannot follow the committed primary: its history forked off"); len(lines) == 0 {
		t.Error("node3 did not log the fork it found")
	}
	standbyOf(t, n3, n2, forkBudget-time.Since(fault))
	tl2, err := n2.QueryInt(ctx, "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")
	if err != nil {
		t.Fatal(err)
	}
	err = lab.WaitFor(ctx, forkBudget-time.Since(fault), "node3 to stream from node2 on its timeline", func(ctx context.Context) error {
		ok, err := n3.StreamsFrom(ctx, n2)
		if err != nil || !ok {
			return fmt.Errorf("node3 does not stream from node2 (%v)", err)
		}
		tli, err := n3.QueryInt(ctx, "SELECT received_tli FROM pg_stat_wal_receiver")
		if err == nil && tli != tl2 {
			err = fmt.Errorf("node3 receives timeline %d, node2 is on %d", tli, tl2)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("MEASURED node3 streams from node2 on timeline %d %s after the fault (%s after its rewind started)", tl2,
		time.Since(fault).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
	if lines := n3.LogLines(`msg="rejoin attempt succeeded"`); len(lines) == 0 {
		t.Error("node3's pgquorum logged no successful rejoin")
	}
	// Rewound, not left alone: a forked standby's receiver streams the old
	// timeline from node2 up to the fork, which is no streaming of node2's.
	if lines := n3.LogLines(fmt.Sprintf("servers diverged at WAL location %X/%X on timeline", fork>>32, uint32(fork))); len(lines) == 0 {
		t.Error("node3's rejoin ran no pg_rewind that found the fork")
	}
	stopWatch()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if shown == "" {
		t.Error("node3's /state never showed Rejoining with failover.rejoin.reason \"rewinding: forked off node2's timeline ...\"")
	} else {
		t.Logf("node3's /state showed: %s", shown)
	}
	waitVerdict(t, n3, "202, Following node2", func(status int, b api.StateBody) bool {
		return status == 202 && b.Failover != nil && b.Failover.State == api.FailoverFollowing && b.Failover.Primary == "node2"
	})
}
