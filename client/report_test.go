package client

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// TestReportOfItsOwnProtocol: the coordinator counts only a report of its
// own api.ReportProtocol, decoded strictly from a 200; anything else is no
// report, and says why.
func TestReportOfItsOwnProtocol(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantNode string // "" when it is no report
		wantErr  string
	}{
		{name: "current protocol", status: 200, body: `{"protocol":1,"node":"n2","db_up":true}`, wantNode: "n2"},
		{name: "no protocol at all", status: 200, body: `{"node":"n2","db_up":true}`, wantErr: "report of protocol 0, want 1"},
		{name: "a later protocol", status: 200, body: `{"protocol":2,"node":"n2","db_up":true}`, wantErr: "report of protocol 2, want 1"},
		{name: "a field of another version", status: 200, body: `{"protocol":1,"node":"n2","quorum":3}`, wantErr: `unknown field "quorum"`},
		{name: "two reports", status: 200, body: `{"protocol":1,"node":"n2"}{"protocol":1,"node":"n3"}`, wantErr: "trailing data"},
		{name: "a refusal of our request", status: 400, body: `{"error":"report request of protocol 2"}`, wantErr: "unexpected status 400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeReport(tt.status, []byte(tt.body))
			if tt.wantErr != "" {
				if r != nil || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DecodeReport = %+v, %v; want no report and an error containing %q", r, err, tt.wantErr)
				}
				return
			}
			if err != nil || r == nil || r.Node != tt.wantNode {
				t.Fatalf("DecodeReport = %+v, %v; want the report of %s", r, err, tt.wantNode)
			}
		})
	}
}

// TestReportAsksWithItsRequest: Report POSTs the request to the report path
// and, from a peer of another protocol, returns no report.
func TestReportAsksWithItsRequest(t *testing.T) {
	for _, tt := range []struct {
		name    string
		answer  string
		wantErr string
	}{
		{name: "peer of the same protocol", answer: `{"protocol":1,"node":"n2"}`},
		{name: "peer of another protocol", answer: `{"protocol":2,"node":"n2"}`, wantErr: api.PathReport + ": report of protocol 2, want 1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := peerServer(t, func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
				var req api.ReportRequest
				if r.Method != http.MethodPost || r.URL.Path != api.PathReport || api.DecodeStrict(r.Body, &req) != nil || req.Protocol != api.ReportProtocol {
					http.Error(w, "bad request", http.StatusBadRequest)
					return
				}
				_, _ = w.Write([]byte(tt.answer))
			})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			r, err := New(Options{}).Report(ctx, addr, api.ReportRequest{Protocol: api.ReportProtocol, Coordinator: "n1"})
			if tt.wantErr == "" && (err != nil || r == nil || r.Node != "n2") {
				t.Fatalf("Report = %+v, %v; want n2's report", r, err)
			}
			if tt.wantErr != "" && (r != nil || err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Report = %+v, %v; want no report and an error containing %q", r, err, tt.wantErr)
			}
		})
	}
}
