package failover

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// released is a voter's answer about the deposition: applied, and bound to
// the deposed node for binds more.
func released(n repmgr.Node, binds time.Duration) *api.DepositionAnswer {
	return &api.DepositionAnswer{Protocol: api.DepositionProtocol, Voter: n.Name, VoterID: n.ID, Applied: true, BindsMS: binds.Milliseconds()}
}

// notApplied is a voter's answer that it has not applied the deposition.
func notApplied(n repmgr.Node) *api.DepositionAnswer {
	return &api.DepositionAnswer{Protocol: api.DepositionProtocol, Voter: n.Name, VoterID: n.ID, Reason: "I have not applied it"}
}

// deposedP is promotedState with p deposed at its epoch.
func deposedP() Replicated {
	st := promotedState()
	st.Deposed = []api.Deposition{{Epoch: st.Epoch, Node: "p", NodeID: 1, At: t0, Reason: "test"}}
	return st
}

// TestReleased counts the voters that released a deposed primary as a
// verdict counts votes: a majority of the registered rows, by node_id,
// from the very node asked.
func TestReleased(t *testing.T) {
	three := []repmgr.Node{lostP, electS2, electS3}
	dep := api.Deposition{Epoch: 1, Node: "p", NodeID: 1}
	tests := []struct {
		name        string
		answers     map[string]*api.DepositionAnswer
		wantDone    bool
		wantBlocked bool
		wantReason  string
	}{
		{name: "two of three released: done",
			answers: map[string]*api.DepositionAnswer{"s2": released(electS2, 0), "s3": released(electS3, 0)}, wantDone: true,
			wantReason: "p released by s2, s3"},
		{name: "one still bound: waiting, naming how long",
			answers:    map[string]*api.DepositionAnswer{"s2": released(electS2, 0), "s3": released(electS3, 1200*time.Millisecond)},
			wantReason: "waiting for s3 (bound 1.2s more)"},
		{name: "one not applied yet: waiting",
			answers:    map[string]*api.DepositionAnswer{"s2": released(electS2, 0), "s3": notApplied(electS3)},
			wantReason: "waiting for s3 (I have not applied it)"},
		{name: "one silent: blocked, naming it",
			answers: map[string]*api.DepositionAnswer{"s2": released(electS2, 0)}, wantBlocked: true,
			wantReason: "missing p (no answer), s3 (no answer)"},
		{name: "an answer in another's name does not count",
			answers: map[string]*api.DepositionAnswer{"s2": released(electS2, 0), "s3": released(electS2, 0)}, wantBlocked: true,
			wantReason: "s3 (answered as s2, node_id 2)"},
		{name: "the deposed node's own release counts like any voter's",
			answers: map[string]*api.DepositionAnswer{"p": released(lostP, 0), "s3": released(electS3, 0)}, wantDone: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Released(consensus.ScopeCluster, dep, three, tt.answers)
			if r.Done != tt.wantDone || r.Blocked != tt.wantBlocked || !strings.Contains(r.Reason, tt.wantReason) {
				t.Fatalf("Released = %+v; want done %v, blocked %v, reason containing %q", r, tt.wantDone, tt.wantBlocked, tt.wantReason)
			}
		})
	}
}

