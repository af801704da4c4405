package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// Operator is the failover controller as the operator commands see it
// (switchover, pause, resume, failover-check), with the peers' calls they
// lead to (a command forwarded to the coordinator, a switchover's release,
// a deposition); *failover.Controller is one. What the actor does to
// PostgreSQL is an action (failover.Actions, api.ActionKind): none of it
// is here.
type Operator interface {
	Command(ctx context.Context, cmd api.Command) api.CommandResult
	CommandFromPeer(ctx context.Context, cmd api.Command) api.CommandResult
	FromPeer(ctx context.Context, ip net.IP) bool
	Release(ctx context.Context, req api.ReleaseRequest) error
	Deposition(ctx context.Context, req api.DepositionRequest) api.DepositionAnswer
	FailoverCheck(ctx context.Context, wait time.Duration) api.FailoverCheckAnswer
}

// maxFailoverCheckWait bounds how long one failover-check request waits.
const maxFailoverCheckWait = time.Minute

func remoteIP(r *http.Request) net.IP {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return nil
	}
	return net.ParseIP(host)
}

// operator returns the controller's operator side, or answers 404 when
// failover is off on this node.
func (s *Server) operator(w http.ResponseWriter) (Operator, bool) {
	o, ok := s.failover.(Operator) // false for a nil Failover too
	if !ok {
		writeJSON(w, http.StatusNotFound, errorBody("failover.mode is off on this node"))
		return nil, false
	}
	return o, true
}

// decodeBody reads a small JSON body into v; an empty body leaves v as is.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := api.DecodeStrict(http.MaxBytesReader(w, r.Body, api.MaxVoteBody), v); err != nil && !errors.Is(err, io.EOF) {
		writeJSON(w, http.StatusBadRequest, errorBody("decode request: "+err.Error()))
		return false
	}
	return true
}

// writeResult answers a command: 200 when done, 409 when refused.
func writeResult(w http.ResponseWriter, res api.CommandResult) {
	status := http.StatusOK
	if !res.OK {
		status = http.StatusConflict
	}
	writeJSON(w, status, res)
}

func (s *Server) handleSwitchover(w http.ResponseWriter, r *http.Request) {
	o, ok := s.operator(w)
	if !ok {
		return
	}
	var req api.SwitchoverRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.To == "" {
		writeJSON(w, http.StatusBadRequest, errorBody("to: want the name of the standby to switch over to"))
		return
	}
	writeResult(w, o.Command(r.Context(), api.Command{Kind: api.CommandSwitchover, To: req.To}))
}

// handleShowSwitchover shows the latest switchover, as the Raft log has it.
func (s *Server) handleShowSwitchover(w http.ResponseWriter, _ *http.Request) {
	if s.failover == nil {
		writeJSON(w, http.StatusNotFound, errorBody("failover.mode is off on this node"))
		return
	}
	h := s.failover.History()
	if len(h.Switchovers) == 0 {
		writeJSON(w, http.StatusNotFound, errorBody("no switchover yet"))
		return
	}
	writeJSON(w, http.StatusOK, h.Switchovers[0])
}

func (s *Server) handlePause(w http.ResponseWriter, r *http.Request) {
	o, ok := s.operator(w)
	if !ok {
		return
	}
	var req api.PauseRequest
	if !decodeBody(w, r, &req) {
		return
	}
	writeResult(w, o.Command(r.Context(), api.Command{Kind: api.CommandPause, Reason: req.Reason}))
}

func (s *Server) handleResume(w http.ResponseWriter, r *http.Request) {
	o, ok := s.operator(w)
	if !ok {
		return
	}
	writeResult(w, o.Command(r.Context(), api.Command{Kind: api.CommandResume}))
}

// handleCommand is the coordinator's side of a command forwarded by a
// peer: taken from the registered nodes' addresses only.
func (s *Server) handleCommand(w http.ResponseWriter, r *http.Request) {
	o, ok := s.operator(w)
	if !ok {
		return
	}
	if !o.FromPeer(r.Context(), remoteIP(r)) {
		writeJSON(w, http.StatusForbidden, errorBody("commands are taken from the registered nodes only"))
		return
	}
	var cmd api.Command
	if !decodeBody(w, r, &cmd) {
		return
	}
	writeJSON(w, http.StatusOK, o.CommandFromPeer(r.Context(), cmd))
}

func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request) {
	o, ok := s.operator(w)
	if !ok {
		return
	}
	var req api.ReleaseRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if err := o.Release(r.Context(), req); err != nil {
		writeJSON(w, http.StatusConflict, errorBody(err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, api.ReleaseAnswer{Released: true})
}

// handleDeposition answers the coordinator waiting to commit the successor
// of a deposed primary: has this voter released it?
func (s *Server) handleDeposition(w http.ResponseWriter, r *http.Request) {
	o, ok := s.operator(w)
	if !ok {
		return
	}
	var req api.DepositionRequest
	if !decodeBody(w, r, &req) {
		return
	}
	writeJSON(w, http.StatusOK, o.Deposition(r.Context(), req))
}

// handleFailoverCheck answers "pgquorum failover-check" (200 either way:
// the answer says whether repmgrd may promote).
func (s *Server) handleFailoverCheck(w http.ResponseWriter, r *http.Request) {
	o, ok := s.operator(w)
	if !ok {
		return
	}
	var req api.FailoverCheckRequest
	if !decodeBody(w, r, &req) {
		return
	}
	wait := min(max(time.Duration(req.WaitMS)*time.Millisecond, 0), maxFailoverCheckWait)
	writeJSON(w, http.StatusOK, o.FailoverCheck(r.Context(), wait))
}
