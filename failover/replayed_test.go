package failover

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/pgquorum/pgquorum/api"
)

// TestLastCommandAfter: the entry a restarted node must have applied before
// it acts is the last command after its snapshot; configuration and no-op
// entries never reach the FSM.
func TestLastCommandAfter(t *testing.T) {
	store := raft.NewInmemStore()
	if err := store.StoreLogs([]*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogConfiguration},
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: []byte("{}")},
		{Index: 3, Term: 2, Type: raft.LogCommand, Data: []byte("{}")},
		{Index: 4, Term: 3, Type: raft.LogNoop},
	}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		after uint64
		want  raft.Log
	}{
		{0, raft.Log{Index: 3, Term: 2, Type: raft.LogCommand}},
		{2, raft.Log{Index: 3, Term: 2, Type: raft.LogCommand}},
		{3, raft.Log{}},
		{4, raft.Log{}},
	} {
		if got := lastCommandAfter(store, tt.after); got.Index != tt.want.Index || got.Term != tt.want.Term || got.Type != tt.want.Type {
			t.Errorf("after %d: %+v, want %+v", tt.after, got, tt.want)
		}
	}
}

// TestReplayedWaitsForTheLogHeldAtStart: the FSM of a restarted node shows
// each entry of its log in turn while it replays it; the node is not
// replayed, so not ready, until the FSM applied the last command its log
// held at start, or that entry is gone (replaced by a new coordinator's, or
// covered by a snapshot), and stays replayed after.
func TestReplayedWaitsForTheLogHeldAtStart(t *testing.T) {
	held := raft.Log{Index: 5, Term: 2, Type: raft.LogCommand}
	sw := switchoverEntry(api.Switchover{ID: 1, From: "p", To: "s2", Phase: api.PhaseDemoting, Start: t0})
	sw.Version = EntryVersion
	for _, tt := range []struct {
		name    string
		held    raft.Log  // the last command held at start
		inLog   *raft.Log // the entry at held.Index now; nil: none
		applied uint64    // the index the FSM applied up to
		want    bool
	}{
		{"nothing held at start", raft.Log{}, nil, 0, true},
		{"replaying: an entry before the last one held applied", held, &held, 4, false},
		{"the last entry held applied", held, &held, 5, true},
		{"replaced by a new coordinator's entry", held, &raft.Log{Index: 5, Term: 3, Type: raft.LogCommand}, 3, true},
		{"replaced by a new coordinator's no-op", held, &raft.Log{Index: 5, Term: 3, Type: raft.LogNoop}, 3, true},
		{"covered by a snapshot: no longer in the log", held, nil, 3, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := raft.NewInmemStore()
			if tt.inLog != nil {
				if err := store.StoreLog(tt.inLog); err != nil {
					t.Fatal(err)
				}
			}
			fsm := NewFSM()
			if tt.applied > 0 {
				_ = apply(fsm, tt.applied, sw.Encode()) // refused or not, an entry applied counts
			}
			m := newMember(fsm, time.Second, time.Second, time.Now)
			m.node.Store(&raftNode{replayTo: tt.held, logs: store})
			if got := m.replayed(); got != tt.want {
				t.Fatalf("replayed = %v, want %v", got, tt.want)
			}
			if tt.want {
				return
			}
			_ = apply(fsm, held.Index, sw.Encode())
			if !m.replayed() {
				t.Fatal("not replayed once the FSM applied the last entry held")
			}
			// Once replayed, a node stays so: the entries after are not
			// a replay.
			later := raft.Log{Index: 9, Term: 2, Type: raft.LogCommand}
			if err := store.StoreLog(&later); err != nil {
				t.Fatal(err)
			}
			m.node.Store(&raftNode{replayTo: later, logs: store})
			if !m.replayed() {
				t.Error("replayed did not hold once it held")
			}
		})
	}
}
