package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/pgquorum/pgquorum/api"
	"github.com/pgquorum/pgquorum/consensus"
)

// Metrics records every refresh of the verdict for Prometheus, in a registry
// of its own. It is the consensus.Observer of the Checker.
type Metrics struct {
	reg         *prometheus.Registry
	state       *prometheus.GaugeVec
	inRecovery  prometheus.Gauge
	votes       prometheus.Gauge
	needed      prometheus.Gauge
	clVotes     prometheus.Gauge
	clNeeded    prometheus.Gauge
	splitBrain  prometheus.Gauge
	claimants   prometheus.Gauge
	episodes    prometheus.Counter
	peerUp      *prometheus.GaugeVec
	refresh     prometheus.Histogram
	probes      prometheus.Counter
	probeErrors prometheus.Counter
	transitions *prometheus.CounterVec
	lastRefresh prometheus.Gauge
	lastProbeOK prometheus.Gauge
	lagBytes    prometheus.Gauge
	httpConns   prometheus.Gauge
	connsClosed prometheus.Counter
	limited     *prometheus.CounterVec
	primaryChks *prometheus.CounterVec

	mu    sync.Mutex
	prev  api.State
	split bool
}

var allStates = []api.State{api.StatePrimary, api.StateStandby, api.StateUnknown, api.StateDown}

// NewMetrics registers pgquorum's metrics and the Go runtime's.
func NewMetrics() *Metrics {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "pgquorum_" + name, Help: help})
	}
	m := &Metrics{
		reg:        prometheus.NewRegistry(),
		state:      prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgquorum_state", Help: "1 for the node's current verdict (the decided role), 0 for the others."}, []string{"state"}),
		inRecovery: g("in_recovery", "1 when PostgreSQL reports pg_is_in_recovery() (the observed role), 0 when not, -1 when unknown."),
		votes:      g("votes", "Valid votes for this node from its own location at the last refresh, its own included."),
		needed:     g("votes_needed", "Votes a majority of this node's location needs."),
		clVotes:    g("cluster_votes", "Valid votes for this node from every location at the last refresh."),
		clNeeded:   g("cluster_votes_needed", "Votes a majority of every registered node needs (binding with consensus.scope cluster)."),
		splitBrain: g("split_brain", "1 while several nodes answer 200 on /state, confirmed by a second survey; 0 otherwise."),
		claimants:  g("claimants", "Nodes that answered 200 on /state in the last survey."),
		episodes:   prometheus.NewCounter(prometheus.CounterOpts{Name: "pgquorum_split_brain_episodes_total", Help: "Split-brain episodes this node has seen begin."}),
		peerUp:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "pgquorum_peer_up", Help: "1 when the peer answered the last vote request (granted or not), 0 when not."}, []string{"peer"}),
		refresh: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pgquorum_refresh_duration_seconds", Help: "Time to probe the local node and poll the site.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}),
		probes:      prometheus.NewCounter(prometheus.CounterOpts{Name: "pgquorum_db_probes_total", Help: "Probes of the local database."}),
		probeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgquorum_db_probe_errors_total", Help: "Probes of the local database that failed."}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgquorum_state_transitions_total", Help: "Changes of verdict."}, []string{"from", "to"}),
		lastRefresh: g("last_refresh_timestamp_seconds", "When the last refresh started."),
		lastProbeOK: g("last_successful_probe_timestamp_seconds", "When the local database last answered a probe."),
		lagBytes:    g("replication_lag_bytes", "Standby: WAL not yet replayed, against the upstream's last reported WAL end; -1 when unknown or not a standby."),
		httpConns:   g("http_connections", "Open connections of the HTTP server."),
		connsClosed: prometheus.NewCounter(prometheus.CounterOpts{Name: "pgquorum_http_connections_closed_total",
			Help: "Connections the HTTP server closed to stay within its cap: the oldest one without a request, or a new one when all were busy."}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgquorum_http_rate_limited_total",
			Help: "Requests for an operator view answered 429 because their client asked too often."}, []string{"path"}),
		primaryChks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pgquorum_patroni_primary_checks_total",
			Help: "Requests of /primary asked the way a health checker asks (OPTIONS, HEAD, or GET from one client at a steady interval) " +
				"on a node that was not the confirmed primary: a Patroni template's write check, which /primary passes on every node; " +
				"use /read-write (docs/patroni.md)."}, []string{"method"}),
	}
	m.reg.MustRegister(m.state, m.inRecovery, m.votes, m.needed, m.clVotes, m.clNeeded, m.splitBrain, m.claimants, m.episodes, m.peerUp, m.refresh, m.probes, m.probeErrors,
		m.transitions, m.lastRefresh, m.lastProbeOK, m.lagBytes, m.httpConns, m.connsClosed, m.limited, m.primaryChks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Refreshed implements consensus.Observer.
func (m *Metrics) Refreshed(s *consensus.Snapshot, took time.Duration, _ bool) {
	v := s.Verdict
	for _, st := range allStates {
		m.state.WithLabelValues(string(st)).Set(b2f(st == v.State))
	}
	m.refresh.Observe(took.Seconds())
	m.lastRefresh.Set(float64(s.Facts.ProbedAt.UnixNano()) / 1e9)
	m.probes.Inc()
	m.lagBytes.Set(-1)
	if s.ProbeErr != nil {
		m.probeErrors.Inc()
		m.inRecovery.Set(-1)
	} else {
		m.lastProbeOK.Set(float64(s.Facts.ProbedAt.UnixNano()) / 1e9)
		m.inRecovery.Set(b2f(s.Facts.InRecovery))
		if lag, ok := s.Facts.WAL.LagBytes(); ok && s.Facts.InRecovery {
			m.lagBytes.Set(float64(lag))
		}
	}
	m.votes.Set(float64(v.Votes))
	m.needed.Set(float64(v.Needed))
	m.clVotes.Set(float64(v.ClusterVotes))
	m.clNeeded.Set(float64(v.ClusterNeeded))
	m.peerUp.Reset() // only the peers polled this time, so departed nodes vanish
	for _, n := range s.Facts.Nodes {
		if pv, polled := s.Votes[n.ID]; polled {
			m.peerUp.WithLabelValues(n.Name).Set(b2f(pv.Err == nil && pv.Answer != nil))
		}
	}
	m.mu.Lock()
	if m.prev != "" && m.prev != v.State {
		m.transitions.WithLabelValues(string(m.prev), string(v.State)).Inc()
	}
	m.prev = v.State
	m.mu.Unlock()
}

// Surveyed implements consensus.Observer.
func (m *Metrics) Surveyed(sv consensus.Survey) {
	m.claimants.Set(float64(len(sv.RealPrimary.Claimants)))
	m.mu.Lock()
	defer m.mu.Unlock()
	if sv.SplitBrain && !m.split {
		m.episodes.Inc()
	}
	m.split = sv.SplitBrain
	m.splitBrain.Set(b2f(sv.SplitBrain))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// rateLimited counts a 429 of path; m may be nil.
func (m *Metrics) rateLimited(path string) {
	if m != nil {
		m.limited.WithLabelValues(path).Inc()
	}
}

// primaryChecked counts a health checker's request of /primary on a node
// that is not the confirmed primary; m may be nil.
func (m *Metrics) primaryChecked(method string) {
	if m != nil {
		m.primaryChks.WithLabelValues(method).Inc()
	}
}

// WatchPool exports the local database pool's open connections, read at
// every scrape, as pgquorum_db_pool_connections.
func (m *Metrics) WatchPool(conns func() int) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "pgquorum_db_pool_connections",
		Help: "Open connections of pgquorum's pools to the local database, the probe's included."}, func() float64 { return float64(conns()) }))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// WatchFailover exports the failover controller's status, read at every
