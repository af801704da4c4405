// Package lab brings up real PostgreSQL 15 clusters managed by real repmgr on
// loopback ports, with one real pgquorum process per node, for the
// integration tests and the demo. Everything lives under one temporary
// directory and every process it starts is stopped by PID on Close.
//
// initdb, postgres and repmgr refuse to run as root; a root caller runs them
// as the "postgres" OS user.
package lab
