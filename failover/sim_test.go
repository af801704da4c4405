package failover

import (
	"context"
	"flag"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/api"
)

var (
	simSeed  = flag.Uint64("failover.sim.seed", 0, "run the raft simulation with this seed only")
	simChaos = flag.Duration("failover.sim.chaos", 0, "how long each seed of the raft simulation injects faults")
)

// TestRaftGroupCommitsOnePrimaryPerEpoch runs real hashicorp/raft members,
// each with this package's FSM, over raft's in-memory transport, while every
// member that believes it leads proposes decisions through
// Controller.commit, and the simulation partitions, heals, crashes and
// restarts members. After every step, and at the end, it checks the
// invariants of sim_check_test.go: at most one primary per epoch, epochs
// applied in order without gaps; at the end, with the faults healed, every
// member holds the same state, which keeps every decision any member
// applied, and the group still commits.
//
// A seed fixes the schedule of faults and the proposals' choices; raft's own
// timers and the goroutine scheduler do not replay exactly, so a failing
// seed is a place to start, not a recording.
func TestRaftGroupCommitsOnePrimaryPerEpoch(t *testing.T) {
	seeds, chaos := []uint64{1, 2, 3, 4, 5, 6, 7, 8}, 3*time.Second
	if testing.Short() {
		seeds, chaos = seeds[:2], 1500*time.Millisecond
	}
	if *simSeed != 0 {
		seeds = []uint64{*simSeed}
	}
	if *simChaos > 0 {
		chaos = *simChaos
	}
	var total simStats
	for _, seed := range seeds {
		size := 3 + 2*int(seed%2) // odd seeds 5 members, even seeds 3
		t.Run(fmt.Sprintf("seed=%d/members=%d", seed, size), func(t *testing.T) {
			st := runSim(t, seed, size, chaos)
			t.Logf("seed %d, %d members: %s", seed, size, st)
			if st.committed == 0 || st.stale == 0 {
				t.Errorf("seed %d: %d decisions committed, %d proposals refused as stale: both must happen, or the run proves nothing",
					seed, st.committed, st.stale)
			}
			total.add(st)
		})
	}
	t.Logf("all seeds: %s", total)
}

// simStats counts what a run did.
type simStats struct {
	steps, partitions, isolations, oneWayCuts, heals, crashes, restarts int
	proposals, committed, stale, lostLeadership, otherErrors            int
	fsmApplied, fsmRefused, restores                                    int    // over every FSM
	epoch                                                               uint64 // the newest epoch before the final commit
	elapsed                                                             time.Duration
}

func (s simStats) String() string {
	return fmt.Sprintf("%d steps in %s (%d partitions, %d isolations, %d one-way cuts, %d heals, %d crashes, %d restarts); "+
		"%d proposals: %d committed, %d refused as stale, %d lost leadership, %d other errors; final epoch %d "+
		"(%d decisions committed though their proposer was told otherwise); "+
		"FSMs applied %d decisions, refused %d as stale, restored %d snapshots",
		s.steps, s.elapsed.Round(time.Millisecond), s.partitions, s.isolations, s.oneWayCuts, s.heals, s.crashes, s.restarts,
		s.proposals, s.committed, s.stale, s.lostLeadership, s.otherErrors, s.epoch, int(s.epoch)-s.committed, s.fsmApplied, s.fsmRefused, s.restores)
}

func (s *simStats) add(o simStats) {
	s.steps += o.steps
	s.partitions += o.partitions
	s.isolations += o.isolations
	s.oneWayCuts += o.oneWayCuts
	s.heals += o.heals
	s.crashes += o.crashes
	s.restarts += o.restarts
	s.proposals += o.proposals
	s.committed += o.committed
	s.stale += o.stale
	s.lostLeadership += o.lostLeadership
	s.otherErrors += o.otherErrors
	s.fsmApplied += o.fsmApplied
	s.fsmRefused += o.fsmRefused
	s.restores += o.restores
	s.epoch += o.epoch
	s.elapsed += o.elapsed
}

