package consensus

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Prober reads the facts of the local node; *repmgr.Local is one.
type Prober interface {
	Probe(ctx context.Context) (repmgr.Facts, error)
}

// Observer is told about every refresh and every survey, for metrics.
type Observer interface {
	Refreshed(s *Snapshot, took time.Duration, changed bool)
	Surveyed(sv Survey)
}

// Options configure a Checker.
type Options struct {
	Identity        Identity
	Scope           Scope
	RefreshInterval time.Duration // how often the local node is probed and the peers polled
	CacheTTL        time.Duration // a verdict older than this is never served
	PeerTimeout     time.Duration // bound on each poll of the peers
	Addresses       Addresses
	Ballot          *Ballot // this node's vote; required
	Logger          *slog.Logger
	Observer        Observer         // optional
	Now             func() time.Time // optional; time.Now
}

// Snapshot is one refresh: the facts, the votes and the verdict drawn from them.
type Snapshot struct {
	Facts       repmgr.Facts
	ProbeErr    error
	IdentityErr error
	SelfVote    PeerVote
	Votes       map[int]PeerVote // by node_id of every other node polled
	Verdict     Verdict
}

// Checker keeps the local node's verdict fresh and answers from its cache, so
// that any number of health checks costs the database one probe per refresh.
// It is also this node's voter: Vote answers the other nodes' polls.
type Checker struct {
	opts   Options
	prober Prober
	peers  Peers
	cache  *gocache.Cache
	flight singleflight.Group

	mu         sync.Mutex
	last       api.State     // for logging changes only
	lastVoters []string      // for noticing a verdict in flux
	fluxUntil  time.Time     // re-poll every fluxInterval until then
	nodes      []repmgr.Node // last registered nodes seen, for /realPrimary while the DB is down
	warnedSite bool
	split      splitBrain
	downSince  time.Time // when a probe first failed after the last success; zero while up

	stepDown atomic.Pointer[string] // why this node takes no writes, while it steps down
}

const (
	keySnapshot = "snapshot"
	keyFacts    = "facts"
	keySurvey   = "survey"
)

// fluxInterval is how soon a node whose verdict is in flux polls again:
// a new primary waiting for its voters' leases to run out, or for the
// standbys to follow it, answers 200 within this of getting its majority.
const fluxInterval = 50 * time.Millisecond

// NewChecker returns a Checker; call Run to keep it fresh.
func NewChecker(opts Options, prober Prober, peers Peers) *Checker {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Scope == "" {
		opts.Scope = ScopeCluster
	}
	return &Checker{opts: opts, prober: prober, peers: peers, cache: gocache.New(opts.CacheTTL, 10*opts.CacheTTL)}
}

// Run refreshes the verdict every RefreshInterval, or every fluxInterval
// while it is in flux, and surveys the cluster for split-brain, until ctx
// ends.
func (c *Checker) Run(ctx context.Context) {
	go c.watchClaimants(ctx)
	t := time.NewTimer(0)
	defer t.Stop()
	lastProbe := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// In flux, the poll is repeated on the facts of the last probe while
		// they are younger than a refresh interval: the database still costs
		// one probe per interval.
		maxAge := time.Duration(0)
		if c.opts.Now().Sub(lastProbe) < c.opts.RefreshInterval {
			maxAge = c.opts.RefreshInterval
		}
		s := c.refresh(ctx, maxAge)
		if s.Facts.ProbedAt.After(lastProbe) {
			lastProbe = s.Facts.ProbedAt
		}
		next := c.opts.RefreshInterval - c.opts.Now().Sub(lastProbe)
		if c.inFlux(s) {
			next = min(next, fluxInterval)
		}
		t.Reset(max(next, time.Millisecond))
	}
}

// Snapshot returns the current verdict, computing it if the cached one has
// expired; concurrent callers share that computation.
func (c *Checker) Snapshot(ctx context.Context) *Snapshot {
	if s, ok := c.cached(keySnapshot); ok {
		return c.steppedDown(s)
	}
	return c.steppedDown(c.refresh(ctx, fluxInterval))
}

// StepDown makes this node answer Down (503) instead of Primary or Unknown,
// at once and until StepDown(""), and stop asking for votes: a primary
// handing over in a switchover, or being fenced, must drop out of HAProxy's
// write backend before its database stops.
func (c *Checker) StepDown(reason string) {
	if reason == "" {
		c.stepDown.Store(nil)
	} else {
		c.stepDown.Store(&reason)
	}
	c.cache.Delete(keySnapshot)
	c.opts.Logger.Info("stepping down", "stepping_down", reason != "", "reason", reason)
}

// Release ends the lease on this node's vote that holder holds, if it
// does: see Ballot.Release.
func (c *Checker) Release(holder string, holderID int) (bool, error) {
	return c.opts.Ballot.Release(holder, holderID)
}

// SteppingDown is the reason given to StepDown, "" when not stepping down.
func (c *Checker) SteppingDown() string {
	if r := c.stepDown.Load(); r != nil {
		return *r
	}
	return ""
}

