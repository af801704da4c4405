package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
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
the node to ready. Setting it is an action: it needs server.admin_token
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
		req, err := agentRequest(ctx, t, mode, weight, cmd.Flags().Changed("weight"))
		if err != nil {
			return usageErr(err)
		}
		body, err := doAgentRequest(t, req)
		if err != nil {
			return failedErr(err)
		}
		fmt.Fprintf(stdout, "mode: %s\nweight: %d%%\nrw reply: %s\nro reply: %s\n", body.Mode, body.Weight, body.Replies[haproxy.RoleRW], body.Replies[haproxy.RoleRO])
		return nil
	}
	return cmd
}

// agentRequest checks the arguments and builds the request they call for.
func agentRequest(ctx context.Context, t target, mode string, weight int, weightSet bool) (*http.Request, error) {
	if mode == "status" {
		if weightSet {
			return nil, fmt.Errorf("--weight: only with ready, drain or maint")
		}
		return t.newRequest(ctx, http.MethodGet, api.PathAgent, nil)
	}
	if err := (haproxy.Override{Mode: haproxy.Mode(mode), Weight: weight}).Validate(); err != nil {
		if strings.HasPrefix(err.Error(), "weight") {
			return nil, fmt.Errorf("--weight: want 1 to 256, got %d", weight)
		}
		return nil, fmt.Errorf("mode: want ready, drain, maint or status, got %q", mode)
	}
	req, err := t.newRequest(ctx, http.MethodPut, api.PathAgent+"/"+mode, nil)
	if err != nil {
		return nil, err
	}
	req.URL.RawQuery = "weight=" + strconv.Itoa(weight)
	return req, nil
}

// maxAgentBody bounds what is read of the answer.
const maxAgentBody = 64 << 10

// doAgentRequest sends req to t; req's context bounds the whole exchange.
func doAgentRequest(t target, req *http.Request) (api.AgentBody, error) {
	var body api.AgentBody
	resp, err := t.do(req)
	if err != nil {
		return body, fmt.Errorf("ask pgquorum: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentBody))
	if err != nil {
		return body, fmt.Errorf("read pgquorum's answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return body, fmt.Errorf("%s answered 404: is server.agent_listen set in its config?", req.URL.Host)
	case resp.StatusCode != http.StatusOK:
		return body, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(raw)))
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return body, fmt.Errorf("decode pgquorum's answer: %w", err)
	}
	return body, nil
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
