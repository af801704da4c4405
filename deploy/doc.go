// Package deploy holds what runs beside pgquorum rather than in it: the
// Prometheus alerting rules (prometheus/, with their promtool tests) and the
// Grafana dashboard (grafana/, written by grafana/gen). Its test keeps every
// metric they query one that pgquorum exports.
package deploy
