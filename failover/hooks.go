package failover

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Hooks are the operators' commands run on events (hooks.*): after this
// node's role changed (on_role_change), before it promotes (pre_promote,
// which may veto), after a change of primary (on_failover) and after this
// node fenced itself (on_fence). They run from the actor only, on what the
// applied log says and what this node did about it: never on a guess the
// coordinator has not committed. dueHooks, below, is the pure part.

// HookKind names a hook, as its key does.
type HookKind string

const (
	HookRoleChange HookKind = "on_role_change"
	HookPrePromote HookKind = "pre_promote"
	HookFailover   HookKind = "on_failover"
	HookFence      HookKind = "on_fence"
)

// The roles on_role_change reports.
const (
	RolePrimary = "primary" // this node's promotion succeeded, or its database runs as the committed primary
	RoleStandby = "standby" // this former primary rejoined the committed primary
	RoleFenced  = "fenced"  // this node fenced its database
)

// Hook is one run of an operator's hook.
type Hook struct {
	Kind       HookKind
	Role       string // on_role_change's
	Epoch      uint64
	Primary    repmgr.Node // the committed primary of Epoch
	OldPrimary string
	Reason     string // the decision's, or why the node was fenced
}

// Args are the hook's arguments, appended to its command line:
// on_role_change role node epoch; pre_promote node epoch; on_failover
// new_primary old_primary epoch; on_fence node epoch reason.
func (h Hook) Args(self string) []string {
	epoch := strconv.FormatUint(h.Epoch, 10)
	switch h.Kind {
	case HookRoleChange:
		return []string{h.Role, self, epoch}
	case HookPrePromote:
		return []string{self, epoch}
	case HookFailover:
		return []string{h.Primary.Name, h.OldPrimary, epoch}
	case HookFence:
		return []string{self, epoch, h.Reason}
	}
	return nil
}

// Env is the hook's environment, besides pgquorum's own.
func (h Hook) Env(self string) []string {
	env := []string{
		"PGQUORUM_HOOK=" + string(h.Kind),
		"PGQUORUM_NODE=" + self,
		"PGQUORUM_ROLE=" + h.Role,
		fmt.Sprintf("PGQUORUM_EPOCH=%d", h.Epoch),
		"PGQUORUM_NEW_PRIMARY=" + h.Primary.Name,
		fmt.Sprintf("PGQUORUM_NEW_PRIMARY_ID=%d", h.Primary.ID),
		"PGQUORUM_NEW_PRIMARY_CONNINFO=" + h.Primary.Conninfo,
		"PGQUORUM_OLD_PRIMARY=" + h.OldPrimary,
		"PGQUORUM_REASON=" + h.Reason,
	}
	if kv, err := repmgr.ParseConninfo(h.Primary.Conninfo); err == nil && h.Primary.Conninfo != "" {
		env = append(env, "PGQUORUM_NEW_PRIMARY_HOST="+kv["host"], "PGQUORUM_NEW_PRIMARY_PORT="+kv["port"])
	}
	return env
}

// Hooks run the operators' hooks; HookCommands is the real one.
type Hooks interface {
	Has(kind HookKind) bool
	// Run runs h's command until it exits or ctx ends, and returns its
	// output; a non-zero exit is an error.
	Run(ctx context.Context, h Hook) (string, error)
}

// HookCommands are the hooks.* command lines, run with /bin/sh -c, their
// arguments appended as positional parameters.
type HookCommands struct {
	Runner   repmgr.Runner
	Self     string
	Commands map[HookKind]string // "" or missing: none
}

// Has implements Hooks.
func (x HookCommands) Has(kind HookKind) bool { return x.Commands[kind] != "" }

// Run implements Hooks.
func (x HookCommands) Run(ctx context.Context, h Hook) (string, error) {
	return x.Runner.ShellArgs(ctx, x.Commands[h.Kind], h.Args(x.Self), h.Env(x.Self)...)
}

// hookKey is a hook due once per decision (or, for a fence, per epoch).
type hookKey struct {
	epoch uint64
	kind  HookKind
	role  string
}

