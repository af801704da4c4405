package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/auth/testpki"
)

// tlsPeer serves body over HTTPS with a certificate that ca issued for name.
func tlsPeer(t *testing.T, ca *testpki.CA, name, body string) string {
	return tlsPeerStatus(t, ca, name, http.StatusOK, body)
}

func tlsPeerStatus(t *testing.T, ca *testpki.CA, name string, status int, body string) string {
	t.Helper()
	leaf, err := ca.Node(name)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := leaf.TLS()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// peerStore is node1's TLS material, of ca.
func peerStore(t *testing.T, ca *testpki.CA) *auth.Store {
	t.Helper()
	dir := t.TempDir()
	leaf, err := ca.Node("node1")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := leaf.Write(dir, "node1")
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.Write(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	s, err := auth.NewStore(auth.Files{Node: "node1", PeerCA: caFile, PeerCert: cert, PeerKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// voteOf is a vote answer of voter for node1.
func voteOf(voter string) string {
	return `{"protocol":1,"voter":"` + voter + `","voter_id":2,"voter_type":"standby","system_identifier":"1","timeline":1,"candidate":"node1","granted":true,"reason":"ok"}`
}

func TestPeersVoteOverTLSChecksTheCertificate(t *testing.T) {
	ours, theirs := mustCA(t), mustCA(t)
	tests := []struct {
		name    string
		addr    string
		wantErr bool
	}{
		{"node2's certificate, answering as node2", tlsPeer(t, ours, "node2", voteOf("node2")), false},
		{"node3's certificate, answering as node2", tlsPeer(t, ours, "node3", voteOf("node2")), true},
		{"node2's certificate from another CA", tlsPeer(t, theirs, "node2", voteOf("node2")), true},
	}
	peers := New(Options{TLS: peerStore(t, ours).PeerClientTLS(), CheckNames: true})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			a, err := peers.Vote(ctx, tt.addr, api.VoteRequest{Protocol: 1, Candidate: "node1"})
			if tt.wantErr {
				if !errors.Is(err, ErrUnauthenticated) || a != nil {
					t.Fatalf("Vote = %+v, %v; want no answer, ErrUnauthenticated", a, err)
				}
				return
			}
			if err != nil || a.Voter != "node2" {
				t.Fatalf("Vote = %+v, %v; want node2's vote", a, err)
			}
		})
	}
}

func mustCA(t *testing.T) *testpki.CA {
	t.Helper()
	ca, err := testpki.NewCA("peers")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// tokenPeer answers body to requests that verify with serverToken, signing
// the answer with signer ("" leaves it unsigned).
func tokenPeer(t *testing.T, serverToken, signer auth.Secret, status int, body string) string {
	t.Helper()
	verifier := auth.NewPeerToken(serverToken, nil, nil)
	return peerServer(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		reqBody, _ := io.ReadAll(r.Body)
		nonce, err := verifier.VerifyRequest(r.Method, r.URL.RequestURI(), r.Header, reqBody)
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if signer != "" {
			auth.NewPeerToken(signer, nil, nil).SignAnswer(w.Header(), nonce, status, []byte(body))
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
}

func TestPeersWithTokenCountOnlySignedAnswers(t *testing.T) {
	const token = auth.Secret("peer-token-0123456789")
	tests := []struct {
		name    string
		addr    string
		wantErr bool
	}{
		{"answer signed with the token", tokenPeer(t, token, token, 200, voteOf("node2")), false},
		{"fake server without the token: unsigned", tokenPeer(t, token, "", 200, voteOf("node2")), true},
		{"fake server with another token", tokenPeer(t, token, "peer-token-9876543210", 200, voteOf("node2")), true},
		{"peer that refuses our signature", tokenPeer(t, "peer-token-9876543210", token, 200, voteOf("node2")), true},
	}
	peers := New(Options{PeerToken: auth.NewPeerToken(token, nil, nil)})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			a, err := peers.Vote(ctx, tt.addr, api.VoteRequest{Protocol: 1, Candidate: "node1"})
			if (err != nil) != tt.wantErr || (tt.wantErr && !errors.Is(err, ErrUnauthenticated)) {
				t.Fatalf("Vote = %+v, %v; want error %t (ErrUnauthenticated)", a, err, tt.wantErr)
			}
		})
	}
}

// TestUnauthenticatedPeerLoggedOnce: a peer polled every refresh without
// credentials makes one line, and one more when it authenticates again.
func TestUnauthenticatedPeerLoggedOnce(t *testing.T) {
	const token = auth.Secret("peer-token-0123456789")
	signer := token
	verifier := auth.NewPeerToken(token, nil, nil)
	good := make(chan bool, 1)
	good <- false
	addr := peerServer(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		ok := <-good
		good <- ok
		nonce, _ := verifier.VerifyRequest(r.Method, r.URL.RequestURI(), r.Header, nil)
		if ok {
			auth.NewPeerToken(signer, nil, nil).SignAnswer(w.Header(), nonce, 200, []byte(`{"State":"Standby","node":"node2"}`))
		}
		_, _ = io.WriteString(w, `{"State":"Standby","node":"node2"}`)
	})
	var logs bytes.Buffer
	peers := New(Options{PeerToken: auth.NewPeerToken(token, nil, nil), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ask := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _, err := peers.State(ctx, addr)
		return err
	}
	for range 5 {
		if err := ask(); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("State: %v, want ErrUnauthenticated", err)
		}
	}
	<-good
	good <- true
	if err := ask(); err != nil {
		t.Fatalf("State once signed: %v", err)
	}
	if n := strings.Count(logs.String(), "not authenticated"); n != 1 {
		t.Errorf("%d warnings for 5 unauthenticated answers, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "authenticated again") {
		t.Errorf("no line when the peer authenticated again:\n%s", logs.String())
	}
}

// TestPeersStateOverTLS: a 200 counts only when its body names the node
// the certificate names; a status that claims nothing (a node shutting down
// answers 503 without its name) is taken as it is.
func TestPeersStateOverTLS(t *testing.T) {
	ca := mustCA(t)
	tests := []struct {
		name       string
		status     int
		body       string
		wantStatus int
		wantErr    bool
	}{
		{"200 naming node2", 200, `{"State":"Primary","node":"node2"}`, 200, false},
		{"200 naming node3", 200, `{"State":"Primary","node":"node3"}`, 0, true},
		{"200 naming nobody", 200, `{"State":"Primary"}`, 0, true},
		{"200 that does not decode", 200, `<html>`, 0, true},
		{"503 of a node shutting down", 503, `{"State":"Down","reason":"pgquorum is shutting down"}`, 503, false},
	}
	peers := New(Options{TLS: peerStore(t, ca).PeerClientTLS(), CheckNames: true})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := tlsPeerStatus(t, ca, "node2", tt.status, tt.body)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			status, _, err := peers.State(ctx, addr)
			if status != tt.wantStatus || (err != nil) != tt.wantErr || (tt.wantErr && !errors.Is(err, ErrUnauthenticated)) {
				t.Fatalf("State = %d, %v; want %d, error %t", status, err, tt.wantStatus, tt.wantErr)
			}
		})
	}
}
