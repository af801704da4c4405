package failover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// actor is the shell around nextAction and fenceStep: on every node, on
// every change of the replicated state and every refresh interval, it
// looks up the facts, has the cores decide, and runs the actions they ask
// for. Its state is its goroutine's own; it shows what it does on the
// status board.
type actor struct {
	opts    Options
	local   Local
	actions Actions
	fsm     *FSM
	ready   func() bool // this node hears from a coordinator
	board   *statusBoard
	run     *actionRunner
	fence   *fencer
	hooks   *hookRunner
	note    func(context.Context) // logs a change of this node's state

	attempts   map[actKey]*attempt
	demotedFor uint64 // ID+1 of the switchover this node stepped down and stopped for; 0: none

	hooksRan map[hookKey]bool // the hooks queued, per decision

	forkLogged string // the fork last logged (forkProbe)
}

// oneShot are the actions tried once per decision: a failure is reported
// and left to the coordinator or the operator, never retried in a loop. A
// rejoin is retried with its own backoff (rejoin_status.go).
func oneShot(kind api.ActionKind) bool {
	return kind == api.ActionPromote || kind == api.ActionDemote || kind == api.ActionFence
}

// maxAttempts bounds how often an action is tried for one decision.
const maxAttempts = 3

type actKey struct {
	epoch uint64
	kind  api.ActionKind
}

type attempt struct {
	n    int
	last time.Time // when the last try began; a rejoin's, when it ended
	ok   bool
	// permanent: the last try failed in a way retrying cannot fix (a
	// rejoin's); the next waits the longest backoff.
	permanent bool
	// why is why a standby is rejoined (action.Why); "" for a former primary.
	why string
}

func (a *actor) loop(ctx context.Context) {
	t := time.NewTicker(a.opts.RefreshInterval)
	defer t.Stop()
	for {
		changed := a.fsm.Changed()
		a.step(ctx)
		a.note(ctx)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-t.C:
		}
	}
}

// step is one step: fencing first, which does not wait for a coordinator
// (a primary cut off from every peer is the one it is for), then what the
// latest decision asks of this node.
func (a *actor) step(ctx context.Context) {
	// Readiness first: the state read after it is at least as new as the
	// log it found applied.
	ready := a.ready()
	st := a.fsm.State()
	snap := a.local.Facts(ctx)
	f := actorFacts{Ready: ready, ProbeErr: snap.ProbeErr, IdentityErr: snap.IdentityErr, Facts: snap.Facts, Known: a.local.KnownNodes()}
	if demotionCancelled(st, f, actorMemory{Attempts: a.attempts, DemotedFor: a.demotedFor}) {
		// The fencer below then ends the step-down, unless a rule fences.
		a.opts.Logger.Warn("the switchover this node stepped down for ended before it stopped its database: the step-down ends with it",
			"switchover", a.demotedFor-1, "stepping_down", a.local.SteppingDown())
		a.setDemoted(0)
	}
	if a.fence.step(ctx, st, snap, ready, a.demotedFor != 0) {
		a.setDemoted(0)
	}
	mem := actorMemory{Attempts: a.attempts, DemotedFor: a.demotedFor}
	in := nextAction(a.opts, f, st, mem)
	// Each of the three facts is looked up once at most: the fourth
	// answer needs none.
	for asked := 0; in.Need != needNothing && asked < 3; asked++ {
		// A lookup of another node's database must not hold the loop for
		// good (a stopped host keeps a connection open): bounded as a
		// command is, generously, since a failed lookup only waits a step;
		// and ended by a newer decision, which the next step acts on: a
		// standby looking at the primary that just died (its fork, while it
		// does not stream) must not hold its own promotion.
		ctx, cancel := context.WithTimeout(ctx, a.opts.CommandTimeout)
		ctx, cancelCause := context.WithCancelCause(ctx)
		stop := a.run.cancelOnNewEpoch(ctx, cancelCause, st.Epoch)
		switch in.Need {
		case needPrimary:
			inRecovery, err := a.actions.InRecovery(ctx, in.Node)
			f.Primary = &primaryProbe{Node: in.Node, InRecovery: inRecovery, Err: err}
		case needStopped:
			ctl, running, err := a.actions.Stopped(ctx)
			f.Stopped = &stoppedInstance{Control: ctl, Running: running, Err: err}
			f.Known = a.local.KnownNodes()
		case needFork:
			f.Fork = a.forkProbe(ctx, in.Node)
		}
		stop()
		cancelCause(nil)
		cancel()
		if a.fsm.State().Epoch != st.Epoch {
			return // the next step, at once (the loop saw the change), acts on the newer decision
		}
		in = nextAction(a.opts, f, st, mem)
	}
	for _, act := range in.Run {
		a.carry(ctx, act, f)
	}
	a.queueHooks(f, st)
}

