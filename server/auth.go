package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/auth"
)

// AuthOptions say which credentials each kind of request needs. The zero
// value keeps the rules of a deployment that configures none: checks, views
// and peers' endpoints open, operator commands from loopback only.
type AuthOptions struct {
	// TLS is the material server.listen serves, when HTTPS; client
	// certificates are verified against its CAs.
	TLS          *auth.Store
	AdminToken   auth.Secret // server.admin_token
	AdminClients []string    // server.admin_clients: names of client certificates that may act
	// RequireAuthChecks closes checks and views to requests without a
	// credential (server.require_auth_for_checks).
	RequireAuthChecks bool
	// PeerTLS: /internal/* needs a client certificate signed by the peer CA.
	PeerTLS bool
	// PeerToken: /internal/* needs a request signed with the peer token; a
	// signed request to any endpoint gets a signed answer.
	PeerToken *auth.PeerToken
}

// adminAuth tells whether operator commands need a credential rather than loopback.
func (o AuthOptions) adminAuth() bool { return o.AdminToken != "" || len(o.AdminClients) > 0 }

// maxSignedBody bounds the body of a signed request read before its MAC is
// checked: the peers' requests are a few hundred bytes.
const maxSignedBody = 64 << 10

// connKey holds, in each connection's context, the identity its client
// certificate proves, verified once for all the requests of a connection.
type connKey struct{}

type connIdentity struct {
	once sync.Once
	id   auth.Identity
}

func (s *Server) connContext(ctx context.Context, _ net.Conn) context.Context {
	if s.auth.TLS == nil {
		return ctx
	}
	return context.WithValue(ctx, connKey{}, &connIdentity{})
}

// identity is what the client certificate of r's connection proves.
func (s *Server) identity(r *http.Request) auth.Identity {
	if r.TLS == nil || s.auth.TLS == nil {
		return auth.Identity{}
	}
	ci, _ := r.Context().Value(connKey{}).(*connIdentity)
	if ci == nil {
		return s.auth.TLS.Current().Identify(r.TLS)
	}
	ci.once.Do(func() { ci.id = s.auth.TLS.Current().Identify(r.TLS) })
	return ci.id
}

// tokenKey holds, in a request's context, the result of checking its peer
// token signature: nil when verified; absent when the request bore none.
type tokenKey struct{}

type tokenResult struct{ err error }

// peerTokenResult says whether r was signed with the peer token: ok, or
// why not (auth.ErrNoCredentials when it bore no signature).
func peerTokenResult(r *http.Request) error {
	if res, ok := r.Context().Value(tokenKey{}).(tokenResult); ok {
		return res.err
	}
	return auth.ErrNoCredentials
}

// verifyPeerToken checks the signature of every signed request and signs
// the answer of each one that verifies, bound to its nonce: a peer then
// knows the answer comes from a holder of the token, for its very request.
// Whether a request needed a signature is for the group middlewares.
func (s *Server) verifyPeerToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(api.HeaderPeerNonce) == "" && r.Header.Get(api.HeaderPeerMAC) == "" {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSignedBody))
		if err != nil {
			writeJSON(w, http.StatusRequestEntityTooLarge, errorBody("read signed request: "+err.Error()))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		nonce, err := s.auth.PeerToken.VerifyRequest(r.Method, r.URL.RequestURI(), r.Header, body)
		r = r.WithContext(context.WithValue(r.Context(), tokenKey{}, tokenResult{err}))
		if err != nil {
			s.log.Debug("peer token refused", "remote", r.RemoteAddr, "path", r.URL.Path, "error", err)
			next.ServeHTTP(w, r)
			return
		}
		sw := &signedWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		s.auth.PeerToken.SignAnswer(w.Header(), nonce, sw.status, sw.buf.Bytes())
		w.WriteHeader(sw.status)
		_, _ = w.Write(sw.buf.Bytes())
	})
}

// signedWriter holds an answer back until its MAC is known.
type signedWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
	buf    bytes.Buffer
}

func (w *signedWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
}

func (w *signedWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.buf.Write(b)
}

