package failover

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// A switchover goes through the Raft log in three entries, each applied
// by every node alike:
//
//  1. start (phase demoting): the checks passed. The old primary's actor
//     steps down (503 at once, so HAProxy drains it), checkpoints and stops
//     its database cleanly, and reports the shutdown checkpoint's LSN.
//  2. the decision of the next epoch, naming the target (phase promoting),
//     committed by the coordinator once the target has received that LSN
//     and the votes leased to the stopped primary are released. From
//     there, the target promotes and the others follow as in a failover.
//  3. done, once the old primary has rejoined as a standby of the target
//     (or aborted, before step 2: the old primary starts again as it was).
//
// Any coordinator can drive it from the log and the reports alone, so a
// change of Raft leader in the middle does not lose it.

// switchoverCatchUp bounds how long the target may take to receive the
// old primary's shutdown checkpoint, during which no node takes writes.
func (c *Controller) switchoverCatchUp() time.Duration {
	return max(5*time.Second, 10*c.opts.RefreshInterval)
}

// CheckSwitchover says whether a switchover from the committed primary to
// `to` may start, from the committed state and the reports of this round,
// and how far behind the target is.
func CheckSwitchover(st Replicated, to string, nodes []repmgr.Node, reports map[string]*api.Report, maxLag int64) (int64, error) {
	latest, ok := st.Latest()
	switch {
	case !ok:
		return 0, errors.New("no primary is committed yet")
	case latest.PromotedAt == nil && latest.OldPrimary != "":
		// (An adopted primary needs no promotion: its 200 is checked below.)
		return 0, fmt.Errorf("a failover is in progress: %s, the primary of epoch %d, is not promoted yet", latest.Primary, latest.Epoch)
	}
	if sw, running := st.Switchover(); running {
		return 0, fmt.Errorf("a switchover from %s to %s is in progress", sw.From, sw.To)
	}
	if to == st.Primary {
		return 0, fmt.Errorf("%s is the primary already", to)
	}
	n, ok := repmgr.ByName(nodes, to)
	switch {
	case !ok:
		return 0, fmt.Errorf("%q is not registered in repmgr.nodes", to)
	case n.Type != repmgr.TypeStandby:
		return 0, fmt.Errorf("%s is registered as a %s, not a standby", to, n.Type)
	}
	if blocked := repmgrdActive(reports); blocked != "" {
		return 0, errors.New(blocked)
	}
	p := reports[st.Primary]
	switch {
	case p == nil:
		return 0, fmt.Errorf("the primary %s did not answer", st.Primary)
	case !p.DBUp || p.InRecovery || p.State != api.StatePrimary:
		return 0, fmt.Errorf("the primary %s is not confirmed (its state: %s)", st.Primary, p.State)
	}
	t := reports[to]
	switch {
	case t == nil:
		return 0, fmt.Errorf("%s's pgquorum did not answer", to)
	case !t.DBUp:
		return 0, fmt.Errorf("%s's database is down: %s", to, t.DBError)
	case !t.InRecovery:
		return 0, fmt.Errorf("%s is not in recovery", to)
	case t.Upstream != st.Primary || t.Receiver != "streaming":
		return 0, fmt.Errorf("%s does not stream from %s (upstream %q, receiver %q)", to, st.Primary, t.Upstream, t.Receiver)
	case t.Timeline != p.Timeline:
		return 0, fmt.Errorf("%s is on timeline %d, the primary on %d", to, t.Timeline, p.Timeline)
	}
	lag := max(0, p.ReceivedLSN-t.ReceivedLSN)
	if lag > maxLag {
		return lag, fmt.Errorf("%s is %d bytes behind %s, more than failover.switchover_max_lag (%d)", to, lag, st.Primary, maxLag)
	}
	return lag, nil
}

