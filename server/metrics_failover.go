package server

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgquorum/pgquorum/api"
)

// WatchFailover exports the failover controller's status and history, read
// at every scrape: pgquorum_failover_state{state} (one-hot), the epoch, who
// coordinates, pause, switchover, why failover is blocked, and when the
// latest promotion and fence happened.
func (m *Metrics) WatchFailover(self string, f Failover) {
	m.failover = &failoverCollector{self: self, f: f, now: time.Now}
	m.register.MustRegister(m.failover)
	m.register.MustRegister(syncCollector{f: f}) // failover.synchronous (metrics_sync.go)
}

var (
	failoverStateDesc    = prometheus.NewDesc("pgquorum_failover_state", "1 for the node's failover state, 0 for the others.", []string{"state"}, nil)
	failoverEpochDesc    = prometheus.NewDesc("pgquorum_failover_epoch", "Epoch of the latest committed failover decision.", nil, nil)
	failoverCoordDesc    = prometheus.NewDesc("pgquorum_failover_coordinator", "1 when this node leads the Raft group and coordinates failover.", nil, nil)
	failoverHasCoordDesc = prometheus.NewDesc("pgquorum_failover_coordinator_present", "1 when this node knows a Raft leader (a coordinator), itself or another; 0 when not.", nil, nil)
	failoverPauseDesc    = prometheus.NewDesc("pgquorum_failover_paused", "1 while automatic failover is paused cluster-wide (pgquorum pause).", nil, nil)
	failoverPausedDesc   = prometheus.NewDesc("pgquorum_failover_paused_since_timestamp_seconds",
		"When this pgquorum first saw the current pause (unix seconds; a restart resets it); 0 when not paused.", nil, nil)
	failoverSwDesc      = prometheus.NewDesc("pgquorum_failover_switchover_in_progress", "1 while a switchover is in progress.", nil, nil)
	failoverBlockedDesc = prometheus.NewDesc("pgquorum_failover_blocked",
		"1 for the kind of reason that keeps the coordinator from failing over while the state is Blocked, 0 for the others.", []string{"reason"}, nil)
	failoverPromotedDesc = prometheus.NewDesc("pgquorum_failover_last_promotion_timestamp_seconds",
		"When the latest committed decision that replaced a primary (failover or switchover) was taken (unix seconds); 0 when none is recorded.", nil, nil)
	failoverFenceAtDesc = prometheus.NewDesc("pgquorum_failover_last_fence_timestamp_seconds",
		"When the latest fence recorded in the Raft log happened (unix seconds); 0 when none is recorded.", nil, nil)
	failoverFencesDesc = prometheus.NewDesc("pgquorum_failover_fences_total",
		"Fences recorded in the Raft log: those of its history when this pgquorum started, then every new one.", nil, nil)
	rejoinAttemptsDesc = prometheus.NewDesc("pgquorum_rejoin_attempts_total",
		"Attempts of this node to rejoin the committed primary as a standby (failover.auto_rejoin, or a switchover's old primary), since pgquorum started.", nil, nil)
	rejoinFailuresDesc = prometheus.NewDesc("pgquorum_rejoin_failures_total",
		"Rejoin attempts of this node that failed, since pgquorum started; each is retried after a backoff while the decision stands.", nil, nil)
	rejoinManualDesc = prometheus.NewDesc("pgquorum_rejoin_needs_operator",
		"1 while this node's rejoin failed in a way retrying cannot fix (pg_rewind impossible, WAL missing): /state's failover.rejoin.manual_step says what to do.", nil, nil)
)

// Kinds of blocked reasons, the values of pgquorum_failover_blocked's
// label: a bounded set, where the reason itself is free text.
const (
	BlockedRepmgrd      = "repmgrd"      // repmgrd runs with its automatic failover unpaused
	BlockedCooldown     = "cooldown"     // within failover.cooldown of the last promotion
	BlockedNoCandidate  = "no_candidate" // no standby may be promoted
	BlockedUnregistered = "unregistered" // the committed primary is not in repmgr.nodes
	BlockedOther        = "other"
)

