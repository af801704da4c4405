package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgquorum/pgquorum/internal/buildinfo"
)

// ExportBuildInfo adds pgquorum_build_info{version,revision,goversion}, always
// 1: which build each node runs, for dashboards and for alerts on a cluster
// left half-upgraded.
func (m *Metrics) ExportBuildInfo(i buildinfo.Info) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "pgquorum_build_info",
		Help:        "Always 1; the labels say which pgquorum build runs.",
		ConstLabels: prometheus.Labels{"version": i.Version, "revision": i.Revision, "goversion": i.GoVersion},
	})
	g.Set(1)
	m.register.MustRegister(g)
}
