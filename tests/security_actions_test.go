package tests

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/internal/lab"
)

const adminToken = "admin-token-of-the-security-tests-0123"

// TestActionsNeedTheToken: with server.admin_token, an action without it is
// 401 and with a wrong one 403, and neither changes what HAProxy's agent
// port says; with it, or through the CLI's --config, it is done. With
// require_auth_for_checks, checks need it too, and the CLI finds it in the
// config.
func TestActionsNeedTheToken(t *testing.T) {
	t.Parallel()
	port, err := lab.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	agentAddr := "127.0.0.1:" + strconv.Itoa(port)
	c := startCluster(t, []lab.NodeSpec{{Name: "node1"}}, map[string]string{"server.admin_token": adminToken, "server.agent_listen": agentAddr})
	n1 := c.Node("node1")
	waitState(t, n1, api.StatePrimary, settle)
	drain := n1.QuorumURL() + api.PathAgent + "/drain"
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

	for _, tc := range []struct {
		name   string
		header map[string]string
		want   int
		mode   api.AgentMode // the agent port's reply after the request
	}{
		{"no token, from the node itself", nil, http.StatusUnauthorized, api.AgentReady},
		{"wrong token", bearer(adminToken + "x"), http.StatusForbidden, api.AgentReady},
		{"the token", bearer(adminToken), http.StatusOK, api.AgentDrain},
	} {
		status, err := try(nil, http.MethodPut, drain, tc.header)
		if err != nil || status != tc.want {
			t.Errorf("%s: PUT %s = %d, %v; want %d", tc.name, api.PathAgent+"/drain", status, err, tc.want)
		}
		if got := agentReply(t, agentAddr); !strings.HasPrefix(got, string(tc.mode)+" ") {
			t.Errorf("%s: the agent port replies %q, want mode %s", tc.name, got, tc.mode)
		}
	}

	config := filepath.Join(n1.Dir, "pgquorum.yaml") // the node's own, as the lab started it
	if out, code := runPgquorum(t, "agent", "ready", "--url", n1.QuorumURL()); code != 1 || !strings.Contains(out, "401") {
		t.Errorf("agent ready without --config: exit %d: %s; want 1 and a 401", code, out)
	}
	if out, code := runPgquorum(t, "agent", "ready", "--config", config); code != 0 {
		t.Errorf("agent ready --config: exit %d: %s", code, out)
	}
	if got := agentReply(t, agentAddr); !strings.HasPrefix(got, "ready ") {
		t.Errorf("after agent ready --config, the agent port replies %q", got)
	}

	if err := n1.RestartQuorumWith(map[string]string{"server.require_auth_for_checks": "true",
		"consensus.peer_token": "peer-token-of-the-security-tests-0123"}); err != nil {
		t.Fatal(err)
	}
	err = lab.WaitFor(context.Background(), settle, "node1 to answer 200 to the token", func(context.Context) error {
		if status, err := try(nil, http.MethodGet, n1.QuorumURL()+api.PathState, bearer(adminToken)); err != nil || status != 200 {
			return fmt.Errorf("%d, %v", status, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if status, err := try(nil, http.MethodGet, n1.QuorumURL()+api.PathState, nil); err != nil || status != http.StatusUnauthorized {
		t.Errorf("GET /state without the token: %d, %v; want 401", status, err)
	}
	config = filepath.Join(n1.Dir, "pgquorum.yaml") // rewritten with the new keys
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"check", "--expect", "primary", "--config", config}, 0},
		{[]string{"status", "--config", config}, 0},
		{[]string{"check", "--expect", "primary", "--url", n1.QuorumURL()}, 2}, // 401 is no verdict
	} {
		if out, code := runPgquorum(t, tc.args...); code != tc.code {
			t.Errorf("pgquorum %s: exit %d, want %d: %s", strings.Join(tc.args, " "), code, tc.code, out)
		}
	}
}

// agentReply asks the agent port as HAProxy's read-write listener does.
func agentReply(t *testing.T, addr string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write([]byte("rw\n")); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("agent port: %v", err)
	}
	return strings.TrimSpace(line)
}

// TestRaftOverPeerCredentials: with failover.mode pgquorum, the Raft group
// elects and commits its first decision over the authenticated transport,
// with peer TLS and with the peer token, and no connection between the
// nodes is refused.
func TestRaftOverPeerCredentials(t *testing.T) {
	t.Parallel()
	p := newTestPKI(t, "node1", "node2", "node3")
	for _, tc := range []struct {
		name string
		opts lab.Options
	}{
		{"peer TLS", lab.Options{Quorum: withKeys(p.keys("none")), QuorumTLS: p.clientTLS(nil)}},
		{"peer token", lab.Options{Quorum: withKeys(map[string]string{"consensus.peer_token": "peer-token-of-the-raft-test-0123"})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Nodes = threeNodes("dc1")
			c := startClusterWith(t, tc.opts)
			waitState(t, c.Node("node1"), api.StatePrimary, settle)
			if d := waitDecision(t, c, 1, settle); d.Primary != "node1" {
				t.Fatalf("epoch 1 adopted %s, want node1", d.Primary)
			}
			for _, n := range c.Nodes {
				if lines := n.LogLines("unauthenticated connection refused"); len(lines) > 0 {
					t.Errorf("%s refused a Raft connection of its own group:\n%s", n.Name, strings.Join(lines, "\n"))
				}
			}
		})
	}
}
