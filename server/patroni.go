package server

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

// The checks below keep the names and meanings Patroni users' HAProxy
// templates expect, answered from the same cached verdict as /state: 200 when
// the node fits the role, 503 when it does not. The body is always the node's
// /state answer, so an operator sees why. docs/patroni.md maps every Patroni
// endpoint and query parameter.

// roleTest tells whether the node fits a check's role: its verdict's
// snapshot, its failover object as /state shows it, and the ?lag= bound of
// the checks that read Patroni's query parameters (nil: none).
type roleTest func(snap *consensus.Snapshot, fs api.FailoverStatus, maxLag *int64) bool

// handleLeader: 200 only for a primary with its site's majority, the
// confirmed primary. It also serves Patroni's /master and /read-write.
func (s *Server) handleLeader(w http.ResponseWriter, r *http.Request) {
	s.roleCheck(w, r, false, func(snap *consensus.Snapshot, _ api.FailoverStatus, _ *int64) bool {
		return snap.Verdict.State == api.StatePrimary
	})
}

// handleReplica: 200 on a streaming standby within ?lag=.
func (s *Server) handleReplica(w http.ResponseWriter, r *http.Request) {
	s.roleCheck(w, r, true, func(snap *consensus.Snapshot, _ api.FailoverStatus, maxLag *int64) bool {
		return replicaOK(snap, maxLag)
	})
}

// handleReadOnly: 200 on the majority primary or on a replica as /replica
// would accept it.
func (s *Server) handleReadOnly(w http.ResponseWriter, r *http.Request) {
	s.roleCheck(w, r, true, func(snap *consensus.Snapshot, _ api.FailoverStatus, maxLag *int64) bool {
		return snap.Verdict.State == api.StatePrimary || replicaOK(snap, maxLag)
	})
}

// handleHealth: 200 while the local database answers, whatever its role.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	s.roleCheck(w, r, false, func(snap *consensus.Snapshot, _ api.FailoverStatus, _ *int64) bool {
		return snap.Verdict.State != api.StateDown
	})
}

// handleReadiness: the database answers and, on a standby, streams.
func (s *Server) handleReadiness(w http.ResponseWriter, r *http.Request) {
	s.roleCheck(w, r, false, func(snap *consensus.Snapshot, _ api.FailoverStatus, _ *int64) bool {
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

// roleCheck answers 200 when the node fits, 503 when not. Only the checks
// that may pass a standby (replicaParams) read Patroni's query parameters,
// as Patroni's own do: the others ignore every parameter, tag_* included,
// rather than fail on one they have no use for.
func (s *Server) roleCheck(w http.ResponseWriter, r *http.Request, replicaParams bool, fits roleTest) {
	s.answerCheck(w, r, replicaParams, nil, fits)
}

// answerCheck is roleCheck; unserved, when not nil, is asked first with
// the failover object and may answer instead: a PatroniBody with 503 for a
// check no node passes as configured.
func (s *Server) answerCheck(w http.ResponseWriter, r *http.Request, replicaParams bool, unserved func(api.FailoverStatus) *api.PatroniBody, fits roleTest) {
	var maxLag *int64
	if replicaParams {
		var err error
		if maxLag, err = replicaQuery(r.URL.Query()); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
	}
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, drainingBody)
		return
	}
	fs := s.failoverStatus(r.Context())
	if unserved != nil {
		if b := unserved(fs); b != nil {
			b.Path = r.URL.Path
			writeJSON(w, http.StatusServiceUnavailable, b)
			return
		}
	}
	snap := s.verdicts.Snapshot(r.Context())
	status := http.StatusServiceUnavailable
	if fits(snap, fs, maxLag) {
		status = http.StatusOK
	}
	writeBody(w, status, s.encodeState(snap, fs).body)
}

// replicaQuery reads the query parameters Patroni documents for its replica
// checks and returns the ?lag= bound, if any. lag is in bytes: a plain
// number, or with a PostgreSQL-style unit (B, kB, MB, GB, TB; powers of
// 1024), as Patroni accepts it. replication_state=streaming holds on every
// standby these checks pass; any other state never would, and tag_* names a
// Patroni tag no pgquorum node carries: both are refused (400) rather than
// failing every node in silence.
func replicaQuery(q url.Values) (*int64, error) {
	for _, key := range slices.Sorted(maps.Keys(q)) {
		if strings.HasPrefix(key, "tag_") {
			return nil, fmt.Errorf("%s: pgquorum nodes carry no Patroni tags; drop the parameter (a node leaves the read-only listener through its agent: pgquorum agent drain)", key)
		}
	}
	if st := q.Get("replication_state"); st != "" && st != repmgr.StreamingState {
		return nil, fmt.Errorf("replication_state: pgquorum's replica checks pass only streaming standbys; want streaming, got %q", st)
	}
	raw := q.Get("lag")
	if raw == "" {
		return nil, nil
	}
	n, err := api.ParseBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("lag: %w", err)
	}
	return &n, nil
}
