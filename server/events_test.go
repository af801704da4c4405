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

// failingEvents answers its first query, and fails every later one as a
// query timing out on a busy machine does.
type failingEvents struct {
	mu    sync.Mutex
	calls int
}

func (f *failingEvents) Events(context.Context, int) ([]repmgr.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.calls > 1 {
		return nil, context.DeadlineExceeded
	}
	return []repmgr.Event{{NodeID: 1, Event: "standby_promote", Timestamp: time.Unix(1, 0)}}, nil
}

func (f *failingEvents) asked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// TestEventsServesTheLastListWhenARefreshFails: once the list is older than
// its second, a refresh that fails serves the last list read (within
// eventsStale) with Age and Warning, not a 503; with no list ever read, the
// error is a 503.
func TestEventsServesTheLastListWhenARefreshFails(t *testing.T) {
	src := &failingEvents{}
	url := startServer(t, New(Options{Events: src}, &fakeVerdicts{}))
	if r := do(t, http.MethodGet, url+api.PathEvents); r.status != 200 || r.header.Get("Warning") != "" {
		t.Fatalf("first read: %d %q %s", r.status, r.header.Get("Warning"), r.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	var r response
	for src.asked() < 2 && time.Now().Before(deadline) {
		// Paced by the views' rate limit (10 a second), until the list
		// expired and the refresh ran.
		if r = do(t, http.MethodGet, url+api.PathEvents); r.status == http.StatusTooManyRequests {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if src.asked() < 2 {
		t.Fatal("the list was never read again")
	}
	var events []repmgr.Event
	if err := json.Unmarshal([]byte(r.body), &events); r.status != 200 || err != nil || len(events) != 1 ||
		r.header.Get("Warning") == "" || r.header.Get("Age") == "" {
		t.Fatalf("after a failed refresh: %d Warning %q Age %q %s, want 200 with the last list, Warning and Age",
			r.status, r.header.Get("Warning"), r.header.Get("Age"), r.body)
	}
	// A server that never read a list says so.
	down := startServer(t, New(Options{Events: &failingEvents{calls: 1}}, &fakeVerdicts{}))
	if r := do(t, http.MethodGet, down+api.PathEvents); r.status != http.StatusServiceUnavailable {
		t.Errorf("no list ever read: %d %s, want 503", r.status, r.body)
	}
}
