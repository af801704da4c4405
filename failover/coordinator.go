package failover

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// coordinate runs a round every refresh interval while this node leads the
// Raft group: gather every node's report, keep the membership in step with
// repmgr.nodes, detect the loss of the primary and commit its successor.
func (c *Controller) coordinate(ctx context.Context) {
	t := time.NewTimer(c.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := c.opts.RefreshInterval
		if r := c.raft(); r == nil || r.State() != raft.Leader {
			c.det.Reset()
			c.mu.Lock()
			c.coordPhase = phaseSeen{} // a new leader starts from its own rounds, not from what it heard
			c.mu.Unlock()
		} else if c.handOver(r) {
			next = c.opts.RefreshInterval
		} else {
			phase, reason := c.round(ctx)
			c.mu.Lock()
			c.phase = phaseSeen{state: phase, reason: reason, at: c.opts.Now()}
			c.coordPhase = c.phase
			c.mu.Unlock()
			c.noteState(ctx)
			if phase == api.FailoverSuspect || phase == api.FailoverSwitchover {
				// Decide as soon as the grace is over, or the old
				// primary has stopped, not at the next refresh.
				next = min(next, suspectInterval)
			}
		}
		t.Reset(next)
	}
}

// handOver passes Raft leadership on when this node is the committed
// primary: losing the whole primary node must not also cost the election
// of a new coordinator before detection can start. It says whether it did.
func (c *Controller) handOver(r *raft.Raft) bool {
	st := c.fsm.State()
	if st.Primary != c.opts.Self {
		return false
	}
	c.mu.Lock()
	recent := c.opts.Now().Sub(c.lastHandOver) < 10*c.opts.RefreshInterval
	c.mu.Unlock()
	if recent {
		return false
	}
	c.mu.Lock()
	c.lastHandOver = c.opts.Now()
	c.mu.Unlock()
	if err := r.LeadershipTransfer().Error(); err != nil {
		c.opts.Logger.Debug("hand raft leadership over", "error", err)
		return false
	}
	c.opts.Logger.Info("handed raft leadership over: the coordinator should not be the primary it watches")
	return true
}

// suspectInterval is how often the coordinator runs a round while it
// suspects the primary.
const suspectInterval = 100 * time.Millisecond

// round is one round of the coordinator; it returns the cluster's phase.
func (c *Controller) round(ctx context.Context) (api.FailoverState, string) {
	nodes := c.local.KnownNodes()
	st := c.fsm.State()
	c.mu.Lock()
	probe := ""
	if c.silent {
		probe = st.Primary
	}
	prev := c.coordPhase
	c.mu.Unlock()
	req := api.ReportRequest{Protocol: api.ReportProtocol, Coordinator: c.opts.Self,
		Phase: prev.state, PhaseReason: prev.reason, ProbeNode: probe}
	reports := c.gather(ctx, nodes, req)
	silent := st.Primary != "" && reports[st.Primary] == nil
	if silent && probe == "" {
		// The primary's pgquorum fell silent this round: ask every node to
		// probe its database now rather than a round later.
		req.ProbeNode = st.Primary
		reports = c.gather(ctx, nodes, req)
	}
	c.mu.Lock()
	c.silent = silent
	c.mu.Unlock()
	if what, err := c.node.reconcile(c.opts.Raft, nodes, c.opts.CommandTimeout); err != nil {
		c.opts.Logger.Warn("raft membership", "error", err)
	} else if what != "" {
		c.opts.Logger.Info("raft membership", "change", what)
	}
	if sw, ok := st.Switchover(); ok {
		if state, reason, handled := c.driveSwitchover(ctx, st, sw, nodes, reports); handled {
			return state, reason
		}
	}
	if st.Epoch == 0 || adoptable(st, reports) != "" {
		return c.adopt(st, nodes, reports)
	}
	lost, ok := repmgr.ByName(nodes, st.Primary)
	if !ok {
		return api.FailoverBlocked, fmt.Sprintf("the committed primary %s is not registered in repmgr.nodes", st.Primary)
	}
	latest, _ := st.Latest()
	if p := reports[st.Primary]; latest.PromotedAt == nil && p != nil && p.DBUp && !p.InRecovery {
		c.notePromoted(latest)
	}
	if st.Paused() {
		c.det.Reset()
		return api.FailoverPaused, fmt.Sprintf("automatic failover paused on %s at %s: %s", st.Pause.By, st.Pause.At.Format(time.RFC3339), st.Pause.Reason)
	}
	if why := c.promotionFailed(st, reports); why != "" {
		return c.elect(ctx, st, lost, nodes, reports, why)
	}
	if p := reports[st.Primary]; p != nil && p.DBUp && p.InRecovery {
		return "", "" // the committed primary is being promoted
	}
	det := c.det.Observe(Round{Now: c.opts.Now(), Primary: st.Primary, Members: len(nodes), Reports: reports})
	switch {
	case det.Lost:
		return c.elect(ctx, st, lost, nodes, reports, det.Reason)
	case det.Suspect:
		return api.FailoverSuspect, det.Reason
	}
	return "", ""
}

