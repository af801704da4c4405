package tests

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// Security on real clusters. Each certificate is made by the test itself;
// every pgquorum is the real binary.

// TestPeerWithoutItsCertificateCannotVote: with consensus.peer_tls, node3
// down and node2's pgquorum replaced by a fake that grants node1 its vote
// in node2's name, node1 must answer 509 unless the fake holds node2's own
// certificate (the last case, the control that the fake's vote is otherwise
// a good one).
func TestPeerWithoutItsCertificateCannotVote(t *testing.T) {
	t.Parallel()
	p, c := startTLSCluster(t, "none", nil)
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	stopQuorum(t, n3)
	waitVerdict(t, n1, "200 with node1's and node2's votes", func(s int, b api.StateBody) bool { return s == 200 && b.ClusterVotes == 2 })
	stopQuorum(t, n2)
	waitState(t, n1, api.StateUnknown, settle)

	for _, tc := range []struct {
		name string
		cert *tls.Certificate
		why  string // in node1's refusal of node2's vote
	}{
		{"node3's certificate of our CA, answering as node2", p.cert(t, p.nodes, "node3"), `answers as "node2", but its certificate names "node3"`},
		{"node2's name on a certificate of another CA", p.cert(t, p.stranger, "node2"), "not signed by consensus.peer_tls.ca"},
		{"plain HTTP", nil, "no answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakePeer(t, n2, tc.cert, "")
			holdUnknownRefusing(t, n1, "node2", fewChecks, tc.why)
			if tc.cert != nil && tc.cert.Leaf.Issuer.CommonName == "nodes-ca" && f.voteRequests() == 0 {
				t.Error("node1 never asked the fake: the test proves nothing")
			}
			f.stop()
		})
	}
	t.Run("control: the fake with node2's own certificate is counted", func(t *testing.T) {
		f := startFakePeer(t, n2, p.cert(t, p.nodes, "node2"), "")
		waitVerdict(t, n1, "200 with the fake's vote", func(s int, b api.StateBody) bool { return s == 200 && b.ClusterVotes == 2 })
		f.stop()
	})
	// Refused every refresh for seconds, logged once; and once more when
	// node2's address authenticated again.
	if lines := n1.LogLines("peer's answer is not authenticated"); countWith(lines, peerAddr(n2)) != 1 {
		t.Errorf("node1 logged node2's unauthenticated answers %d times, want once:\n%s", countWith(lines, peerAddr(n2)), strings.Join(lines, "\n"))
	}
	if lines := n1.LogLines("authenticated again"); countWith(lines, peerAddr(n2)) != 1 {
		t.Errorf("node1 did not log node2's address authenticating again:\n%s", strings.Join(lines, "\n"))
	}
}

func countWith(lines []string, substr string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

// TestPeerWithoutTheTokenCannotVote: the same with consensus.peer_token, over
// plain HTTP. The token never travels: the fakes, which see every request
// node1 sends them, never see it.
func TestPeerWithoutTheTokenCannotVote(t *testing.T) {
	t.Parallel()
	const token = "pgquorum-peer-token-of-the-test-0123"
	c := startCluster(t, threeNodes("dc1"), map[string]string{"consensus.peer_token": token})
	n1, n2, n3 := c.Node("node1"), c.Node("node2"), c.Node("node3")
	waitVerdict(t, n1, "200 with all 3 votes", allVotes)

	// A node asked without the token vouches for nobody.
	voteURL := n2.QuorumURL() + api.PathVote
	if status, err := try(nil, http.MethodPost, voteURL, nil); err != nil || status != http.StatusUnauthorized {
		t.Errorf("unsigned POST %s = %d, %v; want 401", api.PathVote, status, err)
	}

	stopQuorum(t, n3)
	stopQuorum(t, n2)
	waitState(t, n1, api.StateUnknown, settle)
	var fakes []*fakePeer
	for _, tc := range []struct {
		name string
		sign auth.Secret
		why  string
	}{
		{"unsigned answers", "", "answer without X-Pgquorum-Mac"},
		{"answers signed with another token", "not-the-peer-token-of-the-test-0123", "answer MAC does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakePeer(t, n2, nil, tc.sign)
			fakes = append(fakes, f)
			holdUnknownRefusing(t, n1, "node2", fewChecks, tc.why)
			if f.voteRequests() == 0 {
				t.Error("node1 never asked the fake: the test proves nothing")
			}
			f.stop()
		})
	}
	t.Run("control: a fake that holds the token is counted", func(t *testing.T) {
		f := startFakePeer(t, n2, nil, token)
		waitVerdict(t, n1, "200 with the fake's vote", func(s int, b api.StateBody) bool { return s == 200 && b.ClusterVotes == 2 })
		f.stop()
	})
	for _, f := range fakes {
		for _, req := range f.requests() {
			if strings.Contains(req, token) {
				t.Fatalf("node1 sent the token to a fake:\n%s", req)
			}
		}
	}
}