// TestDecideRoundDeposesFirst: a lost primary is deposed before its
// successor is committed, and the successor only once a majority of voters
// released it; a deposed primary back before that is restored.
func TestDecideRoundDeposesFirst(t *testing.T) {
	three := []repmgr.Node{lostP, electS2, electS3}
	lostReports := reports(down("p", 2*time.Second), probing(standby(electS2, 1, 10), "p", false), standby(electS3, 1, 20))
	tests := []struct {
		name     string
		state    Replicated
		reports  map[string]*api.Report
		released map[string]*api.DepositionAnswer
		want     []string
	}{
		{name: "lost and not deposed: depose it first, naming the successor",
			state: promotedState(), reports: lostReports,
			want: []string{"commit depose", "phase Electing: deposing p before committing s3"}},
		{name: "deposed, voters still bound: wait, electing",
			state: deposedP(), reports: lostReports,
			released: map[string]*api.DepositionAnswer{"s2": released(electS2, 0), "s3": released(electS3, time.Second)},
			want:     []string{"phase Electing: p reports its database down"}},
		{name: "deposed, a majority released: the successor is committed",
			state: deposedP(), reports: lostReports,
			released: map[string]*api.DepositionAnswer{"s2": released(electS2, 0), "s3": released(electS3, 0)},
			want:     []string{"commit decision 2 s3"}},
		{name: "deposed, no majority can release it: blocked, naming who is missing",
			state: deposedP(), reports: lostReports,
			released: map[string]*api.DepositionAnswer{"s3": released(electS3, 0)},
			want:     []string{"phase Blocked: p reports its database down"}},
		{name: "deposed, but back up as primary before a successor: restored by a decision",
			state: deposedP(), reports: reports(edited(up("p", api.StateUnknown), func(r *api.Report) { r.NodeID = 1 }), standby(electS2, 1, 10), standby(electS3, 1, 20)),
			want: []string{"commit decision 2 p promoted"}},
		{name: "deposed, silent, its database answering a direct probe: not restored, since it may no longer run as primary",
			state: deposedP(), reports: reports(probing(standby(electS2, 1, 10), "p", true), standby(electS3, 1, 20)),
			want: nil},
		{name: "deposed, silent, a round with the direct probes late: not restored",
			state: deposedP(), reports: reports(probing(standby(electS2, 1, 10), "p", false), standby(electS3, 1, 20)),
			want: nil},
		{name: "deposed, silent, and a new coordinator's grace not over: wait, suspect",
			state: deposedP(), reports: reports(probing(standby(electS2, 1, 10), "p", false), probing(standby(electS3, 1, 20), "p", false)),
			want: []string{"phase Suspect: p's pgquorum is silent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRounds(roundOpts())
			in := r.decide(roundFacts{Nodes: three, Reports: tt.reports, Released: tt.released}, tt.state, t0)
			got := intentText(in)
			if !matches(got, tt.want) {
				t.Fatalf("round:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
			if c := in.Commit; c != nil && c.Entry.Depose != nil && (c.Entry.Depose.Node != "p" || c.Entry.Depose.Epoch != 1 || c.Reset) {
				t.Errorf("deposition %+v (reset %v): want p at epoch 1, the detector kept", c.Entry.Depose, c.Reset)
			}
		})
	}
}

// TestApplyDepose: a deposition names the committed primary of the current
// epoch, once; it stays in force after a decision naming another node, and
// ends with a decision naming the deposed node again.
func TestApplyDepose(t *testing.T) {
	f := NewFSM()
	at := t0
	mustApply(t, f, decisionEntry(api.Decision{Epoch: 1, At: at, Primary: "p", PrimaryID: 1, Reason: "adopted"}))
	refused := []LogDeposition{
		{Epoch: 1, Node: "s2", NodeID: 2},
		{Epoch: 1, Node: "p", NodeID: 7},
		{Epoch: 0, Node: "p", NodeID: 1},
		{Epoch: 2, Node: "p", NodeID: 1},
		{Epoch: 1},
	}
	for _, d := range refused {
		if err := applyEntry(f, Entry{Type: EntryDepose, Depose: &d}); err == nil {
			t.Errorf("deposition %+v applied, want refused", d)
		}
	}
	dep := api.Deposition{Epoch: 1, Node: "p", NodeID: 1, At: at, Reason: "lost"}
	mustApply(t, f, deposeEntry(dep))
	if err := applyEntry(f, deposeEntry(dep)); err == nil {
		t.Error("the same deposition applied twice")
	}
	mustApply(t, f, decisionEntry(api.Decision{Epoch: 2, At: at, Primary: "s2", PrimaryID: 2, OldPrimary: "p", Reason: "failover"}))
	if _, ok := f.State().Deposition("p", 1); !ok {
		t.Fatal("p's deposition ended with a decision naming s2")
	}
	mustApply(t, f, decisionEntry(api.Decision{Epoch: 3, At: at, Primary: "p", PrimaryID: 1, OldPrimary: "s2", Reason: "failover back"}))
	if d, ok := f.State().Deposition("p", 1); ok {
		t.Fatalf("p still deposed (%+v) after a decision naming it", d)
	}
}

func applyEntry(f *FSM, e Entry) error {
	e.Version = EntryVersion
	return apply(f, 1, e.Encode())
}

func mustApply(t *testing.T, f *FSM, e Entry) {
	t.Helper()
	if err := applyEntry(f, e); err != nil {
		t.Fatalf("apply %s: %v", e.Type, err)
	}
}

// TestLogHoldsDepose: a restarted node waits for its log to be current
// only when the entries after its snapshot hold a deposition.
func TestLogHoldsDepose(t *testing.T) {
	store := raft.NewInmemStore()
	put := func(i uint64, typ raft.LogType, e Entry) {
		e.Version = EntryVersion
		if err := store.StoreLog(&raft.Log{Index: i, Type: typ, Data: e.Encode()}); err != nil {
			t.Fatal(err)
		}
	}
	put(1, raft.LogCommand, decisionEntry(api.Decision{Epoch: 1, Primary: "p", PrimaryID: 1}))
	put(2, raft.LogCommand, deposeEntry(api.Deposition{Epoch: 1, Node: "p", NodeID: 1}))
	put(3, raft.LogNoop, Entry{})
	put(4, raft.LogCommand, decisionEntry(api.Decision{Epoch: 2, Primary: "s2", PrimaryID: 2}))
	for _, tt := range []struct {
		applied uint64
		want    bool
	}{{0, true}, {1, true}, {2, false}, {4, false}} {
		if got := logHoldsDepose(store, tt.applied); got != tt.want {
			t.Errorf("log applied up to %d: holds a deposition ahead %v, want %v", tt.applied, got, tt.want)
		}
	}
}
