package auth

import (
	"crypto/hmac"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
)

// streamMagic opens a token handshake, so that a listener tells a dialer of
// another protocol (or of an older pgquorum) from a bad token at once.
const streamMagic = "PGQUORUM-AUTH/1\n"

const (
	streamNonce = 32
	macSize     = 32 // HMAC-SHA256
	maxNameLen  = 255
)

// DialerHandshake runs the dialer's side of the token handshake on conn:
//
//	dialer → listener: magic ‖ Nd
//	listener → dialer: Nl ‖ name ‖ HMAC(listener ‖ Nd ‖ Nl ‖ name)
//	dialer → listener: HMAC(dialer ‖ Nl ‖ Nd ‖ name)
//
// Each side proves it holds the token on the other's fresh nonce, so
// nothing recorded from one handshake passes in another, and the listener
// names itself under its MAC: a holder of the token answering on another
// node's address is refused when expect (the node the address belongs to)
// is not the name it proves. The token authenticates the connection; it does
// not encrypt it (consensus.peer_tls does). The caller bounds conn with a
// deadline.
func (t *PeerToken) DialerHandshake(conn net.Conn, expect string) error {
	nd := make([]byte, streamNonce)
	if _, err := io.ReadFull(t.rand, nd); err != nil {
		return fmt.Errorf("handshake nonce: %w", err)
	}
	if _, err := conn.Write(append([]byte(streamMagic), nd...)); err != nil {
		return fmt.Errorf("send handshake: %w", err)
	}
	head := make([]byte, streamNonce+1)
	if _, err := io.ReadFull(conn, head); err != nil {
		return fmt.Errorf("read listener's handshake: %w", err)
	}
	nl, nameLen := head[:streamNonce], int(head[streamNonce])
	rest := make([]byte, nameLen+macSize)
	if _, err := io.ReadFull(conn, rest); err != nil {
		return fmt.Errorf("read listener's handshake: %w", err)
	}
	name, mac := rest[:nameLen], rest[nameLen:]
	if !hmac.Equal(mac, t.mac(labelListener, nd, nl, name)) {
		return fmt.Errorf("listener's MAC does not verify with consensus.peer_token: %w", ErrBadCredentials)
	}
	if expect != "" && string(name) != expect {
		return fmt.Errorf("the listener holds the token but is node %q, not %q: %w", name, expect, ErrBadCredentials)
	}
	if _, err := conn.Write(t.mac(labelDialer, nl, nd, name)); err != nil {
		return fmt.Errorf("send handshake MAC: %w", err)
	}
	return nil
}

// ListenerHandshake runs the listener's side (see DialerHandshake); self is
// this node's name.
func (t *PeerToken) ListenerHandshake(conn net.Conn, self string) error {
	if len(self) > maxNameLen {
		return fmt.Errorf("node name longer than %d bytes", maxNameLen)
	}
	head := make([]byte, len(streamMagic)+streamNonce)
	if _, err := io.ReadFull(conn, head); err != nil {
		return fmt.Errorf("read dialer's handshake: %w", err)
	}
	if string(head[:len(streamMagic)]) != streamMagic {
		return fmt.Errorf("dialer did not open a pgquorum handshake: %w", ErrNoCredentials)
	}
	nd := head[len(streamMagic):]
	nl := make([]byte, streamNonce)
	if _, err := io.ReadFull(t.rand, nl); err != nil {
		return fmt.Errorf("handshake nonce: %w", err)
	}
	out := append(append(append(nl, byte(len(self))), self...), t.mac(labelListener, nd, nl, []byte(self))...)
	if _, err := conn.Write(out); err != nil {
		return fmt.Errorf("send handshake: %w", err)
	}
	mac := make([]byte, macSize)
	if _, err := io.ReadFull(conn, mac); err != nil {
		return fmt.Errorf("read dialer's MAC: %w", err)
	}
	if !hmac.Equal(mac, t.mac(labelDialer, nl, nd, []byte(self))) {
		return fmt.Errorf("dialer's MAC does not verify with consensus.peer_token: %w", ErrBadCredentials)
	}
	return nil
}

// Stream authenticates raw TCP streams between peers, such as Raft's, with
// the credentials their HTTP exchanges use: mutual TLS with the peer CA,
// the token handshake, or both (TLS first).
type Stream struct {
	TLS   *Store     // nil: no TLS
	Token *PeerToken // nil: no token handshake
	Self  string     // this node's name, which the token handshake proves
}

// Enabled tells whether any credential is configured.
func (s Stream) Enabled() bool { return s.TLS != nil || s.Token != nil }

// Client authenticates a dialled conn, whose listener must be node expect,
// and returns the conn to use. The caller bounds conn with a deadline.
func (s Stream) Client(conn net.Conn, expect string) (net.Conn, error) {
	if expect == "" {
		return nil, errors.New("no node is known at this address")
	}
	if s.TLS != nil {
		tc := tls.Client(conn, s.TLS.PeerClientTLS())
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		cs := tc.ConnectionState()
		if err := CheckNames(&cs, expect); err != nil {
			return nil, fmt.Errorf("listener: %w: %w", err, ErrBadCredentials)
		}
		conn = tc
	}
	if s.Token != nil {
		if err := s.Token.DialerHandshake(conn, expect); err != nil {
			return nil, err
		}
	}
	return conn, nil
}

// Server authenticates an accepted conn and returns the conn to use. The
// caller bounds conn with a deadline.
func (s Stream) Server(conn net.Conn) (net.Conn, error) {
	if s.TLS != nil {
		tc := tls.Server(conn, s.TLS.PeerServerTLS())
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	if s.Token != nil {
		if err := s.Token.ListenerHandshake(conn, s.Self); err != nil {
			return nil, err
		}
	}
	return conn, nil
}
