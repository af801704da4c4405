package server

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
	"github.com/pgquorum/pgquorum/repmgr"
)

var drainingBody = api.DownBody{State: api.StateDown, Reason: "pgquorum is shutting down"}

// handleState answers the node's verdict: 200 Primary, 202 Standby,
// 503 Down, 509 Unknown.
func (s *Server) handleState(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, drainingBody)
		return
	}
	bv, bounded := s.verdicts.(boundedVerdicts)
	var snap *consensus.Snapshot
	if bounded {
		snap = bv.SnapshotWithin(r.Context())
	} else {
		snap = s.verdicts.Snapshot(r.Context())
	}
	e := s.encodeState(snap, s.failoverStatus(r.Context()))
	if e.status == http.StatusOK && bounded && !bv.Valid(snap) {
		// A pause between the snapshot and now (GC, a suspended VM, a slow
		// failover status) must not send a 200 past its verdict's expiry.
		writeBody(w, api.StatusUnknown, expiredBody(snap))
		return
	}
	writeBody(w, e.status, e.body)
}

// boundedVerdicts is what /state uses when the Verdicts offer it, as
// *consensus.Checker does: a snapshot that does not wait on a slow refresh
// for longer than the check can, and a last look at the verdict's expiry.
type boundedVerdicts interface {
	SnapshotWithin(ctx context.Context) *consensus.Snapshot
	Valid(s *consensus.Snapshot) bool
}

// expiredBody is the 509 answer of a Primary verdict that expired while
// /state was answering it.
func expiredBody(snap *consensus.Snapshot) []byte {
	b := stateBody(snap)
	b.State, b.Reason = api.StateUnknown, "verdict expired while answering: "+b.Reason
	body, _ := json.Marshal(b)
	return body
}

func (s *Server) encodeState(snap *consensus.Snapshot, fs api.FailoverStatus) *encoded {
	if e := s.state.Load(); e != nil && e.snap == snap && e.fs == fs {
		return e
	}
	b := stateBody(snap)
	b.Failover = &fs
	body, err := json.Marshal(b)
	if err != nil {
		s.log.Error("encode /state", "error", err)
	}
	e := &encoded{snap: snap, fs: fs, status: snap.Verdict.State.HTTPStatus(), body: body}
	s.state.Store(e)
	return e
}

// failoverStatus is the failover object of /state.
func (s *Server) failoverStatus(ctx context.Context) api.FailoverStatus {
	if s.failover == nil {
		return api.FailoverStatus{Mode: api.ModeOff, State: api.FailoverOff}
	}
	return s.failover.Status(ctx)
}

// stateBody is the /state answer for a snapshot, without the failover
// object.
func stateBody(snap *consensus.Snapshot) api.StateBody {
	v := snap.Verdict
	b := api.StateBody{
		State: v.State, Node: v.Node, Location: v.Location, Votes: v.Votes, Needed: v.Needed,
		Scope: v.Scope, ClusterVotes: v.ClusterVotes, ClusterNeeded: v.ClusterNeeded,
		CheckedAt: v.CheckedAt.UTC().Truncate(time.Millisecond), Voters: v.Voters, Reason: v.Reason,
		Refusals: v.Refusals, Timeline: v.Timeline,
	}
	if v.State == api.StateDown {
		b.Timeline = 0 // not known for sure
	}
	if v.State == api.StateStandby {
		wal := snap.Facts.WAL
		streaming := wal.Streaming()
		b.Streaming = &streaming
		if lag, ok := wal.LagBytes(); ok {
			b.LagBytes = &lag
		}
		b.LagSeconds = wal.ReplayDelay
	}
	return b
}

// handlePrimary answers whom this node's own repmgr metadata names as the
// active primary: the node's vote, as its peers read it.
func (s *Server) handlePrimary(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, drainingBody)
		return
	}
	s.watchPrimary(r)
	snap := s.verdicts.Facts(r.Context())
	switch {
	case snap.ProbeErr != nil:
		writeJSON(w, http.StatusServiceUnavailable, api.DownBody{State: api.StateDown, Reason: snap.ProbeErr.Error()})
		return
	case snap.IdentityErr != nil:
		writeJSON(w, http.StatusServiceUnavailable, api.DownBody{State: api.StateDown, Reason: "not this node's database: " + snap.IdentityErr.Error()})
		return
	}
	p, ok := repmgr.NamedPrimary(snap.Facts.Nodes)
	if !ok {
		writeJSON(w, http.StatusServiceUnavailable, api.PrimaryBody{Reason: "repmgr.nodes records no single active primary"})
		return
	}
	writeJSON(w, http.StatusOK, api.PrimaryBody{Primary: &p.Name})
}

// handleRealPrimary asks every registered node's /state: exactly one 200 is
// the real primary, none is 503, several is split-brain (509).
func (s *Server) handleRealPrimary(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, drainingBody)
		return
	}
	res := s.verdicts.Survey(r.Context()).RealPrimary
	body := api.RealPrimaryBody{Unreachable: res.Unreachable}
	switch len(res.Claimants) {
	case 1:
		body.RealPrimary = &res.Primary
		writeJSON(w, http.StatusOK, body)
	case 0:
		writeJSON(w, http.StatusServiceUnavailable, body)
	default:
		body.Claimants = res.Claimants
		writeJSON(w, api.StatusUnknown, body)
	}
}
