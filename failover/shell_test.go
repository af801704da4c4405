package failover

import (
	"bytes"
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// The shells, driven through New's wiring with fakes of Local, Actions
// and Reporters, a fixed clock and a drain that is over at once.

// shellOpts are the options of the shells' tests, as node self.
func shellOpts(self string) Options {
	return Options{Self: self, Mode: api.ModePgquorum, Grace: time.Second, Cooldown: 10 * time.Second, CommandTimeout: 5 * time.Second,
		RefreshInterval: 250 * time.Millisecond, PeerTimeout: time.Second, Fence: api.FenceStop, Addresses: consensus.Addresses{Port: 5998},
		Now: func() time.Time { return t0 },
		After: func(time.Duration) <-chan time.Time {
			ch := make(chan time.Time, 1)
			ch <- t0
			return ch
		}}
}

// newShells wires a Controller over fakes, with the committed state st
// restored into its FSM; its actor hears from a coordinator.
func newShells(t *testing.T, opts Options, local *fakeLocal, actions *fakeActions, peers *fakeReporters, st Replicated) *Controller {
	t.Helper()
	c := New(opts, local, actions, peers)
	if err := c.fsm.Restore(io.NopCloser(bytes.NewReader(mustJSON(snapshotOf(st))))); err != nil {
		t.Fatal(err)
	}
	c.act.ready = func() bool { return true }
	return c
}

// commitDirectly applies e to c's FSM as the next log entry, as if the
// coordinator had committed it.
func commitDirectly(t *testing.T, c *Controller, e Entry) {
	t.Helper()
	e.Version = EntryVersion
	if err := apply(c.fsm, 1000, e.Encode()); err != nil {
		t.Fatal(err)
	}
}

// localAs is the local node's facts: a standby streaming from upstream
// ("" for none), or a primary when upstream is "-".
func localAs(upstream string) *fakeLocal {
	l := &fakeLocal{nodes: []repmgr.Node{actP, actS2, actS3}, verdict: api.StateStandby}
	l.facts.Facts = repmgr.Facts{InRecovery: upstream != "-", Nodes: l.nodes}
	switch upstream {
	case "-":
		l.verdict = api.StatePrimary
	case "":
	default:
		l.facts.Facts.WAL.SenderHost, l.facts.Facts.WAL.SenderPort = upstream, 5432
	}
	return l
}

func TestActorStep(t *testing.T) {
	waitCancelled := func(ctx context.Context, what string) error { <-ctx.Done(); return context.Cause(ctx) }
	tests := []struct {
		name    string
		opts    func(*Options)
		self    string
		state   Replicated
		local   *fakeLocal
		actions *fakeActions
		run     func(c *Controller) func(ctx context.Context, what string) error
		steps   int // 1 when 0
		// demotedFor is the switchover (ID+1) the actor stopped for before.
		demotedFor uint64
		calls      []string
		progress   api.Progress // the record for its epoch
		stepDown   []string
	}{
		{name: "the chosen node promotes",
			self: "s2", state: chose(actS2, false), local: localAs(""), actions: &fakeActions{},
			calls: []string{"promote 2"}, progress: api.Progress{Epoch: 2, Kind: api.ActionPromote, Done: true}},
		{name: "a promotion that failed is reported failed, and not tried again",
			self: "s2", state: chose(actS2, false), local: localAs(""), steps: 2,
			actions: &fakeActions{run: func(context.Context, string) error { return errors.New("exit status 1") }},
			calls:   []string{"promote 2"}, progress: api.Progress{Epoch: 2, Kind: api.ActionPromote, Failed: true, Error: "exit status 1"}},
		{name: "a promotion that does not end within the command timeout is cancelled and reported failed",
			opts: func(o *Options) { o.CommandTimeout = time.Millisecond },
			self: "s2", state: chose(actS2, false), local: localAs(""), actions: &fakeActions{run: waitCancelled},
			calls: []string{"promote 2"}, progress: api.Progress{Epoch: 2, Kind: api.ActionPromote, Failed: true, Error: "failover.command_timeout (1ms) exceeded"}},
		{name: "a promotion superseded by a newer decision is cancelled and reported failed",
			self: "s2", state: chose(actS2, false), local: localAs(""), actions: &fakeActions{},
			run: func(c *Controller) func(ctx context.Context, what string) error {
				return func(ctx context.Context, what string) error {
					commitDirectly(t, c, decisionEntry(api.Decision{Epoch: 3, Primary: "s3", PrimaryID: 3, OldPrimary: "s2", At: t0}))
					return waitCancelled(ctx, what)
				}
			},
			calls: []string{"promote 2"}, progress: api.Progress{Epoch: 2, Kind: api.ActionPromote, Failed: true, Error: "the decision of epoch 2 was superseded by epoch 3"}},
		{name: "a standby of the old primary re-points to the promoted one and follows it",
			self: "s3", state: chose(actS2, false), local: localAs("p"), actions: &fakeActions{inRecovery: map[string]bool{"s2": false}},
			calls: []string{"probe s2", "repoint s2", "follow s2"}, progress: api.Progress{Epoch: 2, Kind: api.ActionFollow, Done: true}},
		{name: "the old primary of a switchover checkpoints, steps down, stops, and reports its shutdown checkpoint",
			self: "p", state: switchingState(api.PhaseDemoting), local: localAs("-"),
			actions:  &fakeActions{running: true, control: repmgr.Control{State: repmgr.StateShutDown, Checkpoint: 1000}},
			calls:    []string{"checkpoint", "stop", "control file"},
			progress: api.Progress{Epoch: 1, Kind: api.ActionDemote, Done: true, LSN: 1000}, stepDown: []string{"switchover to s2"}},
		{name: "an old primary that cannot stop reports its demotion failed",
			self: "p", state: switchingState(api.PhaseDemoting), local: localAs("-"),
			actions: &fakeActions{running: true, run: func(_ context.Context, what string) error {
				if what == "stop" {
					return errors.New("pg_ctl: server does not shut down")
				}
				return nil
			}},
			calls:    []string{"checkpoint", "stop"},
			progress: api.Progress{Epoch: 1, Kind: api.ActionDemote, Failed: true, Error: "pg_ctl: server does not shut down"}, stepDown: []string{"switchover to s2"}},
		{name: "an aborted switchover starts the stopped old primary again and ends its step-down",
			self: "p", state: switchingState(api.PhaseAborted),
			local: func() *fakeLocal {
				l := localAs("-")
				l.facts.ProbeErr = errors.New("connection refused")
				l.stepping = "switchover to s2"
				return l
			}(),
			actions: &fakeActions{}, demotedFor: 2, calls: []string{"start"}, progress: api.Progress{Epoch: 1, Kind: api.ActionRestart, Done: true},
			stepDown: []string{""}},
		{name: "once its successor runs as primary, the stopped old primary of a switchover rejoins it",
			self: "p", state: switchingState(api.PhasePromoting), demotedFor: 2,
			local:   func() *fakeLocal { l := localAs("-"); l.facts.ProbeErr = errors.New("connection refused"); return l }(),
			actions: &fakeActions{inRecovery: map[string]bool{"s2": false}, control: repmgr.Control{State: repmgr.StateShutDown}},
			calls:   []string{"control file", "probe s2", "rejoin s2"}, progress: api.Progress{Epoch: 2, Kind: api.ActionRejoin, Done: true}},
		{name: "a stopped former primary rejoins the promoted primary with auto_rejoin, once",
			opts: func(o *Options) { o.AutoRejoin = true }, self: "p", state: chose(actS2, true), steps: 2,
			local:   func() *fakeLocal { l := localAs("-"); l.facts.ProbeErr = errors.New("connection refused"); return l }(),
			actions: &fakeActions{inRecovery: map[string]bool{"s2": false}, control: repmgr.Control{State: repmgr.StateInProduction}},
			calls:   []string{"control file", "probe s2", "rejoin s2"}, progress: api.Progress{Epoch: 2, Kind: api.ActionRejoin, Done: true}},
		{name: "a primary while the committed primary runs is fenced, once",
			self: "p", state: chose(actS2, true), local: localAs("-"), steps: 2,
			actions:  &fakeActions{inRecovery: map[string]bool{"s2": false}},
			calls:    []string{"probe s2", "stop", "probe s2"},
			progress: api.Progress{Epoch: 2, Kind: api.ActionFence, Done: true},
			stepDown: []string{"fenced: rule 1: runs as primary, but s2 is the committed primary of epoch 2, and runs as one"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := shellOpts(tt.self)
			if tt.opts != nil {
				tt.opts(&opts)
			}
			c := newShells(t, opts, tt.local, tt.actions, &fakeReporters{}, tt.state)
			if tt.run != nil {
				tt.actions.run = tt.run(c)
			}
			c.act.setDemoted(tt.demotedFor)
			for range max(tt.steps, 1) {
				c.act.step(context.Background())
			}
			if got := tt.actions.called(); !reflect.DeepEqual(got, tt.calls) {
				t.Errorf("calls %q, want %q", got, tt.calls)
			}
			p := c.rep.board.progressOf(tt.progress.Epoch)
			if p == nil {
				t.Fatalf("no progress recorded for epoch %d", tt.progress.Epoch)
			}
			wantErr := tt.progress.Error
			got, want := *p, tt.progress
			got.Error, want.Error = "", ""
			if got != want || !strings.Contains(p.Error, wantErr) || (wantErr == "") != (p.Error == "") {
				t.Errorf("progress %+v, want %+v", *p, tt.progress)
			}
			if tt.stepDown != nil && !reflect.DeepEqual(tt.local.steps, tt.stepDown) {
				t.Errorf("step-downs %q, want %q", tt.local.steps, tt.stepDown)
			}
		})
	}
}

// TestFencerRecordsTheFence: the fence goes to the fence log, which records
// it through the coordinator (here: none is known, so it waits).
func TestFencerRecordsTheFence(t *testing.T) {
	c := newShells(t, shellOpts("p"), localAs("-"), &fakeActions{inRecovery: map[string]bool{"s2": false}}, &fakeReporters{}, chose(actS2, true))
	c.act.step(context.Background())
	select {
	case f := <-c.fences.fences:
		if f.Node != "p" || !f.At.Equal(t0) || !strings.Contains(f.Reason, "s2 is the committed primary") {
			t.Errorf("fence %+v", f)
		}
		if left := c.fences.record(context.Background(), []api.Fence{f}); len(left) != 1 {
			t.Errorf("with no coordinator, %d fences left to record, want 1", len(left))
		}
	default:
		t.Fatal("no fence sent to the fence log")
	}
	if s := c.Status(context.Background()); s.State != api.FailoverFenced {
		t.Errorf("state %s, want %s", s.State, api.FailoverFenced)
	}
}

// TestCoordinatorGather: a primary whose pgquorum falls silent is probed
// directly by every node in the same round; an answer from another node
// than the one asked counts as none.
func TestCoordinatorGather(t *testing.T) {
	peers := &fakeReporters{reports: map[string]*api.Report{
		"s2:5998": standby(electS2, 1, 10),
		"s3:5998": edited(standby(electS3, 1, 10), func(r *api.Report) { r.Node = "impostor" }),
	}}
	c := newShells(t, shellOpts("s2"), localAs("p"), &fakeActions{inRecovery: map[string]bool{}}, peers, promotedState())
	c.local.(*fakeLocal).nodes = []repmgr.Node{actP, actS2, actS3}
	f := c.coord.gather(context.Background(), promotedState())
	if f.Reports["p"] != nil || f.Reports["s3"] != nil || f.Reports["s2"] == nil {
		t.Errorf("reports from %v, want s2's only", keys(f.Reports))
	}
	if p := f.Reports["s2"].Probe; p == nil || p.Node != "p" || p.OK {
		t.Errorf("s2's own probe of p: %+v, want a failed one", p)
	}
	var probes int
	for _, req := range peers.asked {
		if req.Coordinator != "s2" {
			t.Errorf("asked with coordinator %q", req.Coordinator)
		}
		if req.ProbeNode == "p" {
			probes++
		}
	}
	if len(peers.asked) != 4 || probes != 2 {
		t.Errorf("%d requests, %d asking to probe p; want 4 and 2 (a second gather in the same round)", len(peers.asked), probes)
	}
	if c.coord.probe != "p" {
		t.Error("the primary's silence is not remembered for the next round")
	}
}

// TestCoordinatorGatherProbesAPrimaryReportingItsDatabaseDown: a primary
// whose pgquorum reports its database down is probed directly by every node
// in the same round, and in the next rounds while it stays down; once it
// reports its database up, no more probes are asked.
func TestCoordinatorGatherProbesAPrimaryReportingItsDatabaseDown(t *testing.T) {
	peers := &fakeReporters{reports: map[string]*api.Report{
		"p:5998":  down("p", time.Second),
		"s3:5998": standby(electS3, 1, 10),
	}}
	c := newShells(t, shellOpts("s2"), localAs("p"), &fakeActions{inRecovery: map[string]bool{}}, peers, promotedState())
	c.local.(*fakeLocal).nodes = []repmgr.Node{actP, actS2, actS3}
	asked := func() (n, probes int) {
		peers.mu.Lock()
		defer peers.mu.Unlock()
		for _, req := range peers.asked {
			if req.ProbeNode == "p" {
				probes++
			}
		}
		n = len(peers.asked)
		peers.asked = nil
		return n, probes
	}
	f := c.coord.gather(context.Background(), promotedState())
	if p := f.Reports["s2"].Probe; p == nil || p.Node != "p" {
		t.Errorf("s2's own probe of p: %+v, want one", p)
	}
	if n, probes := asked(); n != 4 || probes != 2 {
		t.Errorf("first round: %d requests, %d asking to probe p; want 4 and 2 (a second gather in the same round)", n, probes)
	}
	c.coord.gather(context.Background(), promotedState())
	if n, probes := asked(); n != 2 || probes != 2 {
		t.Errorf("second round: %d requests, %d asking to probe p; want 2 and 2 (one gather, probing)", n, probes)
	}
	peers.mu.Lock()
	peers.reports["p:5998"] = up("p", api.StatePrimary)
	peers.mu.Unlock()
	c.coord.gather(context.Background(), promotedState())
	c.coord.gather(context.Background(), promotedState())
	if n, probes := asked(); n != 4 || probes != 2 || c.coord.probe != "" {
		t.Errorf("back up: %d requests, %d asking to probe p, probe %q; want 4, 2 (the round that saw it back) and none", n, probes, c.coord.probe)
	}
}

// TestReportProbeBudget: a direct probe, a new connection and a query, has
// database.timeout to answer, not a share of the peer timeout: on a busy
// machine a live database takes longer than half the fast profile's 200 ms
// peer timeout, and was reported lost.
func TestReportProbeBudget(t *testing.T) {
	opts := shellOpts("s2")
	opts.PeerTimeout, opts.DBTimeout = 200*time.Millisecond, 400*time.Millisecond
	actions := &fakeActions{inRecovery: map[string]bool{"p": false}, probeTakes: 150 * time.Millisecond}
	c := newShells(t, opts, localAs("p"), actions, &fakeReporters{}, promotedState())
	rep := c.Report(context.Background(), api.ReportRequest{Protocol: api.ReportProtocol, Coordinator: "s3", ProbeNode: "p"})
	if p := rep.Probe; p == nil || !p.OK {
		t.Errorf("a probe answering in 150 ms: %+v, want it answered", p)
	}
	actions.probeTakes = 500 * time.Millisecond
	rep = c.Report(context.Background(), api.ReportRequest{Protocol: api.ReportProtocol, Coordinator: "s3", ProbeNode: "p"})
	if p := rep.Probe; p == nil || p.OK {
		t.Errorf("a probe answering in 500 ms: %+v, want it failed at database.timeout", p)
	}
}

func keys(m map[string]*api.Report) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestCoordinatorCarry: a commit that fails (here: this node does not lead
// the Raft group) turns into the phase the intent names, notes first, and
// the detector keeps its evidence.
func TestCoordinatorCarry(t *testing.T) {
	c := newShells(t, shellOpts("s3"), localAs("p"), &fakeActions{}, &fakeReporters{}, promotedState())
	c.coord.rounds.det.since = t0
	in := roundIntent{Notes: []commitIntent{promotedNote(api.Decision{Epoch: 1}, t0)},
		Commit: &commitIntent{Entry: decisionEntry(api.Decision{Epoch: 2, Primary: "s3"}), While: api.FailoverElecting, WhileReason: "chose s3",
			FailPhase: api.FailoverElecting, FailReason: "committing s3: ", Reset: true}}
	phase, reason := c.coord.carry(context.Background(), in, roundFacts{})
	if phase != api.FailoverElecting || reason != "committing s3: "+ErrNotLeader.Error() {
		t.Errorf("phase %s %q", phase, reason)
	}
	if c.coord.rounds.det.since.IsZero() {
		t.Error("the detector was reset though nothing was committed")
	}
	if p := c.rep.board.view().phase; p.state != api.FailoverElecting || p.reason != "chose s3" {
		t.Errorf("shown while committing: %+v", p)
	}
	abortIn := roundIntent{Commit: abort(api.Switchover{ID: 1, From: "p", To: "s2"}, "x", t0)}
	if phase, reason := c.coord.carry(context.Background(), abortIn, roundFacts{}); phase != "" || reason != "" {
		t.Errorf("a failed abort shows %s %q, want nothing", phase, reason)
	}
}

// TestControllerCommitted: the committed primary is read for the voter only
// once something is committed and the node hears from a coordinator.
func TestControllerCommitted(t *testing.T) {
	c := newShells(t, shellOpts("s2"), localAs("p"), &fakeActions{}, &fakeReporters{}, promotedState())
	if p, id, epoch, ok := c.Committed(); p != "p" || id != 1 || epoch != 1 || !ok {
		t.Errorf("Committed = %s %d %d %v, want p 1 1 true", p, id, epoch, ok)
	}
	commitDirectly(t, c, decisionEntry(api.Decision{Epoch: 2, Primary: "s3", PrimaryID: 3, OldPrimary: "p", At: t0}))
	if p, id, epoch, ok := c.Committed(); p != "s3" || id != 3 || epoch != 2 || !ok {
		t.Errorf("after epoch 2: Committed = %s %d %d %v, want s3 3 2 true", p, id, epoch, ok)
	}
	c.act.ready = func() bool { return false }
	if p, _, epoch, ok := c.Committed(); ok || p != "s3" || epoch != 2 {
		t.Errorf("hearing from no coordinator: Committed = %s %d %v, want s3 2 and not ok", p, epoch, ok)
	}
	empty := newShells(t, shellOpts("s2"), localAs("p"), &fakeActions{}, &fakeReporters{}, Replicated{})
	if _, _, _, ok := empty.Committed(); ok {
		t.Error("nothing committed, yet ok")
	}
}

// TestControllerCommittedConcurrently: the voter reads the committed
// primary while entries are applied (run with -race).
func TestControllerCommittedConcurrently(t *testing.T) {
	c := newShells(t, shellOpts("s2"), localAs("p"), &fakeActions{}, &fakeReporters{}, promotedState())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			if p, _, epoch, _ := c.Committed(); (epoch == 1) != (p == "p") {
				t.Errorf("torn read: %s at epoch %d", p, epoch)
				return
			}
		}
	}()
	for e := uint64(2); e < 50; e++ {
		commitDirectly(t, c, decisionEntry(api.Decision{Epoch: e, Primary: "s3", PrimaryID: 3, OldPrimary: "p", At: t0}))
	}
	<-done
}
