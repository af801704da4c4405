package server

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// checkedAt has nanoseconds and a zone, to show the contract's UTC
// millisecond form.
var checkedAt = time.Date(2026, 11, 21, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))

func snapshotIn(state api.State, votes, needed int) *consensus.Snapshot {
	return &consensus.Snapshot{Verdict: consensus.Verdict{State: state, Node: "n1", Location: "dc1", Scope: consensus.ScopeCluster,
		Votes: votes, Needed: needed, ClusterVotes: votes + 1, ClusterNeeded: needed + 1, Timeline: 3, CheckedAt: checkedAt, Reason: "because"}}
}

// TestStateEndpoints: / and /state answer each state with the same status to
// GET, HEAD and OPTIONS; HEAD has no body; GET and OPTIONS carry the
// contract's JSON, byte for byte.
func TestStateEndpoints(t *testing.T) {
	tests := []struct {
		state      api.State
		votes      int
		needed     int
		wantStatus int
		wantTL     string // the timeline, unless Down
		wantExtra  string // replication fields, on a standby only
	}{
		{state: api.StatePrimary, votes: 2, needed: 2, wantStatus: 200, wantTL: `,"timeline":3`},
		{state: api.StateStandby, votes: 0, needed: 2, wantStatus: 202, wantTL: `,"timeline":3`, wantExtra: `,"streaming":false`},
		{state: api.StateDown, wantStatus: 503},
		{state: api.StateUnknown, votes: 1, needed: 2, wantStatus: 509, wantTL: `,"timeline":3`},
	}
	for _, tt := range tests {
		fake := &fakeVerdicts{snapshot: snapshotIn(tt.state, tt.votes, tt.needed)}
		url := startServer(t, New(Options{}, fake))
		wantBody := `{"State":"` + string(tt.state) + `","node":"n1","location":"dc1","votes":` + itoa(tt.votes) +
			`,"needed":` + itoa(tt.needed) + `,"scope":"cluster","cluster_votes":` + itoa(tt.votes+1) + `,"cluster_needed":` + itoa(tt.needed+1) +
			`,"checked_at":"2026-11-21T11:00:00.123Z","reason":"because"` + tt.wantTL +
			`,"failover":{"mode":"off","state":"Off","epoch":0}` + tt.wantExtra + "}\n"
		for _, path := range []string{api.PathRoot, api.PathState} {
			for _, method := range checkMethodsUnderTest {
				t.Run(string(tt.state)+"/"+method+path, func(t *testing.T) {
					r := do(t, method, url+path)
					if r.status != tt.wantStatus {
						t.Errorf("status = %d, want %d", r.status, tt.wantStatus)
					}
					checkHeaders(t, r)
					if method == http.MethodHead {
						if r.body != "" {
							t.Errorf("HEAD body = %q, want none", r.body)
						}
						return
					}
					if r.body != wantBody {
						t.Errorf("body = %s\nwant   %s", r.body, wantBody)
					}
				})
			}
		}
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func checkHeaders(t *testing.T, r response) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", cc)
	}
}

// TestStateBodyFieldNames decodes /state generically: the contract's names
// must be there, including zero votes, which must not be omitted.
func TestStateBodyFieldNames(t *testing.T) {
	primaryAt, replayed, delay := int64(1000), int64(400), 1.5
	s := snapshotIn(api.StateStandby, 0, 2)
	s.Verdict.Voters = []string{"n1", "n3"}
	s.Facts.WAL = repmgr.WAL{ReceiverStatus: repmgr.StreamingState, PrimaryPosition: &primaryAt, Replayed: &replayed, ReplayDelay: &delay}
	url := startServer(t, New(Options{}, &fakeVerdicts{snapshot: s}))
	var got map[string]any
	if err := json.Unmarshal([]byte(do(t, http.MethodGet, url+api.PathState).body), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"State": "Standby", "node": "n1", "location": "dc1", "votes": 0.0, "needed": 2.0,
		"scope": "cluster", "cluster_votes": 1.0, "cluster_needed": 3.0, "timeline": 3.0,
		"failover":   map[string]any{"mode": "off", "state": "Off", "epoch": 0.0},
		"checked_at": "2026-11-21T11:00:00.123Z", "voters": []any{"n1", "n3"}, "reason": "because",
		"streaming": true, "lag_bytes": 600.0, "lag_seconds": 1.5}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("/state body = %v\nwant %v", got, want)
	}
}

// TestStateFollowsNewSnapshot: the encoded body is reused only for the same
// snapshot; a new verdict is never answered with the previous body.
func TestStateFollowsNewSnapshot(t *testing.T) {
	fake := &fakeVerdicts{snapshot: snapshotIn(api.StatePrimary, 2, 2)}
	url := startServer(t, New(Options{}, fake))
	for i, state := range []api.State{api.StatePrimary, api.StatePrimary, api.StateUnknown, api.StateDown, api.StatePrimary} {
		fake.setSnapshot(snapshotIn(state, 1, 2))
		r := do(t, http.MethodGet, url+api.PathState)
		if r.status != state.HTTPStatus() || !strings.Contains(r.body, `"State":"`+string(state)+`"`) {
			t.Fatalf("request %d: %d %s, want %s", i, r.status, r.body, state)
		}
	}
}

