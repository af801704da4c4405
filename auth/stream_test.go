package auth_test

import (
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/auth/testpki"
)

// pipe runs the listener's side of s on one end of a connected pair and the
// dialer's side of d, expecting node expect, on the other.
func pipe(t *testing.T, s, d auth.Stream, expect string) (dialErr, listenErr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		_, err = s.Server(c)
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, dialErr = d.Client(c, expect)
	c.Close() // the listener may still wait for the dialer's last message
	return dialErr, <-done
}

func TestTokenHandshake(t *testing.T) {
	tok := func(s string) *auth.PeerToken { return auth.NewPeerToken(auth.Secret(s), nil, nil) }
	tests := []struct {
		name             string
		listener, dialer auth.Stream
		expect           string
		dialOK, listenOK bool
		dialWantBadCreds bool
	}{
		{name: "same token, expected node", listener: auth.Stream{Token: tok("peer-token-000001"), Self: "node2"},
			dialer: auth.Stream{Token: tok("peer-token-000001"), Self: "node1"}, expect: "node2", dialOK: true, listenOK: true},
		{name: "listener with another token is refused by the dialer", listener: auth.Stream{Token: tok("peer-token-000002"), Self: "node2"},
			dialer: auth.Stream{Token: tok("peer-token-000001"), Self: "node1"}, expect: "node2", dialWantBadCreds: true},
		{name: "token holder answering for another node is refused", listener: auth.Stream{Token: tok("peer-token-000001"), Self: "node3"},
			dialer: auth.Stream{Token: tok("peer-token-000001"), Self: "node1"}, expect: "node2", dialWantBadCreds: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dialErr, listenErr := pipe(t, tt.listener, tt.dialer, tt.expect)
			if (dialErr == nil) != tt.dialOK || (tt.dialWantBadCreds && !errors.Is(dialErr, auth.ErrBadCredentials)) {
				t.Errorf("dialer: %v", dialErr)
			}
			if tt.listenOK && listenErr != nil {
				t.Errorf("listener: %v", listenErr)
			}
			if !tt.listenOK && listenErr == nil {
				t.Error("listener accepted")
			}
		})
	}
	t.Run("dialer speaking another protocol is refused by the listener", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		go func() {
			_, _ = b.Write([]byte("GET / HTTP/1.0\r\n\r\n" + strings.Repeat("x", 64)))
			b.Close()
		}()
		_ = a.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := (auth.Stream{Token: tok("peer-token-000001"), Self: "node2"}).Server(a); !errors.Is(err, auth.ErrNoCredentials) {
			t.Errorf("listener: %v, want no credentials", err)
		}
	})
}

// pki writes a CA and node certificates into a temporary directory.
type pki struct {
	dir string
	ca  *testpki.CA
}

func newPKI(t *testing.T) pki {
	t.Helper()
	ca, err := testpki.NewCA("pgquorum test CA")
	if err != nil {
		t.Fatal(err)
	}
	return pki{dir: t.TempDir(), ca: ca}
}

