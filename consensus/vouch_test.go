package consensus

import (
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

// voteFor is the request candidate (node_id id) sends on timeline tl, with
// the cluster's system identifier.
func voteFor(candidate string, id, tl int) api.VoteRequest {
	return api.VoteRequest{Protocol: api.VoteProtocol, Candidate: candidate, CandidateID: id, SystemID: testSystemID, Timeline: tl}
}

// standbyFacts are what a standby on timeline tl sees: nodes as its metadata,
// its WAL receiver connected to host:port ("" for no receiver).
func standbyFacts(nodes []repmgr.Node, tl int, host string, port int) repmgr.Facts {
	return repmgr.Facts{InRecovery: true, Nodes: nodes,
		WAL:    repmgr.WAL{ReceiverStatus: repmgr.StreamingState, SenderHost: host, SenderPort: port},
		Server: repmgr.Server{SystemID: testSystemID, Timeline: tl}}
}

// withNodes returns f with its metadata replaced by nodes.
func withNodes(f repmgr.Facts, nodes []repmgr.Node) repmgr.Facts {
	f.Nodes = nodes
	return f
}

// TestVouch covers every rule of Vouch. The cluster is n1 (primary), n2, n3
// and n4 (standbys) in dc1, and the witness w in dc3; unless a case says
// otherwise the voter is the standby n3 on timeline 2, and every conninfo
// has libpq's default port 5432.
func TestVouch(t *testing.T) {
	w := node(9, "w", repmgr.TypeWitness, "dc3", true)
	nodes := append(site(4), w)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]

	// The metadata of a cluster whose primary is n2: n1's row inactive.
	n2Named := append(site(4), w)
	n2Named[0].Active = false
	n2Named[1].Type = repmgr.TypePrimary
	// No active primary at all: n1's row inactive, nobody promoted yet.
	noPrimary := append(site(4), w)
	noPrimary[0].Active = false
	// Two active primaries: n2 registered as primary, n1 not yet marked inactive.
	twoPrimaries := append(site(4), w)
	twoPrimaries[1].Type = repmgr.TypePrimary
	// The metadata names the standby n3 itself as primary: n3 promoted, and
	// then put back into recovery.
	n3Named := append(site(4), w)
	n3Named[0].Active = false
	n3Named[2].Type = repmgr.TypePrimary

	// Two nodes on one host, told apart by their port alone.
	shared := []repmgr.Node{n1, n2, n3}
	shared[0].Conninfo = "host=db port=5432 user=repmgr dbname=repmgr"
	shared[1].Conninfo = "host=db port=5433 user=repmgr dbname=repmgr"
	shared[2].Conninfo = "host=db port=5434 user=repmgr dbname=repmgr"

	witnessFacts := repmgr.Facts{Nodes: nodes, Server: repmgr.Server{SystemID: "1111111111111111111", Timeline: 1}}
	primary := primaryFacts(nodes)
	fromN1 := standbyFacts(nodes, 2, "n1", 5432)
	fromN2 := standbyFacts(nodes, 2, "n2", 5432)    // n2 a standby: a cascade
	noReceiver := standbyFacts(nodes, 2, "", 0)     // no WAL receiver
	viaProxy := standbyFacts(nodes, 2, "vip", 5432) // a sender that is no registered node

	tests := []struct {
		name       string
		me         repmgr.Node
		facts      repmgr.Facts
		req        api.VoteRequest
		want       bool
		wantReason string
	}{
		// Registration of the candidate.
		{name: "unregistered candidate refused", me: n3, facts: fromN1, req: voteFor("n7", 7, 2),
			wantReason: `"n7" (node_id 7) is not registered`},
		{name: "candidate registered with another node_id refused", me: n3, facts: fromN1, req: voteFor("n1", 2, 2),
			wantReason: `"n1" (node_id 2) is not registered`},
		{name: "candidate node_id registered under another name refused", me: n3, facts: fromN1, req: voteFor("n9", 1, 2),
			wantReason: `"n9" (node_id 1) is not registered`},
		{name: "witness refuses an unregistered candidate too", me: w, facts: witnessFacts, req: voteFor("n7", 7, 1),
			wantReason: "not registered"},

		// The witness: its metadata alone.
		{name: "witness vouches for the primary its metadata names", me: w, facts: witnessFacts, req: voteFor("n1", 1, 1),
			want: true, wantReason: "my metadata names it the active primary"},
		{name: "witness ignores the candidate's system identifier and timeline", me: w, facts: witnessFacts,
			req:  api.VoteRequest{Protocol: api.VoteProtocol, Candidate: "n1", CandidateID: 1, SystemID: "42", Timeline: 0},
			want: true, wantReason: "my metadata names it the active primary"},
		{name: "witness vouches with no system identifier in the request", me: w, facts: witnessFacts,
			req:  api.VoteRequest{Protocol: api.VoteProtocol, Candidate: "n1", CandidateID: 1},
			want: true, wantReason: "my metadata names it"},
		{name: "witness refuses a candidate its metadata does not name", me: w, facts: witnessFacts, req: voteFor("n2", 2, 9),
			wantReason: "my metadata names n1 the active primary"},
		{name: "witness follows its metadata to the new primary", me: w, facts: withNodes(witnessFacts, n2Named), req: voteFor("n2", 2, 2),
			want: true, wantReason: "my metadata names it"},
		{name: "witness refuses the old primary once its metadata names the new one", me: w, facts: withNodes(witnessFacts, n2Named),
			req: voteFor("n1", 1, 1), wantReason: "my metadata names n2 the active primary"},
		{name: "witness with no active primary in its metadata refuses", me: w, facts: withNodes(witnessFacts, noPrimary),
			req: voteFor("n1", 1, 1), wantReason: "no single active primary"},
		{name: "witness with two active primaries in its metadata refuses either", me: w, facts: withNodes(witnessFacts, twoPrimaries),
			req: voteFor("n2", 2, 2), wantReason: "no single active primary"},

		// The system identifier.
		{name: "standby refuses another system identifier", me: n3, facts: fromN1,
			req:        api.VoteRequest{Protocol: api.VoteProtocol, Candidate: "n1", CandidateID: 1, SystemID: "42", Timeline: 2},
			wantReason: `system identifier "42" is not mine`},
		{name: "standby refuses an empty system identifier", me: n3, facts: fromN1,
			req:        api.VoteRequest{Protocol: api.VoteProtocol, Candidate: "n1", CandidateID: 1, Timeline: 2},
			wantReason: `system identifier "" is not mine`},
		{name: "empty system identifier refused even when the voter's own is unknown too", me: n3,
			facts:      func() repmgr.Facts { f := fromN1; f.Server.SystemID = ""; return f }(),
			req:        api.VoteRequest{Protocol: api.VoteProtocol, Candidate: "n1", CandidateID: 1, Timeline: 2},
			wantReason: "another cluster"},
		{name: "primary refuses itself under another system identifier", me: n1, facts: primary,
			req:        api.VoteRequest{Protocol: api.VoteProtocol, Candidate: "n1", CandidateID: 1, SystemID: "42", Timeline: 1},
			wantReason: "another cluster"},

		// A primary: itself only, and only by its metadata.
		{name: "primary vouches for itself when its metadata names it the one active primary", me: n1, facts: primary,
			req: voteFor("n1", 1, 1), want: true, wantReason: "my metadata names it the active primary"},
		{name: "primary refuses itself when its metadata names another", me: n1, facts: withNodes(primary, n2Named),
			req: voteFor("n1", 1, 1), wantReason: "my metadata names n2 the active primary"},
		{name: "primary refuses itself with no active primary in its metadata", me: n1, facts: withNodes(primary, noPrimary),
			req: voteFor("n1", 1, 1), wantReason: "no single active primary"},
		{name: "primary refuses itself with two active primaries in its metadata", me: n1, facts: withNodes(primary, twoPrimaries),
			req: voteFor("n1", 1, 1), wantReason: "no single active primary"},
		{name: "primary refuses a standby candidate", me: n1, facts: primary, req: voteFor("n2", 2, 2),
			wantReason: "I run as primary myself"},
		{name: "primary refuses the node its own metadata names", me: n1, facts: withNodes(primary, n2Named),
			req: voteFor("n2", 2, 2), wantReason: "I run as primary myself"},

		// A standby never vouches for itself.
		{name: "standby refuses itself", me: n3, facts: fromN1, req: voteFor("n3", 3, 2), wantReason: "I am in recovery"},
		{name: "standby refuses itself even when its metadata names it", me: n3, facts: withNodes(fromN1, n3Named),
			req: voteFor("n3", 3, 3), wantReason: "I am in recovery"},

		// Timelines.
		{name: "older timeline refused", me: n3, facts: fromN1, req: voteFor("n1", 1, 1),
			wantReason: "it is on timeline 1, older than mine (2)"},
		{name: "older timeline refused even from the sender", me: n3, facts: fromN2, req: voteFor("n2", 2, 1),
			wantReason: "older than mine"},
		{name: "older timeline refused with no receiver", me: n3, facts: noReceiver, req: voteFor("n1", 1, 1),
			wantReason: "older than mine"},
		{name: "equal timeline vouched", me: n3, facts: fromN1, req: voteFor("n1", 1, 2),
			want: true, wantReason: "I stream from it on timeline 2"},
		{name: "newer timeline vouched", me: n3, facts: fromN1, req: voteFor("n1", 1, 3),
			want: true, wantReason: "I stream from it"},
		{name: "newer timeline vouched by metadata with no receiver", me: n3, facts: noReceiver, req: voteFor("n1", 1, 5),
			want: true, wantReason: "my metadata names it"},

		// Streaming from the candidate.
		{name: "standby streaming from the candidate vouches while its metadata still names the old primary",
			me: n3, facts: fromN2, req: voteFor("n2", 2, 3), want: true, wantReason: "I stream from it on timeline 2"},
		{name: "standby streaming from the candidate vouches when its metadata names no primary",
			me: n3, facts: withNodes(fromN2, noPrimary), req: voteFor("n2", 2, 3), want: true, wantReason: "I stream from it"},
		{name: "standby streaming from the candidate vouches when its metadata names two primaries",
			me: n3, facts: withNodes(fromN2, twoPrimaries), req: voteFor("n2", 2, 2), want: true, wantReason: "I stream from it"},

		// Streaming from the primary its metadata names.
		{name: "standby streaming from the named primary refuses another standby", me: n3, facts: fromN1, req: voteFor("n2", 2, 2),
			wantReason: "I stream from n1, the primary my metadata names"},
		{name: "standby streaming from the named primary refuses a candidate on a newer timeline", me: n3, facts: fromN1,
			req: voteFor("n4", 4, 3), wantReason: "I stream from n1, the primary my metadata names"},
		{name: "standby streaming from a new primary refuses the old one", me: n3,
			facts: standbyFacts(nodes, 3, "n2", 5432), req: voteFor("n1", 1, 2), wantReason: "it is on timeline 2, older than mine (3)"},
		{name: "standby streaming from the new primary its metadata names refuses the old one", me: n3,
			facts: standbyFacts(n2Named, 3, "n2", 5432), req: voteFor("n1", 1, 3),
			wantReason: "I stream from n2, the primary my metadata names"},

		// Cascades: streaming from a standby.
		{name: "cascading standby vouches for the named primary on the very same timeline", me: n3, facts: fromN2,
			req: voteFor("n1", 1, 2), want: true, wantReason: "my metadata names it, and I cascade from n2 on its timeline 2"},
		{name: "cascading standby refuses the named primary on a newer timeline", me: n3, facts: fromN2,
			req: voteFor("n1", 1, 3), wantReason: "I stream from n2 on timeline 2, and it is on timeline 3"},
		{name: "cascading standby refuses a candidate its metadata does not name", me: n3, facts: fromN2,
			req: voteFor("n4", 4, 2), wantReason: "my metadata names n1 the active primary"},
		{name: "cascading standby with no active primary in its metadata refuses", me: n3, facts: withNodes(fromN2, noPrimary),
			req: voteFor("n1", 1, 2), wantReason: "no single active primary"},
		{name: "cascading standby with two active primaries in its metadata refuses", me: n3,
			facts: standbyFacts(twoPrimaries, 2, "n4", 5432), req: voteFor("n1", 1, 2), wantReason: "no single active primary"},

		// A sender that is no registered node, or no receiver: the metadata.
		{name: "standby behind a proxy vouches for the primary its metadata names", me: n3, facts: viaProxy,
			req: voteFor("n1", 1, 2), want: true, wantReason: "my metadata names it the active primary"},
		{name: "standby behind a proxy refuses a candidate its metadata does not name", me: n3, facts: viaProxy,
			req: voteFor("n2", 2, 3), wantReason: "my metadata names n1 the active primary"},
		{name: "standby behind a proxy with no active primary refuses", me: n3, facts: withNodes(viaProxy, noPrimary),
			req: voteFor("n1", 1, 2), wantReason: "no single active primary"},
		{name: "standby without receiver vouches for the primary its metadata names", me: n3, facts: noReceiver,
			req: voteFor("n1", 1, 2), want: true, wantReason: "my metadata names it the active primary"},
		{name: "standby without receiver refuses a candidate its metadata does not name", me: n3, facts: noReceiver,
			req: voteFor("n2", 2, 3), wantReason: "my metadata names n1 the active primary"},
		{name: "standby without receiver follows its metadata to the new primary", me: n3, facts: withNodes(noReceiver, n2Named),
			req: voteFor("n2", 2, 3), want: true, wantReason: "my metadata names it"},
		{name: "standby without receiver and two active primaries refuses", me: n3, facts: withNodes(noReceiver, twoPrimaries),
			req: voteFor("n1", 1, 2), wantReason: "no single active primary"},

		// The sender is matched on host and port.
		{name: "sender on the candidate's host and port is the candidate", me: shared[2],
			facts: standbyFacts(shared, 2, "db", 5433), req: voteFor("n2", 2, 3), want: true, wantReason: "I stream from it"},
		{name: "sender on the candidate's host but another port is another node", me: shared[2],
			facts: standbyFacts(shared, 2, "db", 5432), req: voteFor("n2", 2, 3),
			wantReason: "I stream from n1, the primary my metadata names"},
		{name: "sender on the named primary's host but a standby's port is a cascade", me: shared[2],
			facts: standbyFacts(shared, 2, "db", 5433), req: voteFor("n1", 1, 3),
			wantReason: "I stream from n2 on timeline 2, and it is on timeline 3"},
		{name: "sender on a registered host with an unregistered port is no node", me: shared[2],
			facts: standbyFacts(shared, 2, "db", 6000), req: voteFor("n2", 2, 3),
			wantReason: "my metadata names n1 the active primary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := Vouch(tt.me, tt.facts, tt.req)
			if got != tt.want {
				t.Errorf("Vouch = %v (%q), want %v", got, reason, tt.want)
			}
			if !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", reason, tt.wantReason)
			}
		})
	}
}

