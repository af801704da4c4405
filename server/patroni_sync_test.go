package server

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// The synchronous standby checks, each asked of one node ("n1", as
// snapshotIn names it) in a three-node cluster whose committed primary is
// "p"; the other standby is "n2".

// syncPaths are the checks whose answer depends on synchronous replication.
var syncPaths = []string{api.PathSync, api.PathSynchronous, api.PathQuorum, api.PathReadOnlySync,
	api.PathReadOnlySynchronous, api.PathReadOnlyQuorum, api.PathAsync, api.PathAsynchronous}

// Groups of syncPaths that pass together.
var (
	syncStandbyPaths   = []string{api.PathSync, api.PathSynchronous, api.PathReadOnlySync, api.PathReadOnlySynchronous}
	quorumStandbyPaths = []string{api.PathQuorum, api.PathReadOnlyQuorum}
	primaryPaths       = []string{api.PathReadOnlySync, api.PathReadOnlySynchronous, api.PathReadOnlyQuorum}
	asyncPaths         = []string{api.PathAsync, api.PathAsynchronous}
)

// syncCluster's nodes, as this node's repmgr metadata has them: Upstream
// finds the WAL receiver's sender among them.
var syncClusterNodes = []repmgr.Node{
	{ID: 1, Name: "p", Type: "primary", Conninfo: "host=10.0.0.1 port=5432 user=repmgr"},
	{ID: 2, Name: "n1", Type: "standby", Conninfo: "host=10.0.0.2 port=5432 user=repmgr"},
	{ID: 3, Name: "n2", Type: "standby", Conninfo: "host=10.0.0.3 port=5432 user=repmgr"},
}

// syncStandby is n1 as a standby streaming from host, 600 bytes behind.
func syncStandby(host string) *consensus.Snapshot {
	s := streamingStandby(600)
	s.Facts.Nodes = syncClusterNodes
	s.Facts.WAL.SenderHost, s.Facts.WAL.SenderPort = host, 5432
	return s
}

// applied is a synchronous object of epoch 4 whose set the primary is seen
// applying: ANY count of counted, elections counting on set.
func applied(count int, set, counted []string) *api.SyncStatus {
	names := ""
	if len(counted) > 0 {
		quoted := make([]string, len(counted))
		for i, n := range counted {
			quoted[i] = `"` + n + `"`
		}
		names = "ANY " + itoa(count) + " (" + strings.Join(quoted, ", ") + ")"
	}
	return &api.SyncStatus{Count: count, Set: set, Counted: counted, Epoch: 4, Want: names, StandbyNames: names, Seen: true, RPO: api.RPOZero}
}

// with is s changed by f.
func with(s *api.SyncStatus, f func(*api.SyncStatus)) *api.SyncStatus {
	f(s)
	return s
}

