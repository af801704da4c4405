package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// patroniStates are the node states each Patroni check is asked in.
var patroniStates = []struct {
	name string
	snap func() *consensus.Snapshot
}{
	{"confirmed primary", func() *consensus.Snapshot { return snapshotIn(api.StatePrimary, 2, 2) }},
	{"primary without majority", func() *consensus.Snapshot { return snapshotIn(api.StateUnknown, 1, 2) }},
	{"streaming standby", func() *consensus.Snapshot { return streamingStandby(600) }},
	{"standby not streaming", func() *consensus.Snapshot { return snapshotIn(api.StateStandby, 0, 2) }},
	{"down", func() *consensus.Snapshot { return snapshotIn(api.StateDown, 0, 2) }},
}

// streamingStandby is a standby whose WAL receiver streams, lag bytes
// behind its upstream.
func streamingStandby(lag int64) *consensus.Snapshot {
	s := snapshotIn(api.StateStandby, 0, 2)
	upstream, replayed := int64(1000+lag), int64(1000)
	s.Facts.WAL = repmgr.WAL{ReceiverStatus: repmgr.StreamingState, PrimaryPosition: &upstream, Replayed: &replayed}
	return s
}

// TestPatroniChecks asks every Patroni check name in every state with
// GET, HEAD and OPTIONS: the same status for the three methods, 200 only
// in the state the name means, the /state body (or a PatroniBody saying
// why) otherwise.
func TestPatroniChecks(t *testing.T) {
	primaryOnly := map[string]int{"confirmed primary": 200}
	streamingOnly := map[string]int{"streaming standby": 200}
	tests := []struct {
		path     string
		pass     map[string]int // state → status; every other state 503
		syncBody bool           // the body is a PatroniBody, not /state's
	}{
		{path: api.PathLeader, pass: primaryOnly},
		{path: api.PathMaster, pass: primaryOnly},
		{path: api.PathReadWrite, pass: primaryOnly},
		// Without a failover controller, failover.synchronous is off: the
		// primary alone passes these, and no node the three below
		// (patroni_sync_test.go asks them with it on).
		{path: api.PathReadOnlySync, pass: primaryOnly},
		{path: api.PathReadOnlySynchronous, pass: primaryOnly},
		{path: api.PathReadOnlyQuorum, pass: primaryOnly},
		{path: api.PathReplica, pass: streamingOnly},
		{path: api.PathAsync, pass: streamingOnly},
		{path: api.PathAsynchronous, pass: streamingOnly},
		{path: api.PathReadOnly, pass: map[string]int{"confirmed primary": 200, "streaming standby": 200}},
		{path: api.PathSync, syncBody: true},
		{path: api.PathSynchronous, syncBody: true},
		{path: api.PathQuorum, syncBody: true},
	}
	for _, st := range patroniStates {
		url := startServer(t, New(Options{}, &fakeVerdicts{snapshot: st.snap()}))
		for _, tt := range tests {
			want := http.StatusServiceUnavailable
			if code, ok := tt.pass[st.name]; ok {
				want = code
			}
			for _, method := range checkMethodsUnderTest {
				t.Run(st.name+"/"+method+tt.path, func(t *testing.T) {
					r := do(t, method, url+tt.path)
					if r.status != want {
						t.Errorf("status = %d, want %d (%s)", r.status, want, r.body)
					}
					checkHeaders(t, r)
					switch {
					case method == http.MethodHead:
						if r.body != "" {
							t.Errorf("HEAD body = %q, want none", r.body)
						}
					case tt.syncBody:
						var b api.PatroniBody
						if err := json.Unmarshal([]byte(r.body), &b); err != nil || b.Path != tt.path || !strings.Contains(b.Reason, "synchronous") {
							t.Errorf("body = %s (%v), want a PatroniBody for %s saying why", r.body, err, tt.path)
						}
					default:
						if !strings.HasPrefix(r.body, `{"State":`) {
							t.Errorf("body = %s, want the node's /state body", r.body)
						}
					}
				})
			}
		}
	}
}

