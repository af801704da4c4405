package failover

import (
	"context"
	"sync"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// peerCalls are the calls this node makes to the other nodes' pgquorum
// over HTTP: the coordinator's poll of reports, its request to release
// the votes leased to a stopped primary, and a command carried to the
// coordinator. This node answers its own part directly.
type peerCalls struct {
	opts    Options
	peers   Reporters
	report  func(context.Context, api.ReportRequest) api.Report // this node's own report
	release func(context.Context, api.ReleaseRequest) error     // this node's own release
	deposed func(context.Context, api.DepositionRequest) api.DepositionAnswer
}

// gather asks every registered node for its report, concurrently, each
// within the peer timeout, or, when it asks for a direct probe, within the
// peer timeout plus database.timeout: a node answers its report as it does
// unasked (the peer timeout covers that and the exchange), and its probe,
// a new connection and a query, runs beside it within database.timeout
// (reporter.report). This node answers for itself. A node that does not
// answer has no report.
func (p *peerCalls) gather(ctx context.Context, nodes []repmgr.Node, req api.ReportRequest) map[string]*api.Report {
	type answer struct {
		name string
		rep  *api.Report
	}
	budget := p.opts.PeerTimeout
	if req.ProbeNode != "" {
		budget += p.opts.DBTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	ch := make(chan answer, len(nodes))
	asked := 0
	for _, n := range nodes {
		if n.Name == p.opts.Self {
			continue
		}
		asked++
		go func() {
			addr, err := p.opts.Addresses.Of(n)
			if err != nil {
				ch <- answer{n.Name, nil}
				return
			}
			rep, err := p.peers.Report(ctx, addr, req)
			if err != nil || rep.Node != n.Name {
				rep = nil // no answer, or not from that node
			}
			ch <- answer{n.Name, rep}
		}()
	}
	reports := map[string]*api.Report{}
	own := p.report(ctx, req)
	reports[p.opts.Self] = &own
	for range asked {
		select {
		case a := <-ch:
			if a.rep != nil {
				reports[a.name] = a.rep
			}
		case <-ctx.Done():
			return reports
		}
	}
	return reports
}

// depositions asks every registered node, concurrently, within the peer
// timeout, whether it has released the deposed node of req. This node
// answers for itself. A node that does not answer, or answers for another,
// has no answer (Released counts it as not released).
func (p *peerCalls) depositions(ctx context.Context, nodes []repmgr.Node, req api.DepositionRequest) map[string]*api.DepositionAnswer {
	ctx, cancel := context.WithTimeout(ctx, p.opts.PeerTimeout)
	defer cancel()
	out := map[string]*api.DepositionAnswer{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var a *api.DepositionAnswer
			if n.Name == p.opts.Self {
				own := p.deposed(ctx, req)
				a = &own
			} else if addr, err := p.opts.Addresses.Of(n); err == nil {
				if a, err = p.peers.Deposition(ctx, addr, req); err != nil {
					p.opts.Logger.Debug("deposition", "node", n.Name, "deposed", req.Node, "error", err)
				}
			}
			if a != nil {
				mu.Lock()
				out[n.Name] = a
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

// releaseVotes has every node release the vote leased to the stopped old
// primary, so that the target is confirmed as soon as it is promoted
// rather than a lease later. Best effort: a vote not released runs out.
func (p *peerCalls) releaseVotes(ctx context.Context, from repmgr.Node, nodes []repmgr.Node) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.PeerTimeout)
	defer cancel()
	req := api.ReleaseRequest{Holder: from.Name, HolderID: from.ID}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if n.Name == p.opts.Self {
				err = p.release(ctx, req)
			} else if addr, aerr := p.opts.Addresses.Of(n); aerr != nil {
				err = aerr
			} else {
				err = p.peers.Post(ctx, addr, api.PathRelease, req, &api.ReleaseAnswer{})
			}
			if err != nil {
				p.opts.Logger.Debug("release votes", "node", n.Name, "holder", from.Name, "error", err)
			}
		}()
	}
	wg.Wait()
}

// forward carries cmd to the coordinator, the node named coord.
func (p *peerCalls) forward(ctx context.Context, nodes []repmgr.Node, coord string, cmd api.Command) api.CommandResult {
	n, ok := repmgr.ByName(nodes, coord)
	if !ok {
		return refused("the coordinator %s is not registered in repmgr.nodes", coord)
	}
	addr, err := p.opts.Addresses.Of(n)
	if err != nil {
		return refused("address of the coordinator %s: %v", coord, err)
	}
	var res api.CommandResult
	if err := p.peers.Post(ctx, addr, api.PathCommand, cmd, &res); err != nil {
		return refused("carry the command to the coordinator %s: %v", coord, err)
	}
	return res
}
