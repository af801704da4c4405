package consensus

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
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

// Observer is told about every refresh, for metrics.
type Observer interface {
	Refreshed(s *Snapshot, took time.Duration, changed bool)
}

// Options configure a Checker.
type Options struct {
	Self            string        // this node's repmgr node_name
	RefreshInterval time.Duration // how often the local node is probed and the site polled
	CacheTTL        time.Duration // a verdict older than this is never served
	PeerTimeout     time.Duration // bound on each poll of the site's peers
	Addresses       Addresses
	Logger          *slog.Logger
	Observer        Observer         // optional
	Now             func() time.Time // optional; time.Now
}

// Snapshot is one refresh: the facts, the votes and the verdict drawn from them.
type Snapshot struct {
	Facts    repmgr.Facts
	ProbeErr error
	Votes    map[string]string // site peer → node its /primary named
	PeerErrs map[string]error  // site peer → why it cast no vote
	Verdict  Verdict
}

// Checker keeps the local node's verdict fresh and answers from its cache, so
// that any number of health checks costs the database one probe per refresh.
type Checker struct {
	opts   Options
	prober Prober
	peers  Peers
	cache  *gocache.Cache
	flight singleflight.Group

	mu    sync.Mutex
	last  api.State     // for logging changes only
	nodes []repmgr.Node // last registered nodes seen, for /realPrimary while the DB is down
}

const (
	keySnapshot = "snapshot"
	keyFacts    = "facts"
	keySurvey   = "survey"
)

// NewChecker returns a Checker; call Run to keep it fresh.
func NewChecker(opts Options, prober Prober, peers Peers) *Checker {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Checker{opts: opts, prober: prober, peers: peers, cache: gocache.New(opts.CacheTTL, 10*opts.CacheTTL)}
}

// Run refreshes the verdict every RefreshInterval until ctx ends.
func (c *Checker) Run(ctx context.Context) {
	t := time.NewTicker(c.opts.RefreshInterval)
	defer t.Stop()
	for {
		c.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Snapshot returns the current verdict, computing it if the cached one has
// expired; concurrent callers share that computation.
func (c *Checker) Snapshot(ctx context.Context) *Snapshot {
	if s, ok := c.cached(keySnapshot); ok {
		return s
	}
	return c.refresh(ctx)
}

// Facts returns the local node's facts without polling peers: what /primary
// needs. Keeping it apart from the verdict means two nodes that both run as
// primary never wait on each other's verdicts.
func (c *Checker) Facts(ctx context.Context) *Snapshot {
	if s, ok := c.cached(keyFacts); ok {
		return s
	}
	v, _, _ := c.flight.Do(keyFacts, func() (any, error) {
		s := c.probe(context.WithoutCancel(ctx))
		c.store(keyFacts, s)
		return s, nil
	})
	return v.(*Snapshot)
}

// refresh computes a new snapshot. The computation is detached from the
// caller's cancellation because other callers may be sharing it; its own
// bound is the probe timeout plus PeerTimeout.
func (c *Checker) refresh(ctx context.Context) *Snapshot {
	v, _, _ := c.flight.Do(keySnapshot, func() (any, error) {
		start := c.opts.Now()
		s := c.probe(context.WithoutCancel(ctx))
		c.store(keyFacts, s)
		if s.ProbeErr == nil && !s.Facts.InRecovery {
			s.Votes, s.PeerErrs = c.poll(context.WithoutCancel(ctx), s.Facts.Nodes)
		}
		s.Verdict = Decide(Input{Self: c.opts.Self, Facts: s.Facts, ProbeErr: s.ProbeErr, Votes: s.Votes})
		c.refuseStale(&s.Verdict, s.Facts.ProbedAt)
		c.store(keySnapshot, s)
		changed := c.noteChange(s)
		if c.opts.Observer != nil {
			c.opts.Observer.Refreshed(s, c.opts.Now().Sub(start), changed)
		}
		return s, nil
	})
	return v.(*Snapshot)
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
	if err == nil {
		c.mu.Lock()
		c.nodes = facts.Nodes
		c.mu.Unlock()
	}
	return &Snapshot{Facts: facts, ProbeErr: err}
}

// poll asks the site's peers, concurrently, whom they name primary. Each
// answer must arrive within PeerTimeout of the poll's start; a late, failed
// or malformed answer is no vote.
func (c *Checker) poll(ctx context.Context, nodes []repmgr.Node) (map[string]string, map[string]error) {
	_, peers, ok := Site(c.opts.Self, nodes)
	if !ok || len(peers) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.PeerTimeout)
	defer cancel()
	type answer struct {
		peer, named string
		err         error
	}
	ch := make(chan answer, len(peers))
	for _, p := range peers {
		go func() {
			addr, err := c.opts.Addresses.Of(p)
			if err != nil {
				ch <- answer{peer: p.Name, err: err}
				return
			}
			named, err := c.peers.Primary(ctx, addr)
			ch <- answer{peer: p.Name, named: named, err: err}
		}()
	}
	votes, errs := make(map[string]string, len(peers)), map[string]error{}
	for _, p := range peers {
		votes[p.Name] = ""
		errs[p.Name] = context.DeadlineExceeded // until it answers
	}
	// Stop at the deadline even if a Peers implementation ignores ctx.
	for range peers {
		select {
		case a := <-ch:
			votes[a.peer] = a.named
			delete(errs, a.peer)
			if a.err != nil {
				errs[a.peer] = a.err
				c.opts.Logger.Debug("peer cast no vote", "peer", a.peer, "error", a.err)
			}
		case <-ctx.Done():
			return votes, errs
		}
	}
	return votes, errs
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

// noteChange logs a change of state once, with every input of the decision.
func (c *Checker) noteChange(s *Snapshot) bool {
	c.mu.Lock()
	prev := c.last
	c.last = s.Verdict.State
	c.mu.Unlock()
	if prev == s.Verdict.State {
		return false
	}
	// The survey holds this node's answer too: it must not outlive a change.
	c.cache.Delete(keySurvey)
	level := slog.LevelInfo
	if s.Verdict.State == api.StateUnknown || s.Verdict.State == api.StateDown {
		level = slog.LevelWarn
	}
	v := s.Verdict
	c.opts.Logger.Log(context.Background(), level, "state changed",
		"from", string(prev), "to", string(v.State), "reason", v.Reason,
		"votes", v.Votes, "needed", v.Needed, "voters", v.Voters, "location", v.Location,
		"in_recovery", s.Facts.InRecovery, "peer_votes", s.Votes, "peer_errors", errStrings(s.PeerErrs))
	return true
}

func errStrings(errs map[string]error) map[string]string {
	if len(errs) == 0 {
		return nil
	}
	out := make(map[string]string, len(errs))
	for k, err := range errs {
		out[k] = err.Error()
	}
	return out
}

// KnownNodes returns the registered nodes as last read from the local node.
func (c *Checker) KnownNodes() []repmgr.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes
}
