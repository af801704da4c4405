package failover

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// fakeHooks are hooks that record their runs; fail, when set, is the
// error of a hook of that kind.
type fakeHooks struct {
	mu   sync.Mutex
	ran  []string
	fail map[HookKind]error
}

func (x *fakeHooks) Has(HookKind) bool { return true }

func (x *fakeHooks) Run(ctx context.Context, h Hook) (string, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.ran = append(x.ran, hookText(h))
	return "", x.fail[h.Kind]
}

var _ Hooks = (*fakeHooks)(nil)

// hookText is a hook and its arguments in a line, for the tables.
func hookText(h Hook) string {
	return strings.Join(append([]string{string(h.Kind)}, h.Args("self")...), " ")
}

func TestDueHooks(t *testing.T) {
	all := []repmgr.Node{actP, actS2, actS3}
	primaryFacts := actorFacts{Ready: true, Facts: repmgr.Facts{InRecovery: false, Nodes: all}}
	ok := func(epoch uint64, kind api.ActionKind) map[actKey]*attempt {
		return map[actKey]*attempt{{epoch, kind}: {n: 1, ok: true}}
	}
	failed := func(epoch uint64, kind api.ActionKind) map[actKey]*attempt {
		return map[actKey]*attempt{{epoch, kind}: {n: maxAttempts}}
	}
	tests := []struct {
		name     string
		self     string
		facts    actorFacts
		state    Replicated
		attempts map[actKey]*attempt
		ran      map[hookKey]bool
		want     []string
	}{
		{name: "no decision: none", self: "s2", facts: standbyFacts("p", all...), state: Replicated{}},
		{name: "the chosen node, not promoted yet: none (never on a guess)", self: "s2",
			facts: standbyFacts("", all...), state: chose(actS2, false)},
		{name: "the chosen node whose promotion failed (a veto): none", self: "s2",
			facts: standbyFacts("", all...), state: chose(actS2, false), attempts: failed(2, api.ActionPromote)},
		{name: "the chosen node, once its promotion succeeded: on_role_change primary", self: "s2",
			facts: standbyFacts("", all...), state: chose(actS2, false), attempts: ok(2, api.ActionPromote),
			want: []string{"on_role_change primary self 2"}},
		{name: "the promoted primary, once its promotion is committed: on_role_change primary and on_failover", self: "s2",
			facts: primaryFacts, state: chose(actS2, true), want: []string{"on_role_change primary self 2", "on_failover s2 p 2"}},
		{name: "not twice for one decision", self: "s2", facts: primaryFacts, state: chose(actS2, true),
			ran: map[hookKey]bool{{2, HookRoleChange, RolePrimary}: true, {2, HookFailover, ""}: true}},
		{name: "another standby: on_failover once the promotion is committed", self: "s3",
			facts: standbyFacts("s2", all...), state: chose(actS2, true), want: []string{"on_failover s2 p 2"}},
		{name: "another standby, before the promotion is committed: none", self: "s3",
			facts: standbyFacts("p", all...), state: chose(actS2, false), attempts: ok(2, api.ActionFollow)},
		{name: "the former primary, once its rejoin succeeded: on_role_change standby", self: "p",
			facts: actorFacts{Ready: true, ProbeErr: errors.New("down")}, state: chose(actS2, true), attempts: ok(2, api.ActionRejoin),
			ran: map[hookKey]bool{{2, HookFailover, ""}: true}, want: []string{"on_role_change standby self 2"}},
		{name: "no coordinator heard: none, the log may be stale", self: "s3",
			facts: func() actorFacts { f := standbyFacts("s2", all...); f.Ready = false; return f }(), state: chose(actS2, true)},
		{name: "the first primary, adopted at epoch 1 and recorded running: on_role_change primary, no on_failover", self: "p",
			facts: primaryFacts, state: promotedState(), want: []string{"on_role_change primary self 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Self: tt.self, Mode: api.ModePgquorum}
			var got []string
			for _, h := range dueHooks(o, tt.facts, tt.state, tt.attempts, tt.ran) {
				got = append(got, hookText(h))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("due %q, want %q", got, tt.want)
			}
		})
	}
}

