package failover

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// roundOpts are the options of the coordinator's tables: the lab's, with
// the fast profile's database.timeout.
func roundOpts() Options {
	return Options{Self: "s3", Mode: api.ModePgquorum, Grace: time.Second, Cooldown: 10 * time.Second,
		CommandTimeout: 20 * time.Second, RefreshInterval: 250 * time.Millisecond, DBTimeout: 400 * time.Millisecond}
}

// probing is r with a direct probe of node that failed (ok false) or answered.
func probing(r *api.Report, node string, ok bool) *api.Report {
	return edited(r, func(r *api.Report) {
		r.Probe = &api.Probe{Node: node, OK: ok}
		if !ok {
			r.Probe.Error = "connection refused"
		}
	})
}

// entryText is a log entry in a line, for the tables.
func entryText(e Entry) string {
	switch {
	case e.Decision != nil:
		d := e.Decision
		s := fmt.Sprintf("decision %d %s", d.Epoch, d.Primary)
		if d.PromotedAt != nil {
			s += " promoted"
		}
		return s
	case e.Promoted != nil:
		return fmt.Sprintf("promoted %d", e.Promoted.Epoch)
	case e.Switchover != nil:
		sw := e.Switchover
		return fmt.Sprintf("switchover %d %s: %s", sw.ID, sw.Phase, sw.Steps[0].What)
	}
	return string(e.Type)
}

// decideThroughDeposition is a round, and when it commits a deposition, the
// round after it once every voter released the deposed node: the two steps
// of a failover as one, for the tables about elections.
func decideThroughDeposition(r *rounds, f roundFacts, st Replicated, now time.Time) roundIntent {
	in := r.decide(f, st, now)
	if in.Commit == nil || in.Commit.Entry.Depose == nil {
		return in
	}
	st.Deposed = append(slices.Clone(st.Deposed), api.Deposition(*in.Commit.Entry.Depose))
	f.Released = map[string]*api.DepositionAnswer{}
	for _, n := range f.Nodes {
		f.Released[n.Name] = &api.DepositionAnswer{Protocol: api.DepositionProtocol, Voter: n.Name, VoterID: n.ID, Applied: true}
	}
	return r.decide(f, st, now)
}

// intentText is a round's intent in a few lines, for the tables.
func intentText(in roundIntent) []string {
	var out []string
	for _, n := range in.Notes {
		out = append(out, "note "+entryText(n.Entry))
	}
	if in.Release != nil {
		out = append(out, "release "+in.Release.Name)
	}
	if in.Commit != nil {
		out = append(out, "commit "+entryText(in.Commit.Entry))
	}
	if in.Phase != "" {
		out = append(out, "phase "+string(in.Phase)+": "+in.Reason)
	}
	return out
}

// matches tells whether got holds want, line by line, each a prefix.
func matches(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			return false
		}
	}
	return true
}

// failedOver is the state where p, the primary of epoch 1, was lost and
// primary was chosen for epoch 2, not promoted yet.
func failedOver(primary repmgr.Node) Replicated {
	st := promotedState()
	st.Epoch, st.Primary, st.PrimaryID = 2, primary.Name, primary.ID
	st.History = append(st.History, api.Decision{Epoch: 2, Primary: primary.Name, PrimaryID: primary.ID, OldPrimary: "p", At: t0, Reason: "test"})
	return st
}

