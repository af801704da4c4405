// Package server answers pgquorum's HTTP API: the checks (/state, /primary,
// the Patroni-style names) from the Checker's cached verdict, so a flood of
// health checks costs nothing but CPU; the views (/cluster, /realPrimary,
// /events, /history, /ui, /metrics), which ask the peers' cached survey or
// read repmgr.events at most once a second, rate limited per client; the
// peers' internal endpoints (vote, report, command, release), which hand the
// request to consensus or failover; and the operator commands (switchover,
// pause, resume, failover-check, the agent override). One middleware per
// group of routes checks the credential it needs; a connection cap closes
// the oldest idle connection rather than refusing a newcomer.
package server
