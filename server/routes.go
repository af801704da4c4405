package server

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/pgquorum/pgquorum/api"
)

// checkMethods are the methods every check endpoint answers alike: HAProxy's
// httpchk uses OPTIONS by default, and many setups use HEAD.
var checkMethods = []string{http.MethodGet, http.MethodHead, http.MethodOptions}

// Handler returns the router with every route of the API, in three groups
// by the credential they need (server/auth.go).
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	if s.auth.PeerToken != nil {
		r.Use(s.verifyPeerToken)
	}
	// Checks and views: open, unless server.require_auth_for_checks.
	r.Group(func(r chi.Router) {
		r.Use(s.requireReader)
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
		// Patroni's other names (docs/patroni.md).
		check(api.PathMaster, s.handleLeader)
		check(api.PathReadWrite, s.handleLeader)
		check(api.PathSync, s.handleSync)
		check(api.PathSynchronous, s.handleSync)
		check(api.PathQuorum, s.handleQuorum)
		check(api.PathReadOnlySync, s.handleReadOnlySync)
		check(api.PathReadOnlySynchronous, s.handleReadOnlySync)
		check(api.PathReadOnlyQuorum, s.handleReadOnlyQuorum)
		check(api.PathAsync, s.handleAsync)
		check(api.PathAsynchronous, s.handleAsync)
		for path, body := range patroniUnsupported {
			r.HandleFunc(path, handlePatroniUnsupported(body))
		}
		check(api.PathHealth, s.handleHealth)
		check(api.PathReadiness, s.handleReadiness)
		check(api.PathLiveness, s.handleLiveness)
		r.Get(api.PathCluster, s.limited(api.PathCluster, s.handleCluster))
		r.Get(api.PathUI, s.limited(api.PathUI, s.handleUI))
		r.Get(api.PathHistory, s.handleHistory)
		r.Get(api.PathSwitchover, s.handleShowSwitchover)
		if s.events != nil {
			r.Get(api.PathEvents, s.limited(api.PathEvents, s.handleEvents))
		}
		if s.metrics != nil {
			r.Method(http.MethodGet, api.PathMetrics, s.metrics.Handler())
		}
	})
	// Peers' endpoints: their certificate or signature, when configured.
	r.Group(func(r chi.Router) {
		r.Use(s.requirePeer)
		r.Post(api.PathVote, s.handleVote)
		r.Post(api.PathReport, s.handleReport)
		r.Post(api.PathCommand, s.handleCommand)
		r.Post(api.PathRelease, s.handleRelease)
		r.Post(api.PathDeposition, s.handleDeposition)
	})
	// Operator commands: every request that changes state belongs in this group, and
	// only here, so that it needs server.admin_token or a certificate of
	// server.admin_clients (loopback when neither is set) by being added to
	// it: the HAProxy agent override, switchover, pause, resume and
	// failover-check (which records repmgrd's allowance).
	r.Group(func(r chi.Router) {
		r.Use(s.requireAdmin)
		if s.agent != nil {
			r.Mount(api.PathAgent, s.agent)
		}
		r.Post(api.PathSwitchover, s.handleSwitchover)
		r.Post(api.PathPause, s.handlePause)
		r.Post(api.PathResume, s.handleResume)
		r.Post(api.PathFailoverCheck, s.handleFailoverCheck)
	})
	return r
}
