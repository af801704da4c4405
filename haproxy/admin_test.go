package haproxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/repmgr"
)

func TestAdminHandler(t *testing.T) {
	tests := []struct {
		name       string
		start      Mode // mode of the agent before the request
		method     string
		target     string
		remote     string
		origin     string
		wantStatus int
		wantMode   Mode // mode of the agent after the request
		wantWeight int
		wantBody   string // substring of the body
	}{
		{"GET shows ready by default with both replies", ModeReady, http.MethodGet, "/agent", "127.0.0.1:40000", "", 200, ModeReady, 100, `"ro":"ready 100% up #Standby"`},
		{"PUT drain sets drain", ModeReady, http.MethodPut, "/agent/drain", "127.0.0.1:40000", "", 200, ModeDrain, 100, `"mode":"drain"`},
		{"POST maint with a weight sets both", ModeReady, http.MethodPost, "/agent/maint?weight=50", "[::1]:40000", "", 200, ModeMaint, 50, `"rw":"maint 50% down #Standby, not writable"`},
		{"PUT ready from another loopback address", ModeMaint, http.MethodPut, "/agent/ready", "127.0.0.2:40000", "", 200, ModeReady, 100, `"mode":"ready"`},
		{"unknown mode is a 400", ModeReady, http.MethodPut, "/agent/stopped", "127.0.0.1:40000", "", 400, ModeReady, 100, "mode: want ready, drain or maint"},
		{"bad weight is a 400", ModeReady, http.MethodPut, "/agent/drain?weight=lots", "127.0.0.1:40000", "", 400, ModeReady, 100, "weight: want an integer"},
		{"weight out of range is a 400", ModeReady, http.MethodPut, "/agent/drain?weight=0", "127.0.0.1:40000", "", 400, ModeReady, 100, "weight: want a percentage"},
		{"DELETE is not a method of the API", ModeReady, http.MethodDelete, "/agent/drain", "127.0.0.1:40000", "", 405, ModeReady, 100, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := NewAgent(AgentOptions{}, &fakeVerdicts{snap: snap(api.StateStandby, repmgr.StreamingState)})
			if err := a.SetOverride(Override{Mode: tc.start, Weight: 100}); err != nil {
				t.Fatal(err)
			}
			req := httptest.NewRequest(tc.method, tc.target, nil)
			req.RemoteAddr = tc.remote
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			rec := httptest.NewRecorder()
			a.AdminHandler().ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.wantStatus, rec.Body)
			}
			if !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Fatalf("body %s lacks %q", rec.Body, tc.wantBody)
			}
			if got := a.Override(); got.Mode != tc.wantMode || got.Weight != tc.wantWeight {
				t.Fatalf("override after the request = %+v, want %s at %d%%", got, tc.wantMode, tc.wantWeight)
			}
			if rec.Code == 200 {
				var body api.AgentBody
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
					t.Fatalf("body is not an api.AgentBody: %v", err)
				}
				if body.Mode != tc.wantMode || len(body.Replies) != 2 {
					t.Fatalf("body %+v does not show mode %s and two replies", body, tc.wantMode)
				}
			}
		})
	}
}
