package failover

import (
	"context"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// TestOperatorRefuses: the coordinator's commands that cannot be run say
// why; here the node does not lead the Raft group, so even a command that
// passes its checks is refused at its commit.
func TestOperatorRefuses(t *testing.T) {
	healthy := &fakeReporters{reports: map[string]*api.Report{
		"s2:5998": edited(standby(electS2, 1, 1000), func(r *api.Report) { r.Upstream, r.Receiver = "p", repmgr.StreamingState }),
		"s3:5998": standby(electS3, 1, 1000),
	}}
	tests := []struct {
		name  string
		opts  func(*Options)
		state Replicated
		cmd   api.Command
		want  string
	}{
		{name: "a switchover needs failover.mode pgquorum", opts: func(o *Options) { o.Mode = api.ModeRepmgrd }, state: promotedState(),
			cmd: api.Command{Kind: api.CommandSwitchover, To: "s2"}, want: "a switchover needs failover.mode pgquorum (this cluster runs repmgrd)"},
		{name: "no switchover while paused",
			state: func() Replicated { st := promotedState(); st.Pause = &Pause{Paused: true}; return st }(),
			cmd:   api.Command{Kind: api.CommandSwitchover, To: "s2"}, want: "automatic failover is paused: pgquorum resume first"},
		{name: "a switchover the checks refuse says which",
			state: promotedState(), cmd: api.Command{Kind: api.CommandSwitchover, To: "s3"}, want: "switchover to s3 refused: s3 does not stream from p"},
		{name: "a switchover that passes its checks is refused at the commit on a node that does not lead",
			state: promotedState(), cmd: api.Command{Kind: api.CommandSwitchover, To: "s2"}, want: "commit the switchover: " + ErrNotLeader.Error()},
		{name: "a pause is refused at the commit too",
			state: promotedState(), cmd: api.Command{Kind: api.CommandPause}, want: "commit pause: " + ErrNotLeader.Error()},
		{name: "repmgrd is allowed only for the committed successor", opts: func(o *Options) { o.Mode = api.ModeRepmgrd },
			state: promotedState(), cmd: api.Command{Kind: api.CommandAllow, Node: "s2", Epoch: 1}, want: "p is the committed primary (epoch 1)"},
		{name: "an unknown command", state: promotedState(), cmd: api.Command{Kind: "teleport"}, want: `unknown command "teleport"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := shellOpts("s3")
			if tt.opts != nil {
				tt.opts(&opts)
			}
			local := localAs("p")
			local.nodes = []repmgr.Node{actP, actS2, actS3}
			// p's own report, through the fake: the primary, confirmed.
			peers := &fakeReporters{reports: map[string]*api.Report{"p:5998": {Protocol: api.ReportProtocol, Node: "p", NodeID: 1, State: api.StatePrimary, DBUp: true, Timeline: 1, ReceivedLSN: 1000}}}
			for k, v := range healthy.reports {
				peers.reports[k] = v
			}
			c := newShells(t, opts, local, &fakeActions{inRecovery: map[string]bool{}}, peers, tt.state)
			res := c.op.lead(context.Background(), tt.cmd)
			if res.OK || !strings.Contains(res.Error, tt.want) {
				t.Fatalf("result %+v, want refused saying %q", res, tt.want)
			}
		})
	}
}

// TestReportShowsProgressAndPhase: a node's report carries its action for
// the current epoch and, in its failover object, the phase the coordinator
// last told it.
func TestReportShowsProgressAndPhase(t *testing.T) {
	c := newShells(t, shellOpts("s3"), localAs("p"), &fakeActions{}, &fakeReporters{}, promotedState())
	c.rep.board.setProgress(api.Progress{Epoch: 1, Kind: api.ActionRepoint, Done: true})
	c.rep.board.setProgress(api.Progress{Epoch: 0, Kind: api.ActionPromote, Done: true})
	rep := c.Report(context.Background(), api.ReportRequest{Protocol: api.ReportProtocol, Coordinator: "s2", Phase: api.FailoverSuspect, PhaseReason: "p is slow"})
	if rep.Action == nil || *rep.Action != (api.Progress{Epoch: 1, Kind: api.ActionRepoint, Done: true}) {
		t.Errorf("action %+v, want the repoint of epoch 1", rep.Action)
	}
	if rep.Failover == nil || rep.Failover.State != api.FailoverSuspect || rep.Failover.Reason != "p is slow" || rep.Failover.Epoch != 1 || rep.Failover.Primary != "p" {
		t.Errorf("failover %+v, want Suspect as the coordinator said", rep.Failover)
	}
	if rep.Node != "s3" || !rep.InRecovery || !rep.DBUp {
		t.Errorf("report %+v", rep)
	}
}
