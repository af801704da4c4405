package server

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// uiRefresh is how often the status page reloads itself: a browser left
// open asks /ui once per uiRefresh, far below the views' rate limit.
const uiRefresh = 5 * time.Second

//go:embed ui.html.tmpl
var uiSource string

// uiTemplate renders /ui. html/template escapes every value by its
// context, node names and reasons included: they come from repmgr.nodes
// and from peers, which an operator's browser must not trust.
var uiTemplate = template.Must(template.New("ui").Funcs(template.FuncMap{
	"stateClass": stateClass,
	"bytes":      humanBytes,
	"seconds":    func(f *float64) string { return fmt.Sprintf("%.1f s", *f) },
	"when":       func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"refresh":    func() int { return int(uiRefresh / time.Second) },
	"deref":      func(b *bool) bool { return *b },
	"join":       func(s []string) string { return strings.Join(s, ", ") },
	"syncMember": syncMember,
}).Parse(uiSource))

// uiPage is what the template shows.
type uiPage struct {
	Cluster string
	api.ClusterBody
	At time.Time
}

// handleUI answers the status page: /cluster's answer, made of the same
// cached survey, as one self-contained HTML page. It is read-only: no form,
// no script, nothing it links to acts.
func (s *Server) handleUI(w http.ResponseWriter, r *http.Request) {
	page := uiPage{Cluster: s.cluster, ClusterBody: s.clusterBody(r.Context()), At: time.Now()}
	var buf bytes.Buffer
	if err := uiTemplate.Execute(&buf, page); err != nil {
		s.log.Error("render /ui", "error", err)
		http.Error(w, "render /ui: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// No script, no frame, nothing fetched: inline styles are all it needs.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// stateClass is the CSS class of a verdict: its colour.
func stateClass(n api.ClusterNode) string {
	switch {
	case !n.Reachable:
		return "unreachable"
	case n.State == api.StatePrimary:
		return "primary"
	case n.State == api.StateStandby:
		return "standby"
	case n.State == api.StateUnknown:
		return "unknown"
	case n.State == api.StateDown:
		return "down"
	default:
		return "unreachable"
	}
}

// humanBytes writes a lag in B, kB, MB or GB (powers of 1024, as
// PostgreSQL's pg_size_pretty).
func humanBytes(b *int64) string {
	v := float64(*b)
	for _, unit := range []string{"B", "kB", "MB", "GB"} {
		if v < 1024 || unit == "GB" {
			if unit == "B" {
				return fmt.Sprintf("%d B", *b)
			}
			return fmt.Sprintf("%.1f %s", v, unit)
		}
		v /= 1024
	}
	return ""
}

// syncMember tells whether node is in the committed synchronous set
// (failover.synchronous on or strict): a standby an election counts on.
func syncMember(f *api.FailoverStatus, node string) bool {
	if f == nil || f.Synchronous == nil || f.Synchronous.Mode == api.SyncOff {
		return false
	}
	return slices.Contains(f.Synchronous.Set, node)
}
