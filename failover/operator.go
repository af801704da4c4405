package failover

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// commandTimeout bounds a command carried to the coordinator: a round of
// reports and a commit.
func (c *Controller) commandTimeout() time.Duration {
	return 2*c.opts.PeerTimeout + 2*c.opts.Raft.ElectionTimeout + 5*time.Second
}

func refused(format string, args ...any) api.CommandResult {
	return api.CommandResult{Error: fmt.Sprintf(format, args...)}
}

// Command runs an operator's command: here when this node leads the Raft
// group, else on the leader, to which it is forwarded.
func (c *Controller) Command(ctx context.Context, cmd api.Command) api.CommandResult {
	cmd.Node = c.opts.Self
	if cmd.At.IsZero() {
		cmd.At = c.opts.Now().UTC()
	}
	ctx, cancel := context.WithTimeout(ctx, c.commandTimeout())
	defer cancel()
	if r := c.raft(); r != nil && r.State() == raft.Leader {
		return c.lead(ctx, cmd)
	}
	leader := c.coordinator()
	if leader == "" {
		return refused("no coordinator: the raft group has no leader now")
	}
	n, ok := repmgr.ByName(c.local.KnownNodes(), leader)
	if !ok {
		return refused("the coordinator %s is not registered in repmgr.nodes", leader)
	}
	addr, err := c.opts.Addresses.Of(n)
	if err != nil {
		return refused("address of the coordinator %s: %v", leader, err)
	}
	var res api.CommandResult
	if err := c.peers.Post(ctx, addr, api.PathCommand, cmd, &res); err != nil {
		return refused("carry the command to the coordinator %s: %v", leader, err)
	}
	return res
}

// CommandFromPeer is the coordinator's side of a forwarded command. It
// never forwards again: a leader that changed meanwhile means a refusal,
// not a loop.
func (c *Controller) CommandFromPeer(ctx context.Context, cmd api.Command) api.CommandResult {
	if r := c.raft(); r == nil || r.State() != raft.Leader {
		return refused("%s does not lead the raft group (leader: %q)", c.opts.Self, c.coordinator())
	}
	ctx, cancel := context.WithTimeout(ctx, c.commandTimeout())
	defer cancel()
	return c.lead(ctx, cmd)
}

// lead runs a command on the coordinator.
func (c *Controller) lead(ctx context.Context, cmd api.Command) api.CommandResult {
	switch cmd.Kind {
	case api.CommandSwitchover:
		return c.startSwitchover(ctx, cmd)
	case api.CommandPause, api.CommandResume:
		p := Pause{Paused: cmd.Kind == api.CommandPause, Reason: cmd.Reason, By: cmd.Node, At: c.opts.Now().UTC()}
		if err := c.commit(Entry{Version: EntryVersion, Type: EntryPause, Pause: &p}); err != nil {
			return refused("commit %s: %v", cmd.Kind, err)
		}
		if p.Paused {
			c.opts.Logger.Warn("automatic failover paused", "by", p.By, "reason", p.Reason)
		} else {
			c.opts.Logger.Warn("automatic failover resumed", "by", p.By, "reason", p.Reason)
		}
		return api.CommandResult{OK: true}
	case api.CommandFence:
		f := api.Fence{Node: cmd.Node, At: cmd.At, Reason: cmd.Reason}
		if err := c.commit(Entry{Version: EntryVersion, Type: EntryFence, Fence: &f}); err != nil {
			return refused("record the fence: %v", err)
		}
		return api.CommandResult{OK: true}
	case api.CommandAllow:
		return c.allow(cmd)
	}
	return refused("unknown command %q", cmd.Kind)
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
