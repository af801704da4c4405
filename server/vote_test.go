package server

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
)

// TestVoteRequestDecodedStrictly: only one well-formed request reaches the
// ballot; anything else is a 400 that asks nothing of it.
func TestVoteRequestDecodedStrictly(t *testing.T) {
	valid := `{"protocol":1,"candidate":"n1","candidate_id":1,"system_identifier":"7","timeline":1}`
	tests := []struct {
		name       string
		body       string
		wantStatus int
	}{
		{name: "well-formed request", body: valid, wantStatus: http.StatusOK},
		{name: "unknown field", body: `{"protocol":1,"candidate":"n1","force":true}`, wantStatus: http.StatusBadRequest},
		{name: "two requests", body: valid + valid, wantStatus: http.StatusBadRequest},
		{name: "stray closing brace", body: valid + "}", wantStatus: http.StatusBadRequest},
		{name: "over the size bound", body: valid + strings.Repeat(" ", api.MaxVoteBody), wantStatus: http.StatusBadRequest},
		{name: "not JSON", body: "vote for n1", wantStatus: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeVerdicts{vote: api.VoteAnswer{Protocol: api.VoteProtocol, Voter: "n2", Candidate: "n1", Granted: true}}
			rec := httptest.NewRecorder()
			New(Options{}, fake).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, api.PathVote, strings.NewReader(tt.body)))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if asked := fake.voteReq != nil; asked != (tt.wantStatus == http.StatusOK) {
				t.Errorf("ballot asked: %v, want %v", asked, tt.wantStatus == http.StatusOK)
			}
		})
	}
}
