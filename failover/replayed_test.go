package failover

import (
	"io"
	"sync"
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

// checkingFSM checks, on raft's FSM goroutine, right after each entry is
// applied, whether the member counts as ready: during a replay it must
// not, but for the last entry the log held.
type checkingFSM struct {
	*FSM
	mu      sync.Mutex
	m       *member
	readyAt []uint64 // the indexes after which the member was ready
}

func (c *checkingFSM) Apply(l *raft.Log) any {
	res := c.FSM.Apply(l)
	c.mu.Lock()
	m := c.m
	c.mu.Unlock()
	if m != nil && m.ready() {
		c.mu.Lock()
		c.readyAt = append(c.readyAt, l.Index)
		c.mu.Unlock()
	}
	return res
}

// TestRestartedMemberReadyOnlyOnceReplayed: a member restarted on its log
// (a switchover's start, then the decision that ended it) is not ready
// while its FSM replays that log, though it leads the group by then: its
// actor would act on the switchover's start.
func TestRestartedMemberReadyOnlyOnceReplayed(t *testing.T) {
	logs, snaps := raft.NewInmemStore(), raft.NewInmemSnapshotStore()
	o := RaftOptions{Self: "p", HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond, LogOutput: io.Discard}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: "p", Address: "mem-p"}}}
	start := func() (*raft.Raft, *checkingFSM, *member) {
		fsm := &checkingFSM{FSM: NewFSM()}
		_, trans := raft.NewInmemTransport("mem-p")
		r, err := raft.NewRaft(o.config(), fsm, logs, logs, snaps, trans)
		if err != nil {
			t.Fatal(err)
		}
		m := newMember(fsm.FSM, time.Second, 50*time.Millisecond, time.Now)
		m.node.Store(&raftNode{r: r, replayTo: lastCommandAfter(logs, r.AppliedIndex()), logs: logs})
		fsm.mu.Lock()
		fsm.m = m
		fsm.mu.Unlock()
		return r, fsm, m
	}
	r, _, m := start()
	if err := r.BootstrapCluster(conf).Error(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first incarnation to lead", func() bool { return m.leads() })
	at := promotedState().History[0].At
	sw := api.Switchover{ID: 1, From: "p", To: "s2", Phase: api.PhaseDemoting, Start: at}
	for _, e := range []Entry{
		decisionEntry(api.Decision{Epoch: 1, Primary: "p", PrimaryID: 1, At: at}), promotedEntry(Promoted{Epoch: 1, At: at}),
		switchoverEntry(sw), decisionEntry(api.Decision{Epoch: 2, Primary: "s3", PrimaryID: 3, OldPrimary: "p", At: at}),
	} {
		if err := m.commit(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	held := lastCommandAfter(logs, 0).Index

	r, fsm, m := start()
	defer func() { _ = r.Shutdown().Error() }()
	if m.ready() {
		t.Error("ready before the log is replayed")
	}
	waitFor(t, "the restarted member to be ready", m.ready)
	if st := fsm.State(); st.Epoch != 2 || len(st.Switchovers) != 1 || st.Switchovers[0].Phase != api.PhaseAborted {
		t.Errorf("ready with epoch %d, switchovers %+v: want the replayed log's end", st.Epoch, st.Switchovers)
	}
	fsm.mu.Lock()
	defer fsm.mu.Unlock()
	for _, i := range fsm.readyAt {
		if i < held {
			t.Errorf("ready right after entry %d of the replay, before the last one the log held (%d)", i, held)
		}
	}
}

// waitFor polls cond until it holds, for at most ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not synchronising
	}
}
