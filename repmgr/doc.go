// Package repmgr holds what pgquorum knows about, and does to, the local
// PostgreSQL node: a small pgx pool and the one-statement probe (recovery,
// WAL positions, timeline, system identifier, the WAL receiver, repmgr.nodes,
// repmgrd's state), repmgr.events for /events, the parsers for repmgr.conf
// and libpq conninfo strings, the one runner of external tools (repmgr,
// pg_ctl, pg_controldata) with exit codes and bounded output, and the
// actions built on them: re-point by primary_conninfo and a reload, a
// checkpoint, the control file of a stopped instance.
//
// It decides nothing: it reports facts and carries out what package
// failover decided; package consensus judges the facts.
package repmgr
