package failover

import (
	"context"
	"log/slog"
	"strings"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// reporter is this node's account of itself: the failover object of
// /state and the report the coordinator polls. It reads the local node,
// the committed state and the status board; it decides nothing.
type reporter struct {
	opts    Options
	local   Local
	actions Actions
	fsm     *FSM
	m       *member
	board   *statusBoard
}

// status is this node's failover object for /state.
func (r *reporter) status(ctx context.Context) api.FailoverStatus {
	st := r.fsm.State()
	state, reason := r.nodeState(ctx, st)
	if o := r.board.view().outlook; o != "" {
		reason = strings.TrimPrefix(reason+"; "+o, "; ")
	}
	fs := api.FailoverStatus{Mode: r.opts.Mode, State: state, Epoch: st.Epoch, Primary: st.Primary,
		Coordinator: r.m.coordinator(), Reason: reason, Paused: st.Paused()}
	if fs.Paused {
		fs.PauseReason = st.Pause.Reason
	}
	if sw, ok := st.Switchover(); ok {
		fs.Switchover = &sw
	}
	fs.Rejoin, fs.RejoinAttempts, fs.RejoinFailures = r.board.rejoinView(st.Epoch)
	fs.Synchronous = syncStatus(r.opts.Sync, st.Sync, st.Epoch, r.syncSeen(ctx, st), r.board.fallbacks.Load())
	return fs
}

func (r *reporter) nodeState(ctx context.Context, st Replicated) (api.FailoverState, string) {
	f := r.local.Facts(ctx)
	v := NodeView{Enabled: true, Self: r.opts.Self, DBUp: f.ProbeErr == nil && f.IdentityErr == nil,
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
	if s := r.local.Snapshot(ctx); s != nil {
		v.Confirmed = s.Verdict.State == api.StatePrimary
	}
	b := r.board.view()
	v.Acting, v.Fenced = b.acting, b.fenced
	if rs, _, _ := r.board.rejoinView(st.Epoch); rs != nil {
		v.Rejoin = rejoinText(rs, r.opts.Now())
	}
	if sw, ok := st.Switchover(); ok && sw.Phase == api.PhaseDemoting && (b.demoting == sw.ID+1 || b.acting == api.ActionDemote) {
		v.Demoting = sw.To
	}
	if p := b.phase; r.opts.Now().Sub(p.at) < 3*r.opts.RefreshInterval+r.opts.PeerTimeout {
		v.Phase, v.PhaseReason = p.state, p.reason
	}
	return NodeState(v)
}

// noteState logs a change of this node's state once.
func (r *reporter) noteState(ctx context.Context) {
	s := r.status(ctx)
	if prev := r.board.noteState(s.State); prev != s.State {
		r.opts.Logger.Info("failover state changed", "from", string(prev), "to", s.State, "reason", s.Reason,
			"epoch", s.Epoch, "primary", s.Primary, "coordinator", s.Coordinator)
	}
}

// report is this node's answer to the coordinator's poll.
func (r *reporter) report(ctx context.Context, req api.ReportRequest) api.Report {
	if req.Coordinator != "" && req.Coordinator != r.opts.Self {
		r.board.setPhase(phaseSeen{state: api.FailoverState(req.Phase), reason: req.PhaseReason, at: r.opts.Now()})
		r.board.setPrimarySync(req.PrimarySync, r.opts.Now())
	}
	if req.ProbeNode == "" {
		return r.ownReport(ctx)
	}
	// The probe runs beside the node's own report: the coordinator allows
	// the report its usual time plus one probe (peerCalls.gather).
	probe := make(chan *api.Probe, 1)
	go func() { probe <- r.probe(ctx, req.ProbeNode) }()
	rep := r.ownReport(ctx)
	rep.Probe = <-probe
	return rep
}

func (r *reporter) ownReport(ctx context.Context) api.Report {
	f := r.local.Facts(ctx)
	rep := api.Report{Protocol: api.ReportProtocol, Node: r.opts.Self, DBUp: f.ProbeErr == nil && f.IdentityErr == nil,
		InRecovery: f.Facts.InRecovery, Timeline: f.Facts.Server.Timeline,
		RepmgrdRunning: f.Facts.Repmgrd.Running, RepmgrdPaused: f.Facts.Repmgrd.Paused}
	switch {
	case f.ProbeErr != nil:
		rep.DBError = api.ErrorText(f.ProbeErr)
	case f.IdentityErr != nil:
		rep.DBError = api.ErrorText(f.IdentityErr)
	}
	if !rep.DBUp {
		rep.DownForMS = r.local.DownFor().Milliseconds()
	}
	if me, ok := repmgr.ByName(f.Facts.Nodes, r.opts.Self); ok {
		rep.NodeID, rep.Location, rep.Priority, rep.Type = me.ID, me.Location, me.Priority, me.Type
	}
	if w := f.Facts.WAL; w.Position != nil {
		rep.ReceivedLSN = *w.Position
		if w.Replayed != nil {
			rep.ReplayedLSN = *w.Replayed
		}
		rep.Receiver = w.ReceiverStatus
	}
	if up, ok := consensus.Upstream(f.Facts); ok {
		rep.Upstream = up.Name
	}
	if p, ok := repmgr.NamedPrimary(f.Facts.Nodes); ok && rep.DBUp {
		rep.Named = p.Name
	}
	if s := r.local.Snapshot(ctx); s != nil {
		rep.State = s.Verdict.State
	}
	syncFacts(&rep, f.Facts.Server.Sync)
	rep.Action = r.board.progressOf(r.fsm.State().Epoch)
	fs := r.status(ctx)
	rep.Failover = &fs
	return rep
}

// probe asks node's database directly, with a new connection and a query,
// within database.timeout: the budget the checker gives its own probe. A
// shorter one fails a live database on a busy machine.
func (r *reporter) probe(ctx context.Context, node string) *api.Probe {
	p := &api.Probe{Node: node}
	n, ok := repmgr.ByName(r.local.KnownNodes(), node)
	if !ok {
		p.Error = "not registered here"
		return p
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.DBTimeout)
	defer cancel()
	if _, err := r.actions.InRecovery(ctx, n); err != nil {
		p.Error = api.ErrorText(err)
		return p
	}
	p.OK = true
	return p
}

// logLine is a log record to write later, once an outcome is known.
type logLine struct {
	level slog.Level
	msg   string // "": nothing to log
	args  []any
}

func (l logLine) write(log *slog.Logger, extra ...any) {
	if l.msg != "" {
		log.Log(context.Background(), l.level, l.msg, append(append([]any(nil), l.args...), extra...)...) //nolint:sloglint // a logLine's message is a constant where it is made
	}
}
