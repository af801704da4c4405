package haproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/pgquorum/pgquorum/api"
)

// AdminHandler serves the operator's override under api.PathAgent:
//
//	GET  /agent                     the override and the replies each listener gets now
//	PUT  /agent/{mode}[?weight=N]   set ready, drain or maint (POST alike)
//
// It answers loopback clients only: draining a node is an operator's act on
// that node's host. Requests bearing an Origin header are refused too, so a
// web page open in a browser on the host cannot drain the node by a
// cross-site POST.
func (a *Agent) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathAgent, a.handleShow)
	mux.HandleFunc("PUT "+api.PathAgent+"/{mode}", a.handleSet)
	mux.HandleFunc("POST "+api.PathAgent+"/{mode}", a.handleSet)
	return localOnly(mux)
}

func localOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		ip := net.ParseIP(host)
		if err != nil || ip == nil || !ip.IsLoopback() {
			http.Error(w, "the agent override is set from the node's own host only", http.StatusForbidden)
			return
		}
		if r.Header.Get("Origin") != "" {
			http.Error(w, "cross-origin requests are refused", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *Agent) handleShow(w http.ResponseWriter, r *http.Request) {
	a.writeBody(r.Context(), w)
}

// handleSet takes the mode from the path and an optional weight percentage
// (default 100) from the query.
func (a *Agent) handleSet(w http.ResponseWriter, r *http.Request) {
	ov := Override{Mode: Mode(r.PathValue("mode")), Weight: 100}
	if s := r.URL.Query().Get("weight"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			http.Error(w, fmt.Sprintf("weight: want an integer percentage, got %q", s), http.StatusBadRequest)
			return
		}
		ov.Weight = n
	}
	if err := a.SetOverride(ov); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.writeBody(r.Context(), w)
}

func (a *Agent) writeBody(ctx context.Context, w http.ResponseWriter) {
	ov := a.Override()
	snap := a.src.Snapshot(ctx)
	body := api.AgentBody{Mode: string(ov.Mode), Weight: ov.Weight, Replies: map[string]string{
		RoleRW: trimNewline(Reply(RoleRW, snap, ov)),
		RoleRO: trimNewline(Reply(RoleRO, snap, ov)),
	}}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(body)
}

func trimNewline(s string) string { return strings.TrimSuffix(s, "\n") }