// TestHTTPSClientAuthModes: node1 serves HTTPS in each server.tls_client_auth
// mode, with admin_clients "ops"; each kind of client gets what the mode
// promises, on a check and on an action, and the peers keep polling node1.
func TestHTTPSClientAuthModes(t *testing.T) {
	t.Parallel()
	p, c := startTLSCluster(t, "required", func(p *testPKI) *tls.Certificate { return p.cert(t, p.clients, "lab") })
	n1, n2 := c.Node("node1"), c.Node("node2")

	clients := []struct {
		name string
		tls  *tls.Config
	}{
		{"no certificate", p.clientTLS(nil)},
		{"ops of the client CA", p.clientTLS(p.cert(t, p.clients, "ops"))},
		{"ops of an unknown CA", p.clientTLS(p.cert(t, p.stranger, "ops"))},
		{"node2's peer certificate", p.clientTLS(p.cert(t, p.nodes, "node2"))},
	}
	const refused = -1 // the handshake fails
	for _, m := range []struct {
		mode          string
		check, action [4]int // by client, as listed
	}{
		{"none", [4]int{200, 200, 200, 200}, [4]int{200, 200, 200, 200}}, // actions: loopback, admin_clients unset
		{"optional", [4]int{200, 200, 200, 200}, [4]int{401, 200, 403, 403}},
		{"required", [4]int{refused, 200, refused, 200}, [4]int{refused, 200, refused, 403}},
	} {
		t.Run(m.mode, func(t *testing.T) {
			keys := p.keys(m.mode)
			keys["server.admin_clients"] = "ops"
			port, err := lab.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			keys["server.agent_listen"] = "127.0.0.1:" + strconv.Itoa(port)
			if m.mode == "none" {
				keys["server.tls_client_ca"], keys["server.admin_clients"] = lab.Unset, lab.Unset
			}
			if err := n1.RestartQuorumWith(keys); err != nil {
				t.Fatal(err)
			}
			waitVerdict(t, n1, "200 with all 3 votes", allVotes)
			for i, cl := range clients {
				status, err := try(cl.tls, http.MethodGet, n1.QuorumURL()+api.PathState, nil)
				checkOutcome(t, "GET /state with "+cl.name, status, err, m.check[i])
				status, err = try(cl.tls, http.MethodPut, n1.QuorumURL()+api.PathAgent+"/"+string(api.AgentDrain), nil)
				checkOutcome(t, "PUT /agent/drain with "+cl.name, status, err, m.action[i])
				checkAgentMode(t, p, n1, map[bool]api.AgentMode{true: api.AgentDrain, false: api.AgentReady}[m.action[i] == 200])
			}
			if status, err := try(nil, http.MethodGet, strings.Replace(n1.QuorumURL(), "https:", "http:", 1)+api.PathState, nil); err == nil && status < 400 {
				t.Errorf("plain HTTP to the HTTPS port answered %d", status)
			}
			// The survey of node2 reaches node1's /state with node2's
			// peer certificate, whatever node1's mode. node2 may still
			// hold a survey from node1's restart, so this waits for one
			// taken since.
			err = lab.WaitFor(context.Background(), settle, "node2 /realPrimary naming node1", func(ctx context.Context) error {
				var rp api.RealPrimaryBody
				if _, err := n2.GetJSON(ctx, api.PathRealPrimary, &rp); err != nil {
					return err
				}
				if rp.RealPrimary == nil || *rp.RealPrimary != "node1" {
					return fmt.Errorf("%+v", rp)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
}

func checkOutcome(t *testing.T, what string, status int, err error, want int) {
	t.Helper()
	switch {
	case want == -1 && err == nil:
		t.Errorf("%s: answered %d, want the handshake refused", what, status)
	case want != -1 && (err != nil || status != want):
		t.Errorf("%s: %d, %v; want %d", what, status, err, want)
	}
}

// checkAgentMode asks node n's agent override as ops and resets it to ready,
// failing unless it was want: a refused action must have changed nothing.
func checkAgentMode(t *testing.T, p *testPKI, n *lab.Node, want api.AgentMode) {
	t.Helper()
	ops := p.clientTLS(p.cert(t, p.clients, "ops"))
	var b api.AgentBody
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: ops}}
	resp, err := client.Get(n.QuorumURL() + api.PathAgent)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&b); err != nil || b.Mode != want {
		t.Errorf("agent mode %q (%v), want %q", b.Mode, err, want)
	}
	if b.Mode != api.AgentReady {
		if status, err := try(ops, http.MethodPut, n.QuorumURL()+api.PathAgent+"/"+string(api.AgentReady), nil); err != nil || status != 200 {
			t.Fatalf("reset the agent to ready: %d, %v", status, err)
		}
	}
}

// TestSIGHUPReloadsTheCertificate: after a new certificate is written and
// SIGHUP sent, new connections get it from the same process, a connection
// opened before goes on, and a broken certificate is refused, the last good
// one still served.
func TestSIGHUPReloadsTheCertificate(t *testing.T) {
	t.Parallel()
	p, c := startTLSCluster(t, "none", nil)
	n1 := c.Node("node1")
	pid := n1.QuorumPID()
	kept := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: p.clientTLS(nil)}}
	first := servedSerial(t, kept, n1)

	second := p.writeNode(t, "node1")
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	err := lab.WaitFor(context.Background(), 5*time.Second, "node1 to serve its new certificate", func(context.Context) error {
		if got := servedSerial(t, nil, n1); got != second.String() {
			return fmt.Errorf("serial %s, want %s", got, second)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, kept, n1); got != first {
		t.Errorf("the connection opened before the reload answered with serial %s, want the old %s on the same connection", got, first)
	}
	if n1.QuorumPID() != pid {
		t.Fatalf("pgquorum was restarted (pid %d, was %d)", n1.QuorumPID(), pid)
	}

	if err := os.WriteFile(p.path("node1.crt"), []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	err = lab.WaitFor(context.Background(), 5*time.Second, "node1 to refuse the broken certificate", func(context.Context) error {
		if len(n1.LogLines("TLS material not reloaded, keeping the previous")) == 0 {
			return fmt.Errorf("no line about it yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, nil, n1); got != second.String() {
		t.Errorf("after a broken certificate, node1 serves serial %s, want the last good %s", got, second)
	}
	waitVerdict(t, n1, "200 with all 3 votes after the reloads", allVotes)
}

// servedSerial is the serial of the certificate node n serves, through
// client (nil: a new connection).
func servedSerial(t *testing.T, client *http.Client, n *lab.Node) string {
	t.Helper()
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}} // reads the serial only
	}
	resp, err := client.Get(n.QuorumURL() + api.PathLiveness)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.TLS.PeerCertificates[0].SerialNumber.String()
}
