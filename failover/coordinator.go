package failover

import (
	"context"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/api"
)

// coordinator is the shell around rounds: on the node that leads the Raft
// group, it gathers every node's report every refresh interval, keeps the
// membership in step with repmgr.nodes, has rounds decide, and carries the
// intent out. Its state is its goroutine's own.
type coordinator struct {
	opts   Options
	local  Local
	fsm    *FSM
	m      *member
	board  *statusBoard
	calls  *peerCalls
	note   func(context.Context) // logs a change of this node's state
	rounds *rounds

	probe        string    // the node whose database the last round needed probed (watched)
	lastHandOver time.Time // when leadership was last passed on
	own          phaseSeen // this node's own phase as coordinator, from its previous round
}

// suspectInterval is how often the coordinator runs a round while it
// suspects the primary.
const suspectInterval = 100 * time.Millisecond

func (c *coordinator) run(ctx context.Context) {
	t := time.NewTimer(c.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := c.opts.RefreshInterval
		if r := c.m.raft(); r == nil || r.State() != raft.Leader {
			c.rounds.forget()
			c.own = phaseSeen{} // a new coordinator starts from its own rounds, not from what it heard
		} else if !c.handOver(r) {
			phase, reason := c.round(ctx)
			c.show(phaseSeen{state: phase, reason: reason, at: c.opts.Now()})
			c.note(ctx)
			if phase == api.FailoverSuspect || phase == api.FailoverSwitchover || phase == api.FailoverElecting {
				// Decide as soon as the grace is over, the old
				// primary has stopped, or its voters released it,
				// not at the next refresh.
				next = min(next, suspectInterval)
			}
		}
		t.Reset(next)
	}
}

func (c *coordinator) show(p phaseSeen) {
	c.own = p
	c.board.setPhase(p)
}

// handOver passes Raft leadership on when this node is the committed
// primary: losing the whole primary node must not also cost the election
// of a new coordinator before detection can start. It says whether it did.
func (c *coordinator) handOver(r *raft.Raft) bool {
	if c.fsm.State().Primary != c.opts.Self || c.opts.Now().Sub(c.lastHandOver) < 10*c.opts.RefreshInterval {
		return false
	}
	c.lastHandOver = c.opts.Now()
	if err := r.LeadershipTransfer().Error(); err != nil {
		c.opts.Logger.Debug("hand raft leadership over", "error", err)
		return false
	}
	c.opts.Logger.Info("handed raft leadership over: the coordinator should not be the primary it watches")
	return true
}

// round gathers the facts of one round, has rounds decide, and carries the
// intent out; it returns the cluster's phase.
func (c *coordinator) round(ctx context.Context) (api.FailoverState, string) {
	st := c.fsm.State()
	f := c.gather(ctx, st)
	if node := c.m.node.Load(); node != nil {
		if what, err := node.reconcile(c.opts.Raft, f.Nodes, c.opts.CommandTimeout); err != nil {
			c.opts.Logger.Warn("raft membership", "error", err)
		} else if what != "" {
			c.opts.Logger.Info("raft membership", "change", what)
		}
	}
	return c.carry(ctx, c.rounds.decide(f, st, c.opts.Now()), f)
}

// gather asks every node for its report. When the primary's pgquorum falls
// silent, or reports its database down, every node is asked to probe its
// database, in the same round.
func (c *coordinator) gather(ctx context.Context, st Replicated) roundFacts {
	nodes := c.local.KnownNodes()
	req := api.ReportRequest{Protocol: api.ReportProtocol, Coordinator: c.opts.Self,
		Phase: c.own.state, PhaseReason: c.own.reason, ProbeNode: c.probe,
		PrimarySync: c.board.primarySync(c.opts.Now(), 3*c.opts.RefreshInterval+c.opts.PeerTimeout)}
	f := roundFacts{Nodes: nodes, Reports: c.calls.gather(ctx, nodes, req)}
	c.board.setPrimarySync(primarySync(st, f.Reports), c.opts.Now())
	c.probe = watched(f, st)
	if c.probe != "" && c.probe != req.ProbeNode {
		// Fell silent, or down, this round: ask every node to probe its
		// database now rather than a round later.
		req.ProbeNode = c.probe
		f.Reports = c.calls.gather(ctx, nodes, req)
	}
	if dep, ok := pendingDeposition(st); ok {
		f.Released = c.calls.depositions(ctx, nodes, api.DepositionRequest{Protocol: api.DepositionProtocol, Coordinator: c.opts.Self,
			Epoch: dep.Epoch, Node: dep.Node, NodeID: dep.NodeID})
	}
	return f
}

// carry does what a round decided, in order: notes, release, commit.
func (c *coordinator) carry(ctx context.Context, in roundIntent, f roundFacts) (api.FailoverState, string) {
	for _, n := range in.Notes {
		_ = c.commit(n) // logged by its Failed line; the next round, on the same state, notes it again
	}
	if in.Commit == nil {
		return in.Phase, in.Reason
	}
	if in.Release != nil {
		c.calls.releaseVotes(ctx, *in.Release, f.Nodes)
	}
	if in.Commit.While != "" {
		c.show(phaseSeen{state: in.Commit.While, reason: in.Commit.WhileReason, at: c.opts.Now()})
	}
	if err := c.commit(*in.Commit); err != nil {
		if in.Commit.FailReason == "" {
			return in.Commit.FailPhase, ""
		}
		return in.Commit.FailPhase, in.Commit.FailReason + err.Error()
	}
	return in.Phase, in.Reason
}

// commit commits one entry of an intent, and logs its outcome.
func (c *coordinator) commit(ci commitIntent) error {
	if err := c.m.commit(ci.Entry); err != nil {
		ci.Failed.write(c.opts.Logger, "error", err)
		return err
	}
	if ci.Reset {
		c.rounds.det.Reset()
	}
	ci.OK.write(c.opts.Logger)
	return nil
}