// steppedDown applies StepDown to s: also to a snapshot cached, or computed
// by a refresh already running, when StepDown was called.
func (c *Checker) steppedDown(s *Snapshot) *Snapshot {
	why := c.stepDown.Load()
	if why == nil || (s.Verdict.State != api.StatePrimary && s.Verdict.State != api.StateUnknown) {
		return s
	}
	cp := *s
	cp.Verdict.State, cp.Verdict.Reason = api.StateDown, "stepping down: "+*why
	return &cp
}

// Facts returns the local node's facts without polling peers: what /primary
// and the vote need. Keeping it apart from the verdict means two nodes that
// both run as primary never wait on each other's verdicts.
func (c *Checker) Facts(ctx context.Context) *Snapshot {
	return c.facts(ctx, c.opts.CacheTTL)
}

// facts returns facts no older than maxAge, probing when the cached ones are
// older; concurrent callers share one probe.
func (c *Checker) facts(ctx context.Context, maxAge time.Duration) *Snapshot {
	if s, ok := c.cached(keyFacts); ok && c.opts.Now().Sub(s.Facts.ProbedAt) < maxAge {
		return s
	}
	v, _, _ := c.flight.Do(keyFacts, func() (any, error) {
		s := c.probe(context.WithoutCancel(ctx))
		c.store(keyFacts, s)
		return s, nil
	})
	return v.(*Snapshot)
}

// refresh computes a new snapshot from facts no older than maxAge (0: a new
// probe). The computation is detached from the caller's cancellation because
// other callers may be sharing it; its own bound is the probe timeout plus
// PeerTimeout.
func (c *Checker) refresh(ctx context.Context, maxAge time.Duration) *Snapshot {
	v, _, _ := c.flight.Do(keySnapshot, func() (any, error) {
		start := c.opts.Now()
		ctx := context.WithoutCancel(ctx)
		f := c.facts(ctx, maxAge)
		s := &Snapshot{Facts: f.Facts, ProbeErr: f.ProbeErr, IdentityErr: f.IdentityErr}
		if me, ok := c.candidate(s); ok {
			req := api.VoteRequest{Protocol: api.VoteProtocol, Candidate: me.Name, CandidateID: me.ID,
				SystemID: s.Facts.Server.SystemID, Timeline: s.Facts.Server.Timeline}
			self, _ := c.answer(f, req)
			s.SelfVote = PeerVote{Answer: &self}
			s.Votes = c.poll(ctx, me, s.Facts.Nodes, req)
		}
		s.Verdict = Decide(Input{Identity: c.opts.Identity, Scope: c.opts.Scope, Facts: s.Facts, ProbeErr: s.ProbeErr,
			IdentityErr: s.IdentityErr, SelfVote: s.SelfVote, Votes: s.Votes, MinLease: LeaseFor(c.opts.CacheTTL)})
		c.refuseStale(&s.Verdict, s.Facts.ProbedAt)
		s = c.steppedDown(s)
		c.store(keySnapshot, s)
		changed := c.noteChange(s)
		if c.opts.Observer != nil {
			c.opts.Observer.Refreshed(s, c.opts.Now().Sub(start), changed)
		}
		return s, nil
	})
	return v.(*Snapshot)
}

// candidate tells whether this node should ask for votes: its own database
// answered, is its own, runs as primary and is registered (not as a witness).
func (c *Checker) candidate(s *Snapshot) (repmgr.Node, bool) {
	if s.ProbeErr != nil || s.IdentityErr != nil || s.Facts.InRecovery || c.stepDown.Load() != nil {
		return repmgr.Node{}, false
	}
	me, ok, err := c.opts.Identity.Self(s.Facts.Nodes)
	return me, ok && err == nil && me.Type != repmgr.TypeWitness
}

// refuseStale fails closed when the refresh itself outlived CacheTTL (a probe
// or peer that overran its deadline): its callers would otherwise be served a
// Primary verdict from facts older than the cache may ever hold.
func (c *Checker) refuseStale(v *Verdict, probedAt time.Time) {
	age := c.opts.Now().Sub(probedAt)
	if v.State != api.StatePrimary || age < c.opts.CacheTTL {
		return
	}
	v.State = api.StateUnknown
	v.Reason = fmt.Sprintf("facts are %s old, more than the cache TTL %s: %s", age, c.opts.CacheTTL, v.Reason)
}

func (c *Checker) probe(ctx context.Context) *Snapshot {
	start := c.opts.Now()
	facts, err := c.prober.Probe(ctx)
	facts.ProbedAt = start
	s := &Snapshot{Facts: facts, ProbeErr: err}
	if err == nil {
		s.IdentityErr = CheckIdentity(c.opts.Identity, facts)
	}
	c.noteDown(s.ProbeErr != nil || s.IdentityErr != nil)
	if err == nil {
		c.mu.Lock()
		c.nodes = facts.Nodes
		warn := !c.warnedSite && c.opts.Scope == ScopeSite && len(locations(facts.Nodes)) > 1
		c.warnedSite = c.warnedSite || warn
		c.mu.Unlock()
		if warn {
			c.opts.Logger.Warn("consensus.scope is site, and the cluster spans several locations: each location may confirm a primary of its own",
				"locations", locations(facts.Nodes))
		}
	}
	return s
}

