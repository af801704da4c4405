package failover

import (
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// These three found by review (issue 14) each lost an acknowledged commit
// before the fix.

// TestSyncRaisingKWaitsForTheNewListBeforeElectionsCountIt:
// failover.synchronous on, primary p, standbys s2 and s3, ANY 1 ("s2", "s3") committed and applied.
// A commit at LSN 100 is acknowledged by s3 alone (s2 has 90). The operator
// raises failover.synchronous_count to 2 (a rolling restart: the node that
// coordinates next has k = 2). nextSync commits the same set with Count 2
// before the primary applied ANY 2: the commits acknowledged under ANY 1
// are still on one member only. p dies, s3's machine (or only its
// pgquorum) with it: under ANY 1 the election needs 2 − 1 + 1 = 2 reports
// and blocks; had it counted ANY 2 at once, 2 − 2 + 1 = 1, s2's report
// alone, and s2 (90) promoted: the commit acknowledged at 100 lost. The
// entry keeps ElectCount 1 until the primary applies ANY 2 and the members
// caught up.
func TestSyncRaisingKWaitsForTheNewListBeforeElectionsCountIt(t *testing.T) {
	now := syncT0.Add(time.Minute)
	cur := syncState(api.SyncOn, 1, []string{"s2", "s3"}, []string{"s2", "s3"})
	applied := cur.StandbyNames()
	onlyS2 := map[string]*api.Report{"s2": streaming(electS2, "p", 90)}
	winner := Candidate{Name: "s2", Received: 90}
	if why := syncElection(cur, 3, onlyS2, winner); why == "" {
		t.Fatalf("precondition: under ANY 1 of {s2, s3} a lone report from s2 must block the election")
	}
	next, why := nextSync(syncInput{Policy: SyncPolicy{Mode: api.SyncOn, Count: 2}, Epoch: 3, Primary: "p", Cur: cur,
		Wanted: []string{"s2", "s3"}, Applied: applied, AppliedOK: true, LSN: map[string]int64{"s2": 90, "s3": 100}, Now: now})
	if next == nil {
		return // k not raised in the log: nothing to lose
	}
	t.Logf("committed on raising k: %v|%v ANY %d (%s)", next.Members, next.Counted, next.Count, why)
	if why := syncElection(next, 3, onlyS2, winner); why == "" {
		t.Fatalf("after k was raised in the log (the primary still applies %q, and the commit at 100 is on s3 only), "+
			"s2 at 90 may be promoted on its report alone: an acknowledged commit is lost", applied)
	}
}

// TestSyncOnModeFallbackKeepsCommitsAcknowledgedWhileSynchronous:
// failover.synchronous on, k = 1, set {s2, s3} counted and applied, the
// status says "RPO 0". A commit at 100 is acknowledged by s3 alone (s2 has
// 90). Then s3's machine dies and s2 falls further behind than
// failover.switchover_max_lag (or its WAL receiver restarts): after the
// grace nobody is eligible, the primary stops waiting ("asynchronous
// until enough stream"). The set used to empty as soon as the primary
// showed the empty list: the primary dies, s2 at 90 is promoted
// unconstrained, and the commit acknowledged at 100 while the cluster ran
// synchronously is lost. The members now stay, and the election blocks
// until s3 is back (docs/failover.md: what `on` promises across a fall
// back).
func TestSyncOnModeFallbackKeepsCommitsAcknowledgedWhileSynchronous(t *testing.T) {
	p := SyncPolicy{Mode: api.SyncOn, Count: 1}
	now := syncT0.Add(time.Minute)
	cur := syncState(api.SyncOn, 1, []string{"s2", "s3"}, []string{"s2", "s3"})
	onlyS2 := map[string]*api.Report{"s2": streaming(electS2, "p", 90)}
	winner := Candidate{Name: "s2", Received: 90}
	if why := syncElection(cur, 3, onlyS2, winner); why == "" {
		t.Fatal("precondition: with s3 silent, ANY 1 of {s2, s3} blocks s2's promotion")
	}
	// Nobody eligible after the grace: the primary stops waiting.
	step1, _ := nextSync(syncInput{Policy: p, Epoch: 3, Primary: "p", Cur: cur, Wanted: nil,
		Applied: cur.StandbyNames(), AppliedOK: true, LSN: map[string]int64{"s2": 90}, Now: now})
	if step1 == nil || len(step1.Counted) != 0 {
		t.Fatalf("precondition: the fallback to asynchronous, got %+v", step1)
	}
	// The primary shows the empty list: the set empties.
	step2, why := nextSync(syncInput{Policy: p, Epoch: 3, Primary: "p", Cur: step1, Wanted: nil,
		Applied: "", AppliedOK: true, LSN: map[string]int64{"s2": 90}, Now: now.Add(time.Second)})
	state := step1
	if step2 != nil {
		state = step2
		t.Logf("then: %v|%v (%s)", step2.Members, step2.Counted, why)
	}
	if why := syncElection(state, 3, onlyS2, winner); why == "" {
		t.Fatalf("after the fallback the set is %v: s2 at 90 may be promoted, and the commit at 100, acknowledged by s3 "+
			"while the cluster ran synchronously (RPO 0), is lost", state.Members)
	}
}

// TestSyncRestoreCarriesTheSetToTheNewEpoch: a restore commits the same
// primary again at a new epoch (restoreIntent, depose.go), and
// syncElection ignores a set committed for an earlier epoch. Sequence:
// epoch 3, primary p, ANY 1 ("s2", "s3") applied; a commit at 100 is
// acknowledged by s3 alone (s2 has 90). p's storage stalls past the grace
// (its own probe and the direct probes of a majority fail): p is deposed
// at epoch 3; it recovers and reports its database up before its voters
// released it, so epoch 4 restores p. Its WAL, and the commit at 100 on
// s3 alone, are unchanged. Before the coordinator has committed a set for
// epoch 4 (the applier meanwhile sets p asynchronous in on mode: want()
// of a new epoch), p's storage fails for good, and s3 with it (or only
// s3's pgquorum is silent). Had the set stayed at epoch 3, the election at
// epoch 4 would be unconstrained: s2 at 90 promoted, the acknowledged
// commit lost. The decision naming p again now carries the set to epoch 4.
func TestSyncRestoreCarriesTheSetToTheNewEpoch(t *testing.T) {
	fsm := NewFSM()
	index := uint64(0)
	commit := func(e Entry) {
		t.Helper()
		index++
		e.Version = EntryVersion
		if err := apply(fsm, index, e.Encode()); err != nil {
			t.Fatalf("apply %s: %v", e.Type, err)
		}
	}
	for epoch := uint64(1); epoch <= 3; epoch++ {
		commit(decisionEntry(api.Decision{Epoch: epoch, At: syncT0, Primary: "p", PrimaryID: 1, Reason: "adopted"}))
	}
	commit(syncEntry(*syncState(api.SyncOn, 1, []string{"s2", "s3"}, []string{"s2", "s3"})))
	onlyS2 := map[string]*api.Report{"s2": streaming(electS2, "p", 90)}
	winner := Candidate{Name: "s2", Received: 90}
	if st := fsm.State(); syncElection(st.Sync, st.Epoch, onlyS2, winner) == "" {
		t.Fatal("precondition: at epoch 3 a lone report from s2 blocks its promotion")
	}
	dep := api.Deposition{Epoch: 3, Node: "p", NodeID: 1, At: syncT0.Add(time.Minute), Reason: "lost"}
	commit(deposeEntry(dep))
	in := restoreIntent(fsm.State(), dep, "p reports its database up, running as primary", syncT0.Add(time.Minute+time.Second))
	if in.Commit == nil {
		t.Fatal("precondition: a restore commits a decision")
	}
	commit(in.Commit.Entry)
	st := fsm.State()
	if st.Primary != "p" || st.Epoch != 4 {
		t.Fatalf("precondition: p restored at epoch 4, got %s at %d", st.Primary, st.Epoch)
	}
	if why := syncElection(st.Sync, st.Epoch, onlyS2, winner); why == "" {
		t.Fatalf("after p was restored at epoch 4 (same node, same WAL), the set of epoch 3 no longer constrains the "+
			"election: s2 at 90 may be promoted and the commit acknowledged at 100 by s3 is lost; the applier meanwhile wants %q",
			want(SyncPolicy{Mode: api.SyncOn, Count: 1}, st))
	}
	if got, keep := want(SyncPolicy{Mode: api.SyncOn, Count: 1}, st), `ANY 1 ("s2", "s3")`; got != keep {
		t.Errorf("the restored primary's applier wants %q, not the carried set's %q", got, keep)
	}
}