// syncStates are n1's states. pass lists the syncPaths that answer 200
// with failover.synchronous on or strict; offPass those that do with off.
var syncStates = []struct {
	name    string
	snap    func() *consensus.Snapshot
	sync    *api.SyncStatus
	pass    []string
	offPass []string
}{
	{name: "confirmed primary", snap: func() *consensus.Snapshot { return snapshotIn(api.StatePrimary, 2, 2) },
		sync: applied(1, []string{"n2"}, []string{"n2"}), pass: primaryPaths, offPass: primaryPaths},
	{name: "primary without majority", snap: func() *consensus.Snapshot { return snapshotIn(api.StateUnknown, 1, 2) },
		sync: applied(1, []string{"n2"}, []string{"n2"})},
	{name: "one of ANY 1 of two: a quorum standby only", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync: applied(1, []string{"n1", "n2"}, []string{"n1", "n2"}), pass: quorumStandbyPaths, offPass: asyncPaths},
	{name: "the only one of ANY 1: synchronous", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync: applied(1, []string{"n1"}, []string{"n1"}), pass: slices.Concat(syncStandbyPaths, quorumStandbyPaths), offPass: asyncPaths},
	{name: "one of ANY 2 of two: synchronous", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync: applied(2, []string{"n1", "n2"}, []string{"n1", "n2"}), pass: slices.Concat(syncStandbyPaths, quorumStandbyPaths), offPass: asyncPaths},
	{name: "strict, ANY 2 of itself and a placeholder: synchronous", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync: with(applied(2, []string{"n1"}, []string{"n1"}), func(s *api.SyncStatus) {
			s.Want = `ANY 2 ("n1", "pgquorum: no synchronous standby 1")`
			s.StandbyNames = s.Want
		}), pass: slices.Concat(syncStandbyPaths, quorumStandbyPaths), offPass: asyncPaths},
	{name: "k raised to 2, elections still count ANY 1: a quorum standby only", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync: with(applied(2, []string{"n1", "n2"}, []string{"n1", "n2"}), func(s *api.SyncStatus) { s.ElectCount = 1 }),
		pass: quorumStandbyPaths, offPass: asyncPaths},
	{name: "member the primary does not apply yet", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync: with(applied(1, []string{"n1"}, []string{"n1"}), func(s *api.SyncStatus) {
			s.StandbyNames, s.Degraded = "", true
		}), offPass: asyncPaths},
	{name: "member, the primary seen applying another list", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync:    with(applied(1, []string{"n1"}, []string{"n1"}), func(s *api.SyncStatus) { s.StandbyNames = `FIRST 1 ("n1")` }),
		offPass: asyncPaths},
	{name: "member, the primary's setting unknown (stale)", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync: with(applied(1, []string{"n1"}, []string{"n1"}), func(s *api.SyncStatus) {
			s.Seen, s.StandbyNames, s.Degraded = false, "", true
		}), offPass: asyncPaths},
	{name: "member, synchronous_commit local on the primary", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync:    with(applied(1, []string{"n1"}, []string{"n1"}), func(s *api.SyncStatus) { s.Degraded = true }),
		offPass: asyncPaths},
	{name: "another member leaving: a quorum standby only until it left", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync: applied(1, []string{"n1", "n2"}, []string{"n1"}), pass: quorumStandbyPaths, offPass: asyncPaths},
	{name: "member leaving: no longer counted", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync: applied(1, []string{"n1", "n2"}, []string{"n2"}), offPass: asyncPaths},
	{name: "member after on mode fell back", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync:    with(applied(1, []string{"n1", "n2"}, nil), func(s *api.SyncStatus) { s.Degraded = true }),
		offPass: asyncPaths},
	{name: "member streaming from another standby", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.3") },
		sync: applied(1, []string{"n1"}, []string{"n1"}), offPass: asyncPaths},
	{name: "member whose sender is not a registered node", snap: func() *consensus.Snapshot { return syncStandby("10.9.9.9") },
		sync: applied(1, []string{"n1"}, []string{"n1"}), offPass: asyncPaths},
	{name: "member not streaming", snap: func() *consensus.Snapshot {
		s := syncStandby("10.0.0.1")
		s.Facts.WAL.ReceiverStatus = "waiting"
		return s
	}, sync: applied(1, []string{"n1"}, []string{"n1"})},
	{name: "member, down", snap: func() *consensus.Snapshot { return snapshotIn(api.StateDown, 0, 2) },
		sync: applied(1, []string{"n1"}, []string{"n1"})},
	{name: "streaming standby outside the set", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync: applied(1, []string{"n2"}, []string{"n2"}), pass: asyncPaths, offPass: asyncPaths},
	{name: "member of an older epoch's set", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync: with(applied(1, []string{"n1"}, []string{"n1"}), func(s *api.SyncStatus) { s.Epoch = 3 }),
		pass: asyncPaths, offPass: asyncPaths},
	{name: "no set committed for the epoch", snap: func() *consensus.Snapshot { return syncStandby("10.0.0.1") },
		sync: &api.SyncStatus{Set: []string{}, Counted: []string{}, Degraded: true}, pass: asyncPaths, offPass: asyncPaths},
}

