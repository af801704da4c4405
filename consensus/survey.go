package consensus

import (
	"context"
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
}

// RealPrimary names the one node answering 200 on /state, from the Survey.
func (c *Checker) RealPrimary(ctx context.Context) RealPrimaryResult {
	return c.Survey(ctx).RealPrimary
}

// Survey asks every registered node's /state concurrently, this node's own
// verdict standing for its answer. The result is shared by concurrent callers
// and cached for one refresh interval, so /realPrimary and /cluster cannot be
// used to multiply load on the cluster.
func (c *Checker) Survey(ctx context.Context) Survey {
	if x, ok := c.cache.Get(keySurvey); ok {
		return x.(Survey)
	}
	v, _, _ := c.flight.Do(keySurvey, func() (any, error) {
		r := c.askAll(context.WithoutCancel(ctx))
		c.cache.Set(keySurvey, r, c.opts.RefreshInterval)
		return r, nil
	})
	return v.(Survey)
}

// askAll is bounded by PeerTimeout for the other nodes, and by this node's
// own refresh (probe timeout + PeerTimeout) when its verdict has expired.
func (c *Checker) askAll(ctx context.Context) Survey {
	start := c.opts.Now()
	self := c.Snapshot(ctx)
	nodes := self.Facts.Nodes
	if self.ProbeErr != nil {
		nodes = c.KnownNodes()
	}
	answers := map[string]StateAnswer{c.opts.Self: {Node: c.opts.Self, Status: self.Verdict.State.HTTPStatus(), Self: true}}
	ctx, cancel := context.WithTimeout(ctx, c.opts.PeerTimeout)
	defer cancel()
	ch := make(chan StateAnswer, len(nodes))
	var pending []string
	for _, n := range nodes {
		if n.Name == c.opts.Self {
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
	list := make([]StateAnswer, 0, len(answers))
	for _, name := range pending {
		if _, ok := answers[name]; !ok {
			answers[name] = StateAnswer{Node: name, Err: ctx.Err()}
		}
	}
	for _, a := range answers {
		list = append(list, a)
	}
	r := RealPrimaryResult{Asked: len(list), CheckedAt: start}
	r.Primary, r.Claimants, r.Unreachable = RealPrimary(list)
	if len(r.Claimants) > 1 {
		c.opts.Logger.Error("split-brain: several nodes answer 200 on /state", "claimants", r.Claimants, "unreachable", r.Unreachable)
	}
	return Survey{Nodes: nodes, Answers: answers, RealPrimary: r}
}

func (c *Checker) askState(ctx context.Context, n repmgr.Node) StateAnswer {
	addr, err := c.opts.Addresses.Of(n)
	if err != nil {
		return StateAnswer{Node: n.Name, Err: err}
	}
	status, body, err := c.peers.State(ctx, addr)
	return StateAnswer{Node: n.Name, Status: status, Body: body, Err: err}
}
