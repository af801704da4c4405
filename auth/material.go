package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// ClientAuth is server.tls_client_auth: whether HTTPS clients must show a
// certificate signed by server.tls_client_ca.
type ClientAuth string

// The modes of server.tls_client_auth.
const (
	ClientAuthNone     ClientAuth = "none"     // no certificate asked for (peers still show theirs)
	ClientAuthOptional ClientAuth = "optional" // asked for; a verified one is an identity, none is fine
	ClientAuthRequired ClientAuth = "required" // every connection needs a verified one
)

// Files name the PEM files of a node's TLS material, as configured.
type Files struct {
	ServerCert, ServerKey string // server.tls_cert, server.tls_key: what server.listen serves
	ClientCA              string // server.tls_client_ca: signs operators' and HAProxy's certificates
	PeerCA                string // consensus.peer_tls.ca: signs every node's certificate
	PeerCert, PeerKey     string // consensus.peer_tls.cert, .key: this node's, shown to its peers
	// Node is this node's name, which its certificates must carry when
	// PeerCA is set: its peers check it.
	Node string
}

// Material is one consistent reading of Files. A reload builds a new one
// and swaps it whole, so no handshake ever sees a certificate of one reading
// and a CA of another.
type Material struct {
	Server    *tls.Certificate // nil: server.listen is plain HTTP
	Peer      *tls.Certificate // nil: no peer TLS
	clientCAs *x509.CertPool   // nil: no client CA
	peerCAs   *x509.CertPool   // nil: no peer TLS
}

// ReadKeyPair reads a PEM certificate (chain) and its private key.
func ReadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

// ReadCAs reads a PEM bundle of CA certificates.
func ReadCAs(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("no PEM certificate in %s", file)
	}
	return pool, nil
}