// queued drains c's hook queue.
func queued(c *Controller) []string {
	var out []string
	for {
		select {
		case h := <-c.hooks.queue:
			out = append(out, hookText(h))
		default:
			return out
		}
	}
}

// TestActorHooks: the actor runs pre_promote before the promote command
// and queues the other hooks once per decision, after what they follow
// succeeded.
func TestActorHooks(t *testing.T) {
	veto := fmt.Errorf("exit code 1: %w", repmgr.ErrCommandFailed)
	tests := []struct {
		name     string
		self     string
		state    Replicated
		local    *fakeLocal
		actions  *fakeActions
		fail     map[HookKind]error
		steps    int
		calls    []string
		ran      []string // run at once: pre_promote
		queued   []string
		progress api.Progress
	}{
		{name: "the chosen node runs pre_promote, promotes, then queues on_role_change primary, once",
			self: "s2", state: chose(actS2, false), local: localAs(""), actions: &fakeActions{}, steps: 2,
			calls: []string{"promote 2"}, ran: []string{"pre_promote self 2"}, queued: []string{"on_role_change primary self 2"},
			progress: api.Progress{Epoch: 2, Kind: api.ActionPromote, Done: true}},
		{name: "a pre_promote that fails vetoes the promotion: no promote, reported failed, no on_role_change",
			self: "s2", state: chose(actS2, false), local: localAs(""), actions: &fakeActions{}, steps: 2,
			fail: map[HookKind]error{HookPrePromote: veto}, ran: []string{"pre_promote self 2"},
			progress: api.Progress{Epoch: 2, Kind: api.ActionPromote, Failed: true, Error: "hooks.pre_promote vetoed the promotion: exit code 1"}},
		{name: "a fenced primary queues on_role_change fenced and on_fence, once",
			self: "p", state: chose(actS2, true), local: localAs("-"), steps: 2,
			actions: &fakeActions{inRecovery: map[string]bool{"s2": false}}, calls: []string{"probe s2", "stop", "probe s2"},
			queued: []string{"on_role_change fenced self 2", "on_fence self 2 rule 1: runs as primary, but s2 is the committed primary of epoch 2, and runs as one",
				"on_failover s2 p 2"},
			progress: api.Progress{Epoch: 2, Kind: api.ActionFence, Done: true}},
		{name: "a fence that failed queues no fence hook",
			self: "p", state: chose(actS2, true), local: localAs("-"),
			actions: &fakeActions{inRecovery: map[string]bool{"s2": false}, run: func(context.Context, string) error { return errors.New("pg_ctl failed") }},
			calls:   []string{"probe s2", "stop"}, queued: []string{"on_failover s2 p 2"},
			progress: api.Progress{Epoch: 2, Kind: api.ActionFence, Failed: true, Error: "pg_ctl failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hooks := &fakeHooks{fail: tt.fail}
			opts := shellOpts(tt.self)
			opts.Hooks = hooks
			c := newShells(t, opts, tt.local, tt.actions, &fakeReporters{}, tt.state)
			for range max(tt.steps, 1) {
				c.act.step(context.Background())
			}
			if got := tt.actions.called(); !reflect.DeepEqual(got, tt.calls) {
				t.Errorf("calls %q, want %q", got, tt.calls)
			}
			if !reflect.DeepEqual(hooks.ran, tt.ran) {
				t.Errorf("ran %q, want %q", hooks.ran, tt.ran)
			}
			if got := queued(c); !reflect.DeepEqual(got, tt.queued) {
				t.Errorf("queued %q, want %q", got, tt.queued)
			}
			p := c.rep.board.progressOf(tt.progress.Epoch)
			if p == nil {
				t.Fatalf("no progress recorded for epoch %d", tt.progress.Epoch)
			}
			got, want := *p, tt.progress
			got.Error, want.Error = "", ""
			if got != want || !strings.Contains(p.Error, tt.progress.Error) {
				t.Errorf("progress %+v, want %+v", *p, tt.progress)
			}
		})
	}
}

