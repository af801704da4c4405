package server

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pgquorum/pgquorum/internal/buildinfo"
)

func TestBuildInfoIsExported(t *testing.T) {
	m := NewMetrics("")
	m.ExportBuildInfo(buildinfo.Info{Version: "v1.2.0", Revision: "abc123", Date: "2026-12-01T10:00:00Z", GoVersion: "go1.26.0"})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	want := `pgquorum_build_info{goversion="go1.26.0",revision="abc123",version="v1.2.0"} 1`
	if !strings.Contains(rec.Body.String(), want) {
		t.Errorf("/metrics lacks %s", want)
	}
}
