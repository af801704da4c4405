package server

import (
	"net/http"
	"slices"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
)

// Patroni's checks for synchronous standbys, answered from what this node
// knows by itself: its verdict, its own WAL receiver, and the synchronous
// object of its failover status (the committed set in its copy of the Raft
// log, and the primary's synchronous_standby_names as last seen). pgquorum
// always writes "ANY k (…)": PostgreSQL's quorum commit, Patroni's
// synchronous_mode: quorum. Its names map so (docs/patroni.md, "Synchronous
// standbys"):
//   - a quorum standby (/quorum, /read-only-quorum) is one the primary's
//     applied ANY k (…) counts: it confirms commits, but with k below the
//     number counted, a commit may be acknowledged without it;
//   - a synchronous standby (/sync, /synchronous, /read-only-sync) is a
//     quorum standby that every commit waits for: k covers every counted
//     standby, so it has received every acknowledged commit. Patroni's
//     synchronous_mode: on promises that of its sync standbys, and a reader
//     sent to /sync expects it; under ANY 1 of two, neither standby is one.
//
// When unsure, a standby is neither: a false 200 sends readers who expect
// every acknowledged commit to a node that may lack some, a false 503 only
// sends them elsewhere.

// syncRole is what this node is to synchronous replication, as it sees it.
type syncRole struct {
	member bool // in the committed set: elections count on it
	quorum bool // a quorum standby
	every  bool // a synchronous standby: every commit waits for it
}

// syncRoleOf reads the node's role from its snapshot and failover object.
// A quorum standby needs all of: failover.synchronous on or strict; a
// standby whose WAL receiver streams from the committed primary; a member
// of the set committed for the current epoch, and among those the primary
// is told to count; the primary seen applying exactly that set (as last
// seen: the coordinator's word, dropped when stale); and the cluster not
// degraded (synchronous_commit off or local on the primary waits for no
// one). A synchronous standby needs besides that k cover every counted
// standby, every member of the set be counted, and no raise of k be still
// caught up with: while a member leaves (no longer counted, still in the
// set until the others have received the primary's WAL of the change) or
// k was just raised, a commit acknowledged before may be on other members
// only, and elections count so too.
func syncRoleOf(snap *consensus.Snapshot, fs api.FailoverStatus) syncRole {
	s := fs.Synchronous
	if !syncManaged(fs) || s.Epoch == 0 || s.Epoch != fs.Epoch {
		return syncRole{}
	}
	self := snap.Verdict.Node
	r := syncRole{member: slices.Contains(s.Set, self)}
	if !r.member || !slices.Contains(s.Counted, self) {
		return r
	}
	if snap.Verdict.State != api.StateStandby || !snap.Facts.WAL.Streaming() || fs.Primary == "" {
		return r
	}
	if up, ok := consensus.Upstream(snap.Facts); !ok || up.Name != fs.Primary {
		return r
	}
	if !s.Seen || s.Want == "" || s.StandbyNames != s.Want || s.Degraded {
		return r
	}
	r.quorum = true
	r.every = s.Count >= len(s.Counted) && len(s.Counted) == len(s.Set) && s.ElectCount == 0
	return r
}

// syncManaged tells whether pgquorum manages synchronous replication:
// failover.synchronous on or strict.
func syncManaged(fs api.FailoverStatus) bool {
	return fs.Synchronous != nil && (fs.Synchronous.Mode == api.SyncOn || fs.Synchronous.Mode == api.SyncStrict)
}

// syncOff is the answer of /sync, /synchronous and /quorum with
// failover.synchronous off (or failover.mode off, which it needs): the
// primary waits for no standby, so no node is one.
func syncOff(fs api.FailoverStatus) *api.PatroniBody {
	if syncManaged(fs) {
		return nil
	}
	return &api.PatroniBody{
		Reason: "failover.synchronous is off on this node: replication is asynchronous and no node passes as a synchronous (or quorum) standby",
		Use:    []string{api.PathReplica, api.PathAsync, api.PathReadOnly},
	}
}

// handleSync serves /sync and /synchronous: a synchronous standby within
// ?lag=.
func (s *Server) handleSync(w http.ResponseWriter, r *http.Request) {
	s.answerCheck(w, r, true, syncOff, func(snap *consensus.Snapshot, fs api.FailoverStatus, maxLag *int64) bool {
		return syncRoleOf(snap, fs).every && replicaOK(snap, maxLag)
	})
}

// handleQuorum serves /quorum: a quorum standby within ?lag=.
func (s *Server) handleQuorum(w http.ResponseWriter, r *http.Request) {
	s.answerCheck(w, r, true, syncOff, func(snap *consensus.Snapshot, fs api.FailoverStatus, maxLag *int64) bool {
		return syncRoleOf(snap, fs).quorum && replicaOK(snap, maxLag)
	})
}

// handleReadOnlySync serves /read-only-sync and /read-only-synchronous:
// the confirmed primary, or a synchronous standby within ?lag=. With
// failover.synchronous off, the confirmed primary alone.
func (s *Server) handleReadOnlySync(w http.ResponseWriter, r *http.Request) {
	s.roleCheck(w, r, true, func(snap *consensus.Snapshot, fs api.FailoverStatus, maxLag *int64) bool {
		return snap.Verdict.State == api.StatePrimary || (syncRoleOf(snap, fs).every && replicaOK(snap, maxLag))
	})
}

// handleReadOnlyQuorum serves /read-only-quorum: the confirmed primary, or
// a quorum standby within ?lag=.
func (s *Server) handleReadOnlyQuorum(w http.ResponseWriter, r *http.Request) {
	s.roleCheck(w, r, true, func(snap *consensus.Snapshot, fs api.FailoverStatus, maxLag *int64) bool {
		return snap.Verdict.State == api.StatePrimary || (syncRoleOf(snap, fs).quorum && replicaOK(snap, maxLag))
	})
}

// handleAsync serves /async and /asynchronous: a streaming standby within
// ?lag= outside the committed synchronous set, as Patroni passes a replica
// that is neither a sync nor a quorum standby. A member is left out even
// while the primary does not count it (it joins, leaves, or on mode fell
// back): elections still count on it, and it counts again as soon as it
// catches up. With failover.synchronous off, as /replica.
func (s *Server) handleAsync(w http.ResponseWriter, r *http.Request) {
	s.roleCheck(w, r, true, func(snap *consensus.Snapshot, fs api.FailoverStatus, maxLag *int64) bool {
		return replicaOK(snap, maxLag) && !syncRoleOf(snap, fs).member
	})
}
