package tests

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/auth/testpki"
	"github.com/pgquorum/pgquorum/internal/lab"
)

// testPKI is a PKI made by the test, in a directory the nodes' OS users can
// read: no key is ever committed.
type testPKI struct {
	dir      string
	nodes    *testpki.CA // signs the nodes' certificates: consensus.peer_tls.ca
	clients  *testpki.CA // signs operators' and HAProxy's: server.tls_client_ca
	stranger *testpki.CA // trusted by nobody
}

func newTestPKI(t *testing.T, nodes ...string) *testPKI {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgq-pki-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Error(err)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: dir}
	for _, ca := range []struct {
		ca   **testpki.CA
		name string
	}{{&p.nodes, "nodes-ca"}, {&p.clients, "clients-ca"}, {&p.stranger, "stranger-ca"}} {
		if *ca.ca, err = testpki.NewCA(ca.name); err != nil {
			t.Fatal(err)
		}
		if _, err := (*ca.ca).Write(dir, ca.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		p.writeNode(t, n)
	}
	return p
}

func (p *testPKI) path(name string) string { return filepath.Join(p.dir, name) }

// writeNode writes (or replaces, atomically) name.crt and name.key: a
// certificate of the nodes' CA naming the node, and 127.0.0.1 for the lab's
// clients. It returns the new certificate's serial.
func (p *testPKI) writeNode(t *testing.T, name string) *big.Int {
	t.Helper()
	leaf, err := p.nodes.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		ext  string
		data []byte
	}{{".key", leaf.KeyPEM}, {".crt", leaf.CertPEM}} {
		tmp := p.path(name + f.ext + ".tmp")
		if err := os.WriteFile(tmp, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, p.path(name+f.ext)); err != nil {
			t.Fatal(err)
		}
	}
	return leaf.Cert.SerialNumber
}

// cert is a certificate of ca naming name, as a TLS client or server shows it.
func (p *testPKI) cert(t *testing.T, ca *testpki.CA, name string) *tls.Certificate {
	t.Helper()
	leaf, err := ca.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := leaf.TLS()
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// keys are the config keys of nodes serving HTTPS with their own
// certificate, polling each other over mutual TLS, in client-auth mode.
func (p *testPKI) keys(mode string) map[string]string {
	k := map[string]string{
		"server.tls_cert": p.path("{node}.crt"), "server.tls_key": p.path("{node}.key"),
		"consensus.peer_tls.ca": p.path("nodes-ca.crt"), "consensus.peer_tls.cert": p.path("{node}.crt"),
		"consensus.peer_tls.key": p.path("{node}.key"), "server.tls_client_auth": mode,
	}
	if mode != string(auth.ClientAuthNone) {
		k["server.tls_client_ca"] = p.path("clients-ca.crt")
	}
	return k
}

// clientTLS trusts the nodes' CA and shows cert (nil: none).
func (p *testPKI) clientTLS(cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{RootCAs: p.nodes.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// try sends one request on a fresh connection and returns the status; err
// is a failure before any answer (a refused handshake).
func try(cfg *tls.Config, method, url string, header map[string]string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// fakePeer stands in for a node on its pgquorum address, as a small server
// an attacker (or a mistake) could start there: it grants every vote in the
// node's name and answers /state as a standby of that name, over TLS with
// cert when set, signing its answers with sign when set. It keeps every
// request it got.
type fakePeer struct {
	srv  *http.Server
	mu   sync.Mutex
	seen []string // every request, headers and body
	asks int      // vote requests
}

func startFakePeer(t *testing.T, n *lab.Node, cert *tls.Certificate, sign auth.Secret) *fakePeer {
	t.Helper()
	f := &fakePeer{}
	var signer *auth.PeerToken
	if sign != "" {
		signer = auth.NewPeerToken(sign, nil, nil)
	}
	f.srv = &http.Server{ReadHeaderTimeout: 2 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			dump, _ := httputil.DumpRequest(r, true)
			var req api.VoteRequest
			_, body, _ := bytes.Cut(dump, []byte("\r\n\r\n"))
			_ = json.Unmarshal(body, &req)
			status, answer := http.StatusOK, []byte(nil)
			switch r.URL.Path {
			case api.PathVote:
				answer, _ = json.Marshal(api.VoteAnswer{Protocol: api.VoteProtocol, Voter: n.Name, VoterID: n.ID, VoterType: "standby",
					SystemID: req.SystemID, Timeline: req.Timeline, Candidate: req.Candidate, Granted: true, Reason: "fake", LeaseMillis: 60000})
			default:
				status = http.StatusAccepted
				answer, _ = json.Marshal(api.StateBody{State: api.StateStandby, Node: n.Name})
			}
			f.mu.Lock()
			f.seen = append(f.seen, string(dump))
			if r.URL.Path == api.PathVote {
				f.asks++
			}
			f.mu.Unlock()
			if signer != nil {
				signer.SignAnswer(w.Header(), r.Header.Get(api.HeaderPeerNonce), status, answer)
			}
			w.WriteHeader(status)
			_, _ = w.Write(answer)
		})}
	var ln net.Listener
	addr := net.JoinHostPort(n.Host, strconv.Itoa(n.QuorumPort))
	err := lab.WaitFor(context.Background(), 5*time.Second, "the fake's port", func(context.Context) error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if cert != nil {
		f.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
		ln = tls.NewListener(ln, f.srv.TLSConfig)
	}
	go func() { _ = f.srv.Serve(ln) }()
	t.Cleanup(f.stop)
	return f
}

func (f *fakePeer) stop() { _ = f.srv.Close() }

func (f *fakePeer) voteRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asks
}

func (f *fakePeer) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.seen...)
}

// peerAddr is n's pgquorum address as its peers poll it.
func peerAddr(n *lab.Node) string { return fmt.Sprintf("%s:%d", n.Host, n.QuorumPort) }

// allVotes is node1's verdict once every node of a three-node site vouches
// for it.
func allVotes(status int, b api.StateBody) bool { return status == 200 && b.ClusterVotes == 3 }

// startTLSCluster starts three nodes serving HTTPS in client-auth mode,
// polling each other over mutual TLS, the lab's own requests showing
// labCert (nil: none), and waits for node1's 200 with every vote.
func startTLSCluster(t *testing.T, mode string, labCert func(p *testPKI) *tls.Certificate) (*testPKI, *lab.Cluster) {
	t.Helper()
	p := newTestPKI(t, "node1", "node2", "node3")
	var cert *tls.Certificate
	if labCert != nil {
		cert = labCert(p)
	}
	c := startClusterWith(t, lab.Options{Nodes: threeNodes("dc1"), Quorum: p.keys(mode), QuorumTLS: p.clientTLS(cert)})
	waitVerdict(t, c.Node("node1"), "200 with all 3 votes over mutual TLS", allVotes)
	return p, c
}