// TestDecideRoundElectsTheNextCandidateAfterAVeto: a veto is a failed
// promotion with its reason: the next round commits a new epoch with the
// next candidate, and keeps the vetoing node out.
func TestDecideRoundElectsTheNextCandidateAfterAVeto(t *testing.T) {
	r := newRounds(roundOpts())
	f := roundFacts{Nodes: []repmgr.Node{lostP, electS2, electS3}, Reports: reports(
		edited(standby(electS2, 1, 30), func(r *api.Report) {
			r.Action = &api.Progress{Epoch: 2, Kind: api.ActionPromote, Failed: true,
				Error: "hooks.pre_promote vetoed the promotion: exit code 1: replica not ready"}
		}),
		standby(electS3, 1, 20))}
	in := decideThroughDeposition(r, f, failedOver(electS2), t0)
	if got := intentText(in); !matches(got, []string{"commit decision 3 s3"}) {
		t.Fatalf("after s2's veto: %v", got)
	}
	if d := in.Commit.Entry.Decision; !strings.Contains(d.Reason, "vetoed the promotion") || !strings.Contains(d.Reason, "replica not ready") {
		t.Errorf("the decision's reason %q does not give the veto", d.Reason)
	}
}

// TestHookRunner: the runner runs a hook within hooks.timeout and logs its
// output; a failure is logged and counted.
func TestHookRunner(t *testing.T) {
	var logs bytes.Buffer
	opts := shellOpts("s2")
	opts.Now = time.Now
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	opts.HookTimeout = 200 * time.Millisecond
	opts.Hooks = HookCommands{Self: "s2", Runner: repmgr.Runner{Env: []string{"PATH=/usr/bin:/bin"}}, Commands: map[HookKind]string{
		HookRoleChange: `echo "$PGQUORUM_HOOK $PGQUORUM_ROLE $PGQUORUM_NEW_PRIMARY_HOST:$PGQUORUM_NEW_PRIMARY_PORT args"`,
		HookFailover:   "exit 3;",
		HookFence:      "sleep 5;",
	}}
	r := newHookRunner(opts)
	ctx := context.Background()
	h := Hook{Kind: HookRoleChange, Role: RolePrimary, Epoch: 2, Primary: repmgr.Node{ID: 2, Name: "s2", Conninfo: "host=127.0.0.2 port=5433 user=repmgr"}}
	if err := r.run(ctx, h); err != nil {
		t.Fatal(err)
	}
	if want := "output=\"on_role_change primary 127.0.0.2:5433 args primary s2 2\\n\""; !strings.Contains(logs.String(), want) {
		t.Errorf("log %s\nwants %s", logs.String(), want)
	}
	if err := r.run(ctx, Hook{Kind: HookFailover, Epoch: 2}); !errors.Is(err, repmgr.ErrCommandFailed) {
		t.Errorf("exit 3: %v", err)
	}
	start := time.Now()
	if err := r.run(ctx, Hook{Kind: HookFence, Epoch: 2}); err == nil || !strings.Contains(err.Error(), "hooks.timeout (200ms) exceeded") {
		t.Errorf("a hook past hooks.timeout: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a hook past hooks.timeout took %s", d)
	}
	if n := r.failures.Load(); n != 2 {
		t.Errorf("%d failures counted, want 2", n)
	}
	if r.has(HookPrePromote) {
		t.Error("pre_promote is not configured")
	}
	r.add(Hook{Kind: HookPrePromote}) // not configured: not queued
	if len(r.queue) != 0 {
		t.Error("a hook not configured was queued")
	}
}

