package failover

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/api"
)

// The invariants of the replicated failover state, as the simulation in
// sim_test.go checks them, and the negative control that shows the checks
// can fail.

// ledger records every decision any FSM of the group applies, when it
// applies it, and notes each violation of the invariants:
//   - one decision per epoch: every FSM that applied a decision of epoch e
//     applied the same one (same primary, node_id, time and reason);
//   - in order without gaps: an FSM applies epoch e+1 right after e, or
//     after a snapshot restore of e, and a restore never takes it back.
//
// FSMs are told apart by member and incarnation ("n2#3"): a restarted member
// starts from an empty FSM, as a restarted pgquorum does, and applies the
// log again.
type ledger struct {
	mu         sync.Mutex
	byEpoch    map[uint64]appliedBy
	last       map[string]uint64 // the epoch each FSM last applied or restored
	violations []string
	applied    int // decisions applied, counted on every FSM
	refused    int // decisions refused as stale, counted on every FSM
	restores   int // snapshots restored
}

type appliedBy struct {
	who string
	d   api.Decision
}

func newLedger() *ledger {
	return &ledger{byEpoch: map[uint64]appliedBy{}, last: map[string]uint64{}}
}

func (l *ledger) apply(who string, d api.Decision) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.applied++
	if prev := l.last[who]; d.Epoch != prev+1 {
		l.violate("%s applied epoch %d after epoch %d", who, d.Epoch, prev)
	}
	l.last[who] = d.Epoch
	l.agree(who, d)
}

func (l *ledger) restore(who string, s Replicated) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.restores++
	if prev := l.last[who]; s.Epoch < prev {
		l.violate("%s restored epoch %d after applying epoch %d", who, s.Epoch, prev)
	}
	for _, v := range contiguity(s) {
		l.violate("%s restored a snapshot where %s", who, v)
	}
	for _, d := range s.History {
		l.agree(who, d)
	}
	l.last[who] = s.Epoch
}

func (l *ledger) refusal() {
	l.mu.Lock()
	l.refused++
	l.mu.Unlock()
}

// agree notes d as the decision of its epoch, or a violation if another
// FSM holds another one. The caller holds l.mu.
func (l *ledger) agree(who string, d api.Decision) {
	first, ok := l.byEpoch[d.Epoch]
	switch {
	case !ok:
		l.byEpoch[d.Epoch] = appliedBy{who, d}
	case !sameDecision(first.d, d):
		l.violate("epoch %d: %s holds primary %s (%s), %s holds primary %s (%s)",
			d.Epoch, first.who, first.d.Primary, first.d.Reason, who, d.Primary, d.Reason)
	}
}

func (l *ledger) violate(format string, args ...any) {
	if len(l.violations) < 20 {
		l.violations = append(l.violations, fmt.Sprintf(format, args...))
	}
}

// check returns the violations noted so far.
func (l *ledger) check() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.violations...)
}

// newest is the highest epoch any FSM applied.
func (l *ledger) newest() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var e uint64
	for k := range l.byEpoch {
		e = max(e, k)
	}
	return e
}

func sameDecision(a, b api.Decision) bool {
	return a.Epoch == b.Epoch && a.Primary == b.Primary && a.PrimaryID == b.PrimaryID && a.At.Equal(b.At) &&
		a.OldPrimary == b.OldPrimary && a.Reason == b.Reason
}

// recordingFSM is this package's FSM, reporting to a ledger what it
// applies and restores.
type recordingFSM struct {
	*FSM
	who string
	l   *ledger
}

func (f *recordingFSM) Apply(l *raft.Log) any {
	res := f.FSM.Apply(l)
	switch err, _ := res.(error); {
	case err == nil:
		e, _ := DecodeEntry(l.Data) // applied, so it decodes
		f.l.apply(f.who, e.Decision.api())
	case errors.Is(err, ErrStaleEpoch):
		f.l.refusal()
	}
	return res
}

