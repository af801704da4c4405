package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	gocache "github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
)

// Verdicts is what the handlers read; *consensus.Checker provides it.
type Verdicts interface {
	Snapshot(ctx context.Context) *consensus.Snapshot
	Facts(ctx context.Context) *consensus.Snapshot
	Survey(ctx context.Context) consensus.Survey
	Vote(ctx context.Context, req api.VoteRequest) api.VoteAnswer
}

// Failover is the failover controller as the handlers see it;
// *failover.Controller is one. Without one, failover.mode is off.
type Failover interface {
	Status(ctx context.Context) api.FailoverStatus
	History() api.HistoryBody
	Report(ctx context.Context, req api.ReportRequest) api.Report
}

// Options configure a Server.
type Options struct {
	Logger  *slog.Logger
	Metrics *Metrics    // optional: serves /metrics
	Events  EventSource // optional: serves /events
	// AgentAdmin is optional: the HAProxy agent's override, served under
	// api.PathAgent.
	AgentAdmin http.Handler
	Failover   Failover // optional
	Self       string   // this node's name, for /history without a controller
	// Auth says which credentials each kind of request needs; the zero
	// value configures none.
	Auth AuthOptions
	// MaxConns caps the HTTP server's open connections (see connCap).
	// Default: a quarter of the file descriptor limit, 64 to 1024.
	MaxConns int
}

// Server holds the handlers' dependencies.
type Server struct {
	verdicts Verdicts
	log      *slog.Logger
	metrics  *Metrics
	events   EventSource
	agent    http.Handler
	failover Failover
	self     string
	auth     AuthOptions
	views    *gocache.Cache // short-lived answers of the operator views
	flight   singleflight.Group
	draining atomic.Bool
	state    atomic.Pointer[encoded] // /state body of the latest snapshot, encoded once

	conns        *connCap
	viewLimit    *viewLimiter
	primaryWatch *primaryWatch // health checks of /primary (server/primarywatch.go)
}

// encoded is a snapshot's /state answer, kept so that repeated checks of one
// verdict (and one failover status) do not encode it again.
type encoded struct {
	snap   *consensus.Snapshot
	fs     api.FailoverStatus
	status int
	body   []byte
}

// New returns a Server answering from verdicts.
func New(opts Options, verdicts Verdicts) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = defaultMaxConns()
	}
	conns := newConnCap(opts.MaxConns)
	conns.onQuiet = memoryRelease(opts.Logger)
	if m := opts.Metrics; m != nil {
		conns.onCount = func(open int) { m.httpConns.Set(float64(open)) }
		conns.onEvict = m.connsClosed.Inc
	}
	return &Server{verdicts: verdicts, log: opts.Logger, metrics: opts.Metrics, events: opts.Events,
		agent: opts.AgentAdmin, failover: opts.Failover, self: opts.Self, auth: opts.Auth, views: gocache.New(eventsTTL, time.Minute),
		conns: conns, viewLimit: newViewLimiter(time.Now), primaryWatch: newPrimaryWatch(time.Now)}
}

// Drain makes every check answer 503 from now on, so that HAProxy moves
// traffic away before the process stops listening.
func (s *Server) Drain() { s.draining.Store(true) }

// HTTPServer wraps the handler with timeouts that keep a slow or hostile
// client from holding connections (the longest answer, /realPrimary on a
// cache miss, takes the probe timeout plus two peer timeouts), and with the
// cap on open connections, which keeps a flood of them from locking out
// the clients that send a request.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.Handler(),
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
		// Client certificates are verified once per connection.
		ConnContext: s.connContext,
		ConnState:   s.conns.track,
	}
}

// writeJSON answers status with v encoded as JSON. HEAD answers get no body
// from net/http, whatever is written.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeBody(w, status, body)
}

func writeBody(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	_, _ = w.Write(newline)
}

var newline = []byte("\n")
