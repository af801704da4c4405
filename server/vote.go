package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

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
	if why := s.notFromCandidate(r, req); why != "" {
		// Refused before the ballot is asked: it takes no lease.
		s.log.Warn("vote refused: the request does not come from its candidate", "candidate", req.Candidate,
			"remote", r.RemoteAddr, "why", why)
		writeJSON(w, http.StatusOK, api.VoteAnswer{Protocol: api.VoteProtocol, Voter: s.self, Candidate: req.Candidate, Reason: why})
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

// notFromCandidate says why the authenticated sender of a vote request is
// not its candidate, "" when it is or nothing authenticates senders. With
// consensus.peer_tls the client certificate must name the candidate
// (requirePeer has checked that the peer CA signed it): a node could
// otherwise take every voter's lease for another, or for a name of its
// choosing. The peer token is one secret shared by every node and names
// none: what it signs, the body and so its candidate, is all it binds.
func (s *Server) notFromCandidate(r *http.Request, req api.VoteRequest) string {
	if !s.auth.PeerTLS {
		return ""
	}
	names := s.identity(r).Peer
	if slices.Contains(names, req.Candidate) {
		return ""
	}
	return fmt.Sprintf("the request for %q comes from a certificate of %s, not of the candidate", req.Candidate, quoteAll(names))
}

func quoteAll(names []string) string {
	if len(names) == 0 {
		return "no name"
	}
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
