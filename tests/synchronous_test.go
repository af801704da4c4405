package tests

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// Synchronous replication managed through the Raft log
// (failover.synchronous, issue 14), on real clusters behind HAProxy with
// the write prober.

// startSyncRig starts a failover rig with failover.synchronous mode (and
// more keys) whose sessions commit with synchronous_commit on
// (lab.CommitSynchronously).
func startSyncRig(t *testing.T, mode api.SyncMode, more map[string]string) *failoverRig {
	t.Helper()
	c := startSyncCluster(t, mode, more)
	r := &failoverRig{c: c, poller: watchStates(t, c)}
	r.h = startHAProxyFromRepmgr(t, c)
	r.h.waitStatus(t, map[string]string{"postgres_rw/node1": "UP"})
	r.w = startWrites(t, c, c.Node("node1"), r.h)
	return r
}

// startSyncCluster starts three nodes of dc1 with failover.synchronous
// mode (and the keys of more), synchronous_commit on everywhere, and waits
// until node1 is the confirmed primary of epoch 1 and, unless mode is off,
// runs at RPO 0 with node2 and node3.
func startSyncCluster(t *testing.T, mode api.SyncMode, more map[string]string) *lab.Cluster {
	t.Helper()
	keys := withKeys(map[string]string{"failover.synchronous": string(mode)})
	for k, v := range more {
		keys[k] = v
	}
	c := startClusterWith(t, lab.Options{Nodes: threeNodes("dc1"), Quorum: keys, OwnAddresses: true})
	if err := c.CommitSynchronously(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitState(t, c.Node("node1"), api.StatePrimary, settle)
	if d := waitDecision(t, c, 1, settle); d.Primary != "node1" {
		t.Fatalf("epoch 1 adopted %s, want node1", d.Primary)
	}
	if mode != api.SyncOff {
		waitSync(t, c.Node("node1"), "RPO 0 with node2 and node3", func(s *api.SyncStatus) bool {
			return s.RPO == api.RPOZero && slices.Equal(s.Set, []string{"node2", "node3"})
		})
	}
	return c
}

// syncBudget bounds a change of the synchronous set: a member leaves after
// failover.grace, then one commit, the primary's apply, two sightings of it
// a refresh apart and the remaining members' catch-up, each a round of the
// coordinator or more; a correctness bound on a loaded machine.
const syncBudget = 30 * time.Second

// crashCutOff stalls node1's replication (its WAL stops reaching the
// standbys at once, as over a stalled link; its clients are still
// answered: lab.StallReplication), waits for 3 writes through HAProxy
// acknowledged after the cut (off: asynchronous) or 5 sent after it (on,
// strict: they wait, and time out), kills node1's whole instance, waits
// for the failover, heals and counts the acknowledged writes the new
// primary lacks. Asynchronous replication acknowledges the writes of the
// cut and loses them; synchronous replication holds them back (they time
// out) and loses none. It fails the test unless the stall stalled: the new
// primary's timeline must fork at or before node1's WAL position at the
// cut, and with off every write node1 acknowledged after the cut must be
// lost.
func crashCutOff(t *testing.T, r *failoverRig, mode api.SyncMode) (lost []int64, acked int) {
	t.Helper()
	ctx := context.Background()
	n1 := r.c.Node("node1")
	waitWritesOn(t, r.w, n1)
	err := lab.WaitFor(ctx, settle, "20 writes acknowledged by node1", func(context.Context) error {
		if k := len(r.w.Acked()); k < 20 {
			return fmt.Errorf("%d so far", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cutLSN, err := r.c.StallReplication(ctx, n1)
	if err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	// after lists the writes sent after the cut that ok accepts; those
	// node1 acknowledged committed past the cut, where no standby can
	// have received them.
	after := func(ok func(lab.Write) bool) []int64 {
		var seqs []int64
		for _, w := range r.w.Writes() {
			if w.Sent.After(cut) && ok(w) {
				seqs = append(seqs, w.Seq)
			}
		}
		return seqs
	}
	ackedByN1 := func(w lab.Write) bool { return w.Port == n1.PGPort }
	what, enough, want := "5 writes sent after the cut", func(lab.Write) bool { return true }, 5
	if mode == api.SyncOff {
		what, enough, want = "3 writes acknowledged by node1 after the cut", ackedByN1, 3
	}
	err = lab.WaitFor(ctx, settle, what, func(context.Context) error {
		if n := len(after(enough)); n < want {
			return fmt.Errorf("%d so far", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n1.CrashInstance(); err != nil {
		t.Fatal(err)
	}
	crash := time.Now()
	t.Logf("node1 crashed %s after the cut", crash.Sub(cut).Round(time.Millisecond))
	p := r.failedOver(t, 2, "node1", crash)
	r.writesMoveTo(t, p)
	// Healed only now: the kernel keeps retransmitting what the killed
	// walsenders left in their sockets, which a lost machine would not.
	if err := r.c.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	fork, err := p.ForkLSN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s's timeline forks at %X/%X, node1's WAL was at %X/%X at the cut", p.Name, fork>>32, uint32(fork), cutLSN>>32, uint32(cutLSN))
	if fork > cutLSN {
		t.Errorf("the stall did not stall: %s received node1's WAL up to %X/%X, past the cut at %X/%X", p.Name, fork>>32, uint32(fork), cutLSN>>32, uint32(cutLSN))
	}
	lost, err = lab.LostWrites(ctx, p, r.w.Acked())
	if err != nil {
		t.Fatal(err)
	}
	if mode == api.SyncOff {
		// Deterministic, not merely some: their commits are past the cut.
		if kept := slices.DeleteFunc(after(ackedByN1), func(s int64) bool { return slices.Contains(lost, s) }); len(kept) > 0 {
			t.Errorf("writes %v acknowledged asynchronously by node1 after the cut are on %s (lost %v): the stall did not stall", kept, p.Name, lost)
		}
	}
	return lost, len(r.w.Acked())
}

// syncKills is how many crashes TestSynchronousKillLosesNoAcknowledgedWrite
// runs per mode, each on a fresh cluster (the crashed instance is not
// rejoined): 1 in the suite; more with -sync.kills for a longer measure.
var syncKills = flag.Int("sync.kills", 1, "crashes per mode of TestSynchronousKillLosesNoAcknowledgedWrite")

// TestSynchronousKillLosesNoAcknowledgedWrite: node1's instance is killed
// with SIGKILL while its WAL does not reach the standbys (stalled
// replication). With
// failover.synchronous on and strict, the new primary holds every
// acknowledged write; the same crash with off is the control, whose losses
// are counted and reported beside (it must find some: else the test
// could not tell).
func TestSynchronousKillLosesNoAcknowledgedWrite(t *testing.T) {
	t.Parallel()
	type tally struct{ crashes, lost, acked int }
	by := map[api.SyncMode]*tally{}
	for _, mode := range api.SyncModes {
		by[mode] = &tally{}
		for i := range *syncKills {
			t.Run(fmt.Sprintf("%s-%d", mode, i+1), func(t *testing.T) {
				r := startSyncRig(t, mode, nil)
				lost, acked := crashCutOff(t, r, mode)
				by[mode].crashes++
				by[mode].lost += len(lost)
				by[mode].acked += acked
				t.Logf("failover.synchronous %s, crash %d: %d of %d acknowledged writes lost %v", mode, i+1, len(lost), acked, lost)
				if mode != api.SyncOff && len(lost) > 0 {
					t.Errorf("failover.synchronous %s lost acknowledged writes %v", mode, lost)
				}
				if mode != api.SyncOff {
					// The new primary's epoch gets its own set: the other
					// standby, once it streams from it.
					waitSync(t, r.c.Node(r.lastPrimary(t)), "the new primary's set", func(s *api.SyncStatus) bool {
						return s.Epoch == 2 && s.RPO == api.RPOZero && len(s.Set) == 1
					})
				}
			})
		}
	}
	var figures []string
	for _, mode := range api.SyncModes {
		x := by[mode]
		figures = append(figures, fmt.Sprintf("%s: %d of %d acknowledged writes lost over %d crashes", mode, x.lost, x.acked, x.crashes))
	}
	t.Logf("kill -9 of a primary whose replication stalled: %s", strings.Join(figures, "; "))
	if x := by[api.SyncOff]; x.crashes > 0 && x.lost == 0 {
		t.Error("the asynchronous control lost no acknowledged write: the test cannot tell synchronous replication from asynchronous")
	}
}

// lastPrimary is the primary of the latest decision node2 holds.
func (r *failoverRig) lastPrimary(t *testing.T) string {
	t.Helper()
	h, err := history(context.Background(), r.c.Node("node2"))
	if err != nil || len(h.Decisions) == 0 {
		t.Fatalf("history: %v %+v", err, h)
	}
	return h.Decisions[0].Primary
}

// stopStandbys stops the PostgreSQL of the given standbys.
func stopStandbys(t *testing.T, nodes ...*lab.Node) {
	t.Helper()
	for _, n := range nodes {
		if err := n.StopPG(context.Background(), "fast"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSynchronousStrictBlocksWithoutStandby: with strict, both standbys
// stopped, node1 keeps its 200 but no write is acknowledged (they time out,
// seen as SyncRep waits); once node2 returns, writes are acknowledged again
// and nothing was lost.
func TestSynchronousStrictBlocksWithoutStandby(t *testing.T) {
	t.Parallel()
	r := startSyncRig(t, api.SyncStrict, nil)
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	waitWritesOn(t, r.w, n1)
	stopStandbys(t, n2, n3)
	stopped := time.Now()
	// Writes wait: sessions in SyncRep, none acknowledged.
	waitSync(t, n1, "commits waiting in SyncRep", func(s *api.SyncStatus) bool { return s.SyncRepWaits > 0 })
	err := lab.WaitFor(context.Background(), settle, "5 writes sent after the stop to time out", func(context.Context) error {
		failed := 0
		for _, w := range r.w.Writes() {
			if w.Sent.After(stopped) && w.Port == 0 {
				failed++
			}
		}
		if failed < 5 {
			return fmt.Errorf("%d failed so far", failed)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, n1, api.StatePrimary, settle) // still the only primary
	err = lab.WaitFor(context.Background(), settle, "/cluster to say commits wait in SyncRep", func(ctx context.Context) error {
		var body api.ClusterBody
		if _, err := n1.GetJSON(ctx, api.PathCluster, &body); err != nil {
			return err
		}
		if s := body.Failover.Synchronous; s == nil || s.SyncRepWaits == 0 || !strings.Contains(s.RPO, "SyncRep") {
			return fmt.Errorf("/cluster synchronous %+v", s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	restart := time.Now()
	for _, w := range r.w.Writes() {
		if w.Port != 0 && w.Done.After(stopped.Add(time.Second)) && w.Done.Before(restart) {
			t.Errorf("write %d acknowledged at %s with both standbys stopped (from %s)", w.Seq, w.Done.Format("15:04:05.000"), stopped.Format("15:04:05.000"))
		}
	}
	if err := n2.StartPG(context.Background()); err != nil {
		t.Fatal(err)
	}
	// node2 joins the counted standbys again: a commit and an apply.
	err = lab.WaitFor(context.Background(), syncBudget, "writes acknowledged again", func(context.Context) error {
		for _, w := range r.w.Acked() {
			if w.Sent.After(restart) {
				return nil
			}
		}
		return fmt.Errorf("none acknowledged since node2 started")
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("strict: writes resumed %s after node2 started", time.Since(restart).Round(time.Millisecond))
	lost, err := lab.LostWrites(context.Background(), n2, r.w.Acked())
	if err != nil {
		t.Fatal(err)
	}
	if len(lost) > 0 {
		t.Errorf("node2 lacks acknowledged writes %v", lost)
	}
}

// TestSynchronousOnFallsBackToAsync: with on, both standbys stopped, node1
// falls back to asynchronous replication after the grace, says so
// ("async since …", degraded, one fallback counted) and takes writes again;
// once a standby streams again it is synchronous again.
func TestSynchronousOnFallsBackToAsync(t *testing.T) {
	t.Parallel()
	r := startSyncRig(t, api.SyncOn, nil)
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	waitWritesOn(t, r.w, n1)
	stopStandbys(t, n2)
	// The primary waits for node3 alone. On a loaded machine the set may
	// pass through asynchronous on the way (node3 slow to report), and
	// node2 may stay in the set a while (its pgquorum slow to see its
	// database stopped): what matters is that nothing waits for node2.
	waitSync(t, n1, "node3 alone counted", func(s *api.SyncStatus) bool {
		return s.RPO == api.RPOZero && slices.Equal(s.Counted, []string{"node3"})
	})
	keepsWritingWith(t, r, n1, n3)
	stopStandbys(t, n3)
	stopped := time.Now()
	waitSync(t, n1, "degraded", func(s *api.SyncStatus) bool {
		return s.Degraded && strings.HasPrefix(s.RPO, "async since") && s.Fallbacks >= 1 && s.StandbyNames == ""
	})
	err := lab.WaitFor(context.Background(), settle, "writes acknowledged asynchronously", func(context.Context) error {
		for _, w := range r.w.Acked() {
			if w.Sent.After(stopped) && w.Port == n1.PGPort {
				return nil
			}
		}
		return fmt.Errorf("none acknowledged since both standbys stopped")
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n2.StartPG(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitSync(t, n1, "synchronous again with node2", func(s *api.SyncStatus) bool {
		return s.RPO == api.RPOZero && slices.Equal(s.Set, []string{"node2"})
	})
	// A value set by hand is overwritten (failover.synchronous on).
	ctx := context.Background()
	if err := n1.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (elsewhere)'"); err != nil {
		t.Fatal(err)
	}
	if err := n1.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		t.Fatal(err)
	}
	// pg_file_settings reads postgresql.auto.conf as it is now: the
	// value by hand until pgquorum writes the committed one again.
	err = lab.WaitFor(ctx, syncBudget, "node1's postgresql.auto.conf to hold the committed set again", func(ctx context.Context) error {
		k, err := n1.QueryInt(ctx, `SELECT count(*) FROM pg_file_settings WHERE name = 'synchronous_standby_names'
			AND sourcefile LIKE '%postgresql.auto.conf' AND setting = 'ANY 1 ("node2")'`)
		if err == nil && k != 1 {
			err = fmt.Errorf("not yet")
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	waitSync(t, n1, "the value set by hand overwritten", func(s *api.SyncStatus) bool {
		return s.StandbyNames == `ANY 1 ("node2")` && s.RPO == api.RPOZero
	})
}

// keepsWritingWith fails unless primary, with one standby gone, still
// writes synchronously with standby: PostgreSQL itself (pg_stat_replication)
// counts standby, and standby only, as a synchronous candidate
// (sync_state quorum, from synchronous_standby_names 'ANY k (…)'), and
// writes through HAProxy sent from now on are acknowledged by primary.
// With synchronous_commit on (startSyncRig) each of those commits waited
// for standby's flush: RPO 0 with it.
func keepsWritingWith(t *testing.T, r *failoverRig, primary, standby *lab.Node) {
	t.Helper()
	ctx := context.Background()
	err := lab.WaitFor(ctx, settle, primary.Name+" to count "+standby.Name+" alone as synchronous", func(ctx context.Context) error {
		k, err := primary.QueryInt(ctx, `SELECT (count(*) FILTER (WHERE application_name = $1 AND sync_state = 'quorum') = 1
			AND count(*) FILTER (WHERE application_name <> $1 AND sync_state IN ('quorum', 'sync')) = 0)::int
			FROM pg_stat_replication`, standby.Name)
		if err == nil && k != 1 {
			err = fmt.Errorf("pg_stat_replication on %s: not %s alone in sync_state quorum", primary.Name, standby.Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s's pg_stat_replication: %s alone in sync_state quorum", primary.Name, standby.Name)
	from := time.Now()
	err = lab.WaitFor(ctx, settle, "5 writes acknowledged by "+primary.Name+" with "+standby.Name+" synchronous", func(context.Context) error {
		k := 0
		for _, w := range r.w.Acked() {
			if w.Sent.After(from) && w.Port == primary.PGPort {
				k++
			}
		}
		if k < 5 {
			return fmt.Errorf("%d so far", k)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("5 writes acknowledged by %s in %s with %s synchronous", primary.Name, time.Since(from).Round(time.Millisecond), standby.Name)
}

// TestSynchronousLaggingStandbyLeavesAndIsNotPromoted: failover.synchronous
// on, k = 1. node2's WAL receiver is stopped (lab.StopWALReceiver): node2
// falls behind, leaves the committed set after the grace, and node1 stops
// naming it, while writes go on synchronously with node3. Then node1's
// postmaster is killed with SIGKILL, and node3's pgquorum with it, so that
// node2 is the only standby that reports: the ordinary ranking (Elect)
// would promote it, the only candidate, and lose the writes it lacks. The
// election rule of synchronous replication (one member of the committed
// set must have reported its received WAL) holds it back: Blocked, naming
// node3. Once node3's pgquorum is back, node3 is promoted, with every
// acknowledged write.
//
// It fails if a standby whose WAL receiver stopped stays in the set or
// the primary goes on naming it, if node2 is ever committed or answers
// 200 (the election rule broken: it is then promoted while node3's
// pgquorum is down), if node3 is not the new primary, or if the new primary
// lacks an acknowledged write. It also fails unless the lag lagged: node2
// must lack acknowledged writes before the crash, or promoting it would
// lose nothing and the test could not tell.
func TestSynchronousLaggingStandbyLeavesAndIsNotPromoted(t *testing.T) {
	t.Parallel()
	r := startSyncRig(t, api.SyncOn, nil)
	ctx := context.Background()
	n1, n2, n3 := r.c.Node("node1"), r.c.Node("node2"), r.c.Node("node3")
	waitWritesOn(t, r.w, n1)
	if err := n2.StopWALReceiver(ctx); err != nil {
		t.Fatal(err)
	}
	waitSync(t, n1, "node2 out of the set, node1 naming node3 alone", func(s *api.SyncStatus) bool {
		return s.RPO == api.RPOZero && slices.Equal(s.Set, []string{"node3"}) && s.StandbyNames == `ANY 1 ("node3")`
	})
	keepsWritingWith(t, r, n1, n3)
	behind, err := lab.LostWrites(ctx, n2, r.w.Acked())
	if err != nil {
		t.Fatal(err)
	}
	if len(behind) == 0 {
		t.Fatal("node2 holds every acknowledged write: its WAL receiver did not stop, nothing lags")
	}
	t.Logf("node2 lacks %d acknowledged writes (from %d)", len(behind), behind[0])

	if err := n1.KillPostmaster(); err != nil {
		t.Fatal(err)
	}
	crash := time.Now()
	n3.KillQuorum()
	err = lab.WaitFor(ctx, primaryBudget, "the election to be blocked for want of node3's report", func(ctx context.Context) error {
		var b api.StateBody
		if _, err := n2.GetJSON(ctx, api.PathState, &b); err != nil {
			return err
		}
		if f := b.Failover; f == nil || f.State != api.FailoverBlocked || !containsAll(f.Reason, "synchronous set (node3)", "node3 (no report)") {
			return fmt.Errorf("node2's failover: %+v", f)
		}
		t.Logf("node2: %s: %s", b.Failover.State, b.Failover.Reason)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n3.StartQuorum(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	t.Logf("node3's pgquorum back %s after the crash", back.Sub(crash).Round(time.Millisecond))
	p := r.failedOver(t, 2, "node1", back)
	if p != n3 {
		t.Fatalf("%s promoted in place of node1, want node3, the synchronous standby", p.Name)
	}
	r.writesMoveTo(t, p)
	if at, ok := r.poller.FirstPrimary("node2", crash); ok {
		t.Errorf("node2, lagging, answered 200 at %s", at.Format("15:04:05.000"))
	}
	lost, err := lab.LostWrites(ctx, p, r.w.Acked())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d acknowledged writes missing on %s", len(lost), len(r.w.Acked()), p.Name)
	if len(lost) > 0 {
		t.Errorf("%s lacks acknowledged writes %v", p.Name, lost)
	}
}
