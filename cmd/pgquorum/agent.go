package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/config"
	"github.com/pgquorum/pgquorum/haproxy"
)

const agentLong = `Show or set this node's HAProxy agent override. HAProxy's agent-check
(rendered by "haproxy-config --agent-port") asks pgquorum's server.agent_listen
port; the reply combines the node's verdict with this override:

  ready   take connections as the verdict allows (the default)
  drain   take no new connections; existing sessions go on
  maint   take no connections at all
  status  show the override and the replies each listener gets (no argument alike)

The override lives in the pgquorum process: a restart of pgquorum returns
the node to ready. Setting it is an operator command: it needs server.admin_token
(given by --config, from the node's own config) or an admin client
certificate, or, when neither is configured, a client on the node's own host.`

func newAgentCmd(stdout io.Writer) *cobra.Command {
	var target localFlags
	var weight int
	cmd := &cobra.Command{
		Use:   "agent [ready|drain|maint|status]",
		Short: "Show or set this node's HAProxy agent override (ready, drain, maint)",
		Long:  agentLong,
		Args:  cobra.MaximumNArgs(1),
	}
	target.register(cmd.Flags(), 5*time.Second)
	cmd.Flags().IntVar(&weight, "weight", 100, "weight percentage to set with the mode, 1 to 256")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		mode := "status"
		if len(args) == 1 {
			mode = args[0]
		}
		t, err := target.target(cmd.Flags().Changed("url"))
		if err != nil {
			return usageErr(err)
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), t.timeout)
		defer cancel()
		if err := checkAgentArgs(mode, weight, cmd.Flags().Changed("weight")); err != nil {
			return usageErr(err)
		}
		var body api.AgentBody
		if mode == "status" {
			body, err = t.node().Agent(ctx)
		} else {
			body, err = t.node().SetAgent(ctx, mode, weight)
		}
		if err != nil {
			return failedErr(err)
		}
		fmt.Fprintf(stdout, "mode: %s\nweight: %d%%\nrw reply: %s\nro reply: %s\n", body.Mode, body.Weight, body.Replies[haproxy.RoleRW], body.Replies[haproxy.RoleRO])
		return nil
	}
	return cmd
}

// checkAgentArgs checks the arguments of "agent".
func checkAgentArgs(mode string, weight int, weightSet bool) error {
	if mode == "status" {
		if weightSet {
			return fmt.Errorf("--weight: only with ready, drain or maint")
		}
		return nil
	}
	if err := (haproxy.Override{Mode: haproxy.Mode(mode), Weight: weight}).Validate(); err != nil {
		if strings.HasPrefix(err.Error(), "weight") {
			return fmt.Errorf("--weight: want 1 to 256, got %d", weight)
		}
		return fmt.Errorf("mode: want ready, drain, maint or status, got %q", mode)
	}
	return nil
}

// listenAgent opens server.agent_listen; it returns a nil Agent when the
// agent is off.
func listenAgent(cfg config.Config, src haproxy.VerdictSource, log *slog.Logger) (*haproxy.Agent, net.Listener, error) {
	if cfg.AgentListen == "" {
		return nil, nil, nil
	}
	ln, err := net.Listen("tcp", cfg.AgentListen)
	if err != nil {
		return nil, nil, fmt.Errorf("server.agent_listen: %w", err)
	}
	log.Info("HAProxy agent listening", "listen", ln.Addr().String())
	return haproxy.NewAgent(haproxy.AgentOptions{Logger: log}, src), ln, nil
}
