package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// expiringVerdicts is a Verdicts whose snapshot expires the moment the
// handler has fetched it, as if the machine paused while answering.
type expiringVerdicts struct {
	fakeVerdicts
	valid bool
}

func (f *expiringVerdicts) SnapshotWithin(ctx context.Context) *consensus.Snapshot {
	return f.Snapshot(ctx)
}
func (f *expiringVerdicts) Valid(*consensus.Snapshot) bool { return f.valid }

// TestStateNeverSendsAnExpired200: a 200 whose verdict expired while it
// was being answered goes out as a 509; other answers are as they were.
func TestStateNeverSendsAnExpired200(t *testing.T) {
	tests := []struct {
		name       string
		state      api.State
		valid      bool
		wantStatus int
		wantReason string
	}{
		{name: "Primary, still valid", state: api.StatePrimary, valid: true, wantStatus: 200},
		{name: "Primary, expired while answering", state: api.StatePrimary, wantStatus: 509, wantReason: "verdict expired while answering"},
		{name: "Standby, expired: a 202 grants nothing", state: api.StateStandby, wantStatus: 202},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &expiringVerdicts{fakeVerdicts: fakeVerdicts{snapshot: snapshotIn(tt.state, 2, 2)}, valid: tt.valid}
			r := do(t, http.MethodGet, startServer(t, New(Options{}, fake))+api.PathState)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			var b api.StateBody
			if err := json.Unmarshal([]byte(r.body), &b); err != nil {
				t.Fatal(err)
			}
			if tt.wantReason != "" && (!strings.Contains(b.Reason, tt.wantReason) || b.State != api.StateUnknown || b.Node != "n1") {
				t.Errorf("body %s: want state Unknown of n1, reason %q", r.body, tt.wantReason)
			}
		})
	}
}

// gatedProber blocks every probe until its gate closes.
type gatedProber struct {
	gate  chan struct{}
	err   error
	facts repmgr.Facts
}

func (p *gatedProber) Probe(ctx context.Context) (repmgr.Facts, error) {
	<-p.gate
	return p.facts, p.err
}

type noPeers struct{}

func (noPeers) Vote(context.Context, string, api.VoteRequest) (*api.VoteAnswer, error) {
	return nil, errors.New("no peers")
}
func (noPeers) State(context.Context, string) (int, *api.StateBody, error) {
	return 0, nil, errors.New("no peers")
}

// TestStateAnswersWhileRefreshing: with no verdict to serve and a refresh
// that hangs (a stalled database), /state answers 509 "refreshing" within
// about a refresh interval, rather than keep HAProxy's check until it
// times out.
func TestStateAnswersWhileRefreshing(t *testing.T) {
	gate := make(chan struct{})
	ballot, err := consensus.NewBallot(time.Second, func() time.Duration { return 0 }, nil)
	if err != nil {
		t.Fatal(err)
	}
	checker := consensus.NewChecker(consensus.Options{Identity: consensus.Identity{Name: "n1"},
		RefreshInterval: 200 * time.Millisecond, CacheTTL: time.Second, PeerTimeout: 100 * time.Millisecond,
		Ballot: ballot}, &gatedProber{gate: gate}, noPeers{})
	url := startServer(t, New(Options{}, checker)) + api.PathState
	t.Cleanup(func() { close(gate) }) // before the server's Close, which waits for the handler
	start := time.Now()
	r := do(t, http.MethodGet, url)
	if took := time.Since(start); r.status != api.StatusUnknown || !strings.Contains(r.body, "refreshing") || took > 2*time.Second {
		t.Fatalf("status %d after %s: %s; want 509 refreshing within about 200ms", r.status, took, r.body)
	}
}
