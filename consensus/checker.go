package consensus

import (
	"context"
	"log/slog"
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
	// Committed is the failover controller's committed primary (the
	// latest epoch this node applied); nil when failover is off. A voter
	// whose database is down, or a witness, vouches for it and no other.
	Committed CommittedPrimary
	// Deposed tells whether the failover controller's Raft log deposes a
	// candidate; nil when failover is off. A voter refuses a deposed
	// candidate, and every candidate while it cannot tell.
	Deposed Depositions
	// Boot reads a clock that counts time suspended (CLOCK_BOOTTIME): a
	// verdict expires when it or Now says so. Optional: SystemBoottime, or,
	// when Now is set, Now's own reading.
	Boot Monotonic
}

// CommittedPrimary names the primary the failover controller's Raft log
// commits: its repmgr node_name and node_id; ok is false while nothing is
// committed or this node's log may be behind. It must be safe for
// concurrent use and cheap: it is read on every vote.
type CommittedPrimary func() (name string, nodeID int, ok bool)

// CommittedSource is the failover controller as CommittedFrom reads it:
// *failover.Controller's Committed.
type CommittedSource interface {
	Committed() (primary string, nodeID int, epoch uint64, ok bool)
}

// CommittedFrom is the CommittedPrimary of whatever src holds when it is
// read: nothing (ok false) while it holds none. The controller is built
// after the Checker it reads verdicts from, so the Checker gets the holder.
func CommittedFrom(src *atomic.Pointer[CommittedSource]) CommittedPrimary {
	return func() (string, int, bool) {
		p := src.Load()
		if p == nil || *p == nil {
			return "", 0, false
		}
		name, id, _, ok := (*p).Committed()
		return name, id, ok
	}
}

// Depositions tells whether the Raft log, as this node applied it, deposes
// candidate (node_id id): why, and known false while this node cannot tell
// (its log has not been current since it started). It must be safe for
// concurrent use and cheap: it is read on every vote.
type Depositions func(candidate string, id int) (why string, deposed, known bool)

// DepositionSource is the failover controller as DepositionsFrom reads it:
// *failover.Controller's Deposed.
type DepositionSource interface {
	Deposed(candidate string, id int) (why string, deposed, known bool)
}

// DepositionsFrom is the Depositions of whatever src holds when it is read:
// unknown while it holds nothing (the controller is built after the
// Checker), so that a voter with failover on vouches for nobody before its
// controller has read its log.
func DepositionsFrom(src *atomic.Pointer[DepositionSource]) Depositions {
	return func(candidate string, id int) (string, bool, bool) {
		p := src.Load()
		if p == nil || *p == nil {
			return "", false, false
		}
		return (*p).Deposed(candidate, id)
	}
}

// Snapshot is one refresh: the facts, the votes and the verdict drawn from them.
type Snapshot struct {
	Facts       repmgr.Facts
	ProbeErr    error
	IdentityErr error
	SelfVote    PeerVote
	Votes       map[int]PeerVote // by node_id of every other node polled
	Verdict     Verdict

	probedBoot time.Duration // the boot clock's reading when Facts were probed
}

// Checker keeps the local node's verdict fresh and answers from its cache, so
// that any number of health checks costs the database one probe per refresh.
// It is also this node's voter: Vote answers the other nodes' polls.
//
// Its rules are its core's (core.go); the Checker is the shell around it:
// the clock, the goroutines that probe and poll, and the callers waiting
// for what they asked.
type Checker struct {
	opts   Options
	prober Prober
	peers  Peers
	cache  *gocache.Cache     // the survey's
	flight singleflight.Group // the survey's

	mu      sync.Mutex
	core    *core
	serving []chan *Snapshot // Snapshot callers waiting for the refresh in flight
	probing []chan *Snapshot // Facts callers waiting for the probe in flight
	split   splitBrain

	wake chan time.Duration // Run's next tick, from the refresh Run waits on
}

const keySurvey = "survey"

// fluxInterval is how soon a node whose verdict is in flux polls again:
// a new primary waiting for its voters' leases to run out, or for the
// standbys to follow it, answers 200 within this of getting its majority.
const fluxInterval = 50 * time.Millisecond

