package consensus

import (
	"errors"
	"fmt"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// The simulation's side of each node's pgquorum: it starts and stops the
// shipped core, and carries out the effects the core asks for through the
// simulated world.

// startProc starts n's pgquorum: the shipped core, with a new Ballot. A
// node with consensus.state_dir restores the lease recorded there, unless
// the record is from another boot or lost; a node without one takes the
// quiet period.
func (s *sim) startProc(n *simNode, first bool) {
	var store LeaseStore
	switch {
	case first:
		// The cluster has been running for a while: each process started
		// long ago, and its quiet period is over. Its lease file holds
		// nothing yet.
		if n.stateDir {
			store = n.store
		}
	case s.v.toggleStateDir:
		// consensus.state_dir set or not at each start, the same
		// directory when set.
		if s.rng.IntN(2) == 0 {
			store = n.store
		}
	case n.stateDir:
		store = n.store
		if s.rng.IntN(6) == 0 {
			n.store.has = false // the file was lost
		}
	}
	if first {
		now := s.now
		s.now = -2 * s.lease
		defer func() { s.now = now }()
	}
	b, err := NewBallot(s.lease, func() time.Duration { return s.local(n) }, store)
	if err != nil {
		panic(err) // simLeases.Load never fails
	}
	if !first {
		s.stats.restarts++
		l, rem := b.Current()
		if l.Holder == "" && rem > 0 {
			s.stats.quiet++
		} else {
			s.stats.restored++
		}
		s.tracef("%s starts: ballot %q for %s (lease file %v)", n.row.Name, l.Holder, rem, store != nil)
	}
	c := simCore(n.row.Name, s.p.scope, s.p.refresh, s.p.ttl, s.p.peerTimeout, b, func() time.Duration { return s.local(n) + n.slept })
	c.faults = s.v.faults
	if s.v.deposes {
		if !first {
			n.caughtUpAt = s.now + s.dur(s.p.ttl)
		}
		c.opts.Deposed = func(candidate string, id int) (string, bool, bool) { return s.deposedFor(n, candidate, id) }
	}
	if s.v.committed {
		c.opts.Committed = func() (string, int, bool) {
			l := s.nodes[s.latest].row
			return l.Name, l.ID, true
		}
	}
	n.proc = c
}

// simCore is the core a Checker with these settings holds.
// boot is its CLOCK_BOOTTIME.
func simCore(name string, scope Scope, refresh, ttl, peerTimeout time.Duration, b *Ballot, boot Monotonic) *core {
	return NewChecker(Options{Identity: Identity{Name: name}, Scope: scope, RefreshInterval: refresh, CacheTTL: ttl,
		PeerTimeout: peerTimeout, Ballot: b, Boot: boot}, nil, nil).core
}

// crash stops n's pgquorum; one time in four its machine reboots: a new
// CLOCK_MONOTONIC and a new boot id, so its lease file is not honoured.
func (s *sim) crash(n *simNode) {
	if n.proc == nil {
		return
	}
	n.proc = nil
	n.gen++
	down := s.dur(s.p.ttl)
	if s.rng.IntN(4) == 0 {
		n.boot++
		down += s.p.ttl
		n.clock = simClock{since: s.now, base: time.Duration(5+s.rng.IntN(30)) * time.Second, ppm: n.clock.ppm}
		s.tracef("%s reboots, down for %s", n.row.Name, down)
	} else {
		s.tracef("%s: pgquorum stops, down for %s", n.row.Name, down)
	}
	s.push(simEvent{at: s.now + down, kind: evStart, node: n.i, gen: n.gen})
}

// suspend stops n's machine for d: its monotonic clock stands still, so
// that it resumes reading what it read now, while its boot clock counts d.
func (s *sim) suspend(n *simNode, d time.Duration) {
	old := n.clock
	n.slept += old.at(s.now+d) - old.at(s.now)
	n.clock = simClock{since: s.now + d, base: old.at(s.now), ppm: old.ppm}
	n.asleepUntil = s.now + d
	s.tracef("%s suspended for %s", n.row.Name, d)
}

// onNode tells the events that happen on one node's machine, which wait
// while it is suspended.
func onNode(k simEventKind) bool {
	switch k {
	case evRun, evProbed, evRequest, evAnswer, evDeadline, evStart, evFollow:
		return true
	}
	return false
}

// simCall routes a vote's answer back to the round of the candidate that
// asked.
type simCall struct {
	cand, gen int
	round     *round
}

// do carries out what n's core asks, through the simulated world: a probe
// that takes a while, requests and answers that are late or lost, a timer on
// n's clock; and records the Primary verdicts it publishes.
func (s *sim) do(n *simNode, effs []effect) {
	for _, e := range effs {
		switch e := e.(type) {
		case startProbe:
			took := s.dur(20 * time.Millisecond)
			if s.rng.IntN(10) == 0 {
				took = s.dur(s.p.maxProbe)
			}
			s.push(simEvent{at: s.after(n, took), kind: evProbed, node: n.i, gen: n.gen})
		case pollPeers:
			for _, row := range e.nodes {
				peer := s.byID(row.ID)
				if d, ok := s.delay(n, peer); ok {
					s.push(simEvent{at: s.now + d, kind: evRequest, node: peer.i, peer: n.i, gen: n.gen, round: e.round, req: e.req})
				}
			}
			s.push(simEvent{at: s.when(n, e.deadline), kind: evDeadline, node: n.i, gen: n.gen, round: e.round})
		case voteAnswered:
			s.answered(n, e.call.tag.(simCall), &e.answer, nil)
		case published:
			if e.snap.Verdict.State == api.StatePrimary {
				s.served(n, e.snap)
			}
		case wakeRun:
			s.push(simEvent{at: s.after(n, e.after), kind: evRun, node: n.i, gen: n.gen})
		}
	}
}

func (s *sim) byID(id int) *simNode {
	for _, n := range s.nodes {
		if n.row.ID == id {
			return n
		}
	}
	panic(fmt.Sprintf("no node_id %d", id))
}

// when is the real instant at which n's clock reads t.
func (s *sim) when(n *simNode, t time.Time) time.Duration { return n.clock.when(t.Sub(simEpoch)) }

// delay is how long a message from a to b takes, or ok false when it is
// lost: mostly quick, sometimes beyond the peer timeout.
func (s *sim) delay(a, b *simNode) (time.Duration, bool) {
	if s.now < a.cutUntil || s.now < b.cutUntil || s.rng.IntN(20) == 0 {
		s.stats.lost++
		return 0, false
	}
	switch r := s.rng.IntN(10); {
	case r < 6:
		return s.dur(10 * time.Millisecond), true
	case r < 9:
		return s.dur(s.p.peerTimeout), true
	default:
		return s.p.peerTimeout/2 + s.dur(2*s.p.peerTimeout), true
	}
}

// request reaches voter n: its core's Vote, or a refused connection while
// its pgquorum is stopped.
func (s *sim) request(n *simNode, e simEvent) {
	call := simCall{cand: e.peer, gen: e.gen, round: e.round}
	if n.proc == nil {
		s.answered(n, call, nil, errors.New("connection refused"))
		return
	}
	s.do(n, n.proc.Vote(s.nowOf(n), &voteCall{req: e.req, tag: call}))
}

// answered sends voter n's answer to the candidate of call.
func (s *sim) answered(n *simNode, call simCall, a *api.VoteAnswer, err error) {
	if a != nil && !a.Granted && a.LeaseHolder != "" && a.LeaseHolder != a.Candidate {
		s.stats.leaseRefusals++
	}
	if a != nil && a.Granted && s.now < n.dbDownUntil {
		s.stats.downGrants++
	}
	if a != nil && a.Granted {
		// The most frequent line: formatted only if a failure prints it.
		s.trace[s.traced%len(s.trace)] = simTrace{at: s.now, voter: n.i, cand: call.cand}
		s.traced++
	}
	cand := s.nodes[call.cand]
	if d, ok := s.delay(n, cand); ok {
		s.push(simEvent{at: s.now + d, kind: evAnswer, node: cand.i, gen: call.gen, peer: n.i, round: call.round,
			vote: PeerVote{Answer: a, Err: err}})
	}
}

// answer is the candidate's core taking one answer of its poll.
func (s *sim) answer(n *simNode, e simEvent) {
	if n.proc == nil || e.gen != n.gen {
		return
	}
	if e.round.done && s.when(n, e.round.deadline) <= s.now {
		s.stats.lateAnswers++
	}
	s.do(n, n.proc.PeerAnswered(s.nowOf(n), e.round, s.nodes[e.peer].row.ID, e.vote))
}

// healthCheck is HAProxy asking n's /state: the core's Serve. A Primary
// verdict it serves must be one the check already counts, unexpired.
func (s *sim) healthCheck(n *simNode) {
	snap, effs := n.proc.Serve(s.nowOf(n))
	s.do(n, effs)
	if snap == nil || snap.Verdict.State != api.StatePrimary {
		return
	}
	for _, v := range s.verdicts {
		if v.node == n.i && v.snap == snap && s.now < v.until {
			return
		}
	}
	s.failure = fmt.Sprintf("at %s, %s serves a Primary verdict the check does not count: facts of %s, voters %v",
		s.now, n.row.Name, s.when(n, snap.Facts.ProbedAt), snap.Verdict.Voters)
}

// served records a Primary verdict: unexpired from now until it has
// expired in real time: on n's monotonic clock, or on its boot clock, which
// counts the time n was suspended, whichever comes first.
func (s *sim) served(n *simNode, snap *Snapshot) {
	ttl := n.proc.expiry(snap).Sub(snap.Facts.ProbedAt)
	until := min(s.when(n, n.proc.expiry(snap)), n.clock.when(snap.probedBoot+ttl-n.slept))
	if until <= s.now {
		return
	}
	s.stats.primaries++
	if s.lastPrim >= 0 && s.lastPrim != n.i {
		s.stats.handovers++
		gap := s.now - s.lastUntil
		if gap < s.p.ttl/10 {
			s.stats.closeHandovers++
		}
		s.stats.minGap = min(s.stats.minGap, float64(gap)/float64(s.p.ttl))
		s.tracef("hand-over: %s Primary %s after %s's last verdict expired", n.row.Name, gap, s.name(s.lastPrim))
	}
	if s.lastPrim != n.i || until > s.lastUntil {
		s.lastUntil = until
	}
	s.lastPrim = n.i
	probed := s.when(n, snap.Facts.ProbedAt)
	s.verdicts = append(s.verdicts, simVerdict{node: n.i, from: s.now, until: until, probedAt: probed,
		voters: snap.Verdict.Voters, snap: snap})
	s.tracef("%s Primary until %s, facts of %s, voters %v", n.row.Name, until, probed, snap.Verdict.Voters)
}