func runSim(t *testing.T, seed uint64, size int, chaos time.Duration) simStats {
	start := time.Now()
	s := newSim(t, seed, size)
	defer s.shutdown()
	for i := range s.members {
		s.start(i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stop := func() { cancel(); wg.Wait() }
	defer stop() // before shutdown, when a check fails the run
	for i := range s.members {
		for c := range coordinatorsPerMember {
			wg.Add(1)
			go func() { defer wg.Done(); s.propose(ctx, i, c) }()
		}
	}
	for deadline := time.Now().Add(chaos); time.Now().Before(deadline); {
		s.step()
		s.check("after " + s.lastStep())
	}
	stop()
	s.heal()
	s.converge()
	s.check("at the end")
	s.stats.elapsed = time.Since(start)
	s.ledger.mu.Lock()
	s.stats.fsmApplied, s.stats.fsmRefused, s.stats.restores = s.ledger.applied, s.ledger.refused, s.ledger.restores
	s.ledger.mu.Unlock()
	return s.stats
}

// check fails the test, naming the seed, on any violation of the
// invariants: those the ledger noted as FSMs applied, and the agreement of
// the FSMs as they stand.
func (s *sim) check(when string) {
	s.t.Helper()
	states := map[string]Replicated{}
	for _, m := range s.members {
		if _, fsm, _ := m.current(); fsm != nil {
			states[string(m.id)] = fsm.State()
		}
	}
	if v := append(s.ledger.check(), agreement(states)...); len(v) > 0 {
		s.fail("invariant violated %s:\n  %s", when, strings.Join(v, "\n  "))
	}
}

// fail ends the run, with what a reader needs to chase it: the seed, the
// last steps and the tail of raft's own log.
func (s *sim) fail(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("seed %d (rerun: go test -race -run TestRaftGroupCommitsOnePrimaryPerEpoch ./failover/ -failover.sim.seed=%d): %s\nlast steps: %s\nraft log tail:\n%s",
		s.seed, s.seed, fmt.Sprintf(format, args...), strings.Join(s.history[max(0, len(s.history)-15):], "; "), s.log.tail())
}

// converge waits, with every fault healed, until every member holds the same
// state, keeping every decision any member applied; then until one more
// decision commits and reaches every member: the group is whole again.
func (s *sim) converge() {
	s.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	s.poll(deadline, "the members did not converge once healed", s.settled)
	s.stats.epoch = s.ledger.newest()
	s.poll(deadline, "no decision committed once healed", func() (string, bool) {
		for _, m := range s.members {
			if r, fsm, ctl := m.current(); r.State() == raft.Leader {
				d := api.Decision{Epoch: fsm.State().Epoch + 1, At: t0, Primary: string(m.id), Reason: "the group commits once healed"}
				err := ctl.commit(decisionEntry(d))
				return fmt.Sprint(err), err == nil
			}
		}
		return "no leader", false
	})
	s.poll(deadline, "the members did not converge after the final commit", s.settled)
	if got := s.ledger.newest(); got <= s.stats.epoch {
		s.fail("after the final commit the newest epoch is %d, was %d", got, s.stats.epoch)
	}
}

// settled tells whether every member holds the same state, once the
// leader has applied all it committed, and that state keeps every decision
// any member ever applied; or why not.
func (s *sim) settled() (string, bool) {
	var leader *raft.Raft
	for _, m := range s.members {
		if r, _, _ := m.current(); r.State() == raft.Leader {
			leader = r
		}
	}
	if leader == nil {
		return "no leader", false
	}
	if err := leader.Barrier(time.Second).Error(); err != nil {
		return "barrier: " + err.Error(), false
	}
	var first Replicated
	for i, m := range s.members {
		_, fsm, _ := m.current()
		st := fsm.State()
		if i == 0 {
			first = st
		} else if !reflect.DeepEqual(st, first) {
			return fmt.Sprintf("%s at epoch %d, %s at epoch %d", s.members[0].id, first.Epoch, m.id, st.Epoch), false
		}
	}
	if newest := s.ledger.newest(); first.Epoch < newest {
		return fmt.Sprintf("every member at epoch %d, but epoch %d was applied", first.Epoch, newest), false
	}
	return "", true
}

// poll calls cond every 10 ms until it holds, failing the run at deadline
// with cond's last word.
func (s *sim) poll(deadline time.Time, what string, cond func() (string, bool)) {
	s.t.Helper()
	for {
		why, ok := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.fail("%s: %s", what, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