// gather asks every registered node for its report, concurrently, each
// within the peer timeout; this node answers for itself. A node that does
// not answer has no report.
func (c *Controller) gather(ctx context.Context, nodes []repmgr.Node, req api.ReportRequest) map[string]*api.Report {
	type answer struct {
		name string
		rep  *api.Report
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.PeerTimeout)
	defer cancel()
	ch := make(chan answer, len(nodes))
	asked := 0
	for _, n := range nodes {
		if n.Name == c.opts.Self {
			continue
		}
		asked++
		go func() {
			addr, err := c.opts.Addresses.Of(n)
			if err != nil {
				ch <- answer{n.Name, nil}
				return
			}
			rep, err := c.peers.Report(ctx, addr, req)
			if err != nil || rep.Node != n.Name {
				rep = nil // no answer, or not from that node
			}
			ch <- answer{n.Name, rep}
		}()
	}
	reports := map[string]*api.Report{}
	own := c.Report(ctx, req)
	reports[c.opts.Self] = &own
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

// claimants are the nodes answering 200.
func claimants(reports map[string]*api.Report) []string {
	var out []string
	for name, r := range reports {
		if r.State == api.StatePrimary {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// adoptable names the node to adopt as the primary of a new epoch: the one
// node answering 200 while the committed primary does not run as one, or is
// down: someone else (repmgrd, an operator) promoted it. A 200 is a majority
// behind it, so recording it is safe, and it keeps the standbys from being
// pointed back at a dead primary.
func adoptable(st Replicated, reports map[string]*api.Report) string {
	cl := claimants(reports)
	if len(cl) != 1 || cl[0] == st.Primary {
		return ""
	}
	if p := reports[st.Primary]; p != nil && p.DBUp && !p.InRecovery {
		return "" // the committed primary runs: this is for the split-brain watch, not for us
	}
	return cl[0]
}

// adopt commits as the primary of the next epoch the node that answers 200
// now: at the first epoch, before which pgquorum acts on nothing, or after a
// promotion made outside pgquorum. At the first epoch with no node
// answering 200 (pgquorum starting while the primary is down, or in its
// quiet period), it adopts the active primary that the metadata of a
// majority of the registered nodes names, so that a failover is possible.
func (c *Controller) adopt(st Replicated, nodes []repmgr.Node, reports map[string]*api.Report) (api.FailoverState, string) {
	cl := claimants(reports)
	var d api.Decision
	switch {
	case len(cl) == 1:
		p := reports[cl[0]]
		d = api.Decision{Primary: p.Node, PrimaryID: p.NodeID, Reason: "adopted: the primary confirmed by its majority"}
	case len(cl) == 0 && st.Epoch == 0:
		name, who := namedByMajority(nodes, reports)
		n, ok := repmgr.ByName(nodes, name)
		if !ok {
			return api.FailoverJoining, "waiting for a node answering 200, or a majority naming the same primary, to adopt"
		}
		d = api.Decision{Primary: n.Name, PrimaryID: n.ID, Reason: "adopted: the active primary the metadata of " + strings.Join(who, ", ") + " names"}
	default:
		return api.FailoverJoining, fmt.Sprintf("waiting for exactly one node answering 200 to adopt as the primary (now: %v)", cl)
	}
	d.Epoch, d.At, d.OldPrimary = st.Epoch+1, c.opts.Now().UTC(), st.Primary
	if st.Epoch > 0 {
		d.Reason = fmt.Sprintf("adopted: %s answers 200, promoted outside pgquorum in place of %s", d.Primary, st.Primary)
		now := d.At
		d.PromotedAt = &now
	}
	if err := c.commit(Entry{Version: EntryVersion, Type: EntryDecision, Decision: &d}); err != nil {
		return api.FailoverJoining, "adopting " + d.Primary + ": " + err.Error()
	}
	c.det.Reset()
	c.opts.Logger.Info("failover decision committed", "epoch", d.Epoch, "primary", d.Primary, "old_primary", d.OldPrimary, "reason", d.Reason)
	return "", ""
}

// notePromoted records that the committed primary runs as one.
func (c *Controller) notePromoted(d api.Decision) {
	p := Promoted{Epoch: d.Epoch, At: c.opts.Now().UTC()}
	if err := c.commit(Entry{Version: EntryVersion, Type: EntryPromoted, Promoted: &p}); err != nil {
		c.opts.Logger.Warn("record the promotion", "epoch", d.Epoch, "error", err)
		return
	}
	if d.OldPrimary != "" {
		c.opts.Logger.Info("promotion recorded", "epoch", d.Epoch, "primary", d.Primary, "after", p.At.Sub(d.At).Round(time.Millisecond))
	}
}

// promotionFailed says why the committed primary's promotion is given up:
// it reported its promote command failed, or it is still in recovery a
// command timeout plus a grace after the decision.
func (c *Controller) promotionFailed(st Replicated, reports map[string]*api.Report) string {
	d, ok := st.Latest()
	p := reports[st.Primary]
	if !ok || d.PromotedAt != nil || p == nil || !p.DBUp || !p.InRecovery {
		return ""
	}
	if a := p.Action; a != nil && a.Epoch == d.Epoch && a.Kind == api.ActionPromote && a.Failed {
		return fmt.Sprintf("the promotion of %s failed: %s", d.Primary, a.Error)
	}
	if c.opts.Now().Sub(d.At) > c.opts.CommandTimeout+c.opts.Grace {
		return fmt.Sprintf("%s is still in recovery %s after it was chosen", d.Primary, c.opts.Now().Sub(d.At).Round(time.Second))
	}
	return ""
}

// elect chooses and commits the successor of lost, unless something forbids
// acting now: repmgrd, the cooldown, or no candidate.
func (c *Controller) elect(ctx context.Context, st Replicated, lost repmgr.Node, nodes []repmgr.Node, reports map[string]*api.Report, why string) (api.FailoverState, string) {
	if blocked := repmgrdActive(reports); blocked != "" && c.opts.Mode != api.ModeRepmgrd {
		return api.FailoverBlocked, why + "; but " + blocked
	}
	latest, _ := st.Latest()
	if last := st.LastPromotion(); !last.IsZero() && c.opts.Now().Sub(last) < c.opts.Cooldown {
		return api.FailoverBlocked, fmt.Sprintf("%s; but the last promotion was %s ago, within failover.cooldown %s",
			why, c.opts.Now().Sub(last).Round(time.Second), c.opts.Cooldown)
	}
	failedPromotion := latest.PromotedAt == nil && latest.OldPrimary != ""
	now := c.opts.Now()
	c.mu.Lock()
	if failedPromotion {
		c.excluded[st.Primary] = exclusion{why: why, until: now.Add(c.opts.Cooldown)}
	}
	exclude := map[string]string{}
	for k, x := range c.excluded {
		if now.Before(x.until) {
			exclude[k] = x.why
		} else {
			delete(c.excluded, k)
		}
	}
	c.mu.Unlock()
	e, err := Elect(lost, c.opts.Locations, nodes, reports, exclude)
	if err != nil {
		return api.FailoverBlocked, why + "; but " + err.Error()
	}
	d := api.Decision{Epoch: st.Epoch + 1, At: c.opts.Now().UTC(), Primary: e.Winner.Name, PrimaryID: e.Winner.ID,
		OldPrimary: st.Primary, Reason: why + "; chose " + e.Reason}
	c.mu.Lock()
	c.phase = phaseSeen{state: api.FailoverElecting, reason: d.Reason, at: c.opts.Now()}
	c.coordPhase = c.phase
	c.mu.Unlock()
	if err := c.commit(Entry{Version: EntryVersion, Type: EntryDecision, Decision: &d}); err != nil {
		return api.FailoverElecting, "committing " + e.Winner.Name + ": " + err.Error()
	}
	c.det.Reset()
	c.opts.Logger.Warn("failover decision committed", "epoch", d.Epoch, "primary", d.Primary, "old_primary", d.OldPrimary,
		"reason", d.Reason, "ranking", rankingNames(e.Ranking))
	return "", ""
}

// namedByMajority is the active primary that the metadata of a majority of
// the registered nodes names, and who names it.
func namedByMajority(nodes []repmgr.Node, reports map[string]*api.Report) (string, []string) {
	by := map[string][]string{}
	for name, r := range reports {
		if r.Named != "" {
			by[r.Named] = append(by[r.Named], name)
		}
	}
	for primary, who := range by {
		if len(who) >= consensus.Majority(len(nodes)) {
			sort.Strings(who)
			return primary, who
		}
	}
	return "", nil
}

// repmgrdActive names the nodes whose repmgrd runs with failover unpaused:
// two controllers must never race to promote.
func repmgrdActive(reports map[string]*api.Report) string {
	var active []string
	for name, r := range reports {
		if r.RepmgrdRunning && !r.RepmgrdPaused {
			active = append(active, name)
		}
	}
	if len(active) == 0 {
		return ""
	}
	sort.Strings(active)
	return fmt.Sprintf("repmgrd runs with automatic failover unpaused on %s: pause it (repmgr service pause) or stop it, or set failover.mode off",
		strings.Join(active, ", "))
}

func rankingNames(r []Candidate) []string {
	out := make([]string, len(r))
	for i, c := range r {
		out[i] = fmt.Sprintf("%s(lsn %d, prio %d)", c.Name, c.Received, c.Priority)
	}
	return out
}
