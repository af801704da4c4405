package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/haproxy"
	"github.com/pgquorum/pgquorum/repmgr"
	"github.com/pgquorum/pgquorum/server"
)

// standbyVerdicts is a streaming standby, for the server's handlers.
type standbyVerdicts struct{}

func (standbyVerdicts) Snapshot(context.Context) *consensus.Snapshot {
	s := &consensus.Snapshot{Verdict: consensus.Verdict{State: api.StateStandby, Node: "node2"}}
	s.Facts.InRecovery, s.Facts.WAL.ReceiverStatus = true, repmgr.StreamingState
	return s
}
func (v standbyVerdicts) Facts(ctx context.Context) *consensus.Snapshot { return v.Snapshot(ctx) }
func (standbyVerdicts) Survey(context.Context) consensus.Survey         { return consensus.Survey{} }
func (standbyVerdicts) Vote(context.Context, api.VoteRequest) api.VoteAnswer {
	return api.VoteAnswer{Reason: "not in this test"}
}

// agentServer serves the real server handler with (or without) the agent's
// admin handler mounted, as "serve" does.
func agentServer(t *testing.T, withAgent bool) (string, *haproxy.Agent) {
	t.Helper()
	var agent *haproxy.Agent
	opts := server.Options{}
	if withAgent {
		agent = haproxy.NewAgent(haproxy.AgentOptions{}, standbyVerdicts{})
		opts.AgentAdmin = agent.AdminHandler()
	}
	srv := httptest.NewServer(server.New(opts, standbyVerdicts{}).Handler())
	t.Cleanup(srv.Close)
	return srv.URL, agent
}

func TestAgentCommandSetsTheOverride(t *testing.T) {
	url, agent := agentServer(t, true)
	steps := []struct {
		name       string
		args       []string
		wantMode   haproxy.Mode
		wantWeight int
		wantOut    string
	}{
		{"status without argument shows ready", nil, haproxy.ModeReady, 100, "mode: ready\nweight: 100%\nrw reply: ready 100% down #Standby, not writable\nro reply: ready 100% up #Standby\n"},
		{"drain", []string{"drain"}, haproxy.ModeDrain, 100, "ro reply: drain 100% up #Standby"},
		{"status shows drain", []string{"status"}, haproxy.ModeDrain, 100, "mode: drain"},
		{"maint", []string{"maint"}, haproxy.ModeMaint, 100, "ro reply: maint 100% up"},
		{"ready with a weight", []string{"ready", "--weight", "50"}, haproxy.ModeReady, 50, "weight: 50%"},
		{"ready again resets the weight", []string{"ready"}, haproxy.ModeReady, 100, "weight: 100%"},
	}
	for _, st := range steps {
		code, out, errOut := runPgquorum(t, append(append([]string{"agent"}, st.args...), "--url", url)...)
		if code != exitOK {
			t.Fatalf("%s: exit %d: %s", st.name, code, errOut)
		}
		if !strings.Contains(out, st.wantOut) {
			t.Fatalf("%s: output %q lacks %q", st.name, out, st.wantOut)
		}
		if got := agent.Override(); got.Mode != st.wantMode || got.Weight != st.wantWeight {
			t.Fatalf("%s: agent override %+v, want %s at %d%%", st.name, got, st.wantMode, st.wantWeight)
		}
	}
}

func TestAgentCommandErrors(t *testing.T) {
	withAgent, _ := agentServer(t, true)
	without, _ := agentServer(t, false)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unknown mode", []string{"stop", "--url", withAgent}, exitUsage, `mode: want ready, drain, maint or status, got "stop"`},
		{"weight out of range", []string{"ready", "--weight", "0", "--url", withAgent}, exitUsage, "--weight: want 1 to 256, got 0"},
		{"weight with status", []string{"status", "--weight", "50", "--url", withAgent}, exitUsage, "--weight: only with ready, drain or maint"},
		{"url without scheme", []string{"drain", "--url", "127.0.0.1:5999"}, exitUsage, "--url: want http://host:port"},
		{"two modes", []string{"drain", "maint", "--url", withAgent}, exitUsage, "accepts at most 1 arg"},
		{"pgquorum without an agent", []string{"drain", "--url", without}, exitFailed, "answered 404: is server.agent_listen set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runPgquorum(t, append([]string{"agent"}, tc.args...)...)
			if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.wantCode, tc.wantErr)
			}
		})
	}
}