// TestPatroniQueryParameters: the parameters Patroni documents, on the
// checks that take them, against a standby 600 bytes behind.
func TestPatroniQueryParameters(t *testing.T) {
	standby := startServer(t, New(Options{}, &fakeVerdicts{snapshot: streamingStandby(600)}))
	primary := startServer(t, New(Options{}, &fakeVerdicts{snapshot: snapshotIn(api.StatePrimary, 2, 2)}))
	askParams(t, []paramCase{
		{name: "lag within the bound passes", url: standby, path: "/replica?lag=1kB", want: 200},
		{name: "lag beyond the bound fails", url: standby, path: "/replica?lag=100", want: 503},
		{name: "async takes lag as replica does", url: standby, path: "/async?lag=100", want: 503},
		{name: "asynchronous takes lag in MB", url: standby, path: "/asynchronous?lag=1MB", want: 200},
		{name: "read-only takes lag", url: standby, path: "/read-only?lag=100", want: 503},
		{name: "malformed lag is 400", url: standby, path: "/replica?lag=lots", want: 400, errHas: "lag"},
		{name: "replication_state streaming passes a streaming standby", url: standby, path: "/replica?replication_state=streaming", want: 200},
		{name: "replication_state with lag", url: standby, path: "/async?replication_state=streaming&lag=1kB", want: 200},
		{name: "another replication_state is 400", url: standby, path: "/replica?replication_state=in%20archive%20recovery", want: 400, errHas: "streaming"},
		{name: "a tag on a replica check is 400", url: standby, path: "/replica?tag_nofailover=true", want: 400, errHas: "tag_nofailover"},
		{name: "a tag on read-only is 400", url: standby, path: "/read-only?tag_dc=1", want: 400, errHas: "tag_dc"},
		{name: "tags on read-write are ignored as Patroni does", url: primary, path: "/read-write?tag_dc=1&tag_x=y", want: 200},
		{name: "tags on master are ignored", url: primary, path: "/master?tag_dc=1", want: 200},
		{name: "lag on leader is ignored", url: primary, path: "/leader?lag=lots", want: 200},
	})
}

// paramCase is a check asked with query parameters, and its answer.
type paramCase struct {
	name   string
	url    string
	path   string
	want   int
	errHas string // in the 400's error
}

// askParams asks each case by GET, HEAD and OPTIONS.
func askParams(t *testing.T, cases []paramCase) {
	t.Helper()
	for _, tt := range cases {
		for _, method := range checkMethodsUnderTest {
			t.Run(tt.name+"/"+method, func(t *testing.T) {
				r := do(t, method, tt.url+tt.path)
				if r.status != tt.want {
					t.Errorf("%s %s = %d %s, want %d", method, tt.path, r.status, r.body, tt.want)
				}
				if tt.errHas != "" && method != http.MethodHead && !strings.Contains(r.body, tt.errHas) {
					t.Errorf("body = %s, want an error naming %q", r.body, tt.errHas)
				}
			})
		}
	}
}

// TestPatroniUnsupportedEndpoints: Patroni's endpoints without a repmgr
// meaning answer 501 to every method, naming what to use, never a 404.
func TestPatroniUnsupportedEndpoints(t *testing.T) {
	url := startServer(t, New(Options{}, &fakeVerdicts{snapshot: snapshotIn(api.StatePrimary, 2, 2)}))
	paths := []string{api.PathStandbyLeader, api.PathStandbyLeaderAlias, api.PathPatroni, api.PathPatroniConfig,
		api.PathPatroniFailover, api.PathPatroniRestart, api.PathPatroniReload, api.PathPatroniReinit}
	for _, path := range paths {
		for _, method := range append(checkMethodsUnderTest, http.MethodPost) {
			t.Run(method+path, func(t *testing.T) {
				r := do(t, method, url+path)
				if r.status != http.StatusNotImplemented {
					t.Errorf("status = %d, want 501", r.status)
				}
				if method == http.MethodHead {
					return
				}
				var b api.PatroniBody
				if err := json.Unmarshal([]byte(r.body), &b); err != nil || b.Path != path || b.Reason == "" || len(b.Use) == 0 {
					t.Errorf("body = %s (%v), want path, reason and what to use", r.body, err)
				}
			})
		}
	}
}

// TestDrainPatroniChecks: the Patroni names drain with the others.
func TestDrainPatroniChecks(t *testing.T) {
	s := New(Options{}, &fakeVerdicts{snapshot: snapshotIn(api.StatePrimary, 3, 2)})
	url := startServer(t, s)
	s.Drain()
	for _, path := range append([]string{api.PathMaster, api.PathReadWrite}, syncPaths...) {
		for _, method := range checkMethodsUnderTest {
			if r := do(t, method, url+path); r.status != 503 {
				t.Errorf("draining %s %s = %d, want 503", method, path, r.status)
			}
		}
	}
}