// NewChecker returns a Checker; call Run to keep it fresh.
func NewChecker(opts Options, prober Prober, peers Peers) *Checker {
	if opts.Boot == nil && opts.Now == nil {
		opts.Boot = SystemBoottime
	}
	if opts.Boot == nil {
		now, origin := opts.Now, opts.Now()
		opts.Boot = func() time.Duration { return now().Sub(origin) }
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Scope == "" {
		opts.Scope = ScopeCluster
	}
	c := &Checker{opts: opts, prober: prober, peers: peers, cache: gocache.New(opts.CacheTTL, 10*opts.CacheTTL),
		wake: make(chan time.Duration, 1)}
	c.core = newCore(&c.opts)
	return c
}

// Run refreshes the verdict every RefreshInterval, or every fluxInterval
// while it is in flux, and surveys the cluster for split-brain, until ctx
// ends.
func (c *Checker) Run(ctx context.Context) {
	go c.watchClaimants(ctx)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.step(c.core.Tick)
		case d := <-c.wake:
			t.Reset(d)
		}
	}
}

// step feeds one event to the core, hands what it produced to the callers
// waiting for it, then starts the I/O it asks for. Everything the core
// touches is under c.mu, and no I/O is.
func (c *Checker) step(event func(now time.Time) []effect) {
	c.mu.Lock()
	effs := event(c.opts.Now())
	var io []effect
	for _, e := range effs {
		switch e := e.(type) {
		case published:
			for _, ch := range c.serving {
				ch <- e.snap
			}
			c.serving = nil
			if e.changed {
				// The survey holds this node's answer too: it must not outlive a change.
				c.cache.Delete(keySurvey)
			}
			io = append(io, e)
		case factsReady:
			for _, ch := range c.probing {
				ch <- e.snap
			}
			c.probing = nil
		case voteAnswered:
			e.call.tag.(chan api.VoteAnswer) <- e.answer
		case wakeRun:
			select { // only the latest counts
			case <-c.wake:
			default:
			}
			c.wake <- e.after
		default:
			io = append(io, e)
		}
	}
	c.mu.Unlock()
	for _, e := range io {
		switch e := e.(type) {
		case startProbe:
			go c.probe()
		case pollPeers:
			go c.poll(e)
		case published:
			c.published(e)
		case warnSite:
			c.opts.Logger.Warn("consensus.scope is site, and the cluster spans several locations: each location may confirm a primary of its own",
				"locations", e.locations)
		}
	}
}

// Snapshot returns the current verdict, computing it if the cached one has
// expired; concurrent callers share that computation.
func (c *Checker) Snapshot(ctx context.Context) *Snapshot {
	var s *Snapshot
	ch := make(chan *Snapshot, 1)
	c.step(func(now time.Time) []effect {
		var effs []effect
		if s, effs = c.core.Serve(now); s == nil {
			c.serving = append(c.serving, ch)
		}
		return effs
	})
	if s != nil {
		return s
	}
	// Not bound by ctx: the refresh is, by the probe timeout plus PeerTimeout.
	return <-ch
}

// maxServeWait bounds how long SnapshotWithin waits for a refresh: a health
// check that times out tells HAProxy less than a quick 509, and it times out
// after inter (500 ms in the documented settings, 200 ms in the fast ones).
const maxServeWait = 250 * time.Millisecond

// SnapshotWithin is Snapshot for a health check: when no verdict may be
// served and the refresh does not end within ctx, nor within half a
// refresh interval (at most maxServeWait), it answers that this node is
// refreshing: Unknown (509), or Down (503) while its database is known to
// be down or it steps down. The refresh goes on for the next caller.
func (c *Checker) SnapshotWithin(ctx context.Context) *Snapshot {
	var s *Snapshot
	ch := make(chan *Snapshot, 1)
	c.step(func(now time.Time) []effect {
		var effs []effect
		if s, effs = c.core.Serve(now); s == nil {
			c.serving = append(c.serving, ch)
		}
		return effs
	})
	if s != nil {
		return s
	}
	wait := maxServeWait
	if r := c.opts.RefreshInterval / 2; r > 0 && r < wait {
		wait = r
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s = <-ch: // buffered: a publication after we left never blocks
		return s
	case <-ctx.Done():
	case <-t.C:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.core.refreshing(c.opts.Now(), wait)
}

// Valid tells whether s, published by this Checker, may still be served:
// none of the node's clocks says it has expired. /state checks it just
// before it sends a 200, which a pause while answering could otherwise
// send on an expired verdict.
func (c *Checker) Valid(s *Snapshot) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.core.expired(c.opts.Now(), s)
}

