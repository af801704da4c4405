package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/client"
	"github.com/pgquorum/pgquorum/config"
	"github.com/pgquorum/pgquorum/server"
)

// credentials are what "serve" proves itself and checks others with,
// loaded once from the configuration: the TLS material (reloaded on
// SIGHUP) and the peer token.
type credentials struct {
	sec   config.Security
	node  string
	tls   *auth.Store     // nil: no TLS material at all
	token *auth.PeerToken // nil: no peer token
}

func loadCredentials(cfg config.Config) (credentials, error) {
	c := credentials{sec: cfg.Security, node: cfg.NodeName}
	if cfg.Security.ServerTLS() || cfg.Security.PeerTLS() {
		s, err := auth.NewStore(cfg.Security.Files(cfg.NodeName))
		if err != nil {
			return c, err
		}
		c.tls = s
	}
	if cfg.Security.PeerToken != "" {
		c.token = auth.NewPeerToken(cfg.Security.PeerToken, nil, nil)
	}
	return c, nil
}

// warn says at start what the configuration leaves open.
func (c credentials) warn(log *slog.Logger) {
	switch {
	case c.sec.ServerTLS() && !c.sec.PeerTLS() && c.token == nil:
		log.Warn("server.tls_cert is set without consensus.peer_tls or consensus.peer_token: peers are polled over TLS " +
			"without verifying who answers, and whatever answers on a peer's address casts its vote")
	case !c.sec.PeerTLS() && c.token == nil:
		log.Warn("neither consensus.peer_tls nor consensus.peer_token is set: whatever answers on a peer's address casts its vote")
	}
	if !c.sec.AdminAuth() {
		log.Info("neither server.admin_token nor server.admin_clients is set: operator commands are taken from loopback only")
	}
}

// listen wraps ln in TLS when server.tls_cert is set: every handshake takes
// the material current at that moment, so a reload keeps the listener.
func (c credentials) listen(ln net.Listener) net.Listener {
	if !c.sec.ServerTLS() {
		return ln
	}
	return tls.NewListener(ln, c.tls.ServerTLS(c.sec.TLSClientAuth))
}

// peerClient is how this node asks its peers, proving itself and checking
// them: over HTTPS whenever the peers serve it (every node has the same
// keys).
func (c credentials) peerClient(log *slog.Logger) *client.Client {
	o := client.Options{PeerToken: c.token, CheckNames: c.sec.PeerTLS(), Logger: log.With("component", "peers")}
	if c.sec.ServerTLS() {
		o.TLS = c.tls.PeerClientTLS()
	}
	return client.New(o)
}

func (c credentials) serverAuth() server.AuthOptions {
	return server.AuthOptions{TLS: c.tls, AdminToken: c.sec.AdminToken, AdminClients: c.sec.AdminClients,
		RequireAuthChecks: c.sec.RequireAuthChecks, PeerTLS: c.sec.PeerTLS(), PeerToken: c.token}
}

// stream is what authenticates the Raft transport: the peers' credentials.
func (c credentials) stream() auth.Stream {
	s := auth.Stream{Token: c.token, Self: c.node}
	if c.sec.PeerTLS() {
		s.TLS = c.tls
	}
	return s
}

// reloadOnHUP rereads the TLS material at every SIGHUP until ctx ends. A
// reading that fails keeps the material in use, and says why.
func (c credentials) reloadOnHUP(ctx context.Context, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if c.tls == nil {
			log.Info("SIGHUP: no TLS material to reload")
			continue
		}
		m, err := c.tls.Reload()
		if err != nil {
			log.Error("SIGHUP: TLS material not reloaded, keeping the previous", append([]any{"error", err}, m.Describe()...)...)
			continue
		}
		log.Info("SIGHUP: TLS material reloaded", m.Describe()...)
	}
}
