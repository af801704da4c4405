package failover

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// TestSyncSimNoPromotionLacksAnAcknowledgedCommit models a primary and four
// standbys under failover.synchronous, driven at random: commits (each
// acknowledged only once k of the standbys the primary waits for have it, or
// at once while it waits for none), standbys streaming or falling silent,
// the coordinator's rounds (the real syncStep, committing through the real
// FSM), the primary applying the committed set, with its walsenders taking
// the new list only at the end of the round after it applied it (the
// reload's lag), the operator changing failover.synchronous_count (the
// coordinator's and the applier's k at once), and the primary deposed and
// restored at a new epoch. A commit acknowledged while on mode has fallen
// back to asynchronous is not promised; those acknowledged before are.
// After every step it checks the election rule against every group of
// members that could answer a coordinator if the primary died now:
// whenever syncElection lets the most advanced of them be promoted, it has
// every commit acknowledged synchronously.
func TestSyncSimNoPromotionLacksAnAcknowledgedCommit(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 10
	}
	for _, p := range []SyncPolicy{{Mode: api.SyncOn, Count: 1}, {Mode: api.SyncOn, Count: 2}, {Mode: api.SyncStrict, Count: 1}, {Mode: api.SyncStrict, Count: 2}} {
		raised, restored := 0, 0
		for seed := range seeds {
			t.Run(fmt.Sprintf("%s-k%d-seed%d", p.Mode, p.Count, seed), func(t *testing.T) {
				m := newSyncModel(p, uint64(seed))
				for step := range 400 {
					m.step()
					if why := m.check(); why != "" {
						t.Fatalf("step %d (%s): %s\nhistory: %v", step, m.last, why, m.history)
					}
				}
				if m.syncAcks == 0 || m.commits == 0 {
					t.Fatalf("the run acknowledged %d commits synchronously and committed %d entries: it proves nothing", m.syncAcks, m.commits)
				}
				raised += m.raised
				restored += m.restored
			})
		}
		if raised == 0 || restored == 0 {
			t.Errorf("%s k%d: %d raises of k and %d restores over every seed: the model did not exercise them", p.Mode, p.Count, raised, restored)
		}
	}
}

type syncModel struct {
	rng       *rand.Rand
	p         SyncPolicy
	nodes     []repmgr.Node
	rounds    *rounds
	fsm       *FSM
	now       time.Time
	lsn       int64            // the primary's WAL position
	received  map[string]int64 // each standby's
	streaming map[string]bool
	acked     int64 // the newest commit acknowledged synchronously
	syncAcks  int
	applied   string
	effective *LogSync // what the walsenders wait for; nil: none
	pending   *LogSync // applied, not yet taken by the walsenders
	commits   int
	raised    int // raises of k that the primary applied
	restored  int // restores at a new epoch
	index     uint64
	last      string
	history   []string
}

var simStandbys = []string{"s1", "s2", "s3", "s4"}

func newSyncModel(p SyncPolicy, seed uint64) *syncModel {
	m := &syncModel{rng: rand.New(rand.NewPCG(seed, 14)), p: p, fsm: NewFSM(), now: syncT0,
		received: map[string]int64{}, streaming: map[string]bool{}}
	m.nodes = []repmgr.Node{{ID: 1, Name: "p", Type: repmgr.TypePrimary, Location: "dc1", Priority: 100}}
	for i, s := range simStandbys {
		m.nodes = append(m.nodes, repmgr.Node{ID: i + 2, Name: s, Type: repmgr.TypeStandby, Location: "dc1", Priority: 100})
		m.streaming[s] = true
	}
	m.rounds = newRounds(Options{Sync: p})
	d := api.Decision{Epoch: 1, At: syncT0, Primary: "p", PrimaryID: 1, Reason: "adopted"}
	e := decisionEntry(d)
	e.Version = EntryVersion
	m.commitEntry(e)
	return m
}

func (m *syncModel) note(format string, args ...any) {
	m.last = fmt.Sprintf(format, args...)
	m.history = append(m.history, m.last)
	if len(m.history) > 30 {
		m.history = m.history[1:]
	}
}

func (m *syncModel) step() {
	m.now = m.now.Add(100 * time.Millisecond)
	switch r := m.rng.IntN(40); {
	case r == 0:
		m.setCount(1 + m.rng.IntN(3)) // strict needs k below the four standbys
	case r == 1:
		m.restore()
	case r < 16:
		m.commit()
	case r < 24:
		s := simStandbys[m.rng.IntN(len(simStandbys))]
		m.streaming[s] = !m.streaming[s]
		m.note("%s streaming %v", s, m.streaming[s])
	case r < 32:
		m.round()
	default:
		m.apply()
	}
}

// setCount is a rolling change of failover.synchronous_count: the
// coordinator and the primary's applier take the new k.
func (m *syncModel) setCount(k int) {
	m.p.Count = k
	m.rounds.opts.Sync.Count = k
	m.note("failover.synchronous_count %d", k)
}

