package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/auth"
)

// TestVoteOnlyFromTheCandidate: with peer TLS, a vote request whose client
// certificate does not name its candidate is refused before the vote is
// asked (no lease taken), naming both; the peer token, shared by every
// node, names nobody, so it binds only the request's body.
func TestVoteOnlyFromTheCandidate(t *testing.T) {
	certs := newTestCerts(t)
	const secret = "peer-token-0123456789"
	token := auth.NewPeerToken(secret, nil, nil)
	tests := []struct {
		name      string
		opts      AuthOptions
		cert      *x509.Certificate
		sign      bool
		candidate string
		wantVoted bool // the request reached the voter
	}{
		{name: "peer TLS: node2 asks for node2", opts: AuthOptions{TLS: certs.store, PeerTLS: true}, cert: certs.node2, candidate: "node2", wantVoted: true},
		{name: "peer TLS: node2 asks for node3", opts: AuthOptions{TLS: certs.store, PeerTLS: true}, cert: certs.node2, candidate: "node3"},
		{name: "peer TLS: node2 asks for Node2", opts: AuthOptions{TLS: certs.store, PeerTLS: true}, cert: certs.node2, candidate: "Node2"},
		{name: "peer TLS and token: node2 asks for node3", opts: AuthOptions{TLS: certs.store, PeerTLS: true, PeerToken: token}, cert: certs.node2, sign: true, candidate: "node3"},
		{name: "peer TLS and token: node2 asks for node2", opts: AuthOptions{TLS: certs.store, PeerTLS: true, PeerToken: token}, cert: certs.node2, sign: true, candidate: "node2", wantVoted: true},
		{name: "peer token only: the signed body names the candidate", opts: AuthOptions{PeerToken: token}, sign: true, candidate: "node3", wantVoted: true},
		{name: "nothing configured: open", candidate: "node3", wantVoted: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeVerdicts{vote: api.VoteAnswer{Protocol: api.VoteProtocol, Voter: "node1", Candidate: tt.candidate, Granted: true}}
			s := New(Options{Self: "node1", Auth: tt.opts}, fake)
			body := `{"protocol":1,"candidate":"` + tt.candidate + `"}`
			req := httptest.NewRequest(http.MethodPost, api.PathVote, strings.NewReader(body))
			if tt.cert != nil {
				req.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{tt.cert}}
			}
			if tt.sign {
				if _, err := auth.NewPeerToken(secret, nil, nil).SignRequest(req, []byte(body)); err != nil {
					t.Fatal(err)
				}
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want 200: %s", rec.Code, rec.Body)
			}
			var a api.VoteAnswer
			if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
				t.Fatal(err)
			}
			voted := fake.voteReq != nil
			if voted != tt.wantVoted || a.Granted != tt.wantVoted {
				t.Fatalf("voter asked %v, granted %v; want %v: %+v", voted, a.Granted, tt.wantVoted, a)
			}
			if !tt.wantVoted && (a.Voter != "node1" || a.Candidate != tt.candidate || !strings.Contains(a.Reason, "node2") ||
				!strings.Contains(a.Reason, tt.candidate) || a.Protocol != api.VoteProtocol) {
				t.Errorf("refusal %+v: want it from node1 about %s, naming node2 and %s", a, tt.candidate, tt.candidate)
			}
		})
	}
}
