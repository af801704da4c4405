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

// handleEvents answers the latest repmgr events, newest first.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	limit, err := eventLimit(r.URL.Query().Get("limit"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	key := "events:" + strconv.Itoa(limit)
	if x, ok := s.views.Get(key); ok {
		writeJSON(w, http.StatusOK, x)
		return
	}
	v, err, _ := s.flight.Do(key, func() (any, error) {
		events, err := s.events.Events(context.WithoutCancel(r.Context()), limit)
		if err == nil {
			s.views.Set(key, events, eventsTTL)
		}
		return events, err
	})
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, v)
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