// TestUpstream: the sender of a standby's WAL receiver is the registered
// node with the very host and port of its conninfo, or none.
func TestUpstream(t *testing.T) {
	withConninfo := func(id int, name, conninfo string) repmgr.Node {
		n := node(id, name, repmgr.TypeStandby, "dc1", true)
		n.Conninfo = conninfo
		return n
	}
	nodes := []repmgr.Node{
		withConninfo(1, "a", "host=db1 user=repmgr"),                              // port 5432 by default
		withConninfo(2, "b", "host=db1 port=5433 user=repmgr"),                    // same host, other port
		withConninfo(3, "c", "hostaddr=10.0.0.3 port=5432"),                       // no host, hostaddr
		withConninfo(4, "d", "postgres://repmgr@db4:5434/repmgr"),                 // URI
		withConninfo(5, "e", "host=db5,db5b port=5435,5436 user=repmgr"),          // several hosts: the first
		withConninfo(6, "sock", "host=/var/run/postgresql port=5437 user=repmgr"), // a socket: no address
		withConninfo(7, "bad", "host=db7 port=notaport"),                          // unparsable port
	}
	tests := []struct {
		name        string
		host        string
		port        int
		want        string
		wantStreams bool
	}{
		{name: "no receiver streams from nobody", host: "", port: 0},
		{name: "no sender host streams from nobody even with a port", host: "", port: 5432},
		{name: "host with the default port", host: "db1", port: 5432, want: "a", wantStreams: true},
		{name: "same host, the other node's port", host: "db1", port: 5433, want: "b", wantStreams: true},
		{name: "same host, a port no node has", host: "db1", port: 5999},
		{name: "hostaddr when the conninfo has no host", host: "10.0.0.3", port: 5432, want: "c", wantStreams: true},
		{name: "URI conninfo", host: "db4", port: 5434, want: "d", wantStreams: true},
		{name: "URI conninfo on another port is no match", host: "db4", port: 5432},
		{name: "first host and port of a multi-host conninfo", host: "db5", port: 5435, want: "e", wantStreams: true},
		{name: "second host of a multi-host conninfo is not matched", host: "db5b", port: 5436},
		{name: "socket directory never matches", host: "/var/run/postgresql", port: 5437},
		{name: "node with an unparsable port never matches", host: "db7", port: 5432},
		{name: "unregistered host (a VIP) matches nobody", host: "10.0.0.100", port: 5432},
		{name: "host match is exact, not a prefix", host: "db", port: 5432},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := repmgr.Facts{InRecovery: true, Nodes: nodes, WAL: repmgr.WAL{SenderHost: tt.host, SenderPort: tt.port}}
			up, streams := Upstream(f)
			if up.Name != tt.want || streams != tt.wantStreams {
				t.Errorf("upstream = %q, %v; want %q, %v", up.Name, streams, tt.want, tt.wantStreams)
			}
		})
	}
}
