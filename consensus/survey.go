package consensus

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pgquorum/pgquorum/repmgr"
)

// RealPrimaryResult is the cluster-wide answer of /realPrimary.
type RealPrimaryResult struct {
	Primary     string   // "" unless exactly one node answers 200
	Claimants   []string // every node that answers 200; two or more is split-brain
	Unreachable []string
	Asked       int // how many nodes were asked, this one included
	CheckedAt   time.Time
}

// Survey is every registered node's answer to /state, as seen from here:
// what /realPrimary and /cluster are made of.
type Survey struct {
	Nodes       []repmgr.Node          // as this node's metadata registers them
	Answers     map[string]StateAnswer // by node name; this node's stands for its own verdict
	RealPrimary RealPrimaryResult
	// SplitBrain: several claimants, and again when asked a second time.
	// Answers gathered a few milliseconds apart can show both sides of a
	// clean hand-over (the old primary's last 200, the new one's first); a
	// second round cannot, because the old primary's voters are bound to the
	// new one by their leases.
	SplitBrain bool
}

// splitBrain is the episode in progress, logged once when it starts and
// once when it ends.
type splitBrain struct {
	active    bool
	since     time.Time
	claimants []string
}

// RealPrimary names the one node answering 200 on /state, from the Survey.
func (c *Checker) RealPrimary(ctx context.Context) RealPrimaryResult {
	return c.Survey(ctx).RealPrimary
}

// Survey returns the latest survey of every registered node's /state, taken
// at most one refresh interval ago: Run takes one every interval, so that a
// split-brain is noticed without anyone asking, and /realPrimary and /cluster
// cannot be used to multiply load on the cluster.
func (c *Checker) Survey(ctx context.Context) Survey {
	if x, ok := c.cache.Get(keySurvey); ok {
		return x.(Survey)
	}
	return c.survey(ctx)
}

// watchClaimants surveys the cluster every refresh interval until ctx ends.
func (c *Checker) watchClaimants(ctx context.Context) {
	t := time.NewTicker(c.opts.RefreshInterval)
	defer t.Stop()
	for {
		c.survey(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// survey asks every node, confirms claimants when there are several, caches
// the result for one refresh interval and notes split-brain episodes.
// Concurrent callers share one survey.
func (c *Checker) survey(ctx context.Context) Survey {
	v, _, _ := c.flight.Do(keySurvey, func() (any, error) {
		ctx := context.WithoutCancel(ctx)
		sv := c.askAll(ctx, c.surveyNodes(ctx))
		if len(sv.RealPrimary.Claimants) > 1 {
			again := c.askAll(ctx, byNames(sv.Nodes, sv.RealPrimary.Claimants))
			sv.SplitBrain = len(again.RealPrimary.Claimants) > 1
		}
		c.noteSplit(sv)
		c.cache.Set(keySurvey, sv, c.opts.RefreshInterval)
		if c.opts.Observer != nil {
			c.opts.Observer.Surveyed(sv)
		}
		return sv, nil
	})
	return v.(Survey)
}

// surveyNodes is every registered node, from the facts of the last probe or,
// while the local database is down, as last seen.
func (c *Checker) surveyNodes(ctx context.Context) []repmgr.Node {
	if f := c.Facts(ctx); f.ProbeErr == nil {
		return f.Facts.Nodes
	}
	return c.KnownNodes()
}

func byNames(nodes []repmgr.Node, names []string) []repmgr.Node {
	var out []repmgr.Node
	for _, n := range nodes {
		if slices.Contains(names, n.Name) {
			out = append(out, n)
		}
	}
	return out
}

// askAll asks nodes' /state concurrently, this node's own verdict standing
// for its answer. It is bounded by PeerTimeout for the other nodes, and by
// this node's own refresh (probe timeout + PeerTimeout) when its verdict has
// expired.
func (c *Checker) askAll(ctx context.Context, nodes []repmgr.Node) Survey {
	start := c.opts.Now()
	answers := map[string]StateAnswer{}
	ctx, cancel := context.WithTimeout(ctx, c.opts.PeerTimeout)
	defer cancel()
	ch := make(chan StateAnswer, len(nodes))
	var pending []string
	for _, n := range nodes {
		if n.Name == c.opts.Identity.Name {
			continue
		}
		pending = append(pending, n.Name)
		go func() { ch <- c.askState(ctx, n) }()
	}
	// Stop at the deadline even if a Peers implementation ignores ctx.
collect:
	for range pending {
		select {
		case a := <-ch:
			answers[a.Node] = a
		case <-ctx.Done():
			break collect
		}
	}
	for _, name := range pending {
		if _, ok := answers[name]; !ok {
			answers[name] = StateAnswer{Node: name, Err: ctx.Err()}
		}
	}
	// Asked last: a refresh of its own may take longer than the peers may.
	if _, listed := repmgr.ByName(nodes, c.opts.Identity.Name); listed || len(nodes) == 0 {
		self := c.Snapshot(ctx)
		answers[c.opts.Identity.Name] = StateAnswer{Node: c.opts.Identity.Name, Status: self.Verdict.State.HTTPStatus(), Self: true}
	}
	list := make([]StateAnswer, 0, len(answers))
	for _, a := range answers {
		list = append(list, a)
	}
	r := RealPrimaryResult{Asked: len(list), CheckedAt: start}
	r.Primary, r.Claimants, r.Unreachable = RealPrimary(list)
	return Survey{Nodes: nodes, Answers: answers, RealPrimary: r}
}

func (c *Checker) askState(ctx context.Context, n repmgr.Node) StateAnswer {
	addr, err := c.opts.Addresses.Of(n)
	if err != nil {
		return StateAnswer{Node: n.Name, Err: err}
	}
	status, body, err := c.peers.State(ctx, addr)
	if err == nil && body != nil && body.Node != "" && body.Node != n.Name {
		// Another node answers at n's address (a wrong consensus.peers
		// entry, or one standing in for it): its status is not n's.
		return StateAnswer{Node: n.Name, Err: fmt.Errorf("%s answered as %q", addr, body.Node)}
	}
	return StateAnswer{Node: n.Name, Status: status, Body: body, Err: err}
}

// noteSplit logs a split-brain once when it is first confirmed and once
// when it is over.
func (c *Checker) noteSplit(sv Survey) {
	c.mu.Lock()
	prev := c.split
	switch {
	case sv.SplitBrain && !prev.active:
		c.split = splitBrain{active: true, since: c.opts.Now(), claimants: sv.RealPrimary.Claimants}
	case !sv.SplitBrain && prev.active:
		c.split = splitBrain{}
	}
	c.mu.Unlock()
	switch {
	case sv.SplitBrain && !prev.active:
		c.opts.Logger.Error("split-brain: several nodes answer 200 on /state, and again when asked a second time",
			"claimants", sv.RealPrimary.Claimants, "unreachable", sv.RealPrimary.Unreachable)
	case !sv.SplitBrain && prev.active:
		c.opts.Logger.Warn("split-brain over", "claimants_were", prev.claimants, "lasted", c.opts.Now().Sub(prev.since).Round(time.Millisecond),
			"claimants_now", sv.RealPrimary.Claimants)
	}
}