func TestPrimaryEndpoint(t *testing.T) {
	oldPrimary := repmgr.Node{Name: "n0", Type: repmgr.TypePrimary, Active: false}
	primary := repmgr.Node{Name: "n1", Type: repmgr.TypePrimary, Active: true}
	standby := repmgr.Node{Name: "n2", Type: repmgr.TypeStandby, Active: true}
	tests := []struct {
		name       string
		facts      *consensus.Snapshot
		wantStatus int
		wantBody   string // JSON prefix, up to the optional reason
	}{
		{name: "db down is 503 Down", facts: &consensus.Snapshot{ProbeErr: errors.New("connection refused")},
			wantStatus: 503, wantBody: `{"State":"Down","reason":"connection refused"}`},
		{name: "no active primary is 503 with null", facts: &consensus.Snapshot{Facts: repmgr.Facts{Nodes: []repmgr.Node{oldPrimary, standby}}},
			wantStatus: 503, wantBody: `{"Primary":null,`},
		{name: "two active primaries is 503 with null", facts: &consensus.Snapshot{Facts: repmgr.Facts{Nodes: []repmgr.Node{primary,
			{Name: "n3", Type: repmgr.TypePrimary, Active: true}}}}, wantStatus: 503, wantBody: `{"Primary":null,`},
		{name: "one active primary is 200 with its name", facts: &consensus.Snapshot{Facts: repmgr.Facts{Nodes: []repmgr.Node{oldPrimary, primary, standby}}},
			wantStatus: 200, wantBody: `{"Primary":"n1"}`},
	}
	for _, tt := range tests {
		url := startServer(t, New(Options{}, &fakeVerdicts{facts: tt.facts}))
		for _, method := range checkMethodsUnderTest {
			t.Run(tt.name+"/"+method, func(t *testing.T) {
				r := do(t, method, url+api.PathPrimary)
				if r.status != tt.wantStatus {
					t.Errorf("status = %d, want %d", r.status, tt.wantStatus)
				}
				if method == http.MethodHead {
					if r.body != "" {
						t.Errorf("HEAD body = %q, want none", r.body)
					}
					return
				}
				if !strings.HasPrefix(r.body, tt.wantBody) {
					t.Errorf("body = %s, want it to start with %s", r.body, tt.wantBody)
				}
				var b api.PrimaryBody
				if err := json.Unmarshal([]byte(r.body), &b); err != nil {
					t.Errorf("body %q is not JSON: %v", r.body, err)
				}
			})
		}
	}
}

func TestRealPrimaryEndpoint(t *testing.T) {
	tests := []struct {
		name       string
		result     consensus.RealPrimaryResult
		wantStatus int
		wantBody   string
	}{
		{name: "one claimant is 200 with its name",
			result:     consensus.RealPrimaryResult{Primary: "n1", Claimants: []string{"n1"}, Unreachable: []string{"n3"}, Asked: 3},
			wantStatus: 200, wantBody: `{"realPrimary":"n1","unreachable":["n3"]}`},
		{name: "no claimant is 503 with null", result: consensus.RealPrimaryResult{Asked: 3},
			wantStatus: 503, wantBody: `{"realPrimary":null}`},
		{name: "several claimants is 509 listing them",
			result:     consensus.RealPrimaryResult{Claimants: []string{"n1", "n2"}, Asked: 3},
			wantStatus: 509, wantBody: `{"realPrimary":null,"claimants":["n1","n2"]}`},
	}
	for _, tt := range tests {
		url := startServer(t, New(Options{}, &fakeVerdicts{realPrimary: tt.result}))
		for _, method := range checkMethodsUnderTest {
			t.Run(tt.name+"/"+method, func(t *testing.T) {
				r := do(t, method, url+api.PathRealPrimary)
				want := tt.wantBody + "\n"
				if method == http.MethodHead {
					want = ""
				}
				if r.status != tt.wantStatus || r.body != want {
					t.Errorf("%d %q, want %d %q", r.status, r.body, tt.wantStatus, want)
				}
			})
		}
	}
}

// TestDrain: after Drain every node check answers 503 Down, whatever the
// verdict, while liveness still answers 200.
func TestDrain(t *testing.T) {
	fake := &fakeVerdicts{
		snapshot: snapshotIn(api.StatePrimary, 3, 2),
		facts:    &consensus.Snapshot{Facts: repmgr.Facts{Nodes: []repmgr.Node{{Name: "n1", Type: repmgr.TypePrimary, Active: true}}}},
	}
	s := New(Options{}, fake)
	url := startServer(t, s)
	if r := do(t, http.MethodGet, url+api.PathState); r.status != 200 {
		t.Fatalf("before Drain /state = %d, want 200", r.status)
	}
	s.Drain()
	drained := []string{api.PathRoot, api.PathState, api.PathPrimary,
		api.PathLeader, api.PathReplica, api.PathReadOnly, api.PathHealth, api.PathReadiness}
	for _, path := range drained {
		for _, method := range checkMethodsUnderTest {
			t.Run(method+path, func(t *testing.T) {
				r := do(t, method, url+path)
				if r.status != 503 || (method != http.MethodHead && !strings.HasPrefix(r.body, `{"State":"Down"`)) {
					t.Errorf("%d %s, want 503 Down", r.status, r.body)
				}
			})
		}
	}
	if r := do(t, http.MethodGet, url+api.PathLiveness); r.status != 200 {
		t.Errorf("draining /liveness = %d, want 200", r.status)
	}
}

func TestUnsupportedMethodIsRefused(t *testing.T) {
	url := startServer(t, New(Options{}, &fakeVerdicts{snapshot: snapshotIn(api.StatePrimary, 1, 1)}))
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		if r := do(t, method, url+api.PathState); r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s /state = %d, want 405", method, r.status)
		}
	}
	if r := do(t, http.MethodGet, url+"/nope"); r.status != http.StatusNotFound {
		t.Errorf("GET /nope = %d, want 404", r.status)
	}
	if !slices.Contains(checkMethods, http.MethodOptions) {
		t.Error("OPTIONS, HAProxy's default httpchk method, is not a check method")
	}
}