func (f *recordingFSM) Restore(rc io.ReadCloser) error {
	if err := f.FSM.Restore(rc); err != nil {
		return err
	}
	f.l.restore(f.who, f.FSM.State())
	return nil
}

// contiguity checks one replicated state on its own: its history holds
// consecutive epochs, oldest first, ending at its epoch, and its primary is
// that of its latest decision.
func contiguity(s Replicated) []string {
	var out []string
	for i := 1; i < len(s.History); i++ {
		if prev, d := s.History[i-1].Epoch, s.History[i].Epoch; d != prev+1 {
			out = append(out, fmt.Sprintf("history[%d] is epoch %d after epoch %d", i, d, prev))
			break
		}
	}
	if d, ok := s.Latest(); ok && d.Epoch != s.Epoch {
		out = append(out, fmt.Sprintf("epoch %d, but the latest decision is of epoch %d", s.Epoch, d.Epoch))
	}
	if d, ok := s.Latest(); ok && (d.Primary != s.Primary || d.PrimaryID != s.PrimaryID) {
		out = append(out, fmt.Sprintf("primary %s (%d), but the latest decision names %s (%d)", s.Primary, s.PrimaryID, d.Primary, d.PrimaryID))
	}
	if len(s.History) == 0 && (s.Epoch != 0 || s.Primary != "") {
		out = append(out, fmt.Sprintf("epoch %d, primary %q with no history", s.Epoch, s.Primary))
	}
	return out
}

// agreement checks replicated states against each other, as they stand:
// each is contiguous, and no two hold different decisions for one epoch.
// States may lag one another.
func agreement(states map[string]Replicated) []string {
	var out []string
	names := make([]string, 0, len(states))
	for n := range states {
		names = append(names, n)
	}
	sort.Strings(names)
	seen := map[uint64]appliedBy{}
	for _, n := range names {
		s := states[n]
		for _, v := range contiguity(s) {
			out = append(out, n+": "+v)
		}
		for _, d := range s.History {
			first, ok := seen[d.Epoch]
			switch {
			case !ok:
				seen[d.Epoch] = appliedBy{n, d}
			case !sameDecision(first.d, d):
				out = append(out, fmt.Sprintf("epoch %d: %s holds primary %s (%s), %s holds primary %s (%s)",
					d.Epoch, first.who, first.d.Primary, first.d.Reason, n, d.Primary, d.Reason))
			}
		}
	}
	return out
}