// forkProbe reads whether this standby forked off primary: the primary's
// timeline history, then where the local WAL ends (after, so that WAL
// received meanwhile counts).
func (a *actor) forkProbe(ctx context.Context, primary repmgr.Node) *forkProbe {
	p := &forkProbe{Node: primary}
	if p.Primary, p.Err = a.actions.Timelines(ctx, primary); p.Err == nil {
		p.Standby, p.Err = a.actions.StandbyEnd(ctx)
	}
	v := classifyFork(*p)
	switch {
	case v.Why == a.forkLogged: // once per fork or failure, not every step
	case v.Forked:
		a.opts.Logger.Warn("this standby cannot follow the committed primary: its history forked off", "primary", primary.Name,
			"fork", v.Why, "auto_rejoin", a.opts.AutoRejoin)
	case p.Err != nil:
		a.opts.Logger.Warn("cannot tell whether this standby forked off the committed primary: it is not rewound",
			"primary", primary.Name, "error", p.Err)
	default:
		return p
	}
	a.forkLogged = v.Why
	return p
}

// queueHooks hands the hooks the latest decision now asks for to the
// hooks' runner, and remembers them: once per decision, while pgquorum
// runs.
func (a *actor) queueHooks(f actorFacts, st Replicated) {
	due := dueHooks(a.opts, f, st, a.attempts, a.hooksRan)
	for i, h := range due {
		for k := range a.hooksRan {
			if k.epoch < h.Epoch {
				delete(a.hooksRan, k) // only the latest decision's are ever due
			}
		}
		a.hooksRan[hookKey{h.Epoch, h.Kind, h.Role}] = true
		if n, ok := repmgr.ByID(a.local.KnownNodes(), h.Primary.ID); ok {
			due[i].Primary = n
		}
	}
	a.hooks.add(due...)
}

func (a *actor) setDemoted(id uint64) {
	a.demotedFor = id
	a.board.setDemoting(id)
}

// carry runs one action through the runner, which tries it unless it
// already succeeded, failed too often, or failed too recently.
func (a *actor) carry(ctx context.Context, act action, f actorFacts) {
	k := actKey{act.Decision.Epoch, act.Kind}
	at := a.attempts[k]
	if at == nil || act.Fresh {
		at = &attempt{}
		a.attempts[k] = at
	}
	if act.Why != "" {
		at.why = act.Why // kept for the attempts that follow, which know it not
	}
	if act.Kind == api.ActionDemote {
		// The shutdown checkpoint's location goes with the report.
		var lsn int64
		_ = a.run.tryWith(ctx, at, act.Decision, act.Kind, func(ctx context.Context) error {
			var err error
			lsn, err = a.demote(ctx, act.Switchover)
			return err
		}, func(p *api.Progress) { p.LSN = lsn })
		return
	}
	if fn := a.command(act, f); fn != nil {
		_ = a.run.try(ctx, at, act.Decision, act.Kind, fn)
	}
}

// command is what running act does.
func (a *actor) command(act action, f actorFacts) func(context.Context) error {
	d, log := act.Decision, a.opts.Logger
	switch act.Kind {
	case api.ActionPromote:
		return func(ctx context.Context) error {
			self, _ := repmgr.ByID(a.local.KnownNodes(), d.PrimaryID)
			if err := a.hooks.prePromote(ctx, d, self); err != nil {
				return err
			}
			if err := a.strictBeforePromote(ctx); err != nil {
				return err
			}
			out, err := a.actions.Promote(ctx, d)
			log.Info("promote command", "epoch", d.Epoch, "output", out, "error", err)
			return err
		}
	case api.ActionRepoint:
		return func(ctx context.Context) error { return a.actions.Repoint(ctx, act.Primary) }
	case api.ActionFollow:
		return func(ctx context.Context) error {
			out, err := a.actions.Follow(ctx, d, act.Primary)
			log.Info("follow command", "epoch", d.Epoch, "primary", d.Primary, "output", out, "error", err)
			return err
		}
	case api.ActionRejoin:
		return func(ctx context.Context) error {
			out, err := a.actions.Rejoin(ctx, d, act.Primary)
			log.Info("rejoin command", "epoch", d.Epoch, "primary", d.Primary, "control_file_state", act.Control, "output", out, "error", err)
			return err
		}
	case api.ActionRestart:
		return func(ctx context.Context) error { return a.restart(ctx, f) }
	}
	return nil
}

// strictBeforePromote, with failover.synchronous strict, sets the standby
// about to be promoted to wait for the placeholder (ALTER SYSTEM works in
// recovery): otherwise the new primary would acknowledge commits on its own
// with the synchronous_standby_names of its postgresql.auto.conf until its
// applier sees it out of recovery. A promotion waits until it is set.
func (a *actor) strictBeforePromote(ctx context.Context) error {
	if a.opts.Sync.Mode != api.SyncStrict || a.opts.SyncNames == nil {
		return nil
	}
	value := (&LogSync{Mode: api.SyncStrict, Count: a.opts.Sync.Count}).StandbyNames()
	if _, err := a.opts.SyncNames.Set(ctx, value); err != nil {
		return fmt.Errorf("failover.synchronous strict: wait for a standby before promoting: %w", err)
	}
	a.opts.Logger.Info("synchronous_standby_names set before promoting (strict)", "synchronous_standby_names", value)
	return nil
}

