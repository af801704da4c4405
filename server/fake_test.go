package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// fakeVerdicts is the Verdicts the handlers read, set by each test.
type fakeVerdicts struct {
	mu          sync.Mutex
	snapshot    *consensus.Snapshot
	facts       *consensus.Snapshot
	realPrimary consensus.RealPrimaryResult
	nodes       []repmgr.Node
	answers     map[string]consensus.StateAnswer
	splitBrain  bool
	vote        api.VoteAnswer
	voteReq     *api.VoteRequest
}

func (f *fakeVerdicts) Snapshot(context.Context) *consensus.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snapshot
}

func (f *fakeVerdicts) Facts(context.Context) *consensus.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.facts
}

func (f *fakeVerdicts) Survey(context.Context) consensus.Survey {
	f.mu.Lock()
	defer f.mu.Unlock()
	return consensus.Survey{Nodes: f.nodes, Answers: f.answers, RealPrimary: f.realPrimary, SplitBrain: f.splitBrain}
}

func (f *fakeVerdicts) Vote(_ context.Context, req api.VoteRequest) api.VoteAnswer {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.voteReq = &req
	return f.vote
}

func (f *fakeVerdicts) setSnapshot(s *consensus.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snapshot = s
}

// response is what a real HTTP client saw: HEAD bodies are dropped by
// net/http's server, which a ResponseRecorder would not show.
type response struct {
	status int
	header http.Header
	body   string
}

// startServer serves s over a real loopback listener.
func startServer(t *testing.T, s *Server) string {
	t.Helper()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

func do(t *testing.T, method, url string) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

var checkMethodsUnderTest = []string{http.MethodGet, http.MethodHead, http.MethodOptions}
