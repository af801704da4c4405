package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/pgquorum/pgquorum/repmgr"
)

// EventSource reads repmgr.events; *repmgr.Local is one.
type EventSource interface {
	Events(ctx context.Context, limit int) ([]repmgr.Event, error)
}

const (
	defaultEventLimit = 20
	maxEventLimit     = 1000
	// eventsTTL bounds how often /events can reach the database, however
	// often it is asked: operators read it, scrapers may hammer it.
	eventsTTL = time.Second
)

// handleEvents answers the latest repmgr events, newest first. Whatever the
// limit, the database is asked for the latest maxEventLimit once per
// eventsTTL and every limit is served from that one list: no request pattern
// can make /events cost more than one query a second.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	limit, err := eventLimit(r.URL.Query().Get("limit"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	events, err := s.latestEvents(r)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, events[:min(limit, len(events))])
}

const keyEvents = "events"

func (s *Server) latestEvents(r *http.Request) ([]repmgr.Event, error) {
	if x, ok := s.views.Get(keyEvents); ok {
		return x.([]repmgr.Event), nil
	}
	v, err, _ := s.flight.Do(keyEvents, func() (any, error) {
		events, err := s.events.Events(context.WithoutCancel(r.Context()), maxEventLimit)
		if err == nil {
			s.views.Set(keyEvents, events, eventsTTL)
		}
		return events, err
	})
	if err != nil {
		return nil, err
	}
	return v.([]repmgr.Event), nil
}
func eventLimit(raw string) (int, error) {
	if raw == "" {
		return defaultEventLimit, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > maxEventLimit {
		return 0, fmt.Errorf("limit: want an integer from 1 to %d, got %q", maxEventLimit, raw)
	}
	return n, nil
}