// TestPatroniSyncChecks asks every synchronous standby check of n1 in each
// of its states, with failover.synchronous off, on and strict, by GET,
// HEAD and OPTIONS: 200 exactly where the state's list says; with off,
// /sync, /synchronous and /quorum answer a PatroniBody saying why, the
// others the node's /state body.
func TestPatroniSyncChecks(t *testing.T) {
	for _, mode := range api.SyncModes {
		for _, st := range syncStates {
			sync := *st.sync
			sync.Mode = mode
			pass := st.pass
			if mode == api.SyncOff {
				sync = api.SyncStatus{Mode: api.SyncOff, Set: []string{}, Counted: []string{}, RPO: "async (failover.synchronous off)"}
				pass = st.offPass
			}
			fs := api.FailoverStatus{Mode: api.ModePgquorum, State: api.FailoverFollowing, Epoch: 4, Primary: "p", Synchronous: &sync}
			url := startServer(t, New(Options{Failover: &fakeFailover{status: fs}}, &fakeVerdicts{snapshot: st.snap()}))
			for _, path := range syncPaths {
				want := http.StatusServiceUnavailable
				if slices.Contains(pass, path) {
					want = http.StatusOK
				}
				offBody := mode == api.SyncOff && slices.Contains([]string{api.PathSync, api.PathSynchronous, api.PathQuorum}, path)
				for _, method := range checkMethodsUnderTest {
					t.Run(string(mode)+"/"+st.name+"/"+method+path, func(t *testing.T) {
						r := do(t, method, url+path)
						if r.status != want {
							t.Errorf("status = %d, want %d (%s)", r.status, want, r.body)
						}
						checkHeaders(t, r)
						switch {
						case method == http.MethodHead:
							if r.body != "" {
								t.Errorf("HEAD body = %q, want none", r.body)
							}
						case offBody:
							var b api.PatroniBody
							if err := json.Unmarshal([]byte(r.body), &b); err != nil || b.Path != path || !strings.Contains(b.Reason, "failover.synchronous is off") || len(b.Use) == 0 {
								t.Errorf("body = %s (%v), want a PatroniBody for %s saying failover.synchronous is off", r.body, err, path)
							}
						default:
							if !strings.HasPrefix(r.body, `{"State":`) || !strings.Contains(r.body, `"synchronous":{"mode":"`+string(mode)+`"`) {
								t.Errorf("body = %s, want the node's /state body with its synchronous object", r.body)
							}
						}
					})
				}
			}
		}
	}
}

// TestPatroniSyncQueryParameters: the synchronous standby checks read
// Patroni's parameters as the replica checks do, against n1 600 bytes
// behind, the only member of ANY 1; the primary passes
// /read-only-sync whatever ?lag= says, as in Patroni.
func TestPatroniSyncQueryParameters(t *testing.T) {
	on := func(primary string, snap *consensus.Snapshot, mode api.SyncMode) string {
		s := applied(1, []string{"n1"}, []string{"n1"})
		s.Mode = mode
		if mode == api.SyncOff {
			s = &api.SyncStatus{Mode: api.SyncOff}
		}
		fs := api.FailoverStatus{Mode: api.ModePgquorum, Epoch: 4, Primary: primary, Synchronous: s}
		return startServer(t, New(Options{Failover: &fakeFailover{status: fs}}, &fakeVerdicts{snapshot: snap}))
	}
	standby := on("p", syncStandby("10.0.0.1"), api.SyncOn)
	primary := on("n1", snapshotIn(api.StatePrimary, 2, 2), api.SyncOn)
	off := on("p", syncStandby("10.0.0.1"), api.SyncOff)
	askParams(t, []paramCase{
		{name: "sync within lag", url: standby, path: "/sync?lag=1kB", want: 200},
		{name: "sync beyond lag", url: standby, path: "/sync?lag=100", want: 503},
		{name: "synchronous beyond lag", url: standby, path: "/synchronous?lag=599", want: 503},
		{name: "quorum within lag", url: standby, path: "/quorum?lag=600", want: 200},
		{name: "quorum beyond lag", url: standby, path: "/quorum?lag=100", want: 503},
		{name: "read-only-sync standby beyond lag", url: standby, path: "/read-only-sync?lag=100", want: 503},
		{name: "read-only-quorum standby within lag", url: standby, path: "/read-only-quorum?lag=1MB", want: 200},
		{name: "read-only-sync primary whatever lag", url: primary, path: "/read-only-sync?lag=1", want: 200},
		{name: "read-only-quorum primary whatever lag", url: primary, path: "/read-only-quorum?lag=1", want: 200},
		{name: "replication_state streaming", url: standby, path: "/sync?replication_state=streaming&lag=1kB", want: 200},
		{name: "another replication_state is 400", url: standby, path: "/quorum?replication_state=catchup", want: 400, errHas: "streaming"},
		{name: "malformed lag is 400", url: standby, path: "/read-only-sync?lag=lots", want: 400, errHas: "lag"},
		{name: "a tag on sync is 400", url: standby, path: "/sync?tag_nosync=true", want: 400, errHas: "tag_nosync"},
		{name: "a tag on read-only-sync is 400 on the primary too", url: primary, path: "/read-only-sync?tag_dc=1", want: 400, errHas: "tag_dc"},
		{name: "a tag on async is 400", url: standby, path: "/async?tag_dc=1", want: 400, errHas: "tag_dc"},
		{name: "with off, a malformed lag is still 400", url: off, path: "/sync?lag=lots", want: 400, errHas: "lag"},
		{name: "with off, sync is 503 within any lag", url: off, path: "/sync?lag=1GB", want: 503},
		{name: "with off, async takes lag", url: off, path: "/async?lag=100", want: 503},
	})
}