// dueHooks are the hooks the latest decision asks for on this node, that
// have not run for it: on_role_change primary once this node's promotion
// for it succeeded (or its database runs as the decision's promoted
// primary: an adopted one, or after a restart of pgquorum); standby once
// this former primary's rejoin succeeded; on_failover, on every node,
// once the new primary's promotion is committed. Like the actions, only
// while this node hears a coordinator: a node catching up on an old log
// runs nothing for a stale decision.
func dueHooks(o Options, f actorFacts, st Replicated, attempts map[actKey]*attempt, ran map[hookKey]bool) []Hook {
	d, ok := st.Latest()
	if !ok || !f.Ready {
		return nil
	}
	succeeded := func(kind api.ActionKind) bool { a := attempts[actKey{d.Epoch, kind}]; return a != nil && a.ok }
	base := Hook{Epoch: d.Epoch, Primary: repmgr.Node{ID: d.PrimaryID, Name: d.Primary}, OldPrimary: d.OldPrimary, Reason: d.Reason}
	var due []Hook
	add := func(kind HookKind, role string) {
		if !ran[hookKey{d.Epoch, kind, role}] {
			h := base
			h.Kind, h.Role = kind, role
			due = append(due, h)
		}
	}
	runsAsPrimary := f.dbUp() && !f.Facts.InRecovery
	switch {
	case d.Primary == o.Self && (succeeded(api.ActionPromote) || (d.PromotedAt != nil && runsAsPrimary)):
		add(HookRoleChange, RolePrimary)
	case d.Primary != o.Self && succeeded(api.ActionRejoin):
		add(HookRoleChange, RoleStandby)
	}
	if d.OldPrimary != "" && d.OldPrimary != d.Primary && d.PromotedAt != nil {
		add(HookFailover, "")
	}
	return due
}

// hookRunner runs hooks within hooks.timeout and logs them: pre_promote
// in the actor's promotion, the others in a goroutine of their own, in
// order, so that a slow hook never holds up a failover.
type hookRunner struct {
	opts     Options
	queue    chan Hook
	failures atomic.Int64
}

func newHookRunner(opts Options) *hookRunner {
	return &hookRunner{opts: opts, queue: make(chan Hook, 64)}
}

// has tells whether kind is configured (never, on a nil runner).
func (r *hookRunner) has(kind HookKind) bool {
	return r != nil && r.opts.Hooks != nil && r.opts.Hooks.Has(kind)
}

// add queues hooks to run, those configured; it never blocks.
func (r *hookRunner) add(hooks ...Hook) {
	for _, h := range hooks {
		if !r.has(h.Kind) {
			continue
		}
		select {
		case r.queue <- h:
		default:
			r.failures.Add(1)
			r.opts.Logger.Error("hook dropped: too many queued", "hook", h.Kind, "epoch", h.Epoch, "failures", r.failures.Load())
		}
	}
}

func (r *hookRunner) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case h := <-r.queue:
			_ = r.run(ctx, h)
		}
	}
}

// run runs h within hooks.timeout, and logs it with its output.
func (r *hookRunner) run(ctx context.Context, h Hook) error {
	ctx, cancel := context.WithTimeoutCause(ctx, r.opts.HookTimeout,
		fmt.Errorf("hooks.timeout (%s) exceeded", r.opts.HookTimeout))
	defer cancel()
	start := r.opts.Now()
	out, err := r.opts.Hooks.Run(ctx, h)
	args := []any{"hook", h.Kind, "args", h.Args(r.opts.Self), "epoch", h.Epoch,
		"duration", r.opts.Now().Sub(start).Round(time.Millisecond), "output", out}
	if err != nil {
		r.failures.Add(1)
		r.opts.Logger.Error("hook failed", append(args, "error", err, "failures", r.failures.Load())...)
		return err
	}
	r.opts.Logger.Info("hook ran", args...)
	return nil
}

// prePromote runs hooks.pre_promote before this node promotes for d: an
// error (a non-zero exit, a timeout) vetoes the promotion.
func (r *hookRunner) prePromote(ctx context.Context, d api.Decision, primary repmgr.Node) error {
	if !r.has(HookPrePromote) {
		return nil
	}
	h := Hook{Kind: HookPrePromote, Epoch: d.Epoch, Primary: primary, OldPrimary: d.OldPrimary, Reason: d.Reason}
	if err := r.run(ctx, h); err != nil {
		return fmt.Errorf("hooks.pre_promote vetoed the promotion: %w", err)
	}
	return nil
}
