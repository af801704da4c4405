package config

import (
	"errors"
	"fmt"

	"github.com/pgquorum/pgquorum/auth"
)

// check reports keys of the security section that cannot work together,
// then reads every PEM file so that a bad one stops the start, naming its
// key, rather than the first handshake.
func (s Security) check(node string) []error {
	var errs []error
	need := func(cond bool, format string, args ...any) {
		if !cond {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	need((s.TLSCert == "") == (s.TLSKey == ""), "server.tls_cert, server.tls_key: want both or neither")
	https := s.TLSCert != "" && s.TLSKey != ""
	need(s.TLSClientCA == "" || https, "server.tls_client_ca: needs server.tls_cert and server.tls_key (HTTPS)")
	switch s.TLSClientAuth {
	case auth.ClientAuthOptional, auth.ClientAuthRequired:
		need(s.TLSClientCA != "", "server.tls_client_auth: %s needs server.tls_client_ca", s.TLSClientAuth)
	case auth.ClientAuthNone:
		need(s.TLSClientCA == "", "server.tls_client_auth: want optional or required with server.tls_client_ca, got none")
	}
	need(len(s.AdminClients) == 0 || s.TLSClientCA != "", "server.admin_clients: needs server.tls_client_ca, the CA of the clients' certificates")
	peerSet := s.PeerCA != "" || s.PeerCert != "" || s.PeerKey != ""
	need(!peerSet || (s.PeerCA != "" && s.PeerCert != "" && s.PeerKey != ""),
		"consensus.peer_tls: want ca, cert and key all set, or none")
	need(!peerSet || https, "server.tls_cert: required with consensus.peer_tls (peers poll this node over HTTPS)")
	if s.RequireAuthChecks {
		need(s.AdminToken != "" || s.TLSClientCA != "",
			"server.require_auth_for_checks: needs server.admin_token or server.tls_client_ca, or no check could pass")
		need(peerSet || s.PeerToken != "",
			"server.require_auth_for_checks: needs consensus.peer_tls or consensus.peer_token, for the peers' polls of /state")
	}
	if len(errs) > 0 {
		return errs
	}
	if _, err := auth.Load(s.Files(node)); err != nil {
		var joined interface{ Unwrap() []error }
		if errors.As(err, &joined) {
			return joined.Unwrap()
		}
		return []error{err}
	}
	return nil
}