// TestHookArgsAndEnv: each hook's arguments, and the new primary's host
// and port taken from its conninfo (the port empty when it names none).
func TestHookArgsAndEnv(t *testing.T) {
	h := Hook{Epoch: 7, Role: RolePrimary, Primary: repmgr.Node{ID: 2, Name: "s2", Conninfo: "host=s2.example dbname=repmgr"},
		OldPrimary: "p", Reason: "fenced for a reason"}
	for kind, want := range map[HookKind]string{
		HookRoleChange: "primary me 7", HookPrePromote: "me 7", HookFailover: "s2 p 7", HookFence: "me 7 fenced for a reason",
	} {
		h.Kind = kind
		if got := strings.Join(h.Args("me"), " "); got != want {
			t.Errorf("%s args %q, want %q", kind, got, want)
		}
	}
	h.Kind = HookFence
	env := strings.Join(h.Env("me"), "\n")
	for _, want := range []string{"PGQUORUM_HOOK=on_fence", "PGQUORUM_NODE=me", "PGQUORUM_EPOCH=7", "PGQUORUM_NEW_PRIMARY=s2",
		"PGQUORUM_NEW_PRIMARY_ID=2", "PGQUORUM_NEW_PRIMARY_HOST=s2.example", "PGQUORUM_NEW_PRIMARY_PORT=\n", "PGQUORUM_OLD_PRIMARY=p"} {
		if !strings.Contains(env+"\n", want) {
			t.Errorf("environment lacks %q:\n%s", want, env)
		}
	}
}

// syncRecorder is a SyncSetter that records into the actions' calls, so
// that its order with the promote command shows.
type syncRecorder struct{ x *fakeActions }

func (s syncRecorder) Set(ctx context.Context, value string) (int64, error) {
	return 0, s.x.do(ctx, "synchronous_standby_names "+value)
}

// TestActorStrictSetsThePlaceholderBeforePromoting: in strict mode the
// chosen standby waits for the placeholder before it is promoted, so that
// it never acknowledges a commit alone with the value of its own
// postgresql.auto.conf; in on mode it is promoted as it is; a failure to
// set it fails the promotion attempt.
func TestActorStrictSetsThePlaceholderBeforePromoting(t *testing.T) {
	tests := []struct {
		name  string
		mode  api.SyncMode
		fail  bool
		calls []string
		done  bool
	}{
		{name: "strict", mode: api.SyncStrict, done: true,
			calls: []string{`synchronous_standby_names ANY 1 ("pgquorum: no synchronous standby 1")`, "promote 2"}},
		{name: "on", mode: api.SyncOn, done: true, calls: []string{"promote 2"}},
		{name: "strict, the setting fails", mode: api.SyncStrict, fail: true,
			calls: []string{`synchronous_standby_names ANY 1 ("pgquorum: no synchronous standby 1")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			actions := &fakeActions{}
			if tt.fail {
				actions.run = func(_ context.Context, what string) error {
					if strings.HasPrefix(what, "synchronous_standby_names") {
						return errors.New("connection refused")
					}
					return nil
				}
			}
			opts := shellOpts("s2")
			opts.Sync = SyncPolicy{Mode: tt.mode, Count: 1}
			opts.SyncNames = syncRecorder{actions}
			c := newShells(t, opts, localAs(""), actions, &fakeReporters{}, chose(actS2, false))
			c.act.step(context.Background())
			if got := actions.called(); !reflect.DeepEqual(got, tt.calls) {
				t.Errorf("calls %q, want %q", got, tt.calls)
			}
			p := c.rep.board.progressOf(2)
			if p == nil || p.Done != tt.done || p.Failed == tt.done {
				t.Fatalf("progress %+v, want done %v", p, tt.done)
			}
			if tt.fail && !strings.Contains(p.Error, "before promoting") {
				t.Errorf("error %q does not say what failed", p.Error)
			}
		})
	}
}
