// Package lab brings up real PostgreSQL 15 clusters managed by real repmgr on
// loopback addresses, with one real pgquorum process per node, for the
// integration tests, the chaos and failover benchmarks, and the demo.
// Everything lives under one temporary directory and every process it starts
// is stopped by PID on Close.
//
// Beside the cluster (lab.go, node.go, quorum.go) it runs what surrounds one
// in production: HAProxy rendered from repmgr.nodes (haproxy.go), a
// keepalived pair in network namespaces (keepalived.go), repmgrd
// (repmgrd.go), a service manager's restart loop (service.go). It injects
// the faults the tests need: killed or stalled processes and paused
// machines (faults.go), a crashed instance whose replication was stalled
// first (crash.go), partitions, one-way or by port, with nftables
// (partition.go), a full WAL disk on a tmpfs of each node's own
// (waldisk.go). It observes through pgquorum's client, as an operator
// would (quorum.go, poller.go), and counts acknowledged and lost writes
// (writes.go).
//
// initdb, postgres and repmgr refuse to run as root; a root caller runs them
// as the "postgres" OS user.
package lab
