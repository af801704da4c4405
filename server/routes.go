package server

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/pgquorum/pgquorum/api"
)

// checkMethods are the methods every check endpoint answers alike: HAProxy's
// httpchk uses OPTIONS by default, and many setups use HEAD.
var checkMethods = []string{http.MethodGet, http.MethodHead, http.MethodOptions}

// Handler returns the router with every route of the API.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	check := func(path string, h http.HandlerFunc) {
		for _, m := range checkMethods {
			r.Method(m, path, h)
		}
	}
	check(api.PathRoot, s.handleState)
	check(api.PathState, s.handleState)
	check(api.PathPrimary, s.handlePrimary)
	check(api.PathRealPrimary, s.limited(api.PathRealPrimary, s.handleRealPrimary))
	check(api.PathLeader, s.handleLeader)
	check(api.PathReplica, s.handleReplica)
	check(api.PathReadOnly, s.handleReadOnly)
	check(api.PathHealth, s.handleHealth)
	check(api.PathReadiness, s.handleReadiness)
	check(api.PathLiveness, s.handleLiveness)
	r.Get(api.PathCluster, s.limited(api.PathCluster, s.handleCluster))
	r.Post(api.PathVote, s.handleVote)
	r.Post(api.PathReport, s.handleReport)
	r.Get(api.PathHistory, s.handleHistory)
	if s.events != nil {
		r.Get(api.PathEvents, s.limited(api.PathEvents, s.handleEvents))
	}
	if s.metrics != nil {
		r.Method(http.MethodGet, api.PathMetrics, s.metrics.Handler())
	}
	if s.agent != nil {
		r.Mount(api.PathAgent, s.agent)
	}
	return r
}