// StepDown makes this node answer Down (503) instead of Primary or Unknown,
// at once and until StepDown(""), and stop asking for votes: a primary
// handing over in a switchover, or being fenced, must drop out of HAProxy's
// write backend before its database stops.
func (c *Checker) StepDown(reason string) {
	c.mu.Lock()
	c.core.StepDown(reason)
	c.mu.Unlock()
	c.opts.Logger.Info("stepping down", "stepping_down", reason != "", "reason", reason)
}

// Binds is how long this node's vote may still go to holder: see
// Ballot.Binds.
func (c *Checker) Binds(holder string, holderID int) time.Duration {
	return c.opts.Ballot.Binds(holder, holderID)
}

// Release ends the lease on this node's vote that holder holds, if it
// does: see Ballot.Release.
func (c *Checker) Release(holder string, holderID int) (bool, error) {
	return c.opts.Ballot.Release(holder, holderID)
}

// SteppingDown is the reason given to StepDown, "" when not stepping down.
func (c *Checker) SteppingDown() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.core.stepDown
}

// Facts returns the local node's facts without polling peers: what /primary
// and the vote need. Keeping it apart from the verdict means two nodes that
// both run as primary never wait on each other's verdicts.
func (c *Checker) Facts(context.Context) *Snapshot {
	var s *Snapshot
	ch := make(chan *Snapshot, 1)
	c.step(func(now time.Time) []effect {
		var effs []effect
		if s, effs = c.core.Facts(now, c.opts.CacheTTL); s == nil {
			c.probing = append(c.probing, ch)
		}
		return effs
	})
	if s != nil {
		return s
	}
	return <-ch
}

// probe reads the local node's facts for the core. It is detached from every
// caller's cancellation, since they share it; the Prober bounds it.
func (c *Checker) probe() {
	facts, err := c.prober.Probe(context.Background())
	c.step(func(now time.Time) []effect { return c.core.ProbeDone(now, facts, err) })
}

// poll asks p's nodes, concurrently, to vouch for this one. Each answer must
// arrive within PeerTimeout of the poll's start; a late, failed or malformed
// answer is no vote.
func (c *Checker) poll(p pollPeers) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.PeerTimeout)
	defer cancel()
	type answer struct {
		id int
		PeerVote
	}
	ch := make(chan answer, len(p.nodes))
	for _, n := range p.nodes {
		go func() {
			addr, err := c.opts.Addresses.Of(n)
			if err != nil {
				ch <- answer{n.ID, PeerVote{Err: err}}
				return
			}
			a, err := c.peers.Vote(ctx, addr, p.req)
			ch <- answer{n.ID, PeerVote{Answer: a, Err: err}}
		}()
	}
	// Stop at the deadline even if a Peers implementation ignores ctx.
	for range p.nodes {
		select {
		case a := <-ch:
			c.step(func(now time.Time) []effect { return c.core.PeerAnswered(now, p.round, a.id, a.PeerVote) })
		case <-ctx.Done():
			c.step(func(now time.Time) []effect { return c.core.PollExpired(now, p.round) })
			return
		}
	}
}

// published logs a change of state once, with every input of the decision,
// and tells the Observer.
func (c *Checker) published(p published) {
	if c.opts.Observer != nil {
		c.opts.Observer.Refreshed(p.snap, p.took, p.changed)
	}
	if !p.changed {
		return
	}
	v, s := p.snap.Verdict, p.snap
	level := slog.LevelInfo
	if v.State == api.StateUnknown || v.State == api.StateDown {
		level = slog.LevelWarn
	}
	c.opts.Logger.Log(context.Background(), level, "state changed",
		"from", string(p.from), "to", string(v.State), "reason", v.Reason,
		"votes", v.Votes, "needed", v.Needed, "cluster_votes", v.ClusterVotes, "cluster_needed", v.ClusterNeeded,
		"scope", string(v.Scope), "voters", v.Voters, "refusals", v.Refusals, "location", v.Location,
		"in_recovery", s.Facts.InRecovery, "timeline", s.Facts.Server.Timeline)
}

// DownFor is how long the local database has been failing without a break;
// 0 while it answers.
func (c *Checker) DownFor() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.core.DownFor(c.opts.Now())
}

// KnownNodes returns the registered nodes as last read from the local node.
func (c *Checker) KnownNodes() []repmgr.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.core.nodes
}