// noteDown keeps since when the local database has been failing, counted
// from the first failed probe's answer: a stall shorter than the probe
// timeout never shows.
func (c *Checker) noteDown(down bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !down:
		c.downSince = time.Time{}
	case c.downSince.IsZero():
		c.downSince = c.opts.Now()
	}
}

// DownFor is how long the local database has been failing without a break;
// 0 while it answers.
func (c *Checker) DownFor() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.downSince.IsZero() {
		return 0
	}
	return c.opts.Now().Sub(c.downSince)
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

// poll asks the other registered nodes, concurrently, to vouch for this one:
// every location with scope cluster, its own with scope site. Each answer
// must arrive within PeerTimeout of the poll's start; a late, failed or
// malformed answer is no vote.
func (c *Checker) poll(ctx context.Context, me repmgr.Node, nodes []repmgr.Node, req api.VoteRequest) map[int]PeerVote {
	var peers []repmgr.Node
	for _, n := range nodes {
		if n.ID != me.ID && (c.opts.Scope == ScopeCluster || n.Location == me.Location) {
			peers = append(peers, n)
		}
	}
	votes := make(map[int]PeerVote, len(peers))
	if len(peers) == 0 {
		return votes
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.PeerTimeout)
	defer cancel()
	type answer struct {
		id int
		PeerVote
	}
	ch := make(chan answer, len(peers))
	for _, p := range peers {
		votes[p.ID] = PeerVote{Err: context.DeadlineExceeded} // until it answers
		go func() {
			addr, err := c.opts.Addresses.Of(p)
			if err != nil {
				ch <- answer{p.ID, PeerVote{Err: err}}
				return
			}
			a, err := c.peers.Vote(ctx, addr, req)
			ch <- answer{p.ID, PeerVote{Answer: a, Err: err}}
		}()
	}
	// Stop at the deadline even if a Peers implementation ignores ctx.
	for range peers {
		select {
		case a := <-ch:
			votes[a.id] = a.PeerVote
		case <-ctx.Done():
			return votes
		}
	}
	return votes
}

// inFlux tells whether the verdict may change any moment: a node running as
// primary without its majority, whose inputs changed within the last few
// lease periods. It is re-polled every fluxInterval meanwhile; an old primary
// that stays refused falls back to the refresh interval.
func (c *Checker) inFlux(s *Snapshot) bool {
	if s.Verdict.State != api.StateUnknown || len(s.Votes) == 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opts.Now().Before(c.fluxUntil)
}

// store caches s until CacheTTL after its facts were gathered, so that a
// verdict is never served older than CacheTTL however long it took to reach.
func (c *Checker) store(key string, s *Snapshot) {
	ttl := c.opts.CacheTTL - c.opts.Now().Sub(s.Facts.ProbedAt)
	if ttl <= 0 {
		c.cache.Delete(key)
		return
	}
	c.cache.Set(key, s, ttl)
}

func (c *Checker) cached(key string) (*Snapshot, bool) {
	x, ok := c.cache.Get(key)
	if !ok {
		return nil, false
	}
	s := x.(*Snapshot)
	// go-cache expires on its own clock; this check keeps the guarantee on ours.
	if c.opts.Now().Sub(s.Facts.ProbedAt) >= c.opts.CacheTTL {
		return nil, false
	}
	return s, true
}

// noteChange logs a change of state once, with every input of the decision,
// and notes whether the verdict is in flux.
func (c *Checker) noteChange(s *Snapshot) bool {
	v := s.Verdict
	c.mu.Lock()
	prev := c.last
	c.last = v.State
	if prev != v.State || !slices.Equal(c.lastVoters, v.Voters) {
		c.fluxUntil = c.opts.Now().Add(2*LeaseFor(c.opts.CacheTTL) + c.opts.RefreshInterval)
	}
	c.lastVoters = v.Voters
	c.mu.Unlock()
	if prev == v.State {
		return false
	}
	// The survey holds this node's answer too: it must not outlive a change.
	c.cache.Delete(keySurvey)
	level := slog.LevelInfo
	if v.State == api.StateUnknown || v.State == api.StateDown {
		level = slog.LevelWarn
	}
	c.opts.Logger.Log(context.Background(), level, "state changed",
		"from", string(prev), "to", string(v.State), "reason", v.Reason,
		"votes", v.Votes, "needed", v.Needed, "cluster_votes", v.ClusterVotes, "cluster_needed", v.ClusterNeeded,
		"scope", string(v.Scope), "voters", v.Voters, "refusals", v.Refusals, "location", v.Location,
		"in_recovery", s.Facts.InRecovery, "timeline", s.Facts.Server.Timeline)
	return true
}

// KnownNodes returns the registered nodes as last read from the local node.
func (c *Checker) KnownNodes() []repmgr.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes
}
