package failover

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/pgquorum/pgquorum/auth"
	"github.com/pgquorum/pgquorum/auth/testpki"
	"github.com/pgquorum/pgquorum/repmgr"
)

// groupMember is one node of a real Raft group on loopback.
type groupMember struct {
	name string
	node *raftNode
}

// startGroup starts a member per entry of creds (node name → its
// credentials) on free loopback ports, all knowing each other.
func startGroup(t *testing.T, creds map[string]auth.Stream) []groupMember {
	t.Helper()
	peers := map[string]string{}
	var nodes []repmgr.Node
	id := 0
	for name := range creds {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers[name] = l.Addr().String()
		l.Close()
		id++
		nodes = append(nodes, repmgr.Node{ID: id, Name: name, Type: repmgr.TypeStandby, Conninfo: "host=127.0.0.1"})
	}
	var group []groupMember
	for name, cred := range creds {
		cred.Self = name
		o := RaftOptions{Self: name, Dir: t.TempDir(), Bind: peers[name], Peers: peers, Auth: cred,
			HeartbeatTimeout: 200 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond, LogOutput: io.Discard}
		n, err := openRaft(o, NewFSM(), nodes)
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() { _ = n.Close() })
		group = append(group, groupMember{name, n})
	}
	return group
}

// leaderWithin returns the name of the member that leads within d, "" if none.
func leaderWithin(group []groupMember, d time.Duration) string {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, m := range group {
			if m.node.r.State() == raft.Leader {
				return m.name
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return ""
}

// TestAuthenticatedTransportElects: members that share credentials elect a
// leader; one whose credentials are not the group's never leads, since no
// other member hears it.
func TestAuthenticatedTransportElects(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real Raft groups")
	}
	token := func(s auth.Secret) auth.Stream { return auth.Stream{Token: auth.NewPeerToken(s, nil, nil)} }
	ours, theirs := newCAStores(t)
	tests := []struct {
		name     string
		creds    map[string]auth.Stream
		outsider string // never leads
	}{
		{"three members with the token", map[string]auth.Stream{
			"n1": token("peer-token-0123456789"), "n2": token("peer-token-0123456789"), "n3": token("peer-token-0123456789")}, ""},
		{"a member with another token", map[string]auth.Stream{
			"n1": token("peer-token-9876543210"), "n2": token("peer-token-0123456789"), "n3": token("peer-token-0123456789")}, "n1"},
		{"three members with certificates of the peer CA", map[string]auth.Stream{
			"n1": {TLS: ours("n1")}, "n2": {TLS: ours("n2")}, "n3": {TLS: ours("n3")}}, ""},
		{"a member with a certificate of another CA", map[string]auth.Stream{
			"n1": {TLS: theirs("n1")}, "n2": {TLS: ours("n2")}, "n3": {TLS: ours("n3")}}, "n1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			group := startGroup(t, tt.creds)
			leader := leaderWithin(group, 5*time.Second)
			if leader == "" {
				t.Fatal("no leader within 5s")
			}
			if tt.outsider == "" {
				return
			}
			// The outsider campaigns all along, and is never heard.
			for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
				for _, m := range group {
					if m.name == tt.outsider && m.node.r.State() == raft.Leader {
						t.Fatalf("%s, whose credentials are not the group's, leads", tt.outsider)
					}
				}
			}
		})
	}
}

// newCAStores returns makers of node TLS material from two CAs.
func newCAStores(t *testing.T) (ours, theirs func(name string) *auth.Store) {
	t.Helper()
	maker := func() func(string) *auth.Store {
		ca, err := testpki.NewCA("raft peers")
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		caFile, err := ca.Write(dir, "ca")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		return func(name string) *auth.Store {
			n++
			leaf, err := ca.Node(name)
			if err != nil {
				t.Fatal(err)
			}
			cert, key, err := leaf.Write(dir, fmt.Sprintf("%s-%d", name, n))
			if err != nil {
				t.Fatal(err)
			}
			s, err := auth.NewStore(auth.Files{Node: name, PeerCA: caFile, PeerCert: cert, PeerKey: key})
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
	return maker(), maker()
}
