package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// peerServer starts an httptest server answering every path with h. Handlers
// that stall must also return when release closes, so Close never waits.
func peerServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, release <-chan struct{})) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h(w, r, release) }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	return srv.Listener.Addr().String()
}

func answer(status int, body string) func(http.ResponseWriter, *http.Request, <-chan struct{}) {
	return func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func stallBeforeHeaders(_ http.ResponseWriter, r *http.Request, release <-chan struct{}) {
	select {
	case <-r.Context().Done():
	case <-release:
	}
}

func stallInBody(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"voter":`))
	w.(http.Flusher).Flush()
	stallBeforeHeaders(w, r, release)
}

// voteBody is a valid vote answer from n2 for n1.
const voteBody = `{"protocol":1,"voter":"n2","voter_id":2,"voter_type":"standby","system_identifier":"1","timeline":1,"candidate":"n1","granted":true,"reason":"ok"}`

// padded is voteBody padded with spaces to size bytes.
func padded(size int) string {
	return voteBody + strings.Repeat(" ", size-len(voteBody))
}

func TestPeersVote(t *testing.T) {
	tests := []struct {
		name      string
		handler   func(http.ResponseWriter, *http.Request, <-chan struct{})
		wantVoter string
		wantErr   string
	}{
		{name: "200 with an answer", handler: answer(200, voteBody), wantVoter: "n2"},
		{name: "body of exactly 4 KiB is read", handler: answer(200, padded(4<<10)), wantVoter: "n2"},
		{name: "200 with garbage is an error", handler: answer(200, `<html>hello</html>`), wantErr: "decode"},
		{name: "200 with an unknown field is an error", handler: answer(200, `{"voter":"n2","vote":"n1"}`), wantErr: "unknown field"},
		{name: "200 with two answers is an error", handler: answer(200, voteBody+voteBody), wantErr: "trailing data"},
		{name: "200 with a wrong type is an error", handler: answer(200, `{"granted":"yes"}`), wantErr: "decode"},
		{name: "body over 4 KiB is an error", handler: answer(200, padded(4<<10+1)), wantErr: "larger than 4096 bytes"},
		{name: "huge body is an error", handler: answer(200, padded(1<<20)), wantErr: "larger than 4096 bytes"},
		{name: "503 is an error", handler: answer(503, voteBody), wantErr: "unexpected status 503"},
		{name: "headers never sent: bounded by ctx", handler: stallBeforeHeaders, wantErr: "deadline exceeded"},
		{name: "body never finishes: bounded by ctx", handler: stallInBody, wantErr: "deadline exceeded"},
	}
	peers := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got api.VoteRequest
			addr := peerServer(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
				if r.Method != http.MethodPost || r.URL.Path != api.PathVote || json.NewDecoder(r.Body).Decode(&got) != nil {
					http.Error(w, "bad request", http.StatusBadRequest)
					return
				}
				tt.handler(w, r, release)
			})
			a, took, err := askVote(peers, addr)
			if took >= 10*testPeerTimeout {
				t.Errorf("Vote took %s, want well under %s", took, 10*testPeerTimeout)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || a != nil {
					t.Fatalf("Vote = %+v, %v; want no answer and an error containing %q", a, err, tt.wantErr)
				}
				return
			}
			if err != nil || a == nil || a.Voter != tt.wantVoter || !a.Granted {
				t.Errorf("Vote = %+v, %v; want a granted answer from %q", a, err, tt.wantVoter)
			}
			if got != testRequest {
				t.Errorf("peer received %+v, want %+v", got, testRequest)
			}
		})
	}
}

// testPeerTimeout is the deadline of each exchange in these tests.
const testPeerTimeout = 100 * time.Millisecond

var testRequest = api.VoteRequest{Protocol: api.VoteProtocol, Candidate: "n1", CandidateID: 1, SystemID: "1", Timeline: 1}

func askVote(p *Client, addr string) (*api.VoteAnswer, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), testPeerTimeout)
	defer cancel()
	start := time.Now()
	a, err := p.Vote(ctx, addr, testRequest)
	return a, time.Since(start), err
}

// askState asks addr's /state within testPeerTimeout and fails t when the
// answer took 10× that: a correctness bound on a shared machine.
func askState(t *testing.T, p *Client, addr string) (int, *api.StateBody, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testPeerTimeout)
	defer cancel()
	start := time.Now()
	status, body, err := p.State(ctx, addr)
	if took := time.Since(start); took >= 10*testPeerTimeout {
		t.Errorf("State took %s, want well under %s", took, 10*testPeerTimeout)
	}
	return status, body, err
}

// TestPeersDoNotFollowRedirects: a peer answers for itself; the target
// of its redirect, which would name n9, must never be asked.
func TestPeersDoNotFollowRedirects(t *testing.T) {
	var targetHits atomic.Int32
	target := peerServer(t, func(w http.ResponseWriter, _ *http.Request, _ <-chan struct{}) {
		targetHits.Add(1)
		_, _ = w.Write([]byte(voteBody))
	})
	redirector := peerServer(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
		http.Redirect(w, r, "http://"+target+r.URL.Path, http.StatusFound)
	})
	peers := New(Options{})
	a, _, err := askVote(peers, redirector)
	if a != nil || err == nil || !strings.Contains(err.Error(), "unexpected status 302") {
		t.Errorf("Vote via redirect = %+v, %v; want no answer and a 302 error", a, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testPeerTimeout)
	defer cancel()
	if status, _, err := peers.State(ctx, redirector); status != http.StatusFound || err != nil {
		t.Errorf("State via redirect = %d, %v; want 302 itself", status, err)
	}
	if n := targetHits.Load(); n != 0 {
		t.Errorf("redirect target asked %d times, want never", n)
	}
}

func TestPeersState(t *testing.T) {
	tests := []struct {
		name       string
		handler    func(http.ResponseWriter, *http.Request, <-chan struct{})
		wantStatus int
		wantState  api.State // "" when the body must not decode
		wantErr    string
	}{
		{name: "200 primary", handler: answer(200, `{"State":"Primary"}`), wantStatus: 200, wantState: api.StatePrimary},
		{name: "202 standby", handler: answer(202, `{"State":"Standby"}`), wantStatus: 202, wantState: api.StateStandby},
		{name: "503 down", handler: answer(503, `{"State":"Down"}`), wantStatus: 503, wantState: api.StateDown},
		{name: "509 unknown", handler: answer(api.StatusUnknown, `{"State":"Unknown"}`), wantStatus: api.StatusUnknown, wantState: api.StateUnknown},
		{name: "huge body still gives its status", handler: answer(200, strings.Repeat("x", 1<<20)), wantStatus: 200},
		{name: "garbage body still gives its status", handler: answer(202, "not json"), wantStatus: 202},
		{name: "headers never sent: bounded by ctx", handler: stallBeforeHeaders, wantErr: "deadline exceeded"},
		{name: "body never finishes: bounded by ctx", handler: stallInBody, wantErr: "deadline exceeded"},
	}
	peers := New(Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := peerServer(t, func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
				if r.URL.Path != api.PathState {
					http.NotFound(w, r)
					return
				}
				tt.handler(w, r, release)
			})
			status, body, err := askState(t, peers, addr)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("State = %d, %v; want an error containing %q", status, err, tt.wantErr)
				}
				return
			}
			if err != nil || status != tt.wantStatus {
				t.Errorf("State = %d, %v; want %d", status, err, tt.wantStatus)
			}
			switch {
			case tt.wantState == "" && body != nil:
				t.Errorf("body decoded as %+v, want none", body)
			case tt.wantState != "" && (body == nil || body.State != tt.wantState):
				t.Errorf("body = %+v, want State %s", body, tt.wantState)
			}
		})
	}
}

func TestPeersUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close() // nothing listens there any more
	peers := New(Options{})
	if a, _, err := askVote(peers, addr); a != nil || err == nil {
		t.Errorf("Vote of a closed port = %+v, %v; want an error", a, err)
	}
	if _, _, err := peers.State(context.Background(), addr); err == nil {
		t.Error("State of a closed port gave no error")
	}
}
