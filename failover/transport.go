package failover

import (
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/auth"
)

// raftTimeout bounds each Raft RPC's I/O and each handshake of the
// authenticated transport.
const raftTimeout = 2 * time.Second

// newTransport listens on o.Bind for Raft. Without credentials it is Raft's
// plain TCP transport, as before; with consensus.peer_tls or
// consensus.peer_token, every connection is authenticated both ways before
// Raft reads or writes a byte of it (see streamLayer).
func newTransport(o RaftOptions, advertise *net.TCPAddr, members *memberNames, log hclog.Logger) (*raft.NetworkTransport, error) {
	if !o.Auth.Enabled() {
		return raft.NewTCPTransportWithLogger(o.Bind, advertise, 3, raftTimeout, log)
	}
	if advertise.IP == nil || advertise.IP.IsUnspecified() {
		return nil, fmt.Errorf("raft address %s is not one peers can dial", advertise)
	}
	ln, err := net.Listen("tcp", o.Bind)
	if err != nil {
		return nil, err
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	stream := &streamLayer{
		ln:        auth.NewListener(ln, o.Auth.Server, raftTimeout, logger.With("component", "raft-transport")),
		advertise: advertise,
		auth:      o.Auth,
		members:   members,
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{Stream: stream, MaxPool: 3, Timeout: raftTimeout, Logger: log}), nil
}

// streamLayer is Raft's stream over TCP with pgquorum's peer credentials:
// an accepted connection reaches Raft only once the dialer proved it holds
// them (a certificate of the peer CA, the token), and a dialled one is used
// only once the listener proved it holds them and is the very member whose
// address was dialled. The last check keeps a member answering on another's
// address from casting that one's Raft vote.
type streamLayer struct {
	ln        net.Listener
	advertise net.Addr
	auth      auth.Stream
	members   *memberNames
}

func (s *streamLayer) Accept() (net.Conn, error) { return s.ln.Accept() }
func (s *streamLayer) Close() error              { return s.ln.Close() }
func (s *streamLayer) Addr() net.Addr            { return s.advertise }

// Dial connects to address and authenticates the member behind it within
// timeout.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	name := s.members.at(address)
	if name == "" {
		return nil, fmt.Errorf("raft: no member of the group has address %s", address)
	}
	conn, err := net.DialTimeout("tcp", string(address), timeout)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(timeout))
	c, err := s.auth.Client(conn, name)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("raft: authenticate %s at %s: %w", name, address, err)
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// memberNames tells which member a Raft address belongs to: from the
// group's latest configuration once Raft runs, from the registered nodes
// before.
type memberNames struct {
	initial raft.Configuration
	r       atomic.Pointer[raft.Raft]
}

func (m *memberNames) at(address raft.ServerAddress) string {
	conf := m.initial
	if r := m.r.Load(); r != nil {
		if f := r.GetConfiguration(); f.Error() == nil && len(f.Configuration().Servers) > 0 {
			conf = f.Configuration()
		}
	}
	for _, s := range conf.Servers {
		if s.Address == address {
			return string(s.ID)
		}
	}
	return ""
}
