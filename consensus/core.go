package consensus

import (
	"fmt"
	"slices"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// core is the Checker without its I/O: a state machine that is told what
// happened (the clock read, a probe returned, a peer answered) and says what
// to do next (probe, poll these peers until then, publish this verdict, wake
// Run then). The Checker's goroutines and the voting simulation both drive
// it, so the rules that keep two nodes from answering 200 at once are the
// same code in both. It is not safe for concurrent use; the Checker holds
// its mutex around every call.
type core struct {
	opts   *Options
	faults coreFaults

	stepDown string        // why this node takes no writes; "" when it does
	facts    *Snapshot     // the last probe, reused while young enough
	lastGood *Snapshot     // the last probe that read this node's own database
	snap     *Snapshot     // the last verdict, served until expiry
	probing  bool          // a probe is in flight; everyone who needs facts waits for it
	probeAt  time.Time     // when it started: its facts' ProbedAt
	probeBt  time.Duration // and when, on the boot clock
	round    *round        // the refresh in flight; nil when none
	votes    []*voteCall

	runWaits  bool      // Run waits for the end of the round in flight to set its timer
	lastProbe time.Time // Run's: the facts of the last round it waited on

	last       api.State // for logging changes only
	lastVoters []string  // for noticing a verdict in flux
	keptSilent bool      // the verdict served outlived a silent round: the next one ends it
	fluxUntil  time.Time // re-poll every fluxInterval until then
	nodes      []repmgr.Node
	warnedSite bool
	downSince  time.Time // when a probe first failed after the last success; zero while up
}

// coreFaults break one rule of the core each, for the simulation's negative
// controls, which must show that the simulation finds the breach. Nothing
// outside the tests sets them: they are not in Options.
type coreFaults struct {
	ignoreLeases     bool          // a voter grants even while another holds its lease
	acceptShortLease bool          // a candidate counts granted votes whatever their lease
	serveFor         time.Duration // a verdict is served this long after its facts, not CacheTTL
	monoOnly         bool          // ages are read on the monotonic clock alone, as before issue 13's item 8
}

// round is one refresh: facts, this node's own vote, a poll of its peers and
// the verdict drawn from them.
type round struct {
	start        time.Time
	maxAge       time.Duration // how old the facts it starts from may be
	waitingFacts bool
	snap         *Snapshot
	pending      int // peers whose answer is awaited
	deadline     time.Time
	done         bool
}

// voteCall is one peer's request for this node's vote, until answered.
type voteCall struct {
	req    api.VoteRequest
	tag    any // routes the answer back: the Checker's channel, or the simulation's request
	asked  time.Time
	maxAge time.Duration // how old the facts it is answered on may be
	again  bool          // refused on facts older than the call: answered again on newer ones
}

// An effect is what the core asks its driver to do.
type effect interface{ isEffect() }

// startProbe: probe the local database, then report with ProbeDone.
type startProbe struct{}

// pollPeers: ask each of nodes to vouch for req's candidate, reporting each
// answer with PeerAnswered, and PollExpired once deadline (on the Checker's
// clock) has passed without all of them.
type pollPeers struct {
	round    *round
	req      api.VoteRequest
	nodes    []repmgr.Node
	deadline time.Time
}

// published: a refresh ended with snap, which everyone waiting on Serve gets.
type published struct {
	snap    *Snapshot
	took    time.Duration
	from    api.State // the state before; changed tells whether it differs
	changed bool
}

// factsReady: a probe ended; everyone waiting on Facts gets snap.
type factsReady struct{ snap *Snapshot }

// voteAnswered: call's answer is ready.
type voteAnswered struct {
	call   *voteCall
	answer api.VoteAnswer
}

// wakeRun: Run's next refresh is due after this long.
type wakeRun struct{ after time.Duration }

// warnSite: scope site in a cluster that spans these locations.
type warnSite struct{ locations []string }

func (startProbe) isEffect()   {}
func (pollPeers) isEffect()    {}
func (published) isEffect()    {}
func (factsReady) isEffect()   {}
func (voteAnswered) isEffect() {}
func (wakeRun) isEffect()      {}
func (warnSite) isEffect()     {}

// newCore returns a core for opts, which must have their defaults set.
func newCore(opts *Options) *core { return &core{opts: opts} }

// Tick is Run's timer: a refresh, on the facts of the last probe while they
// are younger than a refresh interval (in flux, the poll is repeated, and
// the database still costs one probe per interval), or joined if one runs.
// Its end says when to tick again.
func (c *core) Tick(now time.Time) []effect {
	c.runWaits = true
	if c.round != nil {
		return nil
	}
	maxAge := time.Duration(0)
	if now.Sub(c.lastProbe) < c.opts.RefreshInterval {
		maxAge = c.opts.RefreshInterval
	}
	return c.begin(now, maxAge)
}

// Serve returns the current verdict, or nil when it has expired: then the
// caller waits for the next published one, from a refresh started here
// unless one already runs.
func (c *core) Serve(now time.Time) (*Snapshot, []effect) {
	if c.snap != nil && !c.expired(now, c.snap) {
		return c.steppedDown(c.snap), nil
	}
	if c.round != nil {
		return nil, nil
	}
	return nil, c.begin(now, fluxInterval)
}

// Facts returns the facts of the last probe when younger than maxAge (and
// than CacheTTL), or nil when the caller must wait for the next factsReady.
func (c *core) Facts(now time.Time, maxAge time.Duration) (*Snapshot, []effect) {
	if f, ok := c.freshFacts(now, maxAge); ok {
		return f, nil
	}
	return nil, c.needProbe(now)
}

// Vote answers call with voteAnswered, at once or once facts are in.
func (c *core) Vote(now time.Time, call *voteCall) []effect {
	call.asked, call.maxAge = now, c.opts.CacheTTL
	return c.voteOn(now, call)
}

// ProbeDone takes the result of the probe in flight and carries on
// everything that waited for it.
func (c *core) ProbeDone(now time.Time, facts repmgr.Facts, err error) []effect {
	c.probing = false
	facts.ProbedAt = c.probeAt
	f := &Snapshot{Facts: facts, ProbeErr: err, probedBoot: c.probeBt}
	if err == nil {
		f.IdentityErr = CheckIdentity(c.opts.Identity, facts)
	}
	c.noteDown(now, f.ProbeErr != nil || f.IdentityErr != nil)
	c.facts = f
	effs := []effect{factsReady{f}}
	if err == nil && f.IdentityErr == nil {
		c.lastGood = f
	}
	if err == nil {
		c.nodes = facts.Nodes
		if !c.warnedSite && c.opts.Scope == ScopeSite && len(locations(facts.Nodes)) > 1 {
			c.warnedSite = true
			effs = append(effs, warnSite{locations(facts.Nodes)})
		}
	}
	// Every waiting vote takes these facts, as callers sharing one probe do.
	votes := c.votes
	c.votes = nil
	for _, v := range votes {
		effs = append(effs, c.vote(now, v, f)...)
	}
	if r := c.round; r != nil && r.waitingFacts {
		r.waitingFacts = false
		effs = append(effs, c.ask(now, f)...)
	}
	return effs
}

// PeerAnswered records one answer to r's poll. An answer after the
// deadline, or to a round that is over, is no vote.
func (c *core) PeerAnswered(now time.Time, r *round, nodeID int, v PeerVote) []effect {
	if r != c.round || r.done {
		return nil
	}
	if !now.Before(r.deadline) {
		return c.finish(now)
	}
	r.snap.Votes[nodeID] = v
	if r.pending--; r.pending > 0 {
		return nil
	}
	return c.finish(now)
}

// PollExpired ends r at its deadline with the answers it has.
func (c *core) PollExpired(now time.Time, r *round) []effect {
	if r != c.round || r.done {
		return nil
	}
	return c.finish(now)
}

// StepDown makes every verdict Down until StepDown(""), the cached one too,
// and stops this node asking for votes.
func (c *core) StepDown(reason string) {
	c.stepDown = reason
	c.snap = nil
}

// refreshing is the verdict of a node with none to serve while a refresh
// runs longer than waited: Unknown, or Down when its last facts say its
// database is down (or not its own) or it steps down. It is never cached.
func (c *core) refreshing(now time.Time, waited time.Duration) *Snapshot {
	v := Verdict{State: api.StateUnknown, Node: c.opts.Identity.Name, Scope: c.opts.Scope, CheckedAt: now,
		Reason: fmt.Sprintf("refreshing: no verdict within %s", waited)}
	switch f := c.facts; {
	case c.stepDown != "":
		v.State, v.Reason = api.StateDown, "stepping down: "+c.stepDown
	case f != nil && f.ProbeErr != nil:
		v.State, v.Reason = api.StateDown, v.Reason+"; local database unreachable: "+api.ErrorText(f.ProbeErr)
	case f != nil && f.IdentityErr != nil:
		v.State, v.Reason = api.StateDown, v.Reason+"; not this node's database: "+api.ErrorText(f.IdentityErr)
	}
	return &Snapshot{Verdict: v}
}

// DownFor is how long the local database has been failing without a break.
func (c *core) DownFor(now time.Time) time.Duration {
	if c.downSince.IsZero() {
		return 0
	}
	return now.Sub(c.downSince)
}

// expired tells whether s may no longer be served: CacheTTL after its facts
// were read, however long the refresh took to reach it, on whichever of the
// node's clocks says so first (age).
func (c *core) expired(now time.Time, s *Snapshot) bool {
	ttl := c.opts.CacheTTL
	if c.faults.serveFor > 0 {
		ttl = c.faults.serveFor
	}
	return c.age(now, s) >= ttl
}

// age is how old s's facts are at now, by the oldest reading of the clocks.
func (c *core) age(now time.Time, s *Snapshot) time.Duration {
	if c.faults.monoOnly {
		return now.Sub(s.Facts.ProbedAt)
	}
	return age(now, s.Facts.ProbedAt, c.opts.Boot(), s.probedBoot)
}

// expiry is when s stops being served on the monotonic clock alone: the
// latest it may be served (the simulation's bound).
func (c *core) expiry(s *Snapshot) time.Time {
	if c.faults.serveFor > 0 {
		return s.Facts.ProbedAt.Add(c.faults.serveFor)
	}
	return s.Facts.ProbedAt.Add(c.opts.CacheTTL)
}

func (c *core) freshFacts(now time.Time, maxAge time.Duration) (*Snapshot, bool) {
	if c.facts == nil {
		return nil, false
	}
	age := c.age(now, c.facts)
	return c.facts, age < maxAge && age < c.opts.CacheTTL
}

func (c *core) needProbe(now time.Time) []effect {
	if c.probing {
		return nil
	}
	c.probing, c.probeAt, c.probeBt = true, now, c.opts.Boot()
	return []effect{startProbe{}}
}

// noteDown keeps since when the local database has been failing, counted
// from the first failed probe's answer: a stall shorter than the probe
// timeout never shows.
func (c *core) noteDown(now time.Time, down bool) {
	switch {
	case !down:
		c.downSince = time.Time{}
	case c.downSince.IsZero():
		c.downSince = now
	}
}

// steppedDown applies StepDown to s: also to a snapshot cached, or computed
// by a refresh already running, when StepDown was called.
func (c *core) steppedDown(s *Snapshot) *Snapshot {
	if c.stepDown == "" || (s.Verdict.State != api.StatePrimary && s.Verdict.State != api.StateUnknown) {
		return s
	}
	cp := *s
	cp.Verdict.State, cp.Verdict.Reason = api.StateDown, "stepping down: "+c.stepDown
	return &cp
}

func locations(nodes []repmgr.Node) []string {
	var out []string
	for _, n := range nodes {
		if !slices.Contains(out, n.Location) {
			out = append(out, n.Location)
		}
	}
	slices.Sort(out)
	return out
}

// refuseStale fails closed when the refresh itself outlived CacheTTL (a probe
// or peer that overran its deadline): its callers would otherwise be served a
// Primary verdict from facts older than the cache may ever hold.
func (c *core) refuseStale(now time.Time, v *Verdict, s *Snapshot) {
	age := c.age(now, s)
	if v.State != api.StatePrimary || age < c.opts.CacheTTL {
		return
	}
	v.State = api.StateUnknown
	v.Reason = fmt.Sprintf("facts are %s old, more than the cache TTL %s: %s", age, c.opts.CacheTTL, v.Reason)
}
