package server

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/pgquorum/pgquorum/api"
)

// Patroni's /primary passes only its leader; pgquorum's names the primary
// this node's metadata records, and so passes on every node. A Patroni
// HAProxy template pointed at pgquorum ("option httpchk OPTIONS /primary",
// "http-check expect status 200") would send writes to every node. /primary
// keeps its meaning; primaryWatch recognises a health checker asking it on a
// node that is not the confirmed primary, so that the server can say so.
const (
	// steadyGETs is how many GETs from one client are compared: their
	// steadyGETs-1 intervals must agree within steadyTolerance.
	steadyGETs      = 4
	steadyTolerance = 0.25
	// Intervals outside these bounds are no health checker's: HAProxy's
	// inter is rarely under 100 ms, and a person or a cron job asks
	// seldom or at whim.
	steadyMinInterval = 100 * time.Millisecond
	steadyMaxInterval = 5 * time.Minute
	// primaryWarnEvery is how often one client is warned about.
	primaryWarnEvery = time.Hour
	// maxPrimaryClients bounds the memory of the watch: past it, the client
	// seen least recently is forgotten (and may be warned about again
	// within the hour).
	maxPrimaryClients = 1024
)

// primaryWatch remembers, per client address, its latest GETs of /primary
// and when it was last warned about.
type primaryWatch struct {
	now func() time.Time
	max int

	mu      sync.Mutex
	clients map[netip.Addr]*primaryClient
}

type primaryClient struct {
	gets   []time.Time // the latest GETs, oldest first, at most steadyGETs
	last   time.Time   // the latest request, whatever its method
	warned time.Time   // zero until the first warning
}

func newPrimaryWatch(now func() time.Time) *primaryWatch {
	return &primaryWatch{now: now, max: maxPrimaryClients, clients: map[netip.Addr]*primaryClient{}}
}

// checker records a request of /primary and tells whether it was asked the
// way a health checker asks: OPTIONS or HEAD (HAProxy's httpchk methods;
// curl and people use GET), or a GET whose client has asked at a steady
// interval for its latest steadyGETs requests.
func (w *primaryWatch) checker(client netip.Addr, method string) bool {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.client(client, now)
	c.last = now
	if method != http.MethodGet {
		return method == http.MethodOptions || method == http.MethodHead
	}
	if len(c.gets) == steadyGETs {
		c.gets = append(c.gets[:0], c.gets[1:]...)
	}
	c.gets = append(c.gets, now)
	return steady(c.gets)
}

// warnDue tells whether client is to be warned about now, and if so
// remembers that it was.
func (w *primaryWatch) warnDue(client netip.Addr) bool {
	now := w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.client(client, now)
	if !c.warned.IsZero() && now.Sub(c.warned) < primaryWarnEvery {
		return false
	}
	c.warned = now
	return true
}

// client returns client's record, making room for a new one by forgetting
// the client seen least recently. Called with mu held.
func (w *primaryWatch) client(client netip.Addr, now time.Time) *primaryClient {
	if c, ok := w.clients[client]; ok {
		return c
	}
	if len(w.clients) >= w.max {
		var oldest netip.Addr
		var at time.Time
		for k, c := range w.clients {
			if at.IsZero() || c.last.Before(at) {
				oldest, at = k, c.last
			}
		}
		delete(w.clients, oldest)
	}
	c := &primaryClient{last: now}
	w.clients[client] = c
	return c
}

// steady tells whether gets holds steadyGETs times whose intervals agree
// within steadyTolerance and lie within the bounds of a health checker's.
func steady(gets []time.Time) bool {
	if len(gets) < steadyGETs {
		return false
	}
	lo, hi := gets[1].Sub(gets[0]), gets[1].Sub(gets[0])
	for i := 2; i < len(gets); i++ {
		d := gets[i].Sub(gets[i-1])
		lo, hi = min(lo, d), max(hi, d)
	}
	return lo >= steadyMinInterval && hi <= steadyMaxInterval && float64(hi) <= float64(lo)*(1+steadyTolerance)
}

// watchPrimary is called for every /primary request answered from the
// node's facts. When a health checker asks on a node that is not the
// confirmed primary, it counts the request and, once per client per
// primaryWarnEvery, logs a warning naming the template line and its
// replacement. /primary's answer does not change.
func (s *Server) watchPrimary(r *http.Request) {
	client := clientKey(r.RemoteAddr)
	if !s.primaryWatch.checker(client, r.Method) {
		return
	}
	// The verdict is read only for a checker's request: a refresh keeps it
	// cached, and a person's curl costs nothing more than before.
	state := api.StateDown
	if snap := s.verdicts.Snapshot(r.Context()); snap != nil {
		state = snap.Verdict.State
	}
	if state == api.StatePrimary {
		return
	}
	s.metrics.primaryChecked(r.Method)
	if !s.primaryWatch.warnDue(client) {
		return
	}
	s.log.Warn("a health check asks /primary, which answers 200 on every node whose repmgr metadata names a primary, "+
		"not only on the confirmed primary: a Patroni HAProxy template would send writes to this node",
		"client", client.String(), "method", r.Method, "state", string(state),
		"template_line", "option httpchk "+r.Method+" "+api.PathPrimary,
		"use_instead", "option httpchk "+r.Method+" "+api.PathReadWrite,
		"alternative", "option httpchk "+r.Method+" "+api.PathState+" with http-check expect status 200",
		"see", "docs/patroni.md", "repeated_for_this_client_every", "1h")
}