// startSwitchover checks a switchover on fresh reports and commits its
// start. Only the coordinator runs it.
func (c *Controller) startSwitchover(ctx context.Context, cmd api.Command) api.CommandResult {
	if c.opts.Mode != api.ModePgquorum {
		return refused("a switchover needs failover.mode pgquorum (this cluster runs %s)", c.opts.Mode)
	}
	st := c.fsm.State()
	if st.Paused() {
		return refused("automatic failover is paused: pgquorum resume first")
	}
	nodes := c.local.KnownNodes()
	reports := c.gather(ctx, nodes, api.ReportRequest{Protocol: api.ReportProtocol, Coordinator: c.opts.Self})
	lag, err := CheckSwitchover(st, cmd.To, nodes, reports, c.opts.SwitchoverMaxLag)
	if err != nil {
		return refused("switchover to %s refused: %v", cmd.To, err)
	}
	now := c.opts.Now().UTC()
	sw := api.Switchover{ID: st.Epoch, From: st.Primary, To: cmd.To, Phase: api.PhaseDemoting, Start: now, Steps: []api.Step{{At: now,
		What: fmt.Sprintf("checked (asked on %s): %s streams from %s, %d bytes behind (at most %d)", cmd.Node, cmd.To, st.Primary, lag, c.opts.SwitchoverMaxLag)}}}
	if err := c.commit(Entry{Version: EntryVersion, Type: EntrySwitchover, Switchover: &sw}); err != nil {
		return refused("commit the switchover: %v", err)
	}
	c.opts.Logger.Warn("switchover started", "from", sw.From, "to", sw.To, "lag_bytes", lag, "asked_on", cmd.Node)
	return api.CommandResult{OK: true, Switchover: &sw}
}

// driveSwitchover is the coordinator's part of the switchover in
// progress. While the old primary steps down, it replaces the detection
// of a lost primary (whose database it stops on purpose): handled is true.
func (c *Controller) driveSwitchover(ctx context.Context, st Replicated, sw api.Switchover, nodes []repmgr.Node, reports map[string]*api.Report) (api.FailoverState, string, bool) {
	now := c.opts.Now()
	if sw.Phase == api.PhasePromoting {
		c.finishSwitchover(st, sw, reports)
		return "", "", false
	}
	phase := fmt.Sprintf("switchover from %s to %s", sw.From, sw.To)
	old := reports[sw.From]
	var a *api.Progress
	if old != nil && old.Action != nil && old.Action.Epoch == sw.ID && old.Action.Kind == api.ActionDemote {
		a = old.Action
	}
	switch {
	case a != nil && a.Failed:
		c.abortSwitchover(sw, fmt.Sprintf("%s could not step down: %s", sw.From, a.Error))
		return "", "", true
	case a == nil || !a.Done || a.LSN == 0: // the LSN comes with the report after the stop
		if now.Sub(sw.Start) > c.opts.CommandTimeout+c.opts.Grace {
			c.abortSwitchover(sw, fmt.Sprintf("%s did not report its shutdown within %s", sw.From, c.opts.CommandTimeout+c.opts.Grace))
			return "", "", true
		}
		return api.FailoverSwitchover, phase + ": " + sw.From + " steps down and stops", true
	}
	c.mu.Lock()
	since, ok := c.caughtUpWait[sw.ID]
	if !ok {
		since = now
		c.caughtUpWait[sw.ID] = now
	}
	c.mu.Unlock()
	if !ok {
		c.switchoverStep(sw, fmt.Sprintf("%s stepped down and stopped cleanly: shutdown checkpoint at %s", sw.From, lsnText(a.LSN)))
	}
	t := reports[sw.To]
	if t == nil || !t.DBUp || !t.InRecovery || t.ReceivedLSN <= a.LSN {
		if now.Sub(since) > c.switchoverCatchUp() {
			got := "no report"
			if t != nil {
				got = fmt.Sprintf("received up to %d", t.ReceivedLSN)
			}
			c.abortSwitchover(sw, fmt.Sprintf("%s did not receive %s's shutdown checkpoint (at %s) within %s: %s", sw.To, sw.From, lsnText(a.LSN), c.switchoverCatchUp(), got))
			return "", "", true
		}
		return api.FailoverSwitchover, fmt.Sprintf("%s: waiting for %s to receive the shutdown checkpoint at %s", phase, sw.To, lsnText(a.LSN)), true
	}
	from, _ := repmgr.ByName(nodes, sw.From)
	to, ok := repmgr.ByName(nodes, sw.To)
	if !ok {
		c.abortSwitchover(sw, sw.To+" is no longer registered")
		return "", "", true
	}
	c.releaseVotes(ctx, from, nodes)
	d := api.Decision{Epoch: st.Epoch + 1, At: now.UTC(), Primary: to.Name, PrimaryID: to.ID, OldPrimary: sw.From,
		Reason: fmt.Sprintf("switchover from %s to %s: %s stopped cleanly at %s, %s received up to %s", sw.From, sw.To, sw.From, lsnText(a.LSN), sw.To, lsnText(t.ReceivedLSN))}
	if err := c.commit(Entry{Version: EntryVersion, Type: EntryDecision, Decision: &d}); err != nil {
		return api.FailoverSwitchover, phase + ": committing " + sw.To + ": " + err.Error(), true
	}
	c.det.Reset()
	c.opts.Logger.Warn("failover decision committed", "epoch", d.Epoch, "primary", d.Primary, "old_primary", d.OldPrimary, "reason", d.Reason)
	return "", "", true
}

