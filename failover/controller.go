package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// Options configure a Controller.
type Options struct {
	Self            string
	Mode            api.FailoverMode // api.ModePgquorum or api.ModeRepmgrd
	Grace           time.Duration
	Cooldown        time.Duration
	CommandTimeout  time.Duration
	RefreshInterval time.Duration
	PeerTimeout     time.Duration
	Locations       []string
	// SwitchoverMaxLag bounds how far behind a switchover target may be.
	SwitchoverMaxLag int64
	// SwitchoverDrain is how long a primary stepping down answers 503
	// before it stops: HAProxy marks it down meanwhile, and new clients
	// then queue for the new primary rather than meet a refused connection.
	SwitchoverDrain time.Duration
	// Fence is api.FenceOff, api.FenceStop or an operator's command.
	Fence      string
	FenceAfter time.Duration
	AutoRejoin bool
	Raft       RaftOptions
	Addresses  consensus.Addresses // where every node's pgquorum answers HTTP
	Logger     *slog.Logger
	Now        func() time.Time // optional; time.Now
}

// Local is the local node as the verdict sees it; *consensus.Checker is one.
type Local interface {
	Facts(ctx context.Context) *consensus.Snapshot
	Snapshot(ctx context.Context) *consensus.Snapshot
	DownFor() time.Duration
	KnownNodes() []repmgr.Node
	// StepDown("why") makes the node answer 503 instead of 200 or 509;
	// StepDown("") ends that.
	StepDown(reason string)
	SteppingDown() string
	// Release ends the lease on this node's vote held by holder.
	Release(holder string, holderID int) (bool, error)
}

// Actions change PostgreSQL; *Commands is the real one.
type Actions interface {
	Promote(ctx context.Context, d api.Decision) (string, error)
	Repoint(ctx context.Context, upstream repmgr.Node) error
	Follow(ctx context.Context, d api.Decision, upstream repmgr.Node) (string, error)
	InRecovery(ctx context.Context, n repmgr.Node) (bool, error)
	// Checkpoint asks the local database for a checkpoint, so that the
	// shutdown checkpoint that follows is short.
	Checkpoint(ctx context.Context) error
	Stop(ctx context.Context) (string, error)
	Start(ctx context.Context) (string, error)
	// Stopped reads the control file of the local instance when no
	// postmaster runs; running tells whether one does.
	Stopped(ctx context.Context) (ctl repmgr.Control, running bool, err error)
	Rejoin(ctx context.Context, d api.Decision, primary repmgr.Node) (string, error)
	Fence(ctx context.Context, reason string) (string, error)
}

// Reporters ask other nodes for their reports and carry actions between
// them; *client.Client is one.
type Reporters interface {
	Report(ctx context.Context, addr string, req api.ReportRequest) (*api.Report, error)
	Post(ctx context.Context, addr, path string, req, out any) error
}

// Controller is this node's part of automatic failover: a member of the Raft
// group, the coordinator when it leads it, and the actor of every committed
// decision that concerns it.
type Controller struct {
	opts    Options
	local   Local
	actions Actions
	peers   Reporters
	fsm     *FSM
	det     *Detector

	mu           sync.Mutex
	node         *raftNode
	phase        phaseSeen      // the coordinator's phase, as it last told this node (or this node's own, as coordinator)
	coordPhase   phaseSeen      // this node's own phase as coordinator, from its previous round
	acting       api.ActionKind // action in progress
	lastState    api.FailoverState
	done         map[uint64]*api.Progress // this node's action per epoch
	excluded     map[string]exclusion     // standbys whose promotion failed
	silent       bool                     // the primary's pgquorum did not answer the last round
	lastHandOver time.Time                // when leadership was last passed on
	demotedFor   uint64                   // ID+1 of the switchover this node stepped down and stopped for; 0: none
	caughtUpWait map[uint64]time.Time     // per switchover: when the coordinator saw the old primary stopped
	promotedSeen map[uint64]bool          // per switchover: its target's promotion was recorded as a step
	unknownSince time.Time                // since when the local verdict has been 509
	fencedFor    string                   // why this node fenced itself, until the episode ends
	lastFence    string                   // the same, shown until the node runs again (as a standby)
	fences       []api.Fence              // fences not yet recorded in the Raft log
	flushing     bool                     // fences are being recorded
}

// exclusion keeps a standby whose promotion failed out of the elections
// for one cooldown.
type exclusion struct {
	why   string
	until time.Time
}

type phaseSeen struct {
	state  api.FailoverState
	reason string
	at     time.Time
}

