package consensus

import (
	"context"
	"fmt"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// voteRefreshAge bounds how old the facts behind a refused vote may be: a
// standby that has just started to follow a new primary must not refuse it
// on facts from before, for up to a refresh interval. A refusal on older
// facts probes again, at most once per voteRefreshAge.
const voteRefreshAge = 100 * time.Millisecond

// Vote answers a peer that asks this node to vouch for it: Vouch on the
// node's current facts, then the ballot's lease. It never blocks longer than
// one probe of the local database.
func (c *Checker) Vote(_ context.Context, req api.VoteRequest) api.VoteAnswer {
	ch := make(chan api.VoteAnswer, 1)
	c.step(func(now time.Time) []effect { return c.core.Vote(now, &voteCall{req: req, tag: ch}) })
	return <-ch
}

// voteOn answers call on facts no older than its maxAge, or once a probe
// has brought them.
func (c *core) voteOn(now time.Time, call *voteCall) []effect {
	f, ok := c.freshFacts(now, call.maxAge)
	if !ok {
		c.votes = append(c.votes, call)
		return c.needProbe(now)
	}
	return c.vote(now, call, f)
}

// vote answers call on facts f. Only a refusal that rests on the facts can
// change with new ones, and only facts older than the call are worth probing
// again: once.
func (c *core) vote(now time.Time, call *voteCall, f *Snapshot) []effect {
	a, vouched := c.answer(f, call.req)
	if !vouched && !call.again && call.asked.Sub(f.Facts.ProbedAt) >= voteRefreshAge {
		call.again, call.maxAge = true, voteRefreshAge
		return c.voteOn(now, call)
	}
	return []effect{voteAnswered{call: call, answer: a}}
}

// answer is this node's vote on facts f, its own self-vote included. Only a
// vote Vouch allows reaches the ballot, so a refusal never takes a lease.
// vouched tells whether Vouch allowed it: whether the ballot decided.
func (c *core) answer(f *Snapshot, req api.VoteRequest) (a api.VoteAnswer, vouched bool) {
	a = api.VoteAnswer{Protocol: api.VoteProtocol, Voter: c.opts.Identity.Name, Candidate: req.Candidate,
		SystemID: f.Facts.Server.SystemID, Timeline: f.Facts.Server.Timeline}
	me, registered, err := c.opts.Identity.Self(f.Facts.Nodes)
	a.VoterID, a.VoterType = me.ID, me.Type
	var ok bool
	cname, cid, committed := c.committed()
	switch {
	case req.Protocol != api.VoteProtocol:
		a.Reason = fmt.Sprintf("I speak vote protocol %d, not %d", api.VoteProtocol, req.Protocol)
	case f.ProbeErr != nil:
		ok = c.vouchDown(&a, req, f.ProbeErr)
	case f.IdentityErr != nil:
		a.Reason = "my database.dsn reaches another node's database: " + api.ErrorText(f.IdentityErr)
	case err != nil:
		a.Reason = err.Error()
	case !registered:
		a.Reason = fmt.Sprintf("%q is not registered in my repmgr.nodes", c.opts.Identity.Name)
	case me.Type == repmgr.TypeWitness && committed:
		ok, a.Reason = vouchCommitted(cname, cid, req)
		if cand, reg := repmgr.ByID(f.Facts.Nodes, req.CandidateID); ok && (!reg || cand.Name != req.Candidate) {
			ok, a.Reason = false, fmt.Sprintf("%q (node_id %d) is not registered in my repmgr.nodes", req.Candidate, req.CandidateID)
		}
	default:
		ok, a.Reason = Vouch(me, f.Facts, req)
	}
	if !ok {
		return a, false
	}
	// The deposition is read under the ballot's lock: a deposition applied
	// between a check and the grant would let the coordinator count this
	// voter as released (applied, bound to nobody) just before it grants
	// the deposed node a fresh lease.
	deposed := false
	granted, lease, remaining, err := c.opts.Ballot.GrantIf(req.Candidate, req.CandidateID, func() bool {
		deposed = !c.notDeposed(&a, req)
		return !deposed
	})
	if deposed {
		return a, false
	}
	if !granted && err == nil && c.faults.ignoreLeases {
		granted, lease, remaining = true, Lease{Holder: req.Candidate, HolderID: req.CandidateID}, c.opts.Ballot.lease
	}
	a.Granted, a.LeaseMillis = granted, remaining.Milliseconds()
	switch {
	case err != nil:
		a.Reason = "cannot record my vote: " + err.Error()
	case !granted && lease.Holder == "":
		a.Reason = fmt.Sprintf("I started recently and vouch for nobody for another %s, until any vote I gave before has expired", remaining.Round(time.Millisecond))
	case !granted:
		a.LeaseHolder = lease.Holder
		a.Reason = fmt.Sprintf("I vouch for %s for another %s (%s)", lease.Holder, remaining.Round(time.Millisecond), a.Reason)
	default:
		a.LeaseHolder = lease.Holder
	}
	return a, true
}

// notDeposed applies the deposition rule after Vouch allowed the vote: with
// failover on, a voter refuses a candidate the Raft log deposes (until a
// later decision names it again), and every candidate while it cannot tell
// whether its log deposes it. It refuses before the ballot: no lease is
// taken, and the leases the deposed node holds run out.
func (c *core) notDeposed(a *api.VoteAnswer, req api.VoteRequest) bool {
	if c.opts.Deposed == nil {
		return true
	}
	why, deposed, known := c.opts.Deposed(req.Candidate, req.CandidateID)
	switch {
	case !known:
		a.Reason = "my Raft log has not been current since I started: I cannot tell whether it deposes " + req.Candidate + " (" + a.Reason + ")"
		return false
	case deposed:
		a.Reason = why + " (" + a.Reason + ")"
		return false
	}
	return true
}

// committed is the failover controller's committed primary, when it is
// known (failover on, something committed, its log not behind).
func (c *core) committed() (name string, id int, ok bool) {
	if c.opts.Committed == nil {
		return "", 0, false
	}
	return c.opts.Committed()
}

// vouchCommitted is the rule of a voter that follows the Raft log rather
// than a database: it vouches for the committed primary and no other.
func vouchCommitted(name string, id int, req api.VoteRequest) (bool, string) {
	if name == req.Candidate && id == req.CandidateID {
		return true, fmt.Sprintf("the Raft log commits %s (node_id %d) as the primary", name, id)
	}
	return false, fmt.Sprintf("the Raft log commits %s (node_id %d) as the primary, not it", name, id)
}

// vouchDown is the rule of a voter whose database is down: with failover
// on, it vouches for the primary the Raft log commits, and no other, as the
// node its own row last named (its node_id, type, system identifier and
// timeline as last read); otherwise for nobody. The candidate counts such
// a vote only if it names the very node asked and its system identifier.
func (c *core) vouchDown(a *api.VoteAnswer, req api.VoteRequest, probeErr error) bool {
	a.Reason = "my database is unreachable: " + api.ErrorText(probeErr)
	g := c.lastGood
	if g == nil {
		return false
	}
	me, registered, err := c.opts.Identity.Self(g.Facts.Nodes)
	if err != nil || !registered {
		return false
	}
	a.VoterID, a.VoterType = me.ID, me.Type
	a.SystemID, a.Timeline = g.Facts.Server.SystemID, g.Facts.Server.Timeline
	name, id, committed := c.committed()
	if !committed {
		return false
	}
	ok, why := vouchCommitted(name, id, req)
	if ok && me.Type != repmgr.TypeWitness && (req.SystemID == "" || req.SystemID != g.Facts.Server.SystemID) {
		ok, why = false, fmt.Sprintf("system identifier %q is not mine (%s): another cluster", req.SystemID, g.Facts.Server.SystemID)
	}
	a.Reason += "; " + why
	return ok
}