// Load reads every file of f and checks that they fit together: with a peer
// CA, this node's server and peer certificates must be signed by it and name
// f.Node, or its peers would refuse every answer of this node. Each problem
// is reported, naming the key it comes from.
func Load(f Files) (*Material, error) {
	m := &Material{}
	var errs []error
	var err error
	if f.ServerCert != "" || f.ServerKey != "" {
		if m.Server, err = ReadKeyPair(f.ServerCert, f.ServerKey); err != nil {
			errs = append(errs, fmt.Errorf("server.tls_cert, server.tls_key: want a PEM certificate and its PEM key: %w", err))
		}
	}
	if f.ClientCA != "" {
		if m.clientCAs, err = ReadCAs(f.ClientCA); err != nil {
			errs = append(errs, fmt.Errorf("server.tls_client_ca: want PEM CA certificates: %w", err))
		}
	}
	if f.PeerCA != "" {
		if m.peerCAs, err = ReadCAs(f.PeerCA); err != nil {
			errs = append(errs, fmt.Errorf("consensus.peer_tls.ca: want PEM CA certificates: %w", err))
		}
	}
	if f.PeerCert != "" || f.PeerKey != "" {
		if m.Peer, err = ReadKeyPair(f.PeerCert, f.PeerKey); err != nil {
			errs = append(errs, fmt.Errorf("consensus.peer_tls.cert, consensus.peer_tls.key: want a PEM certificate and its PEM key: %w", err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, m.checkPeerNames(f.Node)...)
	}
	return m, errors.Join(errs...)
}

// checkPeerNames checks what peers will check: that the certificate served
// on server.listen and the one shown to peers chain to the peer CA, for the
// uses they are put to, and name this node.
func (m *Material) checkPeerNames(node string) []error {
	if m.peerCAs == nil {
		return nil
	}
	var errs []error
	check := func(key string, c *tls.Certificate, usages ...x509.ExtKeyUsage) {
		if c == nil {
			return
		}
		for _, u := range usages {
			if err := verifyChain(chainOf(c), m.peerCAs, u); err != nil {
				errs = append(errs, fmt.Errorf("%s: want a certificate signed by consensus.peer_tls.ca for %s: %w", key, usageName(u), err))
				return
			}
		}
		if !Names(c.Leaf, node) {
			errs = append(errs, fmt.Errorf("%s: want a certificate naming node %q (DNS SAN, or CN without SANs), got one naming %q",
				key, node, strings.Join(CertNames(c.Leaf), ", ")))
		}
	}
	check("server.tls_cert", m.Server, x509.ExtKeyUsageServerAuth)
	// The peer certificate is a client's on peers' HTTPS and a server's on
	// the Raft port.
	check("consensus.peer_tls.cert", m.Peer, x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth)
	return errs
}

func usageName(u x509.ExtKeyUsage) string {
	if u == x509.ExtKeyUsageClientAuth {
		return "clientAuth"
	}
	return "serverAuth"
}

// chainOf parses the chain of c, leaf first.
func chainOf(c *tls.Certificate) []*x509.Certificate {
	chain := []*x509.Certificate{c.Leaf}
	for _, der := range c.Certificate[1:] {
		if x, err := x509.ParseCertificate(der); err == nil {
			chain = append(chain, x)
		}
	}
	return chain
}

// Describe says which server certificate is served, for the log of a start
// or a reload.
func (m *Material) Describe() []any {
	if m == nil || m.Server == nil {
		return []any{"tls", false}
	}
	l := m.Server.Leaf
	return []any{"tls", true, "cert_names", CertNames(l), "cert_serial", l.SerialNumber.String(),
		"cert_expires", l.NotAfter.UTC().Format(time.RFC3339)}
}

// Identity is what a TLS client proved with its certificate.
type Identity struct {
	Presented bool     // it showed a certificate, verified or not
	Client    []string // names of a certificate signed by server.tls_client_ca; nil: none
	Peer      []string // names of a certificate signed by consensus.peer_tls.ca; nil: none
}

// Identify verifies the client certificate of a handshake against each CA
// on its own, so that a certificate of the peer CA never passes for an
// operator's and the reverse.
func (m *Material) Identify(cs *tls.ConnectionState) Identity {
	id := Identity{Presented: cs != nil && len(cs.PeerCertificates) > 0}
	if !id.Presented {
		return id
	}
	leaf := cs.PeerCertificates[0]
	if m.clientCAs != nil && verifyChain(cs.PeerCertificates, m.clientCAs, x509.ExtKeyUsageClientAuth) == nil {
		id.Client = nonNil(CertNames(leaf))
	}
	if m.peerCAs != nil && verifyChain(cs.PeerCertificates, m.peerCAs, x509.ExtKeyUsageClientAuth) == nil {
		id.Peer = nonNil(CertNames(leaf))
	}
	return id
}

// nonNil keeps "verified, but naming nothing" apart from "not verified".
func nonNil(names []string) []string {
	if names == nil {
		return []string{}
	}
	return names
}

var errNoCertificate = errors.New("no certificate presented")

// Store holds the current Material and reloads it from its files.
type Store struct {
	files Files
	cur   atomic.Pointer[Material]
}

// NewStore loads f.
func NewStore(f Files) (*Store, error) {
	m, err := Load(f)
	if err != nil {
		return nil, err
	}
	s := &Store{files: f}
	s.cur.Store(m)
	return s, nil
}

// Reload reads the files again. A reading that fails, or whose parts do not
// fit together, leaves the current material in place: a bad new certificate
// must not take a working node off the network.
func (s *Store) Reload() (*Material, error) {
	m, err := Load(s.files)
	if err != nil {
		return s.Current(), err
	}
	s.cur.Store(m)
	return m, nil
}

// Current is the material in use; nil for a nil Store (no TLS at all).
func (s *Store) Current() *Material {
	if s == nil {
		return nil
	}
	return s.cur.Load()
}

// ServerTLS is the server.listen configuration: each handshake takes the
// material current at that moment, so a reload needs no new listener.
// Client certificates are asked for whenever a CA could verify one, and
// verified afterwards, per CA, by Identify; with ClientAuthRequired a
// handshake without a certificate that either CA verifies fails.
func (s *Store) ServerTLS(mode ClientAuth) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.Current()
			if m.Server == nil {
				return nil, errors.New("no server certificate")
			}
			c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*m.Server},
				NextProtos: []string{"http/1.1"}}
			// Peers show their certificate on /internal/* whatever the
			// mode; with none, no other client is asked for one.
			if mode != ClientAuthNone || m.peerCAs != nil {
				c.ClientAuth = tls.RequestClientCert
			}
			if mode == ClientAuthRequired {
				c.ClientAuth = tls.RequireAnyClientCert
				c.VerifyConnection = func(cs tls.ConnectionState) error {
					if id := m.Identify(&cs); id.Client == nil && id.Peer == nil {
						return errors.New("client certificate not signed by server.tls_client_ca")
					}
					return nil
				}
			}
			return c, nil
		},
	}
}

