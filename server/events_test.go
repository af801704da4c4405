package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// countingEvents serves n events, newest first, and counts the queries.
type countingEvents struct {
	mu      sync.Mutex
	n       int
	queries []int // the limit of each query
}

func (c *countingEvents) Events(_ context.Context, limit int) ([]repmgr.Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queries = append(c.queries, limit)
	out := []repmgr.Event{}
	for i := 0; i < min(limit, c.n); i++ {
		out = append(out, repmgr.Event{NodeID: 1, Event: "e" + strconv.Itoa(i), Timestamp: time.Unix(int64(c.n-i), 0)})
	}
	return out, nil
}

// TestEventsOneQueryWhateverTheLimits: many different limits within the
// cache's second cost the database one query, and each limit gets its share
// of the newest events.
func TestEventsOneQueryWhateverTheLimits(t *testing.T) {
	src := &countingEvents{n: 1500}
	url := startServer(t, New(Options{Events: src}, &fakeVerdicts{}))
	for _, limit := range []int{1, 7, 20, 999, 1000, 3, 500} {
		r := do(t, http.MethodGet, url+api.PathEvents+"?limit="+strconv.Itoa(limit))
		var got []repmgr.Event
		if r.status != 200 || json.Unmarshal([]byte(r.body), &got) != nil || len(got) != limit || got[0].Event != "e0" {
			t.Fatalf("limit %d: %d with %d events (first %+v), want 200 with the %d newest", limit, r.status, len(got), got[0], limit)
		}
	}
	if r := do(t, http.MethodGet, url+api.PathEvents); r.status != 200 {
		t.Errorf("default limit: %d", r.status)
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if len(src.queries) != 1 || src.queries[0] != maxEventLimit {
		t.Errorf("queries = %v, want one of the latest %d", src.queries, maxEventLimit)
	}
}

func TestEventsBadLimit(t *testing.T) {
	url := startServer(t, New(Options{Events: &countingEvents{n: 3}}, &fakeVerdicts{}))
	for _, q := range []string{"0", "1001", "x", "-1"} {
		if r := do(t, http.MethodGet, url+api.PathEvents+"?limit="+q); r.status != 400 {
			t.Errorf("limit=%s: %d, want 400", q, r.status)
		}
	}
}