func (p pki) caFile(t *testing.T) string {
	t.Helper()
	f, err := p.ca.Write(p.dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (p pki) leaf(t *testing.T, base string, o testpki.Options) (cert, key string) {
	t.Helper()
	l, err := p.ca.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err = l.Write(p.dir, base)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func (p pki) store(t *testing.T, node string, o testpki.Options) *auth.Store {
	t.Helper()
	cert, key := p.leaf(t, node, o)
	s, err := auth.NewStore(auth.Files{Node: o.CN, PeerCA: p.caFile(t), PeerCert: cert, PeerKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTLSStream(t *testing.T) {
	ours, theirs := newPKI(t), newPKI(t)
	node := func(name string) testpki.Options { return testpki.Options{CN: name, DNS: []string{name}} }
	node1 := ours.store(t, "node1", node("node1"))
	tests := []struct {
		name     string
		listener *auth.Store
		expect   string
		ok       bool
	}{
		{"node2 of our CA", ours.store(t, "node2", node("node2")), "node2", true},
		{"node3 of our CA answering at node2's address", ours.store(t, "node3", node("node3")), "node2", false},
		{"node2 of another CA", theirs.store(t, "node2", node("node2")), "node2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dialErr, listenErr := pipe(t, auth.Stream{TLS: tt.listener}, auth.Stream{TLS: node1}, tt.expect)
			if (dialErr == nil) != tt.ok {
				t.Errorf("dialer: %v, want ok %t", dialErr, tt.ok)
			}
			if tt.ok && listenErr != nil {
				t.Errorf("listener: %v", listenErr)
			}
		})
	}
	t.Run("dialer of another CA is refused by the listener", func(t *testing.T) {
		_, listenErr := pipe(t, auth.Stream{TLS: ours.store(t, "node2", node("node2"))}, auth.Stream{TLS: theirs.store(t, "node1", node("node1"))}, "node2")
		if listenErr == nil {
			t.Error("listener accepted a dialer of another CA")
		}
	})
}

func TestLoadChecksPeerCertificates(t *testing.T) {
	ours, theirs := newPKI(t), newPKI(t)
	ca := ours.caFile(t)
	good, goodKey := ours.leaf(t, "node1", testpki.Options{DNS: []string{"node1"}})
	cnOnly, cnOnlyKey := ours.leaf(t, "cn-only", testpki.Options{CN: "node1"})
	other, otherKey := ours.leaf(t, "node2", testpki.Options{DNS: []string{"node2"}})
	foreign, foreignKey := theirs.leaf(t, "foreign", testpki.Options{DNS: []string{"node1"}})
	serverOnly, serverOnlyKey := ours.leaf(t, "server-only", testpki.Options{DNS: []string{"node1"}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	tests := []struct {
		name    string
		files   auth.Files
		wantErr string
	}{
		{"server and peer certificates naming the node", auth.Files{Node: "node1", PeerCA: ca, ServerCert: good, ServerKey: goodKey, PeerCert: good, PeerKey: goodKey}, ""},
		{"CN names the node when there is no SAN", auth.Files{Node: "node1", PeerCA: ca, ServerCert: cnOnly, ServerKey: cnOnlyKey}, ""},
		{"server certificate of another node", auth.Files{Node: "node1", PeerCA: ca, ServerCert: other, ServerKey: otherKey},
			`server.tls_cert: want a certificate naming node "node1" (DNS SAN, or CN without SANs), got one naming "node2"`},
		{"server certificate of another CA", auth.Files{Node: "node1", PeerCA: ca, ServerCert: foreign, ServerKey: foreignKey},
			"server.tls_cert: want a certificate signed by consensus.peer_tls.ca for serverAuth"},
		{"peer certificate without clientAuth", auth.Files{Node: "node1", PeerCA: ca, PeerCert: serverOnly, PeerKey: serverOnlyKey},
			"consensus.peer_tls.cert: want a certificate signed by consensus.peer_tls.ca for clientAuth"},
		{"key of another certificate", auth.Files{Node: "node1", ServerCert: good, ServerKey: otherKey},
			"server.tls_cert, server.tls_key: want a PEM certificate and its PEM key: tls: private key does not match public key"},
		{"CA file that is a key", auth.Files{Node: "node1", ClientCA: goodKey}, "server.tls_client_ca: want PEM CA certificates: no PEM certificate in"},
		{"server certificate alone, no peer CA: names unchecked", auth.Files{Node: "node1", ServerCert: other, ServerKey: otherKey}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := auth.Load(tt.files)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Load: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Load: %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestReloadKeepsTheOldMaterialWhenTheNewIsBad(t *testing.T) {
	p := newPKI(t)
	cert, key := p.leaf(t, "node1", testpki.Options{DNS: []string{"node1"}})
	s, err := auth.NewStore(auth.Files{Node: "node1", ServerCert: cert, ServerKey: key})
	if err != nil {
		t.Fatal(err)
	}
	first := s.Current().Server.Leaf.SerialNumber
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(); err == nil {
		t.Fatal("Reload took a broken certificate")
	}
	if got := s.Current().Server.Leaf.SerialNumber; got.Cmp(first) != 0 {
		t.Fatalf("serving serial %s after a failed reload, want the old %s", got, first)
	}
	next, nextKey := p.leaf(t, "next", testpki.Options{DNS: []string{"node1"}})
	for _, mv := range [][2]string{{next, cert}, {nextKey, key}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.Reload()
	if err != nil {
		t.Fatal(err)
	}
	if m.Server.Leaf.SerialNumber.Cmp(first) == 0 || s.Current() != m {
		t.Fatal("a good new certificate was not taken")
	}
}