// restore deposes the primary at its epoch and restores it at the next
// (depose.go): the same node, the same WAL, the same walsenders.
func (m *syncModel) restore() {
	st := m.fsm.State()
	dep := api.Deposition{Epoch: st.Epoch, Node: "p", NodeID: 1, At: m.now, Reason: "lost"}
	m.commitEntry(deposeEntry(dep))
	m.commitEntry(restoreIntent(m.fsm.State(), dep, "up again", m.now).Commit.Entry)
	m.restored++
	m.note("p deposed and restored at epoch %d", m.fsm.State().Epoch)
}

func (m *syncModel) commitEntry(e Entry) {
	m.index++
	e.Version = EntryVersion
	if err := apply(m.fsm, m.index, e.Encode()); err != nil {
		panic(err)
	}
}

// commit writes at the primary: streaming standbys receive it, or some
// of them do (a slow link); it is acknowledged when k of those the
// walsenders wait for have it.
func (m *syncModel) commit() {
	m.lsn++
	for _, s := range simStandbys {
		if m.streaming[s] && m.rng.IntN(3) > 0 {
			m.received[s] = m.lsn
		}
	}
	async := m.effective == nil || m.effective.StandbyNames() == ""
	ok := async
	if !async {
		n := 0
		for _, s := range m.effective.Counted {
			if m.received[s] >= m.lsn {
				n++
			}
		}
		ok = n >= m.effective.Count
	}
	if ok && !async {
		// Only a commit acknowledged while the primary waits for standbys
		// is promised; one acknowledged asynchronously (before the first
		// list takes effect, or degraded in on mode) is not.
		m.acked = m.lsn
		m.syncAcks++
	}
	m.note("commit at %d, acknowledged %v (async %v)", m.lsn, ok, async)
}

func (m *syncModel) reports() map[string]*api.Report {
	reps := map[string]*api.Report{"p": {Node: "p", NodeID: 1, DBUp: true, Timeline: 1, ReceivedLSN: m.lsn, SyncStandbyNames: m.applied}}
	for i, s := range simStandbys {
		rep := &api.Report{Node: s, NodeID: i + 2, DBUp: true, InRecovery: true, Timeline: 1, ReceivedLSN: m.received[s], Upstream: "p"}
		if m.streaming[s] {
			rep.Receiver = repmgr.StreamingState
		}
		reps[s] = rep
	}
	return reps
}

// round is one coordinator round: the real syncStep, its entry through the
// real FSM. The walsenders take a list applied before this round at its
// end.
func (m *syncModel) round() {
	ci := m.rounds.syncStep(roundFacts{Nodes: m.nodes, Reports: m.reports()}, m.fsm.State(), m.now)
	if ci != nil {
		m.commitEntry(ci.Entry)
		m.commits++
		s := m.fsm.State().Sync
		m.note("round committed set %v counted %v", s.Members, s.Counted)
	} else {
		m.note("round: no change")
	}
	if m.pending != nil {
		if m.effective != nil && m.pending.Count > m.effective.Count {
			m.raised++
		}
		m.effective, m.pending = m.pending, nil
	}
}

// apply is the primary's applier: it sets what the committed state
// renders; its walsenders take it at the end of the next round.
func (m *syncModel) apply() {
	st := m.fsm.State()
	v := want(m.p, st)
	if v == m.applied {
		m.note("apply: nothing to do")
		return
	}
	m.applied = v
	if st.Sync != nil {
		m.pending = st.Sync.clone()
	} else {
		m.pending = &LogSync{Mode: m.p.Mode, Count: m.p.Count}
	}
	m.note("primary applies %q", v)
}

// check tries every group of members that could answer a coordinator now.
func (m *syncModel) check() string {
	st := m.fsm.State()
	s := st.Sync
	if s == nil {
		return ""
	}
	for mask := 0; mask < 1<<len(s.Members); mask++ {
		reps := map[string]*api.Report{}
		best := Candidate{Name: "none", Received: -1}
		for i, name := range s.Members {
			if mask&(1<<i) == 0 {
				continue
			}
			reps[name] = &api.Report{Node: name, DBUp: true, InRecovery: true, ReceivedLSN: m.received[name]}
			if m.received[name] > best.Received {
				best = Candidate{Name: name, Received: m.received[name]}
			}
		}
		if best.Received < 0 {
			continue
		}
		if syncElection(s, st.Epoch, reps, best) == "" && best.Received < m.acked {
			return fmt.Sprintf("%s promotable with WAL up to %d, commit %d acknowledged; set %v counted %v, answering %v, effective %+v",
				best.Name, best.Received, m.acked, s.Members, s.Counted, slices.Sorted(mapsKeys(reps)), m.effective)
		}
	}
	return ""
}

func mapsKeys(m map[string]*api.Report) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