// TestInvariantChecksCatchViolations is the negative control of the
// simulation: FSMs fed logs directly, without raft, some of them logs that
// raft must never produce. Both checks must report exactly those.
func TestInvariantChecksCatchViolations(t *testing.T) {
	type feed struct {
		fsm   string
		entry Entry
	}
	tests := []struct {
		name      string
		feeds     []feed
		restore   map[string]Replicated // restored into the named FSM after the feeds
		ledger    string                // a part of the ledger's first violation; "" for none
		agreement string                // a part of agreement's first violation; "" for none
	}{
		{name: "the same log on two FSMs violates nothing",
			feeds: []feed{{"a", decision(1, "n1")}, {"b", decision(1, "n1")}, {"a", decision(2, "n2")}, {"b", decision(2, "n2")}}},
		{name: "an FSM lagging behind another violates nothing",
			feeds: []feed{{"a", decision(1, "n1")}, {"a", decision(2, "n2")}, {"b", decision(1, "n1")}}},
		{name: "stale proposals, refused alike, violate nothing",
			feeds: []feed{{"a", decision(1, "n1")}, {"a", decision(1, "n3")}, {"b", decision(1, "n1")}, {"b", decision(1, "n3")}}},
		{name: "two FSMs that applied different primaries for one epoch are caught",
			feeds:  []feed{{"a", decision(1, "n1")}, {"b", decision(1, "n1")}, {"a", decision(2, "n2")}, {"b", decision(2, "n3")}},
			ledger: "epoch 2: a holds primary n2", agreement: "epoch 2: a holds primary n2 (test), b holds primary n3 (test)"},
		{name: "two FSMs that applied the same primary from two proposals for one epoch are caught",
			feeds:     []feed{{"a", decision(1, "n1")}, {"b", func() Entry { e := decision(1, "n1"); e.Decision.Reason = "another coordinator"; return e }()}},
			ledger:    "epoch 1: a holds primary n1 (test), b holds primary n1 (another coordinator)",
			agreement: "epoch 1: a holds primary n1 (test), b holds primary n1 (another coordinator)"},
		{name: "a snapshot with a gap in its history is caught",
			feeds:   []feed{{"a", decision(1, "n1")}},
			restore: map[string]Replicated{"b": {Epoch: 3, Primary: "n3", PrimaryID: 3, History: []api.Decision{decision(1, "n1").Decision.api(), decision(3, "n3").Decision.api()}}},
			ledger:  "b restored a snapshot where history[1] is epoch 3 after epoch 1", agreement: "b: history[1] is epoch 3 after epoch 1"},
		{name: "a snapshot whose epoch is not its latest decision's is caught",
			restore: map[string]Replicated{"b": {Epoch: 2, Primary: "n1", PrimaryID: 1, History: []api.Decision{decision(1, "n1").Decision.api()}}},
			ledger:  "b restored a snapshot where epoch 2, but the latest decision is of epoch 1", agreement: "b: epoch 2, but the latest"},
		{name: "a snapshot whose primary is not its latest decision's is caught",
			restore: map[string]Replicated{"b": {Epoch: 1, Primary: "n2", PrimaryID: 2, History: []api.Decision{decision(1, "n1").Decision.api()}}},
			ledger:  "primary n2 (2), but the latest decision names n1 (1)", agreement: "b: primary n2 (2)"},
		{name: "a snapshot that takes an FSM back is caught",
			feeds:   []feed{{"b", decision(1, "n1")}, {"b", decision(2, "n2")}},
			restore: map[string]Replicated{"b": {Epoch: 1, Primary: "n1", PrimaryID: 1, History: []api.Decision{decision(1, "n1").Decision.api()}}},
			ledger:  "b restored epoch 1 after applying epoch 2"},
		{name: "a snapshot that disagrees with what another FSM applied is caught",
			feeds:   []feed{{"a", decision(1, "n1")}},
			restore: map[string]Replicated{"b": {Epoch: 1, Primary: "n2", PrimaryID: 2, History: []api.Decision{decision(1, "n2").Decision.api()}}},
			ledger:  "epoch 1: a holds primary n1", agreement: "epoch 1: a holds primary n1 (test), b holds primary n2 (test)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLedger()
			fsms := map[string]*recordingFSM{}
			get := func(name string) *recordingFSM {
				if fsms[name] == nil {
					fsms[name] = &recordingFSM{FSM: NewFSM(), who: name, l: l}
				}
				return fsms[name]
			}
			for i, f := range tt.feeds {
				get(f.fsm).Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: f.entry.Encode()})
			}
			for name, s := range tt.restore {
				if err := get(name).Restore(io.NopCloser(bytes.NewReader(mustJSON(snapshotOf(s))))); err != nil {
					t.Fatal(err)
				}
			}
			states := map[string]Replicated{}
			for name, f := range fsms {
				states[name] = f.State()
			}
			expect(t, "ledger", l.check(), tt.ledger)
			expect(t, "agreement", agreement(states), tt.agreement)
		})
	}
}

func expect(t *testing.T, check string, violations []string, want string) {
	t.Helper()
	switch {
	case want == "" && len(violations) > 0:
		t.Errorf("%s reports %q, want nothing", check, violations)
	case want != "" && (len(violations) == 0 || !strings.Contains(violations[0], want)):
		t.Errorf("%s reports %q, want a violation saying %q", check, violations, want)
	}
}
