package failover

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

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
	// DBTimeout is database.timeout: the budget of a direct probe of a
	// node's database, a new connection and a query, as the checker gives
	// its own probe. Zero means PeerTimeout.
	DBTimeout time.Duration
	Locations []string
	// Scope is consensus.scope: the majority of voters that must have
	// released a deposed primary before its successor is committed is
	// counted as a verdict's is (consensus.HasMajority).
	Scope consensus.Scope
	// SwitchoverMaxLag bounds how far behind a switchover target may be.
	SwitchoverMaxLag int64
	// SwitchoverDrain is how long a primary stepping down answers 503
	// before it stops: HAProxy marks it down meanwhile, and new clients
	// then queue for the new primary rather than meet a refused connection.
	SwitchoverDrain time.Duration
	// Fence is api.FenceOff, api.FenceStop or an operator's command.
	Fence      string
	FenceAfter time.Duration
	// Quiet is how long after a start a primary may answer 509 only
	// because it waits for votes: a lease and the router hold of a
	// restarted voter, plus a refresh. Rule 2's clock of fencing starts
	// only when it ends.
	Quiet      time.Duration
	AutoRejoin bool
	// RepmgrConfigFile is repmgr.config_file, named in the manual step of
	// a rejoin that cannot succeed.
	RepmgrConfigFile string
	Raft             RaftOptions
	Addresses        consensus.Addresses // where every node's pgquorum answers HTTP
	Logger           *slog.Logger
	Now              func() time.Time // optional; time.Now
	// After is optional; time.After. Tests drive the switchover's drain
	// with it.
	After func(time.Duration) <-chan time.Time

	// Hooks are the operators' hooks (hooks.*); nil: none. Each runs
	// within HookTimeout (30s when 0).
	Hooks       Hooks
	HookTimeout time.Duration

	// StatusInterval is the standbys' wal_receiver_status_interval: how
	// often an idle standby replies to its primary at least (PostgreSQL's
	// default, 10s, when 0). Fencing's rule 2 counts a stream live only
	// with a reply this recent (plus a refresh), or fence_after's.
	StatusInterval time.Duration

	// Sync is failover.synchronous and its companions; SyncNames applies
	// the committed set on the primary (nil: never).
	Sync      SyncPolicy
	SyncNames SyncSetter
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
	// Binds is how long this node's vote may still go to holder:
	// what is left of its lease (or of a quiet period after a start,
	// which binds to anyone), plus the router hold.
	Binds(holder string, holderID int) time.Duration
}

// Actions change PostgreSQL; RepmgrActions is the real one.
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
	// RunningServer says, from the data directory alone, whether a postmaster
	// runs and whether it runs as a standby: what fencing needs when the
	// database does not answer.
	RunningServer(ctx context.Context) (repmgr.RunningServer, error)
	Rejoin(ctx context.Context, d api.Decision, primary repmgr.Node) (string, error)
	// Timelines reads n's current timeline and its history; StandbyEnd,
	// where the local standby's WAL ends: whether it forked off n.
	Timelines(ctx context.Context, n repmgr.Node) (repmgr.Timelines, error)
	StandbyEnd(ctx context.Context) (repmgr.StandbyEnd, error)
	Fence(ctx context.Context, reason string) (string, error)
}

// Reporters ask other nodes for their reports and carry actions between
// them; *consensus.HTTPPeers is one.
type Reporters interface {
	Report(ctx context.Context, addr string, req api.ReportRequest) (*api.Report, error)
	Deposition(ctx context.Context, addr string, req api.DepositionRequest) (*api.DepositionAnswer, error)
	Post(ctx context.Context, addr, path string, req, out any) error
}

// Controller is this node's part of automatic failover. It wires the
// parts together and runs their goroutines: the Raft member and its FSM;
// the coordinator, which runs rounds while this node leads the Raft group;
// the actor, which carries out on this node what is committed, and fences
// it; the fence log; the hooks' runner; and, in the HTTP handlers'
// goroutines, the reporter and the operator's commands.
type Controller struct {
	opts   Options
	local  Local
	fsm    *FSM
	m      *member
	rep    *reporter
	calls  *peerCalls
	op     *operator
	coord  *coordinator
	act    *actor
	fences *fenceLog
	hooks  *hookRunner
	sync   *syncApplier
}

