package auth

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// clock is a settable time for the signer under test.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestVerifyRequest(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	body := []byte(`{"candidate":"node1"}`)
	tests := []struct {
		name    string
		signer  Secret        // token of the sender
		skew    time.Duration // sender's clock minus the server's
		tamper  func(r *http.Request, body *[]byte)
		replay  bool // the same request a second time
		wantErr error
	}{
		{name: "signed with the token verifies", signer: "peer-token-000001"},
		{name: "clock 29s ahead still verifies", signer: "peer-token-000001", skew: 29 * time.Second},
		{name: "other token is bad", signer: "peer-token-000002", wantErr: ErrBadCredentials},
		{name: "no headers at all is none", signer: "peer-token-000001", wantErr: ErrNoCredentials,
			tamper: func(r *http.Request, _ *[]byte) {
				r.Header.Del(api.HeaderPeerNonce)
				r.Header.Del(api.HeaderPeerTime)
				r.Header.Del(api.HeaderPeerMAC)
			}},
		{name: "MAC alone missing is bad", signer: "peer-token-000001", wantErr: ErrBadCredentials,
			tamper: func(r *http.Request, _ *[]byte) { r.Header.Del(api.HeaderPeerMAC) }},
		{name: "body changed is bad", signer: "peer-token-000001", wantErr: ErrBadCredentials,
			tamper: func(_ *http.Request, b *[]byte) { *b = []byte(`{"candidate":"node3"}`) }},
		{name: "path changed is bad", signer: "peer-token-000001", wantErr: ErrBadCredentials,
			tamper: func(r *http.Request, _ *[]byte) { r.URL.Path = api.PathReport }},
		{name: "method changed is bad", signer: "peer-token-000001", wantErr: ErrBadCredentials,
			tamper: func(r *http.Request, _ *[]byte) { r.Method = http.MethodPut }},
		{name: "time changed is bad", signer: "peer-token-000001", wantErr: ErrBadCredentials,
			tamper: func(r *http.Request, _ *[]byte) { r.Header.Set(api.HeaderPeerTime, "1") }},
		{name: "malformed nonce is bad", signer: "peer-token-000001", wantErr: ErrBadCredentials,
			tamper: func(r *http.Request, _ *[]byte) { r.Header.Set(api.HeaderPeerNonce, "zz") }},
		{name: "clock 31s behind is bad", signer: "peer-token-000001", skew: -31 * time.Second, wantErr: ErrBadCredentials},
		{name: "replayed request is bad", signer: "peer-token-000001", replay: true, wantErr: ErrBadCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serverClock := &clock{t0}
			server := NewPeerToken("peer-token-000001", serverClock.now, nil)
			sender := NewPeerToken(tt.signer, func() time.Time { return t0.Add(tt.skew) }, nil)
			req := httptest.NewRequest(http.MethodPost, api.PathVote, nil)
			if _, err := sender.SignRequest(req, body); err != nil {
				t.Fatal(err)
			}
			b := body
			if tt.tamper != nil {
				tt.tamper(req, &b)
			}
			if tt.replay {
				if _, err := server.VerifyRequest(req.Method, req.URL.RequestURI(), req.Header, b); err != nil {
					t.Fatalf("first use: %v", err)
				}
				serverClock.t = t0.Add(10 * time.Second)
			}
			nonce, err := server.VerifyRequest(req.Method, req.URL.RequestURI(), req.Header, b)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("VerifyRequest: %v, want %v", err, tt.wantErr)
			}
			if err == nil && nonce != req.Header.Get(api.HeaderPeerNonce) {
				t.Errorf("nonce %q, want the request's", nonce)
			}
		})
	}
}

func TestVerifyAnswer(t *testing.T) {
	const nonce = "00112233445566778899aabbccddeeff"
	body := []byte(`{"State":"Unknown"}`)
	tests := []struct {
		name    string
		signer  Secret
		nonce   string // the nonce the answer was signed with
		status  int    // the status it was signed with
		body    []byte // the body it was signed with
		unsign  bool
		wantErr error
	}{
		{name: "answer to this request verifies", signer: "peer-token-000001", nonce: nonce, status: 509, body: body},
		{name: "unsigned answer is none", signer: "peer-token-000001", nonce: nonce, status: 509, body: body, unsign: true, wantErr: ErrNoCredentials},
		{name: "answer of a fake server with another token is bad", signer: "not-the-token-0001", nonce: nonce, status: 509, body: body, wantErr: ErrBadCredentials},
		{name: "answer to another request is bad", signer: "peer-token-000001", nonce: "ffeeddccbbaa99887766554433221100", status: 509, body: body, wantErr: ErrBadCredentials},
		{name: "509 turned into 200 on the way is bad", signer: "peer-token-000001", nonce: nonce, status: 200, body: body, wantErr: ErrBadCredentials},
		{name: "body changed on the way is bad", signer: "peer-token-000001", nonce: nonce, status: 509, body: []byte(`{"State":"Primary"}`), wantErr: ErrBadCredentials},
	}
	client := NewPeerToken("peer-token-000001", nil, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if !tt.unsign {
				NewPeerToken(tt.signer, nil, nil).SignAnswer(h, tt.nonce, tt.status, tt.body)
			}
			err := client.VerifyAnswer(nonce, 509, h, body)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("VerifyAnswer: %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestMACPartsAreUnambiguous(t *testing.T) {
	p := NewPeerToken("peer-token-000001", nil, nil)
	if bytes.Equal(p.mac(labelAnswer, []byte("ab"), []byte("c")), p.mac(labelAnswer, []byte("a"), []byte("bc"))) {
		t.Error("moving a byte between parts gives the same MAC")
	}
	if bytes.Equal(p.mac(labelRequest, []byte("x")), p.mac(labelAnswer, []byte("x"))) {
		t.Error("a request MAC equals an answer MAC over the same parts")
	}
}

func TestReplayCacheForgetsOutsideTheWindow(t *testing.T) {
	c := &clock{time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)}
	p := NewPeerToken("peer-token-000001", c.now, nil)
	for i := range 1000 {
		req := httptest.NewRequest(http.MethodGet, api.PathState, nil)
		if _, err := p.SignRequest(req, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := p.VerifyRequest(req.Method, req.URL.RequestURI(), req.Header, nil); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		c.t = c.t.Add(100 * time.Millisecond)
	}
	p.mu.Lock()
	n := len(p.seen)
	p.mu.Unlock()
	// 100 s of requests, of which the last 30 s (+1 s of pruning) remain.
	if n > 320 {
		t.Errorf("%d nonces remembered, want those of the last window only (≈300)", n)
	}
}
