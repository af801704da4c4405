package consensus

import (
	"bytes"
	"net"
	"net/http"
	"slices"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/client"
	"github.com/pgquorum/pgquorum/repmgr"
)

// FuzzVoteAnswer feeds arbitrary peer answers to the vote decoder and, when
// one decodes, to Decide as n3's vote in a 3-node site where n1 has its own
// vote only: it never panics, an answer comes only from a 200 that decodes
// strictly, and it makes n1 Primary only when it is a granted vote of the
// current protocol from n3 (name and node_id) for n1 with n1's system
// identifier.
func FuzzVoteAnswer(f *testing.F) {
	valid := `{"protocol":1,"voter":"n3","voter_id":3,"voter_type":"standby","system_identifier":"` + testSystemID +
		`","timeline":1,"candidate":"n1","granted":true,"reason":"my metadata names it the active primary"}`
	f.Add(200, []byte(valid))
	f.Add(200, []byte(`{"protocol":1,"voter":"n1","voter_id":1,"system_identifier":"`+testSystemID+`","candidate":"n1","granted":true}`))
	f.Add(200, []byte(`{"protocol":1,"voter":"n3","voter_id":3,"system_identifier":"1","candidate":"n1","granted":true}`))
	f.Add(200, []byte(`{"protocol":2,"voter":"n3","voter_id":3,"system_identifier":"`+testSystemID+`","candidate":"n1","granted":true}`))
	f.Add(200, []byte(valid+valid))
	f.Add(200, []byte(`{"granted":true,"extra":1}`))
	f.Add(200, []byte(`{"voter":"n3","voter":"n2"}`))
	f.Add(200, []byte(`["n1"]`))
	f.Add(503, []byte(valid))
	f.Add(302, []byte(``))
	nodes := site(3)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		a, err := client.DecodeVote(status, body)
		if a == nil {
			if err == nil {
				t.Fatalf("status %d gave neither an answer nor an error", status)
			}
			return
		}
		if status != 200 || err != nil {
			t.Fatalf("answer %+v from status %d (err %v)", a, status, err)
		}
		var plain api.VoteAnswer
		if api.DecodeStrict(bytes.NewReader(body), &plain) != nil || plain != *a {
			t.Fatalf("answer %+v is not what the body %q says", a, body)
		}
		v := Decide(input(nodes, map[int]PeerVote{3: {Answer: a}}))
		isVote := a.Protocol == api.VoteProtocol && a.Voter == "n3" && a.VoterID == 3 && a.Candidate == "n1" &&
			a.SystemID == testSystemID && a.Granted
		if (v.State == api.StatePrimary) != isVote {
			t.Fatalf("answer %+v made n1 %s (%s)", a, v.State, v.Reason)
		}
	})
}

// FuzzStateAnswer feeds arbitrary /state answers of n2 (n1 answering 200
// as itself, n3 202) to the survey's count: a body never makes n2 a
// claimant, only its status 200 does, whatever the body says; the body
// decodes exactly when api.DecodeStrict takes it.
func FuzzStateAnswer(f *testing.F) {
	f.Add(200, []byte(`{"State":"Primary","node":"n2","votes":3,"needed":2}`))
	f.Add(509, []byte(`{"State":"Primary","node":"n2","votes":3,"needed":2}`))
	f.Add(202, []byte(`{"State":"Standby","streaming":true,"lag_bytes":-1,"lag_seconds":1e308}`))
	f.Add(200, []byte(`{"State":"Down","checked_at":"not a time"}`))
	f.Add(503, []byte(`{"refusals":{"n1":"x"},"failover":{"mode":"pgquorum","epoch":-1}}`))
	f.Add(200, []byte(`null`))
	f.Add(0, []byte(``))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		b := client.DecodeState(body)
		var plain api.StateBody
		if decodes := api.DecodeStrict(bytes.NewReader(body), &plain) == nil; decodes != (b != nil) {
			t.Fatalf("DecodeState(%q) = %+v, api.DecodeStrict error %v", body, b, !decodes)
		}
		answers := []StateAnswer{{Node: "n1", Status: 200, Self: true}, {Node: "n2", Status: status, Body: b}, {Node: "n3", Status: 202}}
		primary, claimants, unreachable := RealPrimary(answers)
		wantClaimants := []string{"n1"}
		if status == 200 {
			wantClaimants = []string{"n1", "n2"}
		}
		if !slices.Equal(claimants, wantClaimants) || len(unreachable) != 0 {
			t.Fatalf("status %d body %q: claimants %v unreachable %v, want claimants %v", status, body, claimants, unreachable, wantClaimants)
		}
		if (primary == "n1") != (status != 200) || (primary != "" && primary != "n1") {
			t.Fatalf("status %d: real primary %q", status, primary)
		}
	})
}

// FuzzPeerAddress: whatever conninfo a node has in repmgr.nodes (replicated
// from any node's metadata), the address pgquorum asks for its vote is that
// host and the peer port, and the request goes to exactly that host, port
// and path, never elsewhere.
func FuzzPeerAddress(f *testing.F) {
	for _, s := range []string{
		"host=db1 port=5432 user=repmgr",
		"host=10.0.0.2,10.0.0.3 port=5432,5433",
		"host=::1",
		"host=fe80::1%eth0",
		"host='db1/evil?x=' port=5432",
		"host=user@db1",
		"hostaddr=127.0.0.1",
		"postgres://repmgr@[::1]:5432/repmgr",
		"postgresql://db%2F1:5432/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, conninfo string) {
		addr, err := Addresses{Port: 5999}.Of(repmgr.Node{Name: "n2", Conninfo: conninfo})
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil || port != "5999" || host == "" {
			t.Fatalf("conninfo %q: address %q (host %q, port %q, %v)", conninfo, addr, host, port, err)
		}
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+api.PathVote, nil)
		if err != nil {
			return // no request, no vote
		}
		if req.URL.Host != addr || req.URL.Path != api.PathVote || req.URL.RawQuery != "" || req.URL.User != nil {
			t.Fatalf("conninfo %q: address %q makes a request to host %q path %q query %q user %v",
				conninfo, addr, req.URL.Host, req.URL.Path, req.URL.RawQuery, req.URL.User)
		}
	})
}
