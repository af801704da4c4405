package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgquorum/pgquorum/config"
	"github.com/pgquorum/pgquorum/failover"
	"github.com/pgquorum/pgquorum/repmgr"
)

const raftRecoverLong = `Rewrite this node's Raft membership to the given voters, for when a
majority of the Raft group is lost for good (its nodes will not come back).

Stop pgquorum on every surviving node, run this on each of them with the same
--voters (the survivors), then start pgquorum again: the survivors form a group
of their own, keeping the committed decisions. The voters' Raft addresses come
from this node's repmgr.nodes (read through database.dsn) and failover.raft_peers,
as "serve" computes them. Unregister the lost nodes from repmgr too, or the
leader adds them back.`

func newRaftRecoverCmd(stdout, stderr io.Writer) *cobra.Command {
	var configFile, voters string
	cmd := &cobra.Command{
		Use:   "raft-recover --config FILE --voters node2,node3",
		Short: "Rewrite the Raft membership after the loss of a majority (pgquorum stopped)",
		Long:  raftRecoverLong,
		Args:  cobra.NoArgs,
	}
	v := config.NewViper(cmd.Flags())
	cmd.Flags().StringVar(&configFile, "config", "", "this node's pgquorum config file")
	cmd.Flags().StringVar(&voters, "voters", "", "the surviving nodes, comma-separated, this one included")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		cfg, err := config.Load(v, configFile, os.Environ())
		if err != nil {
			return usageErr(fmt.Errorf("invalid configuration:\n%w", err))
		}
		names := splitList(voters)
		if len(names) == 0 {
			return usageErr(fmt.Errorf("--voters: want the surviving nodes, such as node2,node3"))
		}
		if cfg.Failover.RaftDir == "" {
			return usageErr(fmt.Errorf("failover.raft_dir: not set, and no consensus.state_dir to derive it from"))
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
		defer cancel()
		nodes, err := readNodes(ctx, string(cfg.DSN), cfg.DBTimeout)
		if err != nil {
			return failedErr(fmt.Errorf("read repmgr.nodes for the voters' addresses: %w", err))
		}
		var chosen []repmgr.Node
		for _, name := range names {
			n, ok := repmgr.ByName(nodes, name)
			if !ok {
				return usageErr(fmt.Errorf("--voters: %q is not registered in repmgr.nodes", name))
			}
			chosen = append(chosen, n)
		}
		if _, ok := repmgr.ByName(chosen, cfg.NodeName); !ok {
			return usageErr(fmt.Errorf("--voters: want this node (%s) among them", cfg.NodeName))
		}
		if err := failover.Recover(raftOptions(cfg, stderr), chosen); err != nil {
			return failedErr(err)
		}
		fmt.Fprintf(stdout, "raft membership of %s rewritten to %s; start pgquorum on every one of them\n",
			cfg.NodeName, strings.Join(names, ", "))
		return nil
	}
	return cmd
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