// New returns a Controller; Run starts it.
func New(opts Options, local Local, actions Actions, peers Reporters) *Controller {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Controller{opts: opts, local: local, actions: actions, peers: peers, fsm: NewFSM(),
		det: &Detector{Grace: opts.Grace}, done: map[uint64]*api.Progress{}, excluded: map[string]exclusion{},
		caughtUpWait: map[uint64]time.Time{}, promotedSeen: map[uint64]bool{}}
}

// Run joins the Raft group once the local database has shown the
// registered nodes, then coordinates and acts until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	node, err := c.join(ctx)
	if err != nil || node == nil {
		return err
	}
	defer func() {
		if err := node.Close(); err != nil {
			c.opts.Logger.Warn("stop raft", "error", err)
		}
	}()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.coordinate(ctx) }()
	go func() { defer wg.Done(); c.act(ctx) }()
	wg.Wait()
	return nil
}

// join starts the Raft member as soon as repmgr.nodes is known.
func (c *Controller) join(ctx context.Context) (*raftNode, error) {
	t := time.NewTicker(c.opts.RefreshInterval)
	defer t.Stop()
	for {
		nodes := c.local.KnownNodes()
		if len(nodes) > 0 {
			node, err := openRaft(c.opts.Raft, c.fsm, nodes)
			if err != nil {
				return nil, err
			}
			c.mu.Lock()
			c.node = node
			c.mu.Unlock()
			c.opts.Logger.Info("joined the raft group", "raft_dir", c.opts.Raft.Dir, "raft_listen", c.opts.Raft.Bind)
			return node, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil
		case <-t.C:
		}
	}
}

func (c *Controller) raft() *raft.Raft {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.node == nil {
		return nil
	}
	return c.node.r
}

// coordinator is the Raft leader's ID, "" when none is known.
func (c *Controller) coordinator() string {
	r := c.raft()
	if r == nil {
		return ""
	}
	_, id := r.LeaderWithID()
	return string(id)
}

// ready tells whether this node may act on what it has applied: it hears
// from a leader, so its log is current.
func (c *Controller) ready() bool {
	r := c.raft()
	if r == nil {
		return false
	}
	if r.State() == raft.Leader {
		return true
	}
	addr, _ := r.LeaderWithID()
	return addr != "" && c.opts.Now().Sub(r.LastContact()) < 2*c.opts.Raft.HeartbeatTimeout
}

// Status is this node's failover object for /state.
func (c *Controller) Status(ctx context.Context) api.FailoverStatus {
	st := c.fsm.State()
	state, reason := c.nodeState(ctx, st)
	fs := api.FailoverStatus{Mode: c.opts.Mode, State: state, Epoch: st.Epoch, Primary: st.Primary,
		Coordinator: c.coordinator(), Reason: reason, Paused: st.Paused()}
	if fs.Paused {
		fs.PauseReason = st.Pause.Reason
	}
	if sw, ok := st.Switchover(); ok {
		fs.Switchover = &sw
	}
	return fs
}

func (c *Controller) nodeState(ctx context.Context, st Replicated) (api.FailoverState, string) {
	f := c.local.Facts(ctx)
	v := NodeView{Enabled: true, Self: c.opts.Self, DBUp: f.ProbeErr == nil && f.IdentityErr == nil,
		InRecovery: f.Facts.InRecovery, Primary: st.Primary}
	if st.Paused() {
		v.Paused = "paused"
		if st.Pause.Reason != "" {
			v.Paused += ": " + st.Pause.Reason
		}
	}
	if up, ok := consensus.Upstream(f.Facts); ok {
		v.Upstream = up.Name
	}
	if s := c.local.Snapshot(ctx); s != nil {
		v.Confirmed = s.Verdict.State == api.StatePrimary
	}
	c.mu.Lock()
	v.Acting, v.Fenced = c.acting, c.lastFence
	if sw, ok := st.Switchover(); ok && sw.Phase == api.PhaseDemoting && (c.demotedFor == sw.ID+1 || c.acting == api.ActionDemote) {
		v.Demoting = sw.To
	}
	if p := c.phase; c.opts.Now().Sub(p.at) < 3*c.opts.RefreshInterval+c.opts.PeerTimeout {
		v.Phase, v.PhaseReason = p.state, p.reason
	}
	c.mu.Unlock()
	return NodeState(v)
}

// noteState logs a change of this node's state once.
func (c *Controller) noteState(ctx context.Context) {
	s := c.Status(ctx)
	c.mu.Lock()
	prev := c.lastState
	c.lastState = api.FailoverState(s.State)
	c.mu.Unlock()
	if prev != api.FailoverState(s.State) {
		c.opts.Logger.Info("failover state changed", "from", string(prev), "to", s.State, "reason", s.Reason,
			"epoch", s.Epoch, "primary", s.Primary, "coordinator", s.Coordinator)
	}
}

