package haproxy

import (
	"context"
	"encoding/json"
	"fmt"
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
// Who may use it is the server's concern: it mounts this handler among the
// actions, which need the admin token or, when none is configured, a client
// on the node's own host.
func (a *Agent) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+api.PathAgent, a.handleShow)
	mux.HandleFunc("PUT "+api.PathAgent+"/{mode}", a.handleSet)
	mux.HandleFunc("POST "+api.PathAgent+"/{mode}", a.handleSet)
	return mux
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
	body := api.AgentBody{Mode: ov.Mode, Weight: ov.Weight, Replies: map[string]string{
		RoleRW: trimNewline(Reply(RoleRW, snap, ov)),
		RoleRO: trimNewline(Reply(RoleRO, snap, ov)),
	}}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(body)
}

func trimNewline(s string) string { return strings.TrimSuffix(s, "\n") }
