// Package repmgr holds what pgquorum knows about the local PostgreSQL node:
// a small pgx pool, the probe that reads pg_is_in_recovery() and repmgr.nodes,
// the parsers for repmgr.conf and libpq conninfo strings, and the wrapper that
// runs the repmgr command line tool.
//
// It decides nothing: it reports facts, and package consensus judges them.
package repmgr