// PeerClientTLS is how this node dials its peers' HTTPS and Raft ports. With
// a peer CA, it shows this node's peer certificate and accepts only a server
// certificate the peer CA signed; which node that certificate must name is
// for the caller to check (CheckNames), since it knows whom it asked. Without
// one (server TLS alone), it encrypts but verifies nothing: the answers are
// then as trustworthy as over plain HTTP, and serve warns about it.
func (s *Store) PeerClientTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verified in VerifyConnection, against node names rather than
		// the address dialled: nodes are known by node_name.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if p := s.Current().Peer; p != nil {
				return p, nil
			}
			return &tls.Certificate{}, nil // none
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			m := s.Current()
			if m.peerCAs == nil {
				return nil
			}
			if err := verifyChain(cs.PeerCertificates, m.peerCAs, x509.ExtKeyUsageServerAuth); err != nil {
				return fmt.Errorf("peer certificate not signed by consensus.peer_tls.ca: %w: %w", err, ErrBadCredentials)
			}
			return nil
		},
	}
}

// PeerServerTLS is the Raft listener's configuration: it shows this node's
// peer certificate and takes only dialers whose certificate the peer CA
// signed.
func (s *Store) PeerServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.Current()
			if m.Peer == nil || m.peerCAs == nil {
				return nil, errors.New("no peer certificate")
			}
			return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*m.Peer},
				ClientAuth: tls.RequireAnyClientCert,
				VerifyConnection: func(cs tls.ConnectionState) error {
					if err := verifyChain(cs.PeerCertificates, m.peerCAs, x509.ExtKeyUsageClientAuth); err != nil {
						return fmt.Errorf("dialer's certificate not signed by consensus.peer_tls.ca: %w", err)
					}
					return nil
				}}, nil
		},
	}
}

// CheckNames checks that the certificate a peer served names node.
func CheckNames(cs *tls.ConnectionState, node string) error {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return errNoCertificate
	}
	if leaf := cs.PeerCertificates[0]; !Names(leaf, node) {
		return fmt.Errorf("its certificate names %q, not %q", strings.Join(CertNames(leaf), ", "), node)
	}
	return nil
}

// LocalClientTLS is how a command run on the node reaches its own
// pgquorum with the node's configuration: it trusts the certificate chain
// the node serves (server.tls_cert) or any certificate of the peer CA,
// whatever name it carries (the address is the node's own, from its own
// configuration, and certificates name nodes rather than addresses), and
// shows the node's peer certificate, else its server certificate, for
// server.tls_client_auth required.
func (m *Material) LocalClientTLS() *tls.Config {
	own := x509.NewCertPool()
	var show *tls.Certificate
	if m.Server != nil {
		for _, c := range chainOf(m.Server) {
			own.AddCert(c)
		}
		show = m.Server
	}
	if m.Peer != nil {
		show = m.Peer
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verified below, without host names
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if show == nil {
				return &tls.Certificate{}, nil
			}
			return show, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			err := verifyChain(cs.PeerCertificates, own, x509.ExtKeyUsageServerAuth)
			if err != nil && m.peerCAs != nil {
				err = verifyChain(cs.PeerCertificates, m.peerCAs, x509.ExtKeyUsageServerAuth)
			}
			if err != nil {
				return fmt.Errorf("the server's certificate is neither server.tls_cert nor signed by consensus.peer_tls.ca: %w", err)
			}
			return nil
		},
	}
}
