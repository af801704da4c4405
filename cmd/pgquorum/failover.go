package main

import (
	"github.com/pgquorum/pgquorum/api"

	"io"
	"log/slog"

	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/client"
	"github.com/pgquorum/pgquorum/config"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/failover"
	"github.com/pgquorum/pgquorum/repmgr"
)

// raftOptions maps the failover.raft_* keys onto the Raft member's options.
func raftOptions(cfg config.Config, logOutput io.Writer) failover.RaftOptions {
	f := cfg.Failover
	return failover.RaftOptions{Self: cfg.NodeName, Dir: f.RaftDir, Bind: f.RaftListen, Peers: f.RaftPeers,
		HeartbeatTimeout: f.HeartbeatTimeout, ElectionTimeout: f.ElectionTimeout,
		LogOutput: logOutput, LogDebug: cfg.LogLevel == "debug", LogJSON: cfg.LogFormat == "json"}
}

// newController builds the failover controller of "serve": it acts through
// repmgr's command line, as the OS user pgquorum runs as.
func newController(cfg config.Config, checker *consensus.Checker, local *repmgr.Local, peers *client.Client,
	stream auth.Stream, log *slog.Logger, stderr io.Writer) *failover.Controller {
	raft := raftOptions(cfg, stderr)
	// The Raft transport proves this node, and checks its peers, with the
	// credentials of the peers' HTTP exchanges.
	raft.Auth, raft.Logger = stream, log
	f := cfg.Failover
	runner := repmgr.Runner{Logger: log}
	cli := repmgr.CLI{Bin: cfg.RepmgrBin, ConfigFile: cfg.RepmgrConfigFile, Runner: runner}
	service := repmgr.Service{Runner: runner, Conf: cfg.Repmgr}
	cmds := failover.RepmgrActions{
		CLI:            cli,
		Local:          local,
		Service:        service,
		Self:           cfg.NodeName,
		PromoteCommand: f.PromoteCommand,
		FollowCommand:  f.FollowCommand,
		Rejoiner: failover.Rejoiner{CLI: cli, Local: local, Service: service, Self: cfg.NodeName,
			Command: f.RejoinCommand},
	}
	fence := f.Fence
	if fence != api.FenceOff && fence != api.FenceStop {
		cmds.FenceCommand = fence
	}
	return failover.New(failover.Options{
		Self: cfg.NodeName, Mode: f.Mode, Grace: f.Grace, Cooldown: f.Cooldown, CommandTimeout: f.CommandTimeout,
		RefreshInterval: cfg.RefreshInterval, PeerTimeout: cfg.PeerTimeout, DBTimeout: cfg.DBTimeout, Locations: f.Locations,
		Scope:            cfg.Scope,
		SwitchoverMaxLag: f.SwitchoverMaxLag, SwitchoverDrain: f.SwitchoverDrain, Fence: fence, FenceAfter: f.FenceAfter, AutoRejoin: f.AutoRejoin,
		StatusInterval:   f.StatusInterval,
		RepmgrConfigFile: cfg.RepmgrConfigFile,
		Quiet:            consensus.LeaseFor(cfg.CacheTTL) + cfg.RouterHold + cfg.RefreshInterval,
		Raft:             raft,
		Addresses:        consensus.Addresses{Port: cfg.PeerPort, Overrides: cfg.Peers},
		Logger:           log.With("component", "failover"),
		Hooks: failover.HookCommands{Runner: runner, Self: cfg.NodeName, Commands: map[failover.HookKind]string{
			failover.HookRoleChange: cfg.Hooks.OnRoleChange, failover.HookPrePromote: cfg.Hooks.PrePromote,
			failover.HookFailover: cfg.Hooks.OnFailover, failover.HookFence: cfg.Hooks.OnFence,
		}},
		HookTimeout: cfg.Hooks.Timeout,
		Sync: failover.SyncPolicy{Mode: f.Synchronous, Count: f.SynchronousCount, Locations: f.SynchronousLocations,
			MaxLag: f.SwitchoverMaxLag, Grace: f.Grace},
		SyncNames: repmgr.SyncNames{DSN: string(cfg.DSN), Timeout: cfg.DBTimeout},
	}, checker, cmds, peers)
}

// The voter of a node whose database is down follows the committed primary
// (consensus.Options.Committed): the controller must say which it is.
var _ consensus.CommittedSource = (*failover.Controller)(nil)

// Every voter refuses the nodes the Raft log deposes
// (consensus.Options.Deposed): the controller must say which they are.
var _ consensus.DepositionSource = (*failover.Controller)(nil)