// restart starts the database again after an aborted switchover, and ends
// the step-down.
func (a *actor) restart(ctx context.Context, f actorFacts) error {
	if f.ProbeErr != nil {
		out, err := a.actions.Start(ctx)
		a.opts.Logger.Info("start PostgreSQL again: switchover aborted", "output", out, "error", err)
		if err != nil {
			return err
		}
	}
	a.local.StepDown("")
	a.setDemoted(0)
	return nil
}

// demote steps this primary down and stops its database cleanly, and
// returns the location of the shutdown checkpoint its successor must have
// received.
func (a *actor) demote(ctx context.Context, sw api.Switchover) (int64, error) {
	// Before the outage begins: the shutdown checkpoint then has little
	// to write.
	if err := a.actions.Checkpoint(ctx); err != nil {
		a.opts.Logger.Warn("checkpoint before the switchover", "error", err)
	}
	a.setDemoted(sw.ID + 1)
	a.local.StepDown("switchover to " + sw.To)
	select {
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	case <-a.opts.After(a.opts.SwitchoverDrain):
	}
	out, err := a.actions.Stop(ctx)
	a.opts.Logger.Info("stop PostgreSQL for the switchover", "to", sw.To, "output", out, "error", err)
	if err != nil {
		return 0, err
	}
	ctl, running, err := a.actions.Stopped(ctx)
	switch {
	case err != nil:
		return 0, err
	case running:
		return 0, errors.New("PostgreSQL still runs after the stop")
	case ctl.State != repmgr.StateShutDown:
		return 0, fmt.Errorf("after the stop the control file says %q, not %q", ctl.State, repmgr.StateShutDown)
	}
	return ctl.Checkpoint, nil
}

// actionRunner runs one action: at most maxAttempts times per decision,
// not again within ten refresh intervals of a failure, within the command
// timeout, cancelled as soon as a newer decision is applied; it shows the
// action and its outcome on the status board.
type actionRunner struct {
	opts  Options
	fsm   *FSM
	board *statusBoard
	note  func(context.Context)
	// conninfo is the registered conninfo of a node_id, for the manual
	// step of a rejoin that cannot succeed; nil or "": unknown.
	conninfo func(id int) string
}

// errNotTried is try's answer when the action was not run this time.
var errNotTried = errors.New("not tried")

func (r *actionRunner) try(ctx context.Context, a *attempt, d api.Decision, kind api.ActionKind, fn func(context.Context) error) error {
	return r.tryWith(ctx, a, d, kind, fn, nil)
}

// tryWith is try, with done completing the progress record of a success.
func (r *actionRunner) tryWith(ctx context.Context, a *attempt, d api.Decision, kind api.ActionKind, fn func(context.Context) error, done func(*api.Progress)) error {
	now := r.opts.Now()
	if !r.due(a, kind, now) {
		return errNotTried
	}
	a.n++
	a.last = now
	if kind == api.ActionRejoin {
		r.rejoinStarted(d, a)
	}
	r.setActing(ctx, kind)
	ctx, cancel := context.WithTimeoutCause(ctx, r.opts.CommandTimeout,
		fmt.Errorf("failover.command_timeout (%s) exceeded", r.opts.CommandTimeout))
	ctx, cancelCause := context.WithCancelCause(ctx)
	stop := r.cancelOnNewEpoch(ctx, cancelCause, d.Epoch)
	err := fn(ctx)
	stop()
	cancelCause(nil)
	cancel()
	r.setActing(ctx, "")
	a.ok = err == nil
	rec := api.Progress{Epoch: d.Epoch, Kind: kind, Done: err == nil, Failed: err != nil && a.n >= maxAttempts}
	if oneShot(kind) && err != nil {
		// The coordinator chooses again (promote), aborts the switchover
		// (demote), or the operator takes over (fence).
		rec.Failed = true
		a.n = maxAttempts
	}
	if kind == api.ActionRejoin {
		rec.Failed = err != nil // this attempt's; the next comes after the backoff
		r.rejoinEnded(d, a, err)
	}
	if err != nil {
		rec.Error = api.ErrorText(err)
		r.opts.Logger.Error("failover action failed", "epoch", d.Epoch, "action", kind, "attempt", a.n, "error", err)
	} else if done != nil {
		done(&rec)
	}
	r.board.setProgress(rec)
	return err
}

func (r *actionRunner) setActing(ctx context.Context, kind api.ActionKind) {
	r.board.setActing(kind)
	r.note(ctx)
}

// cancelOnNewEpoch cancels an action as soon as a decision newer than epoch
// is applied: a promote command must not go on once another node was chosen.
func (r *actionRunner) cancelOnNewEpoch(ctx context.Context, cancel context.CancelCauseFunc, epoch uint64) (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			changed := r.fsm.Changed()
			if now := r.fsm.State().Epoch; now != epoch {
				cancel(fmt.Errorf("the decision of epoch %d was superseded by epoch %d", epoch, now))
				return
			}
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
	}()
	return func() { close(done) }
}