// finishSwitchover records the switchover done once its target is
// promoted and the old primary streams from it, or once the old primary's
// rejoin failed or never came.
func (c *Controller) finishSwitchover(st Replicated, sw api.Switchover, reports map[string]*api.Report) {
	d, ok := st.Latest()
	if !ok || d.Epoch != sw.ID+1 || d.PromotedAt == nil {
		return
	}
	c.mu.Lock()
	first := !c.promotedSeen[sw.ID]
	c.promotedSeen[sw.ID] = true
	c.mu.Unlock()
	if first {
		c.switchoverStep(sw, fmt.Sprintf("%s runs as primary (epoch %d), %s after the switchover started", sw.To, d.Epoch, d.PromotedAt.Sub(sw.Start).Round(time.Millisecond)))
	}
	old := reports[sw.From]
	var what, failure string
	switch {
	case old != nil && old.DBUp && old.InRecovery && old.Upstream == sw.To:
		what = fmt.Sprintf("%s is a standby of %s", sw.From, sw.To)
	case old != nil && old.Action != nil && old.Action.Epoch == d.Epoch && old.Action.Kind == api.ActionRejoin && old.Action.Failed:
		failure = fmt.Sprintf("%s could not rejoin %s: %s", sw.From, sw.To, old.Action.Error)
	case c.opts.Now().Sub(*d.PromotedAt) > c.opts.CommandTimeout+c.opts.Grace:
		failure = fmt.Sprintf("%s has not rejoined %s within %s", sw.From, sw.To, c.opts.CommandTimeout+c.opts.Grace)
	default:
		return
	}
	if failure != "" {
		what = "done without the old primary: " + failure
	}
	if err := c.commitSwitchover(sw, api.PhaseDone, what, failure); err != nil {
		c.opts.Logger.Warn("record the end of the switchover", "error", err)
		return
	}
	c.opts.Logger.Info("switchover done", "from", sw.From, "to", sw.To, "error", failure)
}

// commitSwitchover records a step of the switchover of sw's ID, moving it
// to phase (with error, when it failed).
func (c *Controller) commitSwitchover(sw api.Switchover, phase api.SwitchoverPhase, what, failure string) error {
	e := api.Switchover{ID: sw.ID, Phase: phase, Error: failure, Steps: []api.Step{{At: c.opts.Now().UTC(), What: what}}}
	return c.commit(Entry{Version: EntryVersion, Type: EntrySwitchover, Switchover: &e})
}

// switchoverStep records a step of a switchover, for "pgquorum
// switchover" to print as it happens.
func (c *Controller) switchoverStep(sw api.Switchover, what string) {
	if err := c.commitSwitchover(sw, sw.Phase, what, ""); err != nil {
		c.opts.Logger.Debug("record a switchover step", "error", err)
	}
}

// lsnText writes a WAL location as PostgreSQL does.
func lsnText(lsn int64) string { return fmt.Sprintf("%X/%X", uint64(lsn)>>32, uint32(lsn)) }

// abortSwitchover gives a switchover up before the promotion: the old
// primary starts again as it was.
func (c *Controller) abortSwitchover(sw api.Switchover, why string) {
	if err := c.commitSwitchover(sw, api.PhaseAborted, "aborted: "+why, why); err != nil {
		c.opts.Logger.Warn("abort the switchover", "error", err)
		return
	}
	c.opts.Logger.Error("switchover aborted", "from", sw.From, "to", sw.To, "reason", why)
}

// releaseVotes has every node release the vote leased to the stopped old
// primary, so that the target is confirmed as soon as it is promoted
// rather than a lease later. Best effort: a vote not released runs out.
func (c *Controller) releaseVotes(ctx context.Context, from repmgr.Node, nodes []repmgr.Node) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.PeerTimeout)
	defer cancel()
	req := api.ReleaseRequest{Holder: from.Name, HolderID: from.ID}
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if n.Name == c.opts.Self {
				err = c.Release(ctx, req)
			} else if addr, aerr := c.opts.Addresses.Of(n); aerr != nil {
				err = aerr
			} else {
				err = c.peers.Post(ctx, addr, api.PathRelease, req, &api.ReleaseAnswer{})
			}
			if err != nil {
				c.opts.Logger.Debug("release votes", "node", n.Name, "holder", from.Name, "error", err)
			}
		}()
	}
	wg.Wait()
}

