package server

import (
	"net/http"

	"github.com/pgquorum/pgquorum/api"
)

// The Patroni endpoints that have no meaning in a repmgr cluster: each
// answers saying why, and what to use. The checks for synchronous (and
// quorum) standbys are served (patroni_sync.go); with failover.synchronous
// off, no node passes them and they say so (syncOff).

// patroniUnsupported are the Patroni endpoints without a meaning in a
// repmgr cluster that pgquorum watches, with what to use instead. Each
// answers 501 to every method: a silent 404 would leave an operator to
// guess whether the path is misspelt.
var patroniUnsupported = map[string]api.PatroniBody{
	api.PathStandbyLeader:      noStandbyLeader,
	api.PathStandbyLeaderAlias: noStandbyLeader, // a spelling Patroni accepts too
	api.PathPatroni: {Reason: "Patroni's status document has no pgquorum equivalent; the node's verdict and the cluster view carry the same facts",
		Use: []string{api.PathState, api.PathCluster, api.PathMetrics}},
	api.PathPatroniConfig: {Reason: "pgquorum keeps no dynamic configuration in a DCS: each node reads its own YAML file",
		Use: []string{"pgquorum serve --config FILE --check-config"}},
	api.PathPatroniFailover: {Reason: "pgquorum fails over by itself with failover.mode pgquorum, or lets repmgrd do it; an operator moves the primary with a switchover",
		Use: []string{api.PathSwitchover, api.PathPause, api.PathResume}},
	api.PathPatroniRestart: {Reason: "pgquorum never restarts PostgreSQL: the service manager or repmgr does",
		Use: []string{"repmgr node service --action=restart"}},
	api.PathPatroniReload: {Reason: "pgquorum never reloads PostgreSQL (it reloads its own certificate on SIGHUP): the service manager or repmgr does",
		Use: []string{"repmgr node service --action=reload"}},
	api.PathPatroniReinit: {Reason: "pgquorum never rebuilds a standby: repmgr does",
		Use: []string{"repmgr node rejoin --force-rewind", "repmgr standby clone --force"}},
}

var noStandbyLeader = api.PatroniBody{
	Reason: "pgquorum watches one repmgr cluster, never a standby cluster replicating from another: no node is a standby leader",
	Use:    []string{api.PathReadWrite, api.PathReplica},
}

// handlePatroniUnsupported answers 501 with what to use instead.
func handlePatroniUnsupported(body api.PatroniBody) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b := body
		b.Path = r.URL.Path
		writeJSON(w, http.StatusNotImplemented, b)
	}
}
