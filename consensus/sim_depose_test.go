package consensus

import (
	"fmt"
	"testing"
	"time"
)

// The deposition in the simulation (issue 13, item 1): the coordinator,
// omniscient here, deposes a node now and then; each voter applies it
// after a while; it counts the voters that applied it and whose ballot
// binds them to the deposed node no more, as the failover coordinator does
// (failover.Released), and from the instant they make a majority
// (HasMajority) the deposed node must hold no Primary verdict.

// simDeposition is the deposition in force.
type simDeposition struct {
	node       int           // -1: none
	releasedAt time.Duration // when a majority released it; 0: not yet
}

// depose deposes the node that held the last Primary verdict (or any), or
// restores the one deposed: a later decision names it again.
func (s *sim) depose() {
	if s.dep.node >= 0 {
		s.tracef("%s restored", s.name(s.dep.node))
		s.dep = simDeposition{node: -1}
		return
	}
	x := s.lastPrim
	if x < 0 {
		x = s.rng.IntN(len(s.nodes))
	}
	s.dep = simDeposition{node: x}
	for _, n := range s.nodes {
		n.appliedAt = s.now + s.dur(s.p.ttl)
	}
	s.tracef("%s deposed", s.name(x))
}

// deposedFor is n's controller's Deposed: unknown until its log caught up
// after a restart, then whether it applied the deposition of candidate.
func (s *sim) deposedFor(n *simNode, candidate string, id int) (string, bool, bool) {
	switch {
	case s.now < n.caughtUpAt:
		return "", false, false
	case s.dep.node >= 0 && s.now >= n.appliedAt && s.nodes[s.dep.node].row.Name == candidate && s.nodes[s.dep.node].row.ID == id:
		return "deposed", true, true
	}
	return "", false, true
}

// checkDeposition counts the voters that released the deposed node, and
// fails when it holds a Primary verdict once a majority of them have.
func (s *sim) checkDeposition() bool {
	if s.dep.node < 0 {
		return true
	}
	x := s.nodes[s.dep.node]
	if s.dep.releasedAt == 0 {
		released := map[int]bool{}
		for _, n := range s.nodes {
			if n.proc == nil || s.now < n.appliedAt || s.now < n.caughtUpAt || s.now < n.asleepUntil {
				continue // the coordinator hears no answer, or "not applied"
			}
			if s.v.releaseEarly || n.proc.opts.Ballot.Binds(x.row.Name, x.row.ID) == 0 {
				released[n.row.ID] = true
			}
		}
		if ok, _ := HasMajority(s.p.scope, x.row.Location, s.p.nodes, released); !ok {
			return true
		}
		s.dep.releasedAt = s.now
		s.stats.releases++
		s.tracef("%s released by a majority", x.row.Name)
	}
	for _, v := range s.verdicts {
		if v.node == x.i {
			s.failure = fmt.Sprintf("at %s, %s holds a Primary verdict although a majority released its deposition at %s:\n  %s",
				s.now, x.row.Name, s.dep.releasedAt, s.describe(v))
			return false
		}
	}
	return true
}

// TestSimulatedVotingDeposition: once voters forming a majority applied a
// deposition and are bound to the deposed node no more, it holds no
// Primary verdict; never two primaries either.
func TestSimulatedVotingDeposition(t *testing.T) {
	v := simSafe
	v.name, v.deposes = "depositions", true
	total, failures := simShards(t, simSeeds(t, simSeedCount), v, false)
	for _, f := range failures {
		t.Errorf("a deposed node confirmed after its release, or two primaries:\n%s", f)
	}
	if total.primaries < 20*simSeedCount || total.releases < simSeedCount {
		t.Errorf("%d Primary verdicts, %d depositions released, in %d runs: too few to prove anything", total.primaries, total.releases, simSeedCount)
	}
	t.Logf("%d Primary verdicts, %d hand-overs, %d depositions released", total.primaries, total.handovers, total.releases)
}

// TestSimulatedVotingCatchesAnEarlyRelease: a coordinator that counts a
// voter as soon as it applied the deposition, without waiting for the
// leases it granted, is caught.
func TestSimulatedVotingCatchesAnEarlyRelease(t *testing.T) {
	v := simSafe
	v.name, v.deposes, v.releaseEarly = "releases counted before the leases ran out", true, true
	simMustFind(t, v)
}
