package failover

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// operator runs the operators' commands on the coordinator: switchover,
// pause and resume, and the records a node asks for (its fence, repmgrd's
// allowance). Each command is checked and committed in its request's own
// goroutine; it shares nothing with the coordinator's rounds but the log.
type operator struct {
	opts  Options
	local Local
	fsm   *FSM
	m     *member
	calls *peerCalls
}

// commandTimeout bounds a command carried to the coordinator: a round of
// reports and a commit.
func (o Options) commandTimeout() time.Duration {
	return 2*o.PeerTimeout + 2*o.Raft.ElectionTimeout + 5*time.Second
}

func refused(format string, args ...any) api.CommandResult {
	return api.CommandResult{Error: fmt.Sprintf(format, args...)}
}

// Command runs an operator's command: here when this node is the
// coordinator, else on the coordinator, to which it is forwarded.
func (c *Controller) Command(ctx context.Context, cmd api.Command) api.CommandResult {
	cmd.Node = c.opts.Self
	if cmd.At.IsZero() {
		cmd.At = c.opts.Now().UTC()
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.commandTimeout())
	defer cancel()
	if c.m.leads() {
		return c.op.lead(ctx, cmd)
	}
	coord := c.m.coordinator()
	if coord == "" {
		return refused("no coordinator: the raft group has no leader now")
	}
	return c.calls.forward(ctx, c.local.KnownNodes(), coord, cmd)
}

// CommandFromPeer is the coordinator's side of a forwarded command. It
// never forwards again: a coordinator that changed meanwhile means a refusal,
// not a loop.
func (c *Controller) CommandFromPeer(ctx context.Context, cmd api.Command) api.CommandResult {
	if !c.m.leads() {
		return refused("%s does not lead the raft group (leader: %q)", c.opts.Self, c.m.coordinator())
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.commandTimeout())
	defer cancel()
	return c.op.lead(ctx, cmd)
}

// lead runs a command on the coordinator.
func (o *operator) lead(ctx context.Context, cmd api.Command) api.CommandResult {
	switch cmd.Kind {
	case api.CommandSwitchover:
		return o.startSwitchover(ctx, cmd)
	case api.CommandPause, api.CommandResume:
		p := Pause{Paused: cmd.Kind == api.CommandPause, Reason: cmd.Reason, By: cmd.Node, At: o.opts.Now().UTC()}
		if err := o.m.commit(pauseEntry(p)); err != nil {
			return refused("commit %s: %v", cmd.Kind, err)
		}
		if p.Paused {
			o.opts.Logger.Warn("automatic failover paused", "by", p.By, "reason", p.Reason)
		} else {
			o.opts.Logger.Warn("automatic failover resumed", "by", p.By, "reason", p.Reason)
		}
		return api.CommandResult{OK: true}
	case api.CommandFence:
		if err := o.m.commit(fenceEntry(api.Fence{Node: cmd.Node, At: cmd.At, Reason: cmd.Reason})); err != nil {
			return refused("record the fence: %v", err)
		}
		return api.CommandResult{OK: true}
	case api.CommandAllow:
		return o.allow(cmd)
	}
	return refused("unknown command %q", cmd.Kind)
}

// startSwitchover checks a switchover on fresh reports and commits its
// start.
func (o *operator) startSwitchover(ctx context.Context, cmd api.Command) api.CommandResult {
	if o.opts.Mode != api.ModePgquorum {
		return refused("a switchover needs failover.mode pgquorum (this cluster runs %s)", o.opts.Mode)
	}
	st := o.fsm.State()
	if st.Paused() {
		return refused("automatic failover is paused: pgquorum resume first")
	}
	nodes := o.local.KnownNodes()
	reports := o.calls.gather(ctx, nodes, api.ReportRequest{Protocol: api.ReportProtocol, Coordinator: o.opts.Self})
	lag, err := CheckSwitchover(st, cmd.To, nodes, reports, o.opts.SwitchoverMaxLag)
	if err != nil {
		return refused("switchover to %s refused: %v", cmd.To, err)
	}
	now := o.opts.Now().UTC()
	sw := api.Switchover{ID: st.Epoch, From: st.Primary, To: cmd.To, Phase: api.PhaseDemoting, Start: now, Steps: []api.Step{{At: now,
		What: fmt.Sprintf("checked (asked on %s): %s streams from %s, %d bytes behind (at most %d)", cmd.Node, cmd.To, st.Primary, lag, o.opts.SwitchoverMaxLag)}}}
	if err := o.m.commit(switchoverEntry(sw)); err != nil {
		return refused("commit the switchover: %v", err)
	}
	o.opts.Logger.Warn("switchover started", "from", sw.From, "to", sw.To, "lag_bytes", lag, "asked_on", cmd.Node)
	return api.CommandResult{OK: true, Switchover: &sw}
}

// allow records that repmgrd may promote the asker, which the FSM accepts
// once per decision, after checking the asker is the committed successor.
func (o *operator) allow(cmd api.Command) api.CommandResult {
	st := o.fsm.State()
	d, ok := st.Latest()
	if allowed, _, why := Gate(GateView{Mode: o.opts.Mode, Self: cmd.Node, Ready: true, Latest: d, HasAny: ok}); !allowed {
		return refused("%s", why)
	}
	if d.Epoch != cmd.Epoch {
		return refused("epoch %d is not the current one (%d)", cmd.Epoch, d.Epoch)
	}
	if err := o.m.commit(allowEntry(Promoted{Epoch: d.Epoch, At: o.opts.Now().UTC()})); err != nil {
		return refused("record the allowance: %v", err)
	}
	return api.CommandResult{OK: true}
}

// FromPeer tells whether ip may forward commands: the address of a
// registered node's pgquorum, or loopback (this host, which may take
// actions anyway). It keeps other hosts out when the peers are not
// authenticated (consensus.peer_token, consensus.peer_tls), which is what
// authenticates them.
func (c *Controller) FromPeer(ctx context.Context, ip net.IP) bool {
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.PeerTimeout)
	defer cancel()
	for _, n := range c.local.KnownNodes() {
		addr, err := c.opts.Addresses.Of(n)
		if err != nil {
			continue
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			continue
		}
		ips, err := net.DefaultResolver.LookupIP(ctx, "ip", host)
		if err == nil && slices.ContainsFunc(ips, ip.Equal) {
			return true
		}
	}
	return false
}
