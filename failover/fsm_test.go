package failover

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/api"
)

// decision is the entry committing primary for epoch.
func decision(epoch uint64, primary string) Entry {
	e := decisionEntry(api.Decision{Epoch: epoch, Primary: primary,
		PrimaryID: int(primary[len(primary)-1] - '0'), At: t0.Add(time.Duration(epoch) * time.Minute), Reason: "test"})
	e.Version = EntryVersion
	return e
}

// apply feeds data to f as the raft log entry of index, and returns what
// Apply returned as an error.
func apply(f *FSM, index uint64, data []byte) error {
	err, _ := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}).(error)
	return err
}

// applied is an FSM that applied entries, which must succeed; each is
// stamped with EntryVersion, as commit does.
func applied(t *testing.T, entries ...Entry) *FSM {
	t.Helper()
	f := NewFSM()
	for i, e := range entries {
		e.Version = EntryVersion
		if err := apply(f, uint64(i+1), e.Encode()); err != nil {
			t.Fatalf("apply %d: %v", i+1, err)
		}
	}
	return f
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func TestFSMApply(t *testing.T) {
	tests := []struct {
		name    string
		before  []Entry // applied first, successfully
		data    []byte
		err     error  // errors.Is; nil with errText empty: applied
		errText string // a part of the error
		epoch   uint64 // after
		primary string // after
	}{
		{name: "the first decision is epoch 1", data: decision(1, "n1").Encode(), epoch: 1, primary: "n1"},
		{name: "a decision for the next epoch is applied", before: []Entry{decision(1, "n1")},
			data: decision(2, "n2").Encode(), epoch: 2, primary: "n2"},
		{name: "the same primary again, for the next epoch, is applied", before: []Entry{decision(1, "n1")},
			data: decision(2, "n1").Encode(), epoch: 2, primary: "n1"},
		{name: "a second decision for the current epoch is stale", before: []Entry{decision(1, "n1")},
			data: decision(1, "n2").Encode(), err: ErrStaleEpoch, errText: "epoch 1 after 1", epoch: 1, primary: "n1"},
		{name: "a decision for an older epoch is stale", before: []Entry{decision(1, "n1"), decision(2, "n2")},
			data: decision(1, "n3").Encode(), err: ErrStaleEpoch, errText: "epoch 1 after 2", epoch: 2, primary: "n2"},
		{name: "a decision skipping an epoch is refused as stale", before: []Entry{decision(1, "n1")},
			data: decision(3, "n3").Encode(), err: ErrStaleEpoch, errText: "epoch 3 after 1", epoch: 1, primary: "n1"},
		{name: "epoch 0 is refused as stale", data: decision(0, "n1").Encode(), err: ErrStaleEpoch, errText: "epoch 0 after 0"},
		{name: "a decision entry with no decision is refused as stale", before: []Entry{decision(1, "n1")},
			data: Entry{Version: EntryVersion, Type: EntryDecision}.Encode(), err: ErrStaleEpoch, errText: "epoch 0 after 1", epoch: 1, primary: "n1"},
		{name: "an unknown entry type is refused", before: []Entry{decision(1, "n1")},
			data:    Entry{Version: EntryVersion, Type: "teleport", Decision: decision(2, "n2").Decision}.Encode(),
			errText: `unknown log entry type "teleport"`, epoch: 1, primary: "n1"},
		{name: "an entry of a newer version is refused", before: []Entry{decision(1, "n1")},
			data:    func() []byte { e := decision(2, "n2"); e.Version = EntryVersion + 1; return e.Encode() }(),
			errText: fmt.Sprintf("log entry version %d, this pgquorum understands %d", EntryVersion+1, EntryVersion), epoch: 1, primary: "n1"},
		{name: "an entry with no version is refused", before: []Entry{decision(1, "n1")},
			data:    mustJSON(map[string]any{"type": "decision", "decision": decision(2, "n2").Decision}),
			errText: "log entry version 0", epoch: 1, primary: "n1"},
		{name: "an entry that does not decode is refused", before: []Entry{decision(1, "n1")},
			data: []byte("{not json"), errText: "decode log entry", epoch: 1, primary: "n1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := applied(t, tt.before...)
			prev := f.State()
			changed := f.Changed()
			err := apply(f, uint64(len(tt.before)+1), tt.data)
			st := f.State()
			if tt.err == nil && tt.errText == "" {
				if err != nil {
					t.Fatalf("Apply: %v", err)
				}
				d, _ := st.Latest()
				if len(st.History) != len(prev.History)+1 || d.Epoch != tt.epoch || d.Primary != tt.primary || st.PrimaryID != d.PrimaryID {
					t.Errorf("state after Apply %+v: want the decision appended to the history", st)
				}
				if !isClosed(changed) {
					t.Error("Changed() not closed by an applied decision")
				}
			} else {
				if err == nil || (tt.err != nil && !errors.Is(err, tt.err)) || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("Apply = %v, want %v saying %q", err, tt.err, tt.errText)
				}
				if !reflect.DeepEqual(st, prev) {
					t.Errorf("a refused entry changed the state: %+v, was %+v", st, prev)
				}
				if isClosed(changed) {
					t.Error("Changed() closed by a refused entry")
				}
			}
			if st.Epoch != tt.epoch || st.Primary != tt.primary {
				t.Errorf("epoch %d, primary %q; want %d, %q", st.Epoch, st.Primary, tt.epoch, tt.primary)
			}
		})
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestFSMHistoryIsBounded(t *testing.T) {
	const n = maxHistory + 7
	f := NewFSM()
	for e := uint64(1); e <= n; e++ {
		if err := apply(f, e, decision(e, fmt.Sprintf("n%d", e%3+1)).Encode()); err != nil {
			t.Fatalf("epoch %d: %v", e, err)
		}
		if st := f.State(); len(st.History) != min(int(e), maxHistory) {
			t.Fatalf("after epoch %d: %d decisions kept, want %d", e, len(st.History), min(int(e), maxHistory))
		}
	}
	st := f.State()
	if st.Epoch != n || st.History[0].Epoch != n-maxHistory+1 || st.History[maxHistory-1].Epoch != n {
		t.Errorf("epoch %d, history from %d to %d; want %d, the newest %d kept, oldest first",
			st.Epoch, st.History[0].Epoch, st.History[len(st.History)-1].Epoch, n, maxHistory)
	}
	if d, _ := st.Latest(); d.Primary != st.Primary || d.PrimaryID != st.PrimaryID {
		t.Errorf("latest %+v, but the state says %s (%d)", d, st.Primary, st.PrimaryID)
	}
}

func TestFSMStateIsACopy(t *testing.T) {
	f := applied(t, decision(1, "n1"), decision(2, "n2"))
	st := f.State()
	st.History[0].Primary = "mallory"
	st.History = append(st.History, api.Decision{Epoch: 3})
	if again := f.State(); again.History[0].Primary != "n1" || len(again.History) != 2 {
		t.Errorf("editing a copy of the state changed the FSM: %+v", again)
	}
}

func TestFSMChanged(t *testing.T) {
	f := NewFSM()
	first := f.Changed()
	if f.Changed() != first {
		t.Fatal("Changed() returned another channel with no change in between")
	}
	if isClosed(first) {
		t.Fatal("Changed() closed before any change")
	}
	if err := apply(f, 1, decision(2, "n2").Encode()); err == nil {
		t.Fatal("epoch 2 applied on an empty FSM")
	}
	if err := apply(f, 2, []byte("garbage")); err == nil {
		t.Fatal("garbage applied")
	}
	if isClosed(first) {
		t.Fatal("Changed() closed by refused entries")
	}
	if err := apply(f, 3, decision(1, "n1").Encode()); err != nil {
		t.Fatal(err)
	}
	if !isClosed(first) {
		t.Fatal("Changed() not closed by a decision")
	}
	second := f.Changed()
	if isClosed(second) {
		t.Fatal("the channel after a change is closed already")
	}
	if err := f.Restore(io.NopCloser(bytes.NewReader(mustJSON(snapshotOf(Replicated{Epoch: 5, Primary: "n3"}))))); err != nil {
		t.Fatal(err)
	}
	if !isClosed(second) {
		t.Fatal("Changed() not closed by Restore")
	}
}

// snapshotStores are the raft snapshot stores an FSM's snapshot must go
// through.
var snapshotStores = []struct {
	name string
	open func(t *testing.T) raft.SnapshotStore
}{
	{"in memory", func(*testing.T) raft.SnapshotStore { return raft.NewInmemSnapshotStore() }},
	{"files", func(t *testing.T) raft.SnapshotStore {
		s, err := raft.NewFileSnapshotStore(t.TempDir(), 2, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// persistThrough snapshots f into store and opens the snapshot again.
func persistThrough(t *testing.T, f *FSM, store raft.SnapshotStore) io.ReadCloser {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	sink, err := store.Create(raft.SnapshotVersionMax, 42, 3, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatalf("create snapshot: %v", err)
	}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	metas, err := store.List()
	if err != nil || len(metas) != 1 {
		t.Fatalf("snapshots listed: %v, %v", metas, err)
	}
	_, rc, err := store.Open(metas[0].ID)
	if err != nil {
		t.Fatalf("open snapshot %s: %v", metas[0].ID, err)
	}
	return rc
}

func TestFSMSnapshotRestore(t *testing.T) {
	for _, s := range snapshotStores {
		t.Run(s.name, func(t *testing.T) {
			var entries []Entry
			for e := uint64(1); e <= maxHistory+3; e++ {
				entries = append(entries, decision(e, fmt.Sprintf("n%d", e%3+1)))
			}
			f := applied(t, entries...)
			want := f.State()
			snap, err := f.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			// The snapshot is of the state when it was taken: raft persists it
			// while Apply goes on.
			if err := apply(f, uint64(len(entries)+1), decision(want.Epoch+1, "n1").Encode()); err != nil {
				t.Fatal(err)
			}
			sink, err := s.open(t).Create(raft.SnapshotVersionMax, 1, 1, raft.Configuration{}, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := snap.Persist(&teeSink{SnapshotSink: sink, w: &buf}); err != nil {
				t.Fatal(err)
			}
			snap.Release()
			var persisted snapshot
			if err := json.Unmarshal(buf.Bytes(), &persisted); err != nil || !reflect.DeepEqual(persisted.replicated(), want) {
				t.Fatalf("persisted %+v (%v), want the state when the snapshot was taken %+v", persisted.replicated(), err, want)
			}

			// And through the store, into a fresh FSM and into one that
			// holds another state: Restore replaces, it does not merge.
			for _, g := range []*FSM{NewFSM(), applied(t, decision(1, "n9"))} {
				if err := g.Restore(persistThrough(t, f, s.open(t))); err != nil {
					t.Fatalf("Restore: %v", err)
				}
				if got, want := g.State(), f.State(); !reflect.DeepEqual(got, want) {
					t.Errorf("restored %+v, want %+v", got, want)
				}
				if err := apply(g, 1000, decision(f.State().Epoch+1, "n2").Encode()); err != nil {
					t.Errorf("the next epoch after a restore: %v", err)
				}
			}
		})
	}
}

// teeSink copies what is persisted, to read it back.
type teeSink struct {
	raft.SnapshotSink
	w io.Writer
}

func (s *teeSink) Write(p []byte) (int, error) {
	_, _ = s.w.Write(p) // a bytes.Buffer
	return s.SnapshotSink.Write(p)
}

func TestFSMRestoreRefusesGarbage(t *testing.T) {
	f := applied(t, decision(1, "n1"))
	changed := f.Changed()
	err := f.Restore(io.NopCloser(strings.NewReader("{\"epoch\": ")))
	if err == nil || !strings.Contains(err.Error(), "restore failover state") {
		t.Fatalf("Restore of a torn snapshot = %v, want an error", err)
	}
	if st := f.State(); st.Epoch != 1 || st.Primary != "n1" || isClosed(changed) {
		t.Errorf("a failed Restore changed the state: %+v", st)
	}
}

// failingSink is a snapshot sink whose writes fail.
type failingSink struct {
	cancelled, closed bool
}

func (s *failingSink) Write([]byte) (int, error) { return 0, errors.New("disk full") }
func (s *failingSink) Close() error              { s.closed = true; return nil }
func (s *failingSink) ID() string                { return "failing" }
func (s *failingSink) Cancel() error             { s.cancelled = true; return nil }

func TestFSMPersistCancelsOnError(t *testing.T) {
	snap, err := applied(t, decision(1, "n1")).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &failingSink{}
	err = snap.Persist(sink)
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Persist = %v, want the sink's error", err)
	}
	if !sink.cancelled || sink.closed {
		t.Errorf("sink cancelled %v, closed %v; want it cancelled, not closed", sink.cancelled, sink.closed)
	}
}

// TestLastPromotion: failover.cooldown counts from the latest promotion by
// a failover; neither the first primary's adoption nor a planned
// switchover's promotion counts.
func TestLastPromotion(t *testing.T) {
	at := func(s int) *time.Time { x := t0.Add(time.Duration(s) * time.Second); return &x }
	adopted := api.Decision{Epoch: 1, Primary: "p", PrimaryID: 1, At: t0, PromotedAt: at(0)}
	failover := api.Decision{Epoch: 2, Primary: "s2", PrimaryID: 2, OldPrimary: "p", At: t0.Add(9 * time.Second), PromotedAt: at(10)}
	switched := api.Decision{Epoch: 3, Primary: "s3", PrimaryID: 3, OldPrimary: "s2", At: t0.Add(19 * time.Second), PromotedAt: at(20)}
	fromS2 := func(phase api.SwitchoverPhase) []api.Switchover {
		return []api.Switchover{{ID: 2, From: "s2", To: "s3", Phase: phase}}
	}
	tests := []struct {
		name        string
		history     []api.Decision
		switchovers []api.Switchover
		want        *time.Time // nil: zero
	}{
		{name: "nothing committed: none", want: nil},
		{name: "the adoption of the first primary does not count", history: []api.Decision{adopted}, want: nil},
		{name: "a failover's promotion counts", history: []api.Decision{adopted, failover}, want: at(10)},
		{name: "a failover not promoted yet does not count",
			history: []api.Decision{adopted, func() api.Decision { d := failover; d.PromotedAt = nil; return d }()}, want: nil},
		{name: "a planned switchover's promotion does not count: the failover's before it does",
			history: []api.Decision{adopted, failover, switched}, switchovers: fromS2(api.PhaseDone), want: at(10)},
		{name: "a switchover still promoting does not count either",
			history: []api.Decision{adopted, failover, switched}, switchovers: fromS2(api.PhasePromoting), want: at(10)},
		{name: "a switchover only, after the adoption: none",
			history:     []api.Decision{adopted, func() api.Decision { d := switched; d.Epoch = 2; return d }()},
			switchovers: []api.Switchover{{ID: 1, From: "p", To: "s3", Phase: api.PhaseDone}}, want: nil},
		{name: "a failover that superseded a switchover (aborted) counts",
			history: []api.Decision{adopted, failover, switched}, switchovers: fromS2(api.PhaseAborted), want: at(20)},
		{name: "a switchover to another node than the one committed does not make a failover a switchover",
			history:     []api.Decision{adopted, failover, switched},
			switchovers: []api.Switchover{{ID: 2, From: "s2", To: "p", Phase: api.PhaseDone}}, want: at(20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := Replicated{History: tt.history, Switchovers: tt.switchovers}
			got := st.LastPromotion()
			want := time.Time{}
			if tt.want != nil {
				want = *tt.want
			}
			if !got.Equal(want) {
				t.Errorf("LastPromotion = %s, want %s", got, want)
			}
		})
	}
}