// New returns a Controller; Run starts it.
func New(opts Options, local Local, actions Actions, peers Reporters) *Controller {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.After == nil {
		opts.After = time.After
	}
	if opts.DBTimeout <= 0 {
		opts.DBTimeout = opts.PeerTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.HookTimeout == 0 {
		opts.HookTimeout = 30 * time.Second
	}
	if opts.CommandTimeout <= 0 {
		opts.CommandTimeout = time.Minute // failover.command_timeout's default
	}
	fsm := NewFSM()
	m := newMember(fsm, opts.CommandTimeout, opts.Raft.HeartbeatTimeout, opts.Now)
	board := newStatusBoard()
	c := &Controller{opts: opts, local: local, fsm: fsm, m: m}
	c.rep = &reporter{opts: opts, local: local, actions: actions, fsm: fsm, m: m, board: board}
	c.calls = &peerCalls{opts: opts, peers: peers, report: c.Report, release: c.Release, deposed: c.Deposition}
	c.op = &operator{opts: opts, local: local, fsm: fsm, m: m, calls: c.calls}
	c.coord = &coordinator{opts: opts, local: local, fsm: fsm, m: m, board: board, calls: c.calls, note: c.rep.noteState, rounds: newRounds(opts)}
	record := make(chan api.Fence, 64)
	run := &actionRunner{opts: opts, fsm: fsm, board: board, note: c.rep.noteState, conninfo: func(id int) string {
		n, _ := repmgr.ByID(local.KnownNodes(), id)
		return n.Conninfo
	}}
	c.hooks = newHookRunner(opts)
	c.act = &actor{opts: opts, local: local, actions: actions, fsm: fsm, ready: m.ready, board: board, run: run, note: c.rep.noteState,
		fence:    newFencer(opts, local, actions, board, run, record, c.hooks),
		attempts: map[actKey]*attempt{}, hooks: c.hooks, hooksRan: map[hookKey]bool{}}
	c.sync = &syncApplier{opts: opts, local: local, fsm: fsm, board: board}
	c.fences = &fenceLog{opts: opts, m: m, fences: record, command: c.Command}
	return c
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
	for _, run := range []func(context.Context){c.coord.run, c.act.loop, c.fences.run, c.hooks.loop, c.sync.loop} {
		wg.Add(1)
		go func() { defer wg.Done(); run(ctx) }()
	}
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
			c.m.node.Store(node)
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

// Status is this node's failover object for /state.
func (c *Controller) Status(ctx context.Context) api.FailoverStatus { return c.rep.status(ctx) }

// Report is this node's answer to the coordinator's poll.
func (c *Controller) Report(ctx context.Context, req api.ReportRequest) api.Report {
	return c.rep.report(ctx, req)
}

// Committed is the primary the Raft log names, as this node has applied it:
// its name, its repmgr node_id and the epoch. ok is false while nothing is
// committed, and while this node hears from no coordinator: its log may
// then be behind, and name a primary since replaced (the values are still
// returned, for logs). Safe for concurrent
// use, cheap enough for every vote: a voter whose own database is down, or
// a witness, vouches for this primary and for no other.
func (c *Controller) Committed() (primary string, id int, epoch uint64, ok bool) {
	primary, id, epoch = c.fsm.Committed()
	return primary, id, epoch, epoch > 0 && c.act.ready()
}

// Deposed tells whether this node, as a voter, must refuse candidate
// (node_id id): the Raft log it applied deposes it, and no later decision
// named it again. known is false before this node has read its log, and,
// when the entries after its snapshot hold a deposition, until its log has
// been current since it started (member.caughtUp): it then vouches for
// nobody.
func (c *Controller) Deposed(candidate string, id int) (why string, deposed, known bool) {
	if !c.m.caughtUp() {
		return "", false, false
	}
	d, ok := c.fsm.Deposition(candidate, id)
	if !ok {
		return "", false, true
	}
	return fmt.Sprintf("the Raft log deposes %s at epoch %d (%s)", d.Node, d.Epoch, d.At.Format(time.RFC3339Nano)), true, true
}

// Deposition is a voter's answer to the coordinator waiting to commit a
// successor: whether it applied the deposition asked about, and how long
// its ballot may still go to the deposed node.
func (c *Controller) Deposition(_ context.Context, req api.DepositionRequest) api.DepositionAnswer {
	a := api.DepositionAnswer{Protocol: api.DepositionProtocol, Voter: c.opts.Self}
	if me, ok := repmgr.ByName(c.local.KnownNodes(), c.opts.Self); ok {
		a.VoterID = me.ID
	}
	why, deposed, known := c.Deposed(req.Node, req.NodeID)
	d, _ := c.fsm.Deposition(req.Node, req.NodeID)
	switch {
	case req.Protocol != api.DepositionProtocol:
		a.Reason = fmt.Sprintf("I speak deposition protocol %d, not %d", api.DepositionProtocol, req.Protocol)
	case !known:
		a.Reason = "my raft log has not been current since I started"
	case !deposed || d.Epoch != req.Epoch:
		a.Reason = fmt.Sprintf("I have not applied the deposition of %s at epoch %d", req.Node, req.Epoch)
	default:
		a.Applied, a.Reason = true, why
		// Rounded up: a lease that still binds is never reported released.
		a.BindsMS = int64((c.local.Binds(req.Node, req.NodeID) + time.Millisecond - 1) / time.Millisecond)
	}
	return a
}

// History is /history: the committed decisions, newest first.
func (c *Controller) History() api.HistoryBody {
	st := c.fsm.State()
	b := api.HistoryBody{Node: c.opts.Self, Coordinator: c.m.coordinator(), Decisions: []api.Decision{}}
	for i := len(st.History) - 1; i >= 0; i-- {
		b.Decisions = append(b.Decisions, st.History[i])
	}
	for i := len(st.Fences) - 1; i >= 0; i-- {
		b.Fences = append(b.Fences, st.Fences[i])
	}
	for i := len(st.Switchovers) - 1; i >= 0; i-- {
		b.Switchovers = append(b.Switchovers, st.Switchovers[i])
	}
	for i := len(st.Deposed) - 1; i >= 0; i-- {
		b.Depositions = append(b.Depositions, st.Deposed[i])
	}
	return b
}

// Release is a voter's side of the release of votes in a switchover. It
// releases only for the old primary of a switchover the Raft log says is
// stepping down, and only when that node's database does not run as
// primary: no request can make a voter drop a lease a running primary may
// still be using.
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
	if inRecovery, err := c.rep.actions.InRecovery(ctx, n); err == nil && !inRecovery {
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
