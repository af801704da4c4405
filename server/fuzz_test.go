package server

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// fuzzPaths are the GET endpoints whose query strings the fuzz target
// tries.
var fuzzPaths = []string{api.PathState, api.PathRoot, api.PathPrimary, api.PathLeader, api.PathReplica, api.PathReadOnly,
	api.PathHealth, api.PathReadiness, api.PathLiveness, api.PathEvents, api.PathCluster, api.PathRealPrimary}

// FuzzQuery sends any raw query string to every GET endpoint, with the node
// in any state. Handlers never panic and read only their own parameters:
//   - a check answers exactly as it does without the query, unless it takes
//     ?lag= and that is not a byte count (400, and never 200);
//   - /replica and /read-only answer 200 on a standby only when it streams
//     and, with a valid ?lag=, is known to be within it;
//   - /events answers 400 exactly when ?limit= is given and is not 1 to
//     1000, and otherwise at most that many events.
func FuzzQuery(f *testing.F) {
	for _, q := range []string{"", "lag=16MB", "lag=1", "lag=-1", "lag=16MB&lag=x", "lag=%zz", "limit=1", "limit=1000", "limit=0",
		"limit=1001", "limit=+5", "limit=5;x=1", "lag=9223372036854775807", "a=b&&==&lag=", "lag=%31%30kB"} {
		f.Add(uint8(4), q, uint8(1), int64(1024))
	}
	f.Fuzz(func(t *testing.T, pathIdx uint8, query string, state uint8, lag int64) {
		path := fuzzPaths[int(pathIdx)%len(fuzzPaths)]
		snap := snapshotIn([]api.State{api.StatePrimary, api.StateStandby, api.StateDown, api.StateUnknown}[state%4], 2, 2)
		streaming := state&4 != 0
		if streaming {
			snap.Facts.WAL.ReceiverStatus = repmgr.StreamingState
		}
		if lag >= 0 {
			zero := int64(0)
			snap.Facts.WAL.PrimaryPosition, snap.Facts.WAL.Replayed = &lag, &zero
		}
		s := New(Options{Events: &countingEvents{n: 2000}}, &fakeVerdicts{snapshot: snap, facts: snap})
		s.viewLimit.rate, s.viewLimit.burst = math.Inf(1), math.Inf(1) // the limit is tested elsewhere
		h := s.Handler()
		status, body := serveQuery(h, path, query)
		plain, _ := serveQuery(h, path, "")
		params, _ := url.ParseQuery(query) // what net/http reads, errors aside
		switch path {
		case api.PathReplica, api.PathReadOnly:
			raw := params.Get("lag")
			maxLag, lagErr := api.ParseBytes(raw)
			switch {
			case raw != "" && lagErr != nil:
				if status != http.StatusBadRequest {
					t.Fatalf("%s?%s: %d, want 400 for lag %q", path, query, status, raw)
				}
				return
			case status == http.StatusOK && snap.Verdict.State == api.StateStandby:
				known, got := snap.Facts.WAL.LagBytes()
				if !streaming || raw != "" && (!got || known > maxLag) {
					t.Fatalf("%s?%s: 200 for a standby streaming %v with lag %d (known %v), limit %q", path, query, streaming, known, got, raw)
				}
			}
			if status != http.StatusOK && status != http.StatusServiceUnavailable {
				t.Fatalf("%s?%s: %d", path, query, status)
			}
		case api.PathEvents:
			raw := params.Get("limit")
			limit, err := eventLimit(raw)
			if (err != nil) != (status == http.StatusBadRequest) {
				t.Fatalf("/events?%s: %d for limit %q (%v)", query, status, raw, err)
			}
			var events []repmgr.Event
			if status == http.StatusOK && (json.Unmarshal(body, &events) != nil || len(events) != min(limit, 2000, maxEventLimit)) {
				t.Fatalf("/events?%s: %d events for limit %q", query, len(events), raw)
			}
		default:
			if status != plain {
				t.Fatalf("%s?%s: %d, without the query %d", path, query, status, plain)
			}
		}
	})
}

func serveQuery(h http.Handler, path, query string) (int, []byte) {
	req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: path, RawQuery: query}, Header: http.Header{},
		RemoteAddr: "192.0.2.1:40000", Host: "pgquorum"}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}