func TestDecideRound(t *testing.T) {
	three := []repmgr.Node{lostP, electS2, electS3}
	primaryUp := edited(up("p", api.StatePrimary), func(r *api.Report) { r.NodeID = 1 })
	promotionOf := func(failed bool, err string) *api.Progress {
		return &api.Progress{Epoch: 2, Kind: api.ActionPromote, Failed: failed, Error: err}
	}
	tests := []struct {
		name    string
		nodes   []repmgr.Node // three when nil
		state   Replicated
		reports map[string]*api.Report
		before  []time.Duration // rounds run first, at t0 plus each, with the same facts
		at      time.Duration   // after t0
		want    []string        // intentText, each line a prefix
	}{
		{name: "at epoch 0 the one node answering 200 is adopted",
			reports: reports(primaryUp, standby(electS2, 1, 10), standby(electS3, 1, 10)),
			want:    []string{"commit decision 1 p"}},
		{name: "at epoch 0 with no 200, the primary a majority's metadata names is adopted when it runs as primary",
			reports: reports(up("p", api.StateUnknown), naming(standby(electS2, 1, 10), "p"), naming(standby(electS3, 1, 10), "p")),
			want:    []string{"commit decision 1 p"}},
		{name: "at epoch 0 the primary the metadata names is not adopted when it runs as a standby",
			reports: reports(up("p", api.StateStandby), naming(standby(electS2, 1, 10), "p"), naming(standby(electS3, 1, 10), "p")),
			want:    []string{"phase Joining: not adopting p, the active primary the metadata of s2, s3 names: it runs as a standby"}},
		{name: "at epoch 0 the primary the metadata names, down within the grace, is suspect, not adopted",
			reports: reports(down("p", 500*time.Millisecond), naming(probing(standby(electS2, 1, 10), "p", false), "p"), naming(standby(electS3, 1, 20), "p")),
			want:    []string{"phase Suspect: nothing adopted yet: p, the active primary the metadata of s2, s3 names: p reports its database down"}},
		{name: "at epoch 0 the primary the metadata names, down for the grace, is replaced as in a failover: the standby with the most WAL",
			reports: reports(down("p", 2*time.Second), naming(probing(standby(electS2, 1, 10), "p", false), "p"), naming(standby(electS3, 1, 20), "p")),
			want:    []string{"commit decision 1 s3"}},
		{name: "at epoch 0 the primary the metadata names, silent and probed down for the grace, is replaced as in a failover",
			reports: reports(naming(probing(standby(electS2, 1, 30), "p", false), "p"), naming(probing(standby(electS3, 1, 20), "p", false), "p")),
			before:  []time.Duration{0}, at: 1500 * time.Millisecond,
			want: []string{"commit decision 1 s2"}},
		{name: "at epoch 0 with two nodes answering 200, nothing is adopted",
			reports: reports(primaryUp, edited(standby(electS2, 1, 10), func(r *api.Report) { r.State = api.StatePrimary })),
			want:    []string{"phase Joining: waiting for exactly one node answering 200"}},
		{name: "a node promoted outside pgquorum while the primary is down is adopted, promoted",
			state:   promotedState(),
			reports: reports(down("p", time.Second), edited(standby(electS2, 1, 10), func(r *api.Report) { r.State, r.InRecovery = api.StatePrimary, false })),
			want:    []string{"commit decision 2 s2 promoted"}},
		{name: "a committed primary no longer registered blocks",
			nodes: []repmgr.Node{electS2, electS3}, state: promotedState(), reports: reports(standby(electS2, 1, 10)),
			want: []string{"phase Blocked: the committed primary p is not registered"}},
		{name: "the chosen node running as primary is recorded promoted",
			state:   failedOver(electS2),
			reports: reports(edited(standby(electS2, 2, 10), func(r *api.Report) { r.InRecovery, r.State = false, api.StateUnknown })),
			want:    []string{"note promoted 2"}},
		{name: "paused, the primary down for long is not replaced",
			state: func() Replicated {
				st := promotedState()
				st.Pause = &Pause{Paused: true, Reason: "maintenance", By: "s2", At: t0}
				return st
			}(),
			reports: reports(down("p", time.Minute), standby(electS2, 1, 10), standby(electS3, 1, 20)),
			want:    []string{"phase Paused: automatic failover paused on s2"}},
		{name: "a promotion that failed: another standby is chosen",
			state:   failedOver(electS2),
			reports: reports(edited(standby(electS2, 1, 30), func(r *api.Report) { r.Action = promotionOf(true, "exit status 1") }), standby(electS3, 1, 20)),
			want:    []string{"commit decision 3 s3"}},
		{name: "a promotion that timed out (still in recovery after command timeout and grace): another standby is chosen",
			state:   failedOver(electS2),
			reports: reports(standby(electS2, 1, 30), standby(electS3, 1, 20)), at: 22 * time.Second,
			want: []string{"commit decision 3 s3"}},
		{name: "a promotion under way, within its time: nothing",
			state:   failedOver(electS2),
			reports: reports(edited(standby(electS2, 1, 30), func(r *api.Report) { r.Action = promotionOf(false, "") }), standby(electS3, 1, 20)), at: 5 * time.Second,
			want: nil},
		{name: "a primary whose database went down within the grace is suspect",
			state: promotedState(), reports: reports(down("p", 0), standby(electS2, 1, 10), standby(electS3, 1, 20)),
			want: []string{"phase Suspect: p reports its database down"}},
		{name: "a primary down for the grace, confirmed by a direct probe, is replaced by the standby with the most WAL",
			state: promotedState(), reports: reports(down("p", 2*time.Second), probing(standby(electS2, 1, 10), "p", false), standby(electS3, 1, 20)),
			want: []string{"commit decision 2 s3"}},
		{name: "a primary down for the grace by its own account alone is only suspect: no direct probe confirms it",
			state: promotedState(), reports: reports(down("p", 2*time.Second), standby(electS2, 1, 10), standby(electS3, 1, 20)),
			want: []string{"phase Suspect: p reports its database down: connection refused; 1 of 2 direct probes"}},
		{name: "a 1s stall (fast profile): down for 1.088s by the primary's lagging account is within the grace, less database.timeout",
			state: promotedState(), reports: reports(down("p", 1088*time.Millisecond), probing(standby(electS2, 1, 10), "p", false), standby(electS3, 1, 20)),
			want: []string{"phase Suspect: p reports its database down"}},
		{name: "a stall that is over: the primary's account past the grace, its database answering the direct probes, is no loss",
			state: promotedState(), reports: reports(down("p", 2*time.Second), probing(standby(electS2, 1, 10), "p", true), probing(standby(electS3, 1, 20), "p", true)),
			want: nil},
		{name: "a silent primary probed down by a majority, for the grace, is replaced",
			state:   promotedState(),
			reports: reports(edited(probed("s2", "p", false), func(r *api.Report) { *r = *edited(standby(electS2, 1, 10), func(x *api.Report) { x.Probe = r.Probe }) }), edited(standby(electS3, 1, 20), func(r *api.Report) { r.Probe = &api.Probe{Node: "p", Error: "timeout"} })),
			before:  []time.Duration{0}, at: 1500 * time.Millisecond,
			want: []string{"commit decision 2 s3"}},
		{name: "an active repmgrd blocks the failover",
			state:   promotedState(),
			reports: reports(down("p", 2*time.Second), probing(standby(electS2, 1, 10), "p", false), edited(standby(electS3, 1, 20), func(r *api.Report) { r.RepmgrdRunning = true })),
			want:    []string{"phase Blocked: p reports its database down"}},
		{name: "within the cooldown of the last promotion, no failover",
			state: func() Replicated {
				st := failedOver(electS2)
				at := t0
				st.History[1].PromotedAt = &at
				return st
			}(),
			reports: reports(down("s2", 2*time.Second), probing(standby(electS3, 2, 20), "s2", false)), at: 5 * time.Second,
			want: []string{"phase Blocked: s2 reports its database down"}},
		{name: "within the cooldown of a planned switchover's promotion, a failover all the same",
			state: switchedOver(), reports: reports(down("s2", 2*time.Second), probing(standby(electS3, 2, 20), "s2", false)), at: 5 * time.Second,
			want: []string{"commit decision 3 s3"}},
		{name: "no candidate blocks",
			nodes: []repmgr.Node{lostP, electW6}, state: promotedState(), reports: reports(down("p", 2*time.Second), probing(up("w6", api.StateStandby), "p", false)),
			want: []string{"phase Blocked: p reports its database down"}},
		{name: "a primary confirmed by its majority: nothing",
			state: promotedState(), reports: reports(primaryUp, standby(electS2, 1, 10), standby(electS3, 1, 20)),
			want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := tt.nodes
			if nodes == nil {
				nodes = three
			}
			r := newRounds(roundOpts())
			f := roundFacts{Nodes: nodes, Reports: tt.reports}
			for _, b := range tt.before {
				r.decide(f, tt.state, t0.Add(b))
			}
			got := intentText(decideThroughDeposition(r, f, tt.state, t0.Add(tt.at)))
			if !matches(got, tt.want) {
				t.Fatalf("round:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

// TestDecideRoundExcludesAFailedCandidate: once its promotion failed, a
// standby is kept out of the elections for a cooldown, even when it has
// the most WAL.
func TestDecideRoundExcludesAFailedCandidate(t *testing.T) {
	r := newRounds(roundOpts())
	f := roundFacts{Nodes: []repmgr.Node{lostP, electS2, electS3, electS4}, Reports: reports(
		edited(standby(electS2, 1, 30), func(r *api.Report) {
			r.Action = &api.Progress{Epoch: 2, Kind: api.ActionPromote, Failed: true, Error: "x"}
		}),
		standby(electS3, 1, 20), standby(electS4, 1, 10))}
	in := decideThroughDeposition(r, f, failedOver(electS2), t0)
	if got := intentText(in); !matches(got, []string{"commit decision 3 s3"}) {
		t.Fatalf("after s2's failed promotion: %v", got)
	}
	if !strings.Contains(in.Commit.Entry.Decision.Reason, "the promotion of s2 failed: x") || in.Commit.While != api.FailoverElecting {
		t.Errorf("decision %+v, shown while committing %q", in.Commit.Entry.Decision, in.Commit.While)
	}
	// s3's promotion fails in turn: s2 is still excluded, s4 is chosen.
	st := failedOver(electS2)
	st.Epoch, st.Primary, st.PrimaryID = 3, "s3", 3
	st.History = append(st.History, api.Decision{Epoch: 3, Primary: "s3", PrimaryID: 3, OldPrimary: "s2", At: t0})
	f.Reports["s3"] = edited(f.Reports["s3"], func(r *api.Report) {
		r.Action = &api.Progress{Epoch: 3, Kind: api.ActionPromote, Failed: true, Error: "y"}
	})
	f.Reports["s2"] = standby(electS2, 1, 30)
	if got := intentText(decideThroughDeposition(r, f, st, t0.Add(time.Second))); !matches(got, []string{"commit decision 4 s4"}) {
		t.Fatalf("after s3's failed promotion too: %v", got)
	}
}

// naming is r with its metadata naming primary as the active primary.
func naming(r *api.Report, primary string) *api.Report {
	return edited(r, func(r *api.Report) { r.Named = primary })
}

// switchedOver is the state after a planned switchover from p to s2, done:
// s2 promoted at t0, the primary of epoch 2.
func switchedOver() Replicated {
	st := failedOver(electS2)
	at := t0
	st.History[1].PromotedAt = &at
	st.Switchovers = []api.Switchover{{ID: 1, From: "p", To: "s2", Phase: api.PhaseDone, Start: t0.Add(-time.Second)}}
	return st
}

// switchingState is promotedState with a switchover from p to s2 in phase.
func switchingState(phase api.SwitchoverPhase) Replicated {
	st := promotedState()
	st.Switchovers = []api.Switchover{{ID: 1, From: "p", To: "s2", Phase: phase, Start: t0}}
	if phase == api.PhasePromoting {
		at := t0.Add(2 * time.Second)
		st.Epoch, st.Primary, st.PrimaryID = 2, "s2", 2
		st.History = append(st.History, api.Decision{Epoch: 2, Primary: "s2", PrimaryID: 2, OldPrimary: "p", At: t0.Add(time.Second), PromotedAt: &at})
	}
	return st
}

func TestSwitchoverDriverStep(t *testing.T) {
	demoted := func(done, failed bool, lsn int64) *api.Report {
		return edited(up("p", api.StateDown), func(r *api.Report) {
			r.DBUp, r.Action = false, &api.Progress{Epoch: 1, Kind: api.ActionDemote, Done: done, Failed: failed, LSN: lsn, Error: map[bool]string{true: "stop failed"}[failed]}
		})
	}
	target := func(lsn int64) *api.Report {
		return edited(standby(electS2, 1, lsn), func(r *api.Report) { r.Upstream, r.Receiver = "p", repmgr.StreamingState })
	}
	newPrimary := edited(up("s2", api.StatePrimary), func(r *api.Report) { r.NodeID = 2 })
	tests := []struct {
		name    string
		nodes   []repmgr.Node
		state   Replicated
		reports map[string]*api.Report
		before  []time.Duration // rounds first, with the same facts
		at      time.Duration
		want    []string
	}{
		{name: "the old primary could not step down: aborted",
			state: switchingState(api.PhaseDemoting), reports: reports(demoted(false, true, 0), target(900)),
			want: []string{"commit switchover 1 aborted: aborted: p could not step down: stop failed"}},
		{name: "the old primary still steps down: the switchover stands in for detection",
			state: switchingState(api.PhaseDemoting), reports: reports(down("p", time.Minute), target(900)), at: time.Second,
			want: []string{"phase Switchover: switchover from p to s2: p steps down and stops"}},
		{name: "no report of the shutdown within command timeout and grace: aborted",
			state: switchingState(api.PhaseDemoting), reports: reports(down("p", time.Minute), target(900)), at: 22 * time.Second,
			want: []string{"commit switchover 1 aborted: aborted: p did not report its shutdown within 21s"}},
		{name: "stopped, and the target received past the shutdown checkpoint: the step, the release, the decision",
			state: switchingState(api.PhaseDemoting), reports: reports(demoted(true, false, 1000), target(1001)),
			want: []string{"note switchover 1 demoting: p stepped down and stopped cleanly: shutdown checkpoint at 0/3E8", "release p", "commit decision 2 s2"}},
		{name: "stopped, the target behind: the step, once, and waiting",
			state: switchingState(api.PhaseDemoting), reports: reports(demoted(true, false, 1000), target(1000)), before: []time.Duration{0}, at: time.Second,
			want: []string{"phase Switchover: switchover from p to s2: waiting for s2 to receive the shutdown checkpoint at 0/3E8"}},
		{name: "the target still behind after the catch-up bound: aborted",
			state: switchingState(api.PhaseDemoting), reports: reports(demoted(true, false, 1000), target(1000)), before: []time.Duration{0}, at: 6 * time.Second,
			want: []string{"commit switchover 1 aborted: aborted: s2 did not receive p's shutdown checkpoint (at 0/3E8) within 5s: received up to 1000"}},
		{name: "the target no longer registered: aborted",
			nodes: []repmgr.Node{lostP, electS3}, state: switchingState(api.PhaseDemoting), reports: reports(demoted(true, false, 1000), target(1001)),
			want: []string{"note switchover 1 demoting: p stepped down", "commit switchover 1 aborted: aborted: s2 is no longer registered"}},
		{name: "promoted, and the old primary streams from the target: done",
			state: switchingState(api.PhasePromoting), reports: reports(newPrimary, edited(standby(lostP, 2, 10), func(r *api.Report) { r.Upstream = "s2" })),
			want: []string{"note switchover 1 promoting: s2 runs as primary (epoch 2), 2s after", "note switchover 1 done: p is a standby of s2"}},
		{name: "promoted, and the old primary's rejoin failed: done without it",
			state: switchingState(api.PhasePromoting), before: []time.Duration{0},
			reports: reports(newPrimary, edited(down("p", time.Second), func(r *api.Report) {
				r.Action = &api.Progress{Epoch: 2, Kind: api.ActionRejoin, Failed: true, Error: "rewind failed"}
			})),
			want: []string{"note switchover 1 done: done without the old primary: p could not rejoin s2: rewind failed"}},
		{name: "promoted, and the old primary not back within command timeout and grace: done without it",
			state: switchingState(api.PhasePromoting), reports: reports(newPrimary, down("p", time.Minute)), before: []time.Duration{0}, at: 24 * time.Second,
			want: []string{"note switchover 1 done: done without the old primary: p has not rejoined s2 within 21s"}},
		{name: "promoted, the old primary not back yet: the promotion's step once, then nothing",
			state: switchingState(api.PhasePromoting), reports: reports(newPrimary, down("p", time.Minute)), before: []time.Duration{0}, at: time.Second,
			want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nodes := tt.nodes
			if nodes == nil {
				nodes = []repmgr.Node{lostP, electS2, electS3}
			}
			r := newRounds(roundOpts())
			f := roundFacts{Nodes: nodes, Reports: tt.reports}
			for _, b := range tt.before {
				r.decide(f, tt.state, t0.Add(b))
			}
			got := intentText(decideThroughDeposition(r, f, tt.state, t0.Add(tt.at)))
			if !matches(got, tt.want) {
				t.Fatalf("round:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}
