package server

import (
	"fmt"
	"net/http"

	"github.com/pgquorum/pgquorum/api"
)

// handleHistory lists the committed failover decisions, newest first.
func (s *Server) handleHistory(w http.ResponseWriter, _ *http.Request) {
	if s.failover == nil {
		writeJSON(w, http.StatusOK, api.HistoryBody{Node: s.self, Decisions: []api.Decision{}})
		return
	}
	writeJSON(w, http.StatusOK, s.failover.History())
}

// handleReport answers the failover coordinator's poll with this node's
// report: only a request of its own api.ReportProtocol, whose fields it
// reads as they are meant.
func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	if s.failover == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "failover.mode is off on this node"})
		return
	}
	var req api.ReportRequest
	if err := api.DecodeStrict(http.MaxBytesReader(w, r.Body, api.MaxVoteBody), &req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "decode report request: " + err.Error()})
		return
	}
	if err := checkReportProtocol(req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, s.failover.Report(r.Context(), req))
}

// checkReportProtocol refuses a report request of another version than
// this node's: a coordinator of another version would read the answer
// with other fields, or its request would mean other things here.
func checkReportProtocol(req api.ReportRequest) error {
	if req.Protocol != api.ReportProtocol {
		return fmt.Errorf("report request of protocol %d from %q: this node speaks protocol %d", req.Protocol, req.Coordinator, api.ReportProtocol)
	}
	return nil
}
