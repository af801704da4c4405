package server

import (
	"net/http"

	"github.com/pgquorum/pgquorum/api"
)

// handleVote answers a peer that asks this node to vouch for it. The answer
// is 200 whether the vote is granted or refused: the body says which and why.
// A node shutting down vouches for nobody.
func (s *Server) handleVote(w http.ResponseWriter, r *http.Request) {
	var req api.VoteRequest
	if err := api.DecodeStrict(http.MaxBytesReader(w, r.Body, api.MaxVoteBody), &req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "decode vote request: " + err.Error()})
		return
	}
	a := s.verdicts.Vote(r.Context(), req)
	if s.draining.Load() && a.Granted {
		// The lease it took binds this node all the same: refusing now is
		// only ever safer.
		a.Granted, a.Reason = false, "pgquorum is shutting down"
	}
	writeJSON(w, http.StatusOK, a)
}
