package server

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/auth/testpki"
)

const adminToken = "admin-token-0123456789"

// testCerts are the client certificates the cases present: signed by the
// client CA, by the peer CA, or by a CA nobody configured.
type testCerts struct {
	store                         *auth.Store
	ops, bob, node2, strangerOps  *x509.Certificate
	peerCertNamedOps, clientNode2 *x509.Certificate
}

func newTestCerts(t *testing.T) testCerts {
	t.Helper()
	dir := t.TempDir()
	mk := func(name string) *testpki.CA {
		ca, err := testpki.NewCA(name)
		if err != nil {
			t.Fatal(err)
		}
		return ca
	}
	clientCA, peerCA, stranger := mk("clients"), mk("peers"), mk("stranger")
	issue := func(ca *testpki.CA, name string) *testpki.Leaf {
		l, err := ca.Issue(testpki.Options{CN: name, DNS: []string{name}})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	self := issue(peerCA, "node1")
	cert, key, err := self.Write(dir, "node1")
	if err != nil {
		t.Fatal(err)
	}
	clientFile, _ := clientCA.Write(dir, "clients")
	peerFile, _ := peerCA.Write(dir, "peers")
	store, err := auth.NewStore(auth.Files{Node: "node1", ServerCert: cert, ServerKey: key, ClientCA: clientFile,
		PeerCA: peerFile, PeerCert: cert, PeerKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return testCerts{store: store, ops: issue(clientCA, "ops").Cert, bob: issue(clientCA, "bob").Cert,
		node2: issue(peerCA, "node2").Cert, strangerOps: issue(stranger, "ops").Cert,
		peerCertNamedOps: issue(peerCA, "ops").Cert, clientNode2: issue(clientCA, "node2").Cert}
}

// authCase is one request and what must come of it.
type authCase struct {
	name       string
	method     string
	path       string
	remote     string            // default 10.0.0.9:40000
	cert       *x509.Certificate // client certificate of the connection
	header     map[string]string
	sign       auth.Secret // sign the request with this peer token
	wantStatus int
	wantAct    bool // the action (agent override) was reached
}

// serveCase runs c against a server with opts, whose action records that it
// was reached, and returns the answer.
func serveCase(t *testing.T, opts AuthOptions, c authCase) *httptest.ResponseRecorder {
	t.Helper()
	var acted atomic.Int32
	agent := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acted.Add(1)
		w.WriteHeader(http.StatusOK)
	})
	fake := &fakeVerdicts{snapshot: snapshotIn(api.StateStandby, 0, 2), vote: api.VoteAnswer{Protocol: 1, Voter: "node1"}}
	s := New(Options{AgentAdmin: agent, Auth: opts}, fake)
	req := httptest.NewRequest(c.method, c.path, strings.NewReader(`{"protocol":1,"candidate":"node2"}`))
	req.RemoteAddr = "10.0.0.9:40000"
	if c.remote != "" {
		req.RemoteAddr = c.remote
	}
	if c.cert != nil {
		req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.cert}}
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	var nonce string
	if c.sign != "" {
		var err error
		if nonce, err = auth.NewPeerToken(c.sign, nil, nil).SignRequest(req, []byte(`{"protocol":1,"candidate":"node2"}`)); err != nil {
			t.Fatal(err)
		}
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != c.wantStatus {
		t.Errorf("status %d, want %d: %s", rec.Code, c.wantStatus, rec.Body)
	}
	if got := acted.Load() > 0; got != c.wantAct {
		t.Errorf("action reached: %t, want %t", got, c.wantAct)
	}
	if rec.Code == http.StatusUnauthorized && rec.Header().Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	if c.sign != "" && opts.PeerToken != nil && rec.Code == http.StatusOK {
		if err := opts.PeerToken.VerifyAnswer(nonce, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
			t.Errorf("answer to a signed request does not verify: %v", err)
		}
	}
	return rec
}

// authGroup is a server configuration and the requests to try on it.
type authGroup struct {
	name  string
	opts  AuthOptions
	cases []authCase
}

// request names a case of method on path.
func request(method, path string) func(name string, c authCase) authCase {
	return func(name string, c authCase) authCase {
		c.name, c.method, c.path = name, method, path
		return c
	}
}

func runAuthGroups(t *testing.T, groups []authGroup) {
	t.Helper()
	for _, g := range groups {
		for _, c := range g.cases {
			t.Run(g.name+"/"+c.name, func(t *testing.T) { serveCase(t, g.opts, c) })
		}
	}
}

func TestActionsNeedAdminCredentials(t *testing.T) {
	certs := newTestCerts(t)
	put := request(http.MethodPut, api.PathAgent+"/drain")
	bearer := func(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }
	runAuthGroups(t, []authGroup{
		{"nothing configured: loopback only", AuthOptions{}, []authCase{
			put("from loopback", authCase{remote: "127.0.0.1:40000", wantStatus: 200, wantAct: true}),
			put("from another loopback address", authCase{remote: "127.0.0.2:40000", wantStatus: 200, wantAct: true}),
			put("from IPv6 loopback", authCase{remote: "[::1]:40000", wantStatus: 200, wantAct: true}),
			put("from elsewhere is refused", authCase{wantStatus: 403}),
			put("from elsewhere with a token is refused", authCase{header: bearer(adminToken), wantStatus: 403}),
			put("cross-origin from loopback is refused", authCase{remote: "127.0.0.1:40000", header: map[string]string{"Origin": "http://evil.example"}, wantStatus: 403}),
			{name: "GET of the override is loopback only too", method: http.MethodGet, path: api.PathAgent, wantStatus: 403},
		}},
		{"admin token", AuthOptions{AdminToken: adminToken}, []authCase{
			put("the token from elsewhere", authCase{header: bearer(adminToken), wantStatus: 200, wantAct: true}),
			put("scheme in lower case", authCase{header: map[string]string{"Authorization": "bearer " + adminToken}, wantStatus: 200, wantAct: true}),
			put("nothing, even from loopback, is 401", authCase{remote: "127.0.0.1:40000", wantStatus: 401}),
			put("wrong token is 403", authCase{header: bearer(adminToken + "x"), wantStatus: 403}),
			put("empty token is 403", authCase{header: bearer(""), wantStatus: 403}),
			put("basic auth is 403", authCase{header: map[string]string{"Authorization": "Basic " + adminToken}, wantStatus: 403}),
			put("cross-origin with the token is refused", authCase{header: map[string]string{"Authorization": "Bearer " + adminToken, "Origin": "http://x"}, wantStatus: 403}),
			put("signed by the peer token is no admin credential", authCase{sign: "peer-token-0123456789", wantStatus: 401}),
		}},
		{"admin clients", AuthOptions{TLS: certs.store, AdminClients: []string{"ops"}}, []authCase{
			put("certificate of ops from the client CA", authCase{cert: certs.ops, wantStatus: 200, wantAct: true}),
			put("certificate of bob from the client CA is 403", authCase{cert: certs.bob, wantStatus: 403}),
			put("certificate of ops from an unknown CA is 403", authCase{cert: certs.strangerOps, wantStatus: 403}),
			put("certificate of ops from the peer CA is 403", authCase{cert: certs.peerCertNamedOps, wantStatus: 403}),
			put("no certificate is 401", authCase{wantStatus: 401}),
		}},
	})
}

func TestChecksNeedCredentialsOnlyWhenRequired(t *testing.T) {
	certs := newTestCerts(t)
	token := auth.NewPeerToken("peer-token-0123456789", nil, nil)
	get := request(http.MethodGet, api.PathState)
	open := AuthOptions{TLS: certs.store, AdminToken: adminToken}
	closed := AuthOptions{TLS: certs.store, AdminToken: adminToken, RequireAuthChecks: true, PeerTLS: true, PeerToken: token}
	runAuthGroups(t, []authGroup{
		{"open by default", open, []authCase{get("no credential", authCase{wantStatus: 202})}},
		{"require_auth_for_checks", closed, []authCase{
			get("no credential is 401", authCase{wantStatus: 401}),
			get("wrong token is 403", authCase{header: map[string]string{"Authorization": "Bearer nope"}, wantStatus: 403}),
			get("certificate of an unknown CA is 403", authCase{cert: certs.strangerOps, wantStatus: 403}),
			get("admin token", authCase{header: map[string]string{"Authorization": "Bearer " + adminToken}, wantStatus: 202}),
			get("any certificate of the client CA (HAProxy's)", authCase{cert: certs.bob, wantStatus: 202}),
			get("a peer's certificate", authCase{cert: certs.node2, wantStatus: 202}),
			get("a request signed with the peer token", authCase{sign: "peer-token-0123456789", wantStatus: 202}),
			get("a request signed with another token is 403", authCase{sign: "peer-token-9876543210", wantStatus: 403}),
		}},
	})
}

func TestPeersEndpointsNeedPeerCredentials(t *testing.T) {
	certs := newTestCerts(t)
	token := auth.NewPeerToken("peer-token-0123456789", nil, nil)
	vote := request(http.MethodPost, api.PathVote)
	runAuthGroups(t, []authGroup{
		{"nothing configured: open", AuthOptions{}, []authCase{vote("anyone", authCase{wantStatus: 200})}},
		{"peer TLS", AuthOptions{TLS: certs.store, PeerTLS: true}, []authCase{
			vote("a peer's certificate", authCase{cert: certs.node2, wantStatus: 200}),
			vote("no certificate is 401", authCase{wantStatus: 401}),
			vote("a client CA certificate is 403", authCase{cert: certs.clientNode2, wantStatus: 403}),
			vote("the admin token is no peer credential", authCase{header: map[string]string{"Authorization": "Bearer " + adminToken}, wantStatus: 401}),
		}},
		{"peer token", AuthOptions{PeerToken: token}, []authCase{
			vote("signed with the token, answer signed", authCase{sign: "peer-token-0123456789", wantStatus: 200}),
			vote("unsigned is 401", authCase{wantStatus: 401}),
			vote("signed with another token is 403", authCase{sign: "peer-token-9876543210", wantStatus: 403}),
		}},
		{"both", AuthOptions{TLS: certs.store, PeerTLS: true, PeerToken: token}, []authCase{
			vote("certificate and signature", authCase{cert: certs.node2, sign: "peer-token-0123456789", wantStatus: 200}),
			vote("signature without certificate is 401", authCase{sign: "peer-token-0123456789", wantStatus: 401}),
			vote("certificate without signature is 401", authCase{cert: certs.node2, wantStatus: 401}),
		}},
	})
}

// TestReplayedPeerRequestIsRefused: the same signed request twice; the
// second is a replay.
func TestReplayedPeerRequestIsRefused(t *testing.T) {
	token := auth.NewPeerToken("peer-token-0123456789", nil, nil)
	s := New(Options{Auth: AuthOptions{PeerToken: token}}, &fakeVerdicts{vote: api.VoteAnswer{Protocol: 1}})
	body := `{"protocol":1,"candidate":"node2"}`
	req := httptest.NewRequest(http.MethodPost, api.PathVote, strings.NewReader(body))
	if _, err := auth.NewPeerToken("peer-token-0123456789", nil, nil).SignRequest(req, []byte(body)); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{200, 403} {
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(strings.NewReader(body))
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, r)
		if rec.Code != want {
			t.Errorf("request %d: status %d, want %d: %s", i+1, rec.Code, want, rec.Body)
		}
	}
}
