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
	if err != nil && events.list == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
		return
	}
	if err != nil {
		// The last list read, at most eventsStale old, rather than an
		// error: a refresh that misses database.timeout on a busy machine
		// blanks nothing (the headers of RFC 9111's stale-if-error).
		w.Header().Set("Age", strconv.Itoa(int(time.Since(events.at).Seconds())))
		w.Header().Set("Warning", `111 - "Revalidation Failed"`)
	}
	writeJSON(w, http.StatusOK, events.list[:min(limit, len(events.list))])
}

const (
	keyEvents     = "events"
	keyLastEvents = "events-last"
	// eventsStale bounds the age of a list served when a refresh failed.
	eventsStale = 30 * time.Second
)

// eventList is a list read from repmgr.events, and when.
type eventList struct {
	list []repmgr.Event
	at   time.Time
}

// latestEvents is the list of at most eventsTTL ago, read again when older;
// when that read fails, the last list read within eventsStale, with the
// error.
func (s *Server) latestEvents(r *http.Request) (eventList, error) {
	if x, ok := s.views.Get(keyEvents); ok {
		return x.(eventList), nil
	}
	v, err, _ := s.flight.Do(keyEvents, func() (any, error) {
		events, err := s.events.Events(context.WithoutCancel(r.Context()), maxEventLimit)
		if err != nil {
			return nil, err
		}
		l := eventList{list: events, at: time.Now()}
		s.views.Set(keyEvents, l, eventsTTL)
		s.views.Set(keyLastEvents, l, eventsStale)
		return l, nil
	})
	if err != nil {
		if x, ok := s.views.Get(keyLastEvents); ok {
			return x.(eventList), err
		}
		return eventList{}, err
	}
	return v.(eventList), nil
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
