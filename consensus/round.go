package consensus

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// begin starts a refresh from facts no older than maxAge (0: a new probe).
func (c *core) begin(now time.Time, maxAge time.Duration) []effect {
	r := &round{start: now, maxAge: maxAge}
	c.round = r
	if f, ok := c.freshFacts(now, maxAge); ok {
		return c.ask(now, f)
	}
	r.waitingFacts = true
	return c.needProbe(now)
}

// ask carries the round on once its facts are in: as a candidate, its own
// vote through its own ballot, then a poll of the other registered nodes
// (every location with scope cluster, its own with scope site), each
// answering within PeerTimeout or casting no vote.
func (c *core) ask(now time.Time, f *Snapshot) []effect {
	r := c.round
	s := &Snapshot{Facts: f.Facts, ProbeErr: f.ProbeErr, IdentityErr: f.IdentityErr, probedBoot: f.probedBoot}
	r.snap = s
	me, ok := c.candidate(s)
	if !ok {
		return c.finish(now)
	}
	req := api.VoteRequest{Protocol: api.VoteProtocol, Candidate: me.Name, CandidateID: me.ID,
		SystemID: s.Facts.Server.SystemID, Timeline: s.Facts.Server.Timeline}
	self, _ := c.answer(f, req)
	s.SelfVote = PeerVote{Answer: &self}
	var peers []repmgr.Node
	for _, n := range s.Facts.Nodes {
		if n.ID != me.ID && (c.opts.Scope == ScopeCluster || n.Location == me.Location) {
			peers = append(peers, n)
		}
	}
	s.Votes = make(map[int]PeerVote, len(peers))
	if len(peers) == 0 {
		return c.finish(now)
	}
	for _, p := range peers {
		s.Votes[p.ID] = PeerVote{Err: context.DeadlineExceeded} // until it answers
	}
	r.pending, r.deadline = len(peers), now.Add(c.opts.PeerTimeout)
	return []effect{pollPeers{round: r, req: req, nodes: peers, deadline: r.deadline}}
}

// candidate tells whether this node should ask for votes: its own database
// answered, is its own, runs as primary and is registered (not as a witness).
func (c *core) candidate(s *Snapshot) (repmgr.Node, bool) {
	if s.ProbeErr != nil || s.IdentityErr != nil || s.Facts.InRecovery || c.stepDown != "" {
		return repmgr.Node{}, false
	}
	me, ok, err := c.opts.Identity.Self(s.Facts.Nodes)
	return me, ok && err == nil && me.Type != repmgr.TypeWitness
}

// finish ends the round: the verdict, kept for Serve until it expires, and
// Run's next tick when Run waits for it.
func (c *core) finish(now time.Time) []effect {
	r := c.round
	r.done, c.round = true, nil
	s := c.decide(now, r.snap)
	kept := c.silentRound(now, c.snap, s)
	if kept {
		s = c.snap
	}
	c.keptSilent = kept
	c.snap = nil
	if !c.expired(now, s) {
		c.snap = s
	}
	from := c.last
	changed := c.noteChange(now, s)
	effs := []effect{published{snap: s, took: now.Sub(r.start), from: from, changed: changed}}
	if c.runWaits {
		c.runWaits = false
		if r.snap.Facts.ProbedAt.After(c.lastProbe) {
			c.lastProbe = r.snap.Facts.ProbedAt
		}
		next := c.opts.RefreshInterval - now.Sub(c.lastProbe)
		if c.inFlux(now, s) {
			next = min(next, fluxInterval)
		}
		effs = append(effs, wakeRun{max(next, time.Millisecond)})
	}
	return effs
}