// History is /history: the committed decisions, newest first.
func (c *Controller) History() api.HistoryBody {
	st := c.fsm.State()
	b := api.HistoryBody{Node: c.opts.Self, Coordinator: c.coordinator(), Decisions: []api.Decision{}}
	for i := len(st.History) - 1; i >= 0; i-- {
		b.Decisions = append(b.Decisions, st.History[i])
	}
	for i := len(st.Fences) - 1; i >= 0; i-- {
		b.Fences = append(b.Fences, st.Fences[i])
	}
	for i := len(st.Switchovers) - 1; i >= 0; i-- {
		b.Switchovers = append(b.Switchovers, st.Switchovers[i])
	}
	return b
}

// Report is this node's answer to the coordinator's poll.
func (c *Controller) Report(ctx context.Context, req api.ReportRequest) api.Report {
	if req.Coordinator != "" && req.Coordinator != c.opts.Self {
		c.mu.Lock()
		c.phase = phaseSeen{state: api.FailoverState(req.Phase), reason: req.PhaseReason, at: c.opts.Now()}
		c.mu.Unlock()
	}
	r := c.ownReport(ctx)
	if req.ProbeNode != "" {
		r.Probe = c.probe(ctx, req.ProbeNode)
	}
	return r
}

func (c *Controller) ownReport(ctx context.Context) api.Report {
	f := c.local.Facts(ctx)
	r := api.Report{Protocol: api.ReportProtocol, Node: c.opts.Self, DBUp: f.ProbeErr == nil && f.IdentityErr == nil,
		InRecovery: f.Facts.InRecovery, Timeline: f.Facts.Server.Timeline,
		RepmgrdRunning: f.Facts.Repmgrd.Running, RepmgrdPaused: f.Facts.Repmgrd.Paused}
	switch {
	case f.ProbeErr != nil:
		r.DBError = api.ErrorText(f.ProbeErr)
	case f.IdentityErr != nil:
		r.DBError = api.ErrorText(f.IdentityErr)
	}
	if !r.DBUp {
		r.DownForMS = c.local.DownFor().Milliseconds()
	}
	if me, ok := repmgr.ByName(f.Facts.Nodes, c.opts.Self); ok {
		r.NodeID, r.Location, r.Priority, r.Type = me.ID, me.Location, me.Priority, me.Type
	}
	if w := f.Facts.WAL; w.Position != nil {
		r.ReceivedLSN = *w.Position
		if w.Replayed != nil {
			r.ReplayedLSN = *w.Replayed
		}
		r.Receiver = w.ReceiverStatus
	}
	if up, ok := consensus.Upstream(f.Facts); ok {
		r.Upstream = up.Name
	}
	if p, ok := repmgr.NamedPrimary(f.Facts.Nodes); ok && r.DBUp {
		r.Named = p.Name
	}
	if s := c.local.Snapshot(ctx); s != nil {
		r.State = s.Verdict.State
	}
	st := c.fsm.State()
	c.mu.Lock()
	if a := c.done[st.Epoch]; a != nil {
		cp := *a
		r.Action = &cp
	}
	c.mu.Unlock()
	fs := c.Status(ctx)
	r.Failover = &fs
	return r
}

// probe asks node's database directly, within half the peer timeout so the
// report still reaches the coordinator in time.
func (c *Controller) probe(ctx context.Context, node string) *api.Probe {
	p := &api.Probe{Node: node}
	n, ok := repmgr.ByName(c.local.KnownNodes(), node)
	if !ok {
		p.Error = "not registered here"
		return p
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.PeerTimeout/2)
	defer cancel()
	if _, err := c.actions.InRecovery(ctx, n); err != nil {
		p.Error = api.ErrorText(err)
		return p
	}
	p.OK = true
	return p
}

// ErrNotLeader is returned by the leader-only operations of a follower.
var ErrNotLeader = errors.New("this node does not lead the raft group")

// commit proposes e through Raft and waits until it is applied here; the
// FSM's refusal (a stale epoch) comes back as the error.
func (c *Controller) commit(e Entry) error {
	r := c.raft()
	if r == nil || r.State() != raft.Leader {
		return ErrNotLeader
	}
	if err := r.VerifyLeader().Error(); err != nil {
		return fmt.Errorf("verify leadership: %w", err)
	}
	f := r.Apply(e.Encode(), c.opts.CommandTimeout)
	if err := f.Error(); err != nil {
		return fmt.Errorf("commit through raft: %w", err)
	}
	if err, _ := f.Response().(error); err != nil {
		return err
	}
	return nil
}