// requirePeer guards the peers' endpoints (/internal/*): with
// consensus.peer_tls a client certificate signed by the peer CA, with
// consensus.peer_token a signed request; with both, both.
func (s *Server) requirePeer(next http.Handler) http.Handler {
	if !s.auth.PeerTLS && s.auth.PeerToken == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.auth.PeerTLS {
			if id := s.identity(r); id.Peer == nil {
				s.refuse(w, r, id.Presented, "peers' endpoint: want a client certificate signed by consensus.peer_tls.ca")
				return
			}
		}
		if s.auth.PeerToken != nil {
			if err := peerTokenResult(r); err != nil {
				s.refuse(w, r, !errors.Is(err, auth.ErrNoCredentials), "peers' endpoint: want a request signed with consensus.peer_token")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// requireReader guards checks and views when server.require_auth_for_checks
// is set. Any credential pgquorum knows passes: the admin token, a client
// certificate signed by server.tls_client_ca (whatever its name: HAProxy's),
// a peer's certificate or a request signed with the peer token (peers poll
// /state to find split-brains).
func (s *Server) requireReader(next http.Handler) http.Handler {
	if !s.auth.RequireAuthChecks {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, hasToken := bearer(r)
		id := s.identity(r)
		tokenErr := peerTokenResult(r)
		switch {
		case hasToken && s.auth.AdminToken.Matches(token), id.Client != nil, id.Peer != nil, tokenErr == nil:
			next.ServeHTTP(w, r)
		default:
			s.refuse(w, r, hasToken || id.Presented || !errors.Is(tokenErr, auth.ErrNoCredentials),
				"server.require_auth_for_checks: want the admin token or a client certificate signed by server.tls_client_ca")
		}
	})
}

// requireAdmin guards every operator command, every request that changes state: with
// server.admin_token or server.admin_clients, the token as a bearer or a
// client certificate signed by server.tls_client_ca that names an allowed
// client; with neither, a client on the node's own host. 401 without a
// credential, 403 with a wrong one; the command is never reached then.
//
// Requests with an Origin header are refused whatever they carry: a browser
// sends its client certificate, and the host's loopback, to any site that
// asks, so a web page must not be able to act by a cross-site request.
func (s *Server) requireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Origin") != "" {
			writeJSON(w, http.StatusForbidden, errorBody("cross-origin requests are refused"))
			return
		}
		if !s.auth.adminAuth() {
			if !fromLoopback(r) {
				writeJSON(w, http.StatusForbidden, errorBody("operator commands are taken from the node's own host only "+
					"(set server.admin_token or server.admin_clients to act from elsewhere)"))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		token, hasToken := bearer(r)
		id := s.identity(r)
		switch {
		case hasToken && s.auth.AdminToken.Matches(token):
			next.ServeHTTP(w, r)
		case slices.ContainsFunc(id.Client, func(n string) bool { return slices.Contains(s.auth.AdminClients, n) }):
			next.ServeHTTP(w, r)
		default:
			s.refuse(w, r, hasToken || id.Presented,
				"operator commands: want server.admin_token as a bearer token, or a client certificate named in server.admin_clients")
		}
	})
}

// refuse answers 403 to a request that presented a credential that does not
// do, 401 (asking for a bearer token) to one that presented none.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, presented bool, why string) {
	s.log.Debug("request refused", "remote", r.RemoteAddr, "method", r.Method, "path", r.URL.Path, "credential", presented, "why", why)
	if presented {
		writeJSON(w, http.StatusForbidden, errorBody("forbidden: "+why))
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="pgquorum"`)
	writeJSON(w, http.StatusUnauthorized, errorBody("unauthorized: "+why))
}

// bearer returns the token of an "Authorization: Bearer" header; ok is
// true whenever the header is there at all, a wrong scheme included, so that
// it counts as a credential presented.
func bearer(r *http.Request) (token string, ok bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(tok), true
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	ip := net.ParseIP(host)
	return err == nil && ip != nil && ip.IsLoopback()
}

func errorBody(msg string) map[string]string { return map[string]string{"error": msg} }