var blockedKinds = []string{BlockedRepmgrd, BlockedCooldown, BlockedNoCandidate, BlockedUnregistered, BlockedOther}

// blockedKind sorts a Blocked state's reason by the words the failover
// controller writes (failover/coordinator.go, failover/elect.go).
func blockedKind(reason string) string {
	switch {
	case strings.Contains(reason, "repmgrd runs"):
		return BlockedRepmgrd
	case strings.Contains(reason, "failover.cooldown"):
		return BlockedCooldown
	case strings.Contains(reason, "no standby may be promoted"):
		return BlockedNoCandidate
	case strings.Contains(reason, "not registered in repmgr.nodes"):
		return BlockedUnregistered
	default:
		return BlockedOther
	}
}

type failoverCollector struct {
	self string
	f    Failover
	now  func() time.Time

	mu          sync.Mutex
	pausedSince time.Time // zero while not paused
	fences      int       // counted so far
	lastFence   time.Time // the newest fence counted
}

func (c *failoverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{failoverStateDesc, failoverEpochDesc, failoverCoordDesc, failoverHasCoordDesc, failoverPauseDesc,
		failoverPausedDesc, failoverSwDesc, failoverBlockedDesc, failoverPromotedDesc, failoverFenceAtDesc, failoverFencesDesc,
		rejoinAttemptsDesc, rejoinFailuresDesc, rejoinManualDesc} {
		ch <- d
	}
}

func (c *failoverCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.f.Status(context.Background())
	h := c.f.History()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, st := range api.FailoverStates {
		gauge(failoverStateDesc, b2f(st == s.State), string(st))
	}
	gauge(failoverEpochDesc, float64(s.Epoch))
	gauge(failoverCoordDesc, b2f(s.Coordinator == c.self))
	gauge(failoverHasCoordDesc, b2f(s.Coordinator != ""))
	gauge(failoverPauseDesc, b2f(s.Paused))
	gauge(failoverSwDesc, b2f(s.Switchover != nil))
	blocked := ""
	if s.State == api.FailoverBlocked {
		blocked = blockedKind(s.Reason)
	}
	for _, k := range blockedKinds {
		gauge(failoverBlockedDesc, b2f(k == blocked), k)
	}
	gauge(failoverPromotedDesc, unixSeconds(lastPromotion(h.Decisions)))
	var lastFence time.Time
	if len(h.Fences) > 0 {
		lastFence = h.Fences[0].At // newest first
	}
	gauge(failoverFenceAtDesc, unixSeconds(lastFence))
	ch <- prometheus.MustNewConstMetric(rejoinAttemptsDesc, prometheus.CounterValue, float64(s.RejoinAttempts))
	ch <- prometheus.MustNewConstMetric(rejoinFailuresDesc, prometheus.CounterValue, float64(s.RejoinFailures))
	gauge(rejoinManualDesc, b2f(s.Rejoin != nil && s.Rejoin.Permanent))

	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !s.Paused:
		c.pausedSince = time.Time{}
	case c.pausedSince.IsZero():
		c.pausedSince = c.now()
	}
	gauge(failoverPausedDesc, unixSeconds(c.pausedSince))
	for _, f := range h.Fences {
		if !f.At.After(c.lastFence) {
			break
		}
		c.fences++
	}
	if lastFence.After(c.lastFence) {
		c.lastFence = lastFence
	}
	ch <- prometheus.MustNewConstMetric(failoverFencesDesc, prometheus.CounterValue, float64(c.fences))
}

// lastPromotion is when the newest decision that replaced a primary was
// taken; the adopted first epoch replaced none.
func lastPromotion(newestFirst []api.Decision) time.Time {
	for _, d := range newestFirst {
		if d.OldPrimary != "" {
			return d.At
		}
	}
	return time.Time{}
}

// unixSeconds is t in unix seconds, 0 for the zero time.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
