package consensus

import (
	"encoding/json"
	"testing"

	"github.com/pgquorum/pgquorum/api"
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
		a, err := decodeVote(status, body)
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
		if json.Unmarshal(body, &plain) != nil || plain != *a {
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
