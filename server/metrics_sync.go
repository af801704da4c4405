package server

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgquorum/pgquorum/api"
)

var (
	syncStandbysDesc = prometheus.NewDesc("pgquorum_synchronous_standbys",
		"Standbys the primary waits for before it acknowledges a commit (failover.synchronous): the committed set it applies; 0 while asynchronous.", nil, nil)
	syncDegradedDesc = prometheus.NewDesc("pgquorum_synchronous_degraded",
		"1 while failover.synchronous is on or strict but the cluster runs asynchronously (RPO not 0).", nil, nil)
	syncWaitsDesc = prometheus.NewDesc("pgquorum_synchronous_waiting_commits",
		"Sessions of the primary waiting for a synchronous standby (pg_stat_activity wait_event SyncRep), as last seen.", nil, nil)
	syncFallbacksDesc = prometheus.NewDesc("pgquorum_synchronous_fallbacks_total",
		"Times this node, as primary, fell back to asynchronous replication (failover.synchronous on) since it started.", nil, nil)
)

// syncCollector exports the synchronous object of the failover status.
type syncCollector struct{ f Failover }

func (syncCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{syncStandbysDesc, syncDegradedDesc, syncWaitsDesc, syncFallbacksDesc} {
		ch <- d
	}
}

func (c syncCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.f.Status(context.Background()).Synchronous
	if s == nil {
		s = &api.SyncStatus{Mode: api.SyncOff}
	}
	standbys := 0
	if s.Mode != api.SyncOff && !s.Degraded {
		standbys = len(s.Counted)
	}
	ch <- prometheus.MustNewConstMetric(syncStandbysDesc, prometheus.GaugeValue, float64(standbys))
	ch <- prometheus.MustNewConstMetric(syncDegradedDesc, prometheus.GaugeValue, b2f(s.Mode != api.SyncOff && s.Degraded))
	ch <- prometheus.MustNewConstMetric(syncWaitsDesc, prometheus.GaugeValue, float64(s.SyncRepWaits))
	ch <- prometheus.MustNewConstMetric(syncFallbacksDesc, prometheus.CounterValue, float64(s.Fallbacks))
}
