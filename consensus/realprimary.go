package consensus

import (
	"context"
	"time"
)

// RealPrimaryResult is the cluster-wide answer of /realPrimary.
type RealPrimaryResult struct {
	Primary     string   // "" unless exactly one node answers 200
	Claimants   []string // every node that answers 200; two or more is split-brain
	Unreachable []string
	Asked       int // how many nodes were asked, this one included
	CheckedAt   time.Time
}

// RealPrimary asks every registered node's /state concurrently, this node's
// own verdict standing for its answer. The result is shared by concurrent
// callers and cached for one refresh interval, so /realPrimary cannot be used
// to multiply load on the cluster.
func (c *Checker) RealPrimary(ctx context.Context) RealPrimaryResult {
	if x, ok := c.cache.Get(keyRealPrimary); ok {
		return x.(RealPrimaryResult)
	}
	v, _, _ := c.flight.Do(keyRealPrimary, func() (any, error) {
		r := c.askAll(context.WithoutCancel(ctx))
		c.cache.Set(keyRealPrimary, r, c.opts.RefreshInterval)
		return r, nil
	})
	return v.(RealPrimaryResult)
}

// askAll is bounded by PeerTimeout for the other nodes, and by this node's
// own refresh (probe timeout + PeerTimeout) when its verdict has expired.
func (c *Checker) askAll(ctx context.Context) RealPrimaryResult {
	start := c.opts.Now()
	self := c.Snapshot(ctx)
	nodes := self.Facts.Nodes
	if self.ProbeErr != nil {
		nodes = c.KnownNodes()
	}
	answers := []StateAnswer{{Node: c.opts.Self, Status: self.Verdict.State.HTTPStatus()}}
	ctx, cancel := context.WithTimeout(ctx, c.opts.PeerTimeout)
	defer cancel()
	ch := make(chan StateAnswer, len(nodes))
	asked := 0
	for _, n := range nodes {
		if n.Name == c.opts.Self {
			continue
		}
		asked++
		go func() {
			addr, err := c.opts.Addresses.Of(n)
			if err != nil {
				ch <- StateAnswer{Node: n.Name, Err: err}
				return
			}
			status, err := c.peers.State(ctx, addr)
			ch <- StateAnswer{Node: n.Name, Status: status, Err: err}
		}()
	}
	pending := map[string]bool{}
	for _, n := range nodes {
		if n.Name != c.opts.Self {
			pending[n.Name] = true
		}
	}
	// Stop at the deadline even if a Peers implementation ignores ctx.
collect:
	for range asked {
		select {
		case a := <-ch:
			answers = append(answers, a)
			delete(pending, a.Node)
		case <-ctx.Done():
			break collect
		}
	}
	for name := range pending {
		answers = append(answers, StateAnswer{Node: name, Err: ctx.Err()})
	}
	r := RealPrimaryResult{Asked: len(answers), CheckedAt: start}
	r.Primary, r.Claimants, r.Unreachable = RealPrimary(answers)
	if len(r.Claimants) > 1 {
		c.opts.Logger.Error("split-brain: several nodes answer 200 on /state", "claimants", r.Claimants, "unreachable", r.Unreachable)
	}
	return r
}