// silentRound tells whether s, a round's verdict, lacks its majority only
// because peers did not answer in time, while prev, the verdict served,
// confirms this node, has not expired and outlived no silent round before.
// prev is then served on, at most to its expiry, as it would have been had
// the round not ended yet: the leases of its votes cover it, and the round
// brought no news. A busy machine can make one round miss PeerTimeout; a
// healthy primary must not flap to 509 for it. A second silent round in a
// row ends prev: a primary really cut off must not take writes for its
// whole cache_ttl, which with asynchronous replication are lost.
// Anything the round did learn takes effect at once: a refusal or an invalid
// answer, its own vote refused, other facts (its database, recovery, system
// identifier, timeline, repmgr.nodes), a step-down.
func (c *core) silentRound(now time.Time, prev, s *Snapshot) bool {
	// s is Unknown: decide already turned a database down or not its own,
	// recovery and a step-down into Down or Standby.
	if prev == nil || c.keptSilent || prev.Verdict.State != api.StatePrimary || s.Verdict.State != api.StateUnknown ||
		c.expired(now, prev) ||
		s.Facts.Server.SystemID != prev.Facts.Server.SystemID || s.Facts.Server.Timeline != prev.Facts.Server.Timeline ||
		!sameMembers(s.Facts.Nodes, prev.Facts.Nodes) {
		return false
	}
	if a := s.SelfVote.Answer; a == nil || !a.Granted || s.SelfVote.Err != nil {
		return false
	}
	me, ok, err := c.opts.Identity.Self(s.Facts.Nodes)
	if !ok || err != nil {
		return false
	}
	silent := false
	for _, n := range s.Facts.Nodes {
		pv, polled := s.Votes[n.ID]
		switch {
		case n.ID == me.ID || !polled:
		case pv.Answer == nil:
			silent = true
		case validVote(me, n, s.Facts.Server.SystemID, LeaseFor(c.opts.CacheTTL), pv) != nil:
			return false
		}
	}
	return silent
}

// sameMembers tells whether two reads of repmgr.nodes name the same nodes,
// in the same locations, of the same types: the same majorities.
func sameMembers(a, b []repmgr.Node) bool {
	key := func(n repmgr.Node) string { return fmt.Sprintf("%d/%s/%s/%s", n.ID, n.Name, n.Location, n.Type) }
	ka, kb := make([]string, len(a)), make([]string, len(b))
	for i, n := range a {
		ka[i] = key(n)
	}
	for i, n := range b {
		kb[i] = key(n)
	}
	slices.Sort(ka)
	slices.Sort(kb)
	return slices.Equal(ka, kb)
}

// decide draws s's verdict from its facts and votes, as of now.
func (c *core) decide(now time.Time, s *Snapshot) *Snapshot {
	minLease := LeaseFor(c.opts.CacheTTL)
	if c.faults.acceptShortLease {
		minLease = 0
	}
	s.Verdict = Decide(Input{Identity: c.opts.Identity, Scope: c.opts.Scope, Facts: s.Facts, ProbeErr: s.ProbeErr,
		IdentityErr: s.IdentityErr, SelfVote: s.SelfVote, Votes: s.Votes, MinLease: minLease})
	c.refuseStale(now, &s.Verdict, s)
	return c.steppedDown(s)
}

// noteChange tells whether the state changed, and notes whether the verdict
// is in flux: its state or its voters changed within the last few leases.
func (c *core) noteChange(now time.Time, s *Snapshot) bool {
	v := s.Verdict
	prev := c.last
	c.last = v.State
	if prev != v.State || !slices.Equal(c.lastVoters, v.Voters) {
		c.fluxUntil = now.Add(2*LeaseFor(c.opts.CacheTTL) + c.opts.RefreshInterval)
	}
	c.lastVoters = v.Voters
	return prev != v.State
}

// inFlux tells whether the verdict may change any moment: a node running as
// primary without its majority, whose inputs changed within the last few
// lease periods. It is re-polled every fluxInterval meanwhile; an old primary
// that stays refused falls back to the refresh interval.
func (c *core) inFlux(now time.Time, s *Snapshot) bool {
	return s.Verdict.State == api.StateUnknown && len(s.Votes) > 0 && now.Before(c.fluxUntil)
}
