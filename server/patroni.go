package server

import (
	"fmt"
	"net/http"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
)

// The checks below keep the names and meanings Patroni users' HAProxy
// templates expect, answered from the same cached verdict as /state: 200 when
// the node fits the role, 503 when it does not. The body is always the node's
// /state answer, so an operator sees why.

// handleLeader: 200 only for a primary with its site's majority.
func (s *Server) handleLeader(w http.ResponseWriter, r *http.Request) {
	s.roleCheck(w, r, false, func(snap *consensus.Snapshot, _ *int64) bool {
		return snap.Verdict.State == api.StatePrimary
	})
}

// handleReplica: 200 on a streaming standby within ?lag=.
func (s *Server) handleReplica(w http.ResponseWriter, r *http.Request) {
	s.roleCheck(w, r, true, replicaOK)
}

// handleReadOnly: 200 on the majority primary or on a replica as /replica
// would accept it.
func (s *Server) handleReadOnly(w http.ResponseWriter, r *http.Request) {
	s.roleCheck(w, r, true, func(snap *consensus.Snapshot, maxLag *int64) bool {
		return snap.Verdict.State == api.StatePrimary || replicaOK(snap, maxLag)
	})
}

// handleHealth: 200 while the local database answers, whatever its role.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.roleCheck(w, r, false, func(snap *consensus.Snapshot, _ *int64) bool {
		return snap.Verdict.State != api.StateDown
	})
}

// handleReadiness: the database answers and, on a standby, streams.
func (s *Server) handleReadiness(w http.ResponseWriter, r *http.Request) {
	s.roleCheck(w, r, false, func(snap *consensus.Snapshot, _ *int64) bool {
		switch snap.Verdict.State {
		case api.StateDown:
			return false
		case api.StateStandby:
			return snap.Facts.WAL.Streaming()
		}
		return true
	})
}

// handleLiveness answers 200 while the process serves HTTP, whatever the
// database: a supervisor restarts pgquorum on its failure, not PostgreSQL's.
func (s *Server) handleLiveness(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

func replicaOK(snap *consensus.Snapshot, maxLag *int64) bool {
	wal := snap.Facts.WAL
	if snap.Verdict.State != api.StateStandby || !wal.Streaming() {
		return false
	}
	if maxLag == nil {
		return true
	}
	lag, known := wal.LagBytes()
	return known && lag <= *maxLag // an unknown lag fails a bounded check
}

// roleCheck answers 200 when fits the snapshot, 503 when not. Only the
// checks that take ?lag= (takesLag) read it: the others ignore it, as they
// ignore any parameter, rather than fail on one they have no use for.
func (s *Server) roleCheck(w http.ResponseWriter, r *http.Request, takesLag bool, fits func(*consensus.Snapshot, *int64) bool) {
	var maxLag *int64
	if takesLag {
		var err error
		if maxLag, err = lagParam(r); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
	}
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, drainingBody)
		return
	}
	snap := s.verdicts.Snapshot(r.Context())
	status := http.StatusServiceUnavailable
	if fits(snap, maxLag) {
		status = http.StatusOK
	}
	writeBody(w, status, s.encodeState(snap, s.failoverStatus(r.Context())).body)
}

// lagParam reads ?lag= as bytes: a plain number, or with a PostgreSQL-style
// unit (B, kB, MB, GB, TB; powers of 1024), as Patroni accepts it.
func lagParam(r *http.Request) (*int64, error) {
	raw := r.URL.Query().Get("lag")
	if raw == "" {
		return nil, nil
	}
	n, err := api.ParseBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("lag: %w", err)
	}
	return &n, nil
}
