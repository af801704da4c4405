package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
)

// reportingFailover is the failover controller of the report tests: it records
// the requests that reach it.
type reportingFailover struct {
	asked []api.ReportRequest
}

func (*reportingFailover) Status(context.Context) api.FailoverStatus { return api.FailoverStatus{} }
func (*reportingFailover) History() api.HistoryBody                  { return api.HistoryBody{} }

func (f *reportingFailover) Report(_ context.Context, req api.ReportRequest) api.Report {
	f.asked = append(f.asked, req)
	return api.Report{Protocol: api.ReportProtocol, Node: "n2"}
}

// TestReportRequestOfItsOwnProtocol: a node answers only a report request
// of its own api.ReportProtocol; any other is a 400 that says why and asks
// nothing of the controller.
func TestReportRequestOfItsOwnProtocol(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantError  string // in the 400's body
	}{
		{name: "current protocol", body: `{"protocol":1,"coordinator":"n1","phase":"Following"}`, wantStatus: http.StatusOK},
		{name: "no protocol at all", body: `{"coordinator":"n1","phase":"Following"}`, wantStatus: http.StatusBadRequest,
			wantError: `report request of protocol 0 from "n1": this node speaks protocol 1`},
		{name: "a later protocol", body: `{"protocol":2,"coordinator":"n1","phase":"Following"}`, wantStatus: http.StatusBadRequest,
			wantError: `report request of protocol 2 from "n1": this node speaks protocol 1`},
		{name: "a field of another version", body: `{"protocol":1,"coordinator":"n1","quorum":3}`, wantStatus: http.StatusBadRequest,
			wantError: `decode report request: json: unknown field "quorum"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fo := &reportingFailover{}
			rec := httptest.NewRecorder()
			New(Options{Failover: fo}, &fakeVerdicts{}).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, api.PathReport, strings.NewReader(tt.body)))
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if asked := len(fo.asked) > 0; asked != (tt.wantStatus == http.StatusOK) {
				t.Errorf("controller asked: %v, want %v", asked, tt.wantStatus == http.StatusOK)
			}
			if tt.wantError == "" {
				return
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] != tt.wantError {
				t.Errorf("body %s, want the error %q", rec.Body, tt.wantError)
			}
		})
	}
}
