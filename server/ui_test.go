package server

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

const hostileName = `<script>alert("x")</script><img src=x onerror=alert(1)>`

// uiCluster is a three-node cluster after a failover: node2 the confirmed
// primary, node1 down and fenced, and a node whose name is hostile.
func uiCluster() (*fakeVerdicts, *fakeFailover) {
	two := 2
	lag, delay, streaming := int64(3<<20), 0.25, true
	at := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	f := &fakeVerdicts{snapshot: snapshotIn(api.StatePrimary, 2, 2),
		nodes: []repmgr.Node{
			{ID: 1, Name: "node1", Location: "dc1", Type: "primary", Active: false},
			{ID: 2, Name: "node2", Location: "dc1", Type: "primary", Active: true},
			{ID: 3, Name: hostileName, Location: "dc1", Type: "standby", Active: true, UpstreamID: &two},
			{ID: 4, Name: "node4", Location: "dc2", Type: "primary", Active: false},
		},
		realPrimary: consensus.RealPrimaryResult{Primary: "node2", Claimants: []string{"node2"}},
		answers: map[string]consensus.StateAnswer{
			"node1":     {Node: "node1", Err: errors.New("dial tcp 127.0.0.1:5999: connect: connection refused")},
			"node2":     {Node: "node2", Status: 200, Self: true},
			"node4":     {Node: "node4", Status: 509, Body: &api.StateBody{State: api.StateUnknown, Reason: "running as primary without a majority"}},
			hostileName: {Node: hostileName, Status: 202, Body: &api.StateBody{State: api.StateStandby, Timeline: 2, Streaming: &streaming, LagBytes: &lag, LagSeconds: &delay}},
		}}
	fo := &fakeFailover{
		status: api.FailoverStatus{Mode: api.ModePgquorum, State: api.FailoverLeading, Epoch: 2, Primary: "node2", Coordinator: "node2"},
		history: api.HistoryBody{
			Decisions: []api.Decision{{Epoch: 2, At: at, Primary: "node2", OldPrimary: "node1", Reason: "node1 lost " + hostileName}},
			Fences:    []api.Fence{{Node: "node1", At: at.Add(time.Second), Reason: "deposed"}},
		},
	}
	return f, fo
}

func TestUIShowsEveryNodeEscaped(t *testing.T) {
	f, fo := uiCluster()
	r := do(t, http.MethodGet, startServer(t, New(Options{Failover: fo, Cluster: "prod-eu"}, f))+api.PathUI)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("/ui = %d %s", r.status, r.header.Get("Content-Type"))
	}
	for _, want := range []string{
		"<title>pgquorum · prod-eu</title>",
		`<meta http-equiv="refresh" content="5">`,
		`data-node="node1" data-state=""`, "unreachable", "connection refused",
		`data-node="node2" data-state="Primary"`, `class="badge primary">Primary 200`, `class="badge fo">Leading`,
		`data-state="Standby"`, "Standby 202", "3.0 MB · 0.2 s",
		`class="badge unknown">Unknown 509`, `<div class="why" title="running as primary without a majority">running as primary without a majority</div>`,
		`<div class="v" id="real-primary">node2</div>`, `<div class="v" id="committed-primary">node2</div>`, `<div class="v num" id="epoch">2</div>`,
		`id="decisions"`, `id="fences"`, "deposed",
		"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/ui lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "<img", "onerror=alert(1)>"} {
		if strings.Contains(r.body, bad) {
			t.Errorf("/ui contains %q unescaped", bad)
		}
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q, want default-src 'none'", csp)
	}
}

func TestUIWithoutFailoverNorPrimary(t *testing.T) {
	f := &fakeVerdicts{snapshot: snapshotIn(api.StateUnknown, 1, 2), answers: map[string]consensus.StateAnswer{}}
	r := do(t, http.MethodGet, startServer(t, New(Options{}, f))+api.PathUI)
	for _, want := range []string{`id="no-primary"`, "failover.mode is off", "No fence recorded."} {
		if r.status != 200 || !strings.Contains(r.body, want) {
			t.Errorf("/ui = %d, lacks %q", r.status, want)
		}
	}
}

// TestUIFollowsTheViewsRules: /ui needs a credential with
// server.require_auth_for_checks, and is rate limited as /cluster is.
func TestUIFollowsTheViewsRules(t *testing.T) {
	f, fo := uiCluster()
	s := New(Options{Failover: fo, Auth: AuthOptions{AdminToken: adminToken, RequireAuthChecks: true}}, f)
	for _, c := range []struct {
		name  string
		token string
		want  int
	}{{"no credential is 401", "", 401}, {"wrong token is 403", "nope", 403}, {"admin token", adminToken, 200}} {
		req := httptest.NewRequest(http.MethodGet, api.PathUI, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: status %d, want %d", c.name, rec.Code, c.want)
		}
	}
	url := startServer(t, New(Options{Failover: fo}, f))
	refused := 0
	for range viewBurst + 5 {
		if do(t, http.MethodGet, url+api.PathUI).status == http.StatusTooManyRequests {
			refused++
		}
	}
	if refused == 0 {
		t.Errorf("%d requests of /ui in a burst, none refused", viewBurst+5)
	}
}

// TestUIShowsTheSynchronousState: with failover.synchronous on or strict,
// /ui shows the mode, the committed set and the RPO, marks the set's
// members in the nodes table, and warns while the cluster runs
// asynchronously; with it off, none of that.
func TestUIShowsTheSynchronousState(t *testing.T) {
	escaped := "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"
	for _, tc := range []struct {
		name       string
		sync       *api.SyncStatus
		want, lack []string
	}{
		{name: "on, synchronous",
			sync: &api.SyncStatus{Mode: api.SyncOn, Count: 1, Set: []string{hostileName}, RPO: api.RPOZero},
			want: []string{`id="synchronous"`, "on · ANY 1", "set [" + escaped, "· RPO 0</div>", `title="member of the committed synchronous set">sync</span>`},
			lack: []string{`id="sync-degraded"`}},
		{name: "strict, degraded",
			sync: &api.SyncStatus{Mode: api.SyncStrict, Count: 1, Set: []string{}, Degraded: true, RPO: "async: no synchronous set committed for this epoch yet"},
			want: []string{`id="synchronous"`, "strict · ANY 1", `id="sync-degraded">Synchronous replication (strict) runs asynchronously: async: no synchronous set committed for this epoch yet`},
			lack: []string{`>sync</span>`}},
		{name: "off",
			sync: &api.SyncStatus{Mode: api.SyncOff, RPO: "async (failover.synchronous off)"},
			lack: []string{`id="synchronous"`, `id="sync-degraded"`, `>sync</span>`}},
		{name: "no synchronous object", lack: []string{`id="synchronous"`, `id="sync-degraded"`, `>sync</span>`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, fo := uiCluster()
			fo.status.Synchronous = tc.sync
			r := do(t, http.MethodGet, startServer(t, New(Options{Failover: fo}, f))+api.PathUI)
			if r.status != 200 {
				t.Fatalf("/ui = %d", r.status)
			}
			for _, want := range tc.want {
				if !strings.Contains(r.body, want) {
					t.Errorf("/ui lacks %q", want)
				}
			}
			for _, bad := range tc.lack {
				if strings.Contains(r.body, bad) {
					t.Errorf("/ui has %q", bad)
				}
			}
		})
	}
}