// scrape: pgquorum_failover_state{state} (one-hot), pgquorum_failover_epoch,
// pgquorum_failover_coordinator (1 on the Raft leader),
// pgquorum_failover_paused and pgquorum_failover_switchover_in_progress.
func (m *Metrics) WatchFailover(self string, status func(context.Context) api.FailoverStatus) {
	m.reg.MustRegister(&failoverCollector{self: self, status: status})
}

var (
	failoverStateDesc = prometheus.NewDesc("pgquorum_failover_state", "1 for the node's failover state, 0 for the others.", []string{"state"}, nil)
	failoverEpochDesc = prometheus.NewDesc("pgquorum_failover_epoch", "Epoch of the latest committed failover decision.", nil, nil)
	failoverCoordDesc = prometheus.NewDesc("pgquorum_failover_coordinator", "1 when this node leads the Raft group and coordinates failover.", nil, nil)
	failoverPauseDesc = prometheus.NewDesc("pgquorum_failover_paused", "1 while automatic failover is paused cluster-wide (pgquorum pause).", nil, nil)
	failoverSwDesc    = prometheus.NewDesc("pgquorum_failover_switchover_in_progress", "1 while a switchover is in progress.", nil, nil)
)

type failoverCollector struct {
	self   string
	status func(context.Context) api.FailoverStatus
}

func (c *failoverCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- failoverStateDesc
	ch <- failoverEpochDesc
	ch <- failoverCoordDesc
	ch <- failoverPauseDesc
	ch <- failoverSwDesc
}

func (c *failoverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.status(context.Background())
	for _, st := range api.FailoverStates {
		ch <- prometheus.MustNewConstMetric(failoverStateDesc, prometheus.GaugeValue, b2f(st == s.State), string(st))
	}
	ch <- prometheus.MustNewConstMetric(failoverEpochDesc, prometheus.GaugeValue, float64(s.Epoch))
	ch <- prometheus.MustNewConstMetric(failoverCoordDesc, prometheus.GaugeValue, b2f(s.Coordinator == c.self))
	ch <- prometheus.MustNewConstMetric(failoverPauseDesc, prometheus.GaugeValue, b2f(s.Paused))
	ch <- prometheus.MustNewConstMetric(failoverSwDesc, prometheus.GaugeValue, b2f(s.Switchover != nil))
}
