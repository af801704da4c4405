package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/client"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// staticProber is a one-node site's primary: a Checker over it always has a
// fresh Primary verdict, so the benchmark measures the answer path only.
type staticProber struct{}

func (staticProber) Probe(context.Context) (repmgr.Facts, error) {
	return repmgr.Facts{Nodes: []repmgr.Node{{ID: 1, Name: "node1", Type: "primary", Location: "dc1", Active: true}},
		Server: repmgr.Server{SystemID: "1", Timeline: 1}}, nil
}

// freeBallot returns a ballot past its start-up quiet period: its clock is
// moved beyond the lease once the ballot exists.
func freeBallot(tb testing.TB, lease time.Duration) *consensus.Ballot {
	var skip time.Duration
	clock := func() time.Duration { return time.Duration(time.Now().UnixNano()) + skip }
	b, err := consensus.NewBallot(lease, clock, nil)
	if err != nil {
		tb.Fatal(err)
	}
	skip = 2 * lease
	return b
}

// BenchmarkStateHandler is /state through the chi router, the go-cache lookup
// and the cached encoding, against a real Checker.
func BenchmarkStateHandler(b *testing.B) {
	c := consensus.NewChecker(consensus.Options{Identity: consensus.Identity{Name: "node1"}, RefreshInterval: time.Hour,
		CacheTTL: time.Hour, PeerTimeout: time.Second, Ballot: freeBallot(b, time.Hour)},
		staticProber{}, client.New(client.Options{}))
	h := New(Options{}, c).Handler()
	benchHandler(b, h, 200)
}

// BenchmarkBareHandler is the reference: a handler writing a fixed body.
func BenchmarkBareHandler(b *testing.B) {
	body := []byte(`{"State":"Primary","node":"node1","location":"dc1","votes":1,"needed":1,"checked_at":"2026-11-21T12:00:00.123Z","voters":["node1"],"reason":"1 of 1 nodes in location \"dc1\" name it primary"}` + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})
	benchHandler(b, h, 200)
}

func benchHandler(b *testing.B, h http.Handler, want int) {
	req := httptest.NewRequest(http.MethodGet, api.PathState, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != want {
				b.Fatalf("status %d, want %d", w.Code, want)
			}
		}
	})
}