// Release is a voter's side of releaseVotes. It releases only for the
// old primary of a switchover the Raft log says is stepping down, and
// only when that node's database does not run as primary: no request can
// make a voter drop a lease a running primary may still be using.
func (c *Controller) Release(ctx context.Context, req api.ReleaseRequest) error {
	sw, running := c.fsm.State().Switchover()
	if !running || sw.Phase != api.PhaseDemoting || sw.From != req.Holder {
		return fmt.Errorf("no switchover from %s is stepping down", req.Holder)
	}
	n, ok := repmgr.ByName(c.local.KnownNodes(), req.Holder)
	if !ok || n.ID != req.HolderID {
		return fmt.Errorf("%s (node_id %d) is not registered", req.Holder, req.HolderID)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.PeerTimeout)
	defer cancel()
	if inRecovery, err := c.actions.InRecovery(ctx, n); err == nil && !inRecovery {
		return fmt.Errorf("%s still runs as primary", req.Holder)
	}
	released, err := c.local.Release(req.Holder, req.HolderID)
	if err != nil {
		return err
	}
	if released {
		c.opts.Logger.Info("released the vote leased to a primary stopped for a switchover", "holder", req.Holder)
	}
	return nil
}

// stepSwitchover is an old primary's part of the switchover: step down
// and stop; start again if it is aborted; rejoin its successor once that
// one is promoted. It says whether it handled this step.
func (c *Controller) stepSwitchover(ctx context.Context, st Replicated, f *consensus.Snapshot, attempts map[actKey]*attempt) bool {
	n := len(st.Switchovers)
	if n == 0 || st.Switchovers[n-1].From != c.opts.Self {
		return false
	}
	sw := st.Switchovers[n-1]
	c.mu.Lock()
	mine := c.demotedFor == sw.ID+1
	c.mu.Unlock()
	switch {
	case sw.Phase == api.PhaseDemoting:
		d := api.Decision{Epoch: sw.ID}
		var lsn int64
		err := c.try(ctx, attempts, d, api.ActionDemote, func(ctx context.Context) error {
			var err error
			lsn, err = c.demote(ctx, sw)
			return err
		})
		if err == nil {
			c.mu.Lock()
			c.done[sw.ID].LSN = lsn
			c.mu.Unlock()
		}
		return true
	case sw.Phase == api.PhaseAborted && mine:
		_ = c.try(ctx, attempts, api.Decision{Epoch: sw.ID}, api.ActionRestart, func(ctx context.Context) error {
			if f.ProbeErr != nil {
				out, err := c.actions.Start(ctx)
				c.opts.Logger.Info("start PostgreSQL again: switchover aborted", "output", out, "error", err)
				if err != nil {
					return err
				}
			}
			c.local.StepDown("")
			c.mu.Lock()
			c.demotedFor = 0
			c.mu.Unlock()
			return nil
		})
		return true
	case mine && (sw.Phase == api.PhasePromoting || sw.Phase == api.PhaseDone) && f.ProbeErr != nil:
		// The old primary turns into a standby whatever auto_rejoin says:
		// that is what a switchover is.
		d, ok := st.Latest()
		if !ok || d.Epoch != sw.ID+1 || d.PromotedAt == nil {
			return true // not before its successor runs as primary
		}
		c.rejoin(ctx, d, attempts)
		return true
	}
	return false
}

// demote steps this primary down and stops its database cleanly, and
// returns the location of the shutdown checkpoint its successor must have
// received.
func (c *Controller) demote(ctx context.Context, sw api.Switchover) (int64, error) {
	// Before the outage begins: the shutdown checkpoint then has little
	// to write.
	if err := c.actions.Checkpoint(ctx); err != nil {
		c.opts.Logger.Warn("checkpoint before the switchover", "error", err)
	}
	c.mu.Lock()
	c.demotedFor = sw.ID + 1
	c.mu.Unlock()
	c.local.StepDown("switchover to " + sw.To)
	select {
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	case <-time.After(c.opts.SwitchoverDrain):
	}
	out, err := c.actions.Stop(ctx)
	c.opts.Logger.Info("stop PostgreSQL for the switchover", "to", sw.To, "output", out, "error", err)
	if err != nil {
		return 0, err
	}
	ctl, running, err := c.actions.Stopped(ctx)
	switch {
	case err != nil:
		return 0, err
	case running:
		return 0, errors.New("PostgreSQL still runs after the stop")
	case ctl.State != "shut down":
		return 0, fmt.Errorf("after the stop the control file says %q, not \"shut down\"", ctl.State)
	}
	return ctl.Checkpoint, nil
}
