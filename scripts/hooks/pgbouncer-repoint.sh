#!/bin/sh
# pgbouncer-repoint.sh: a pgquorum hooks.on_role_change hook that points a
# PgBouncer at this node once it is the primary, so that clients of the
# PgBouncer write to the new primary after a failover or a switchover.
#
#   hooks:
#     on_role_change: PGBOUNCER_INI=/etc/pgbouncer/pgbouncer.ini /usr/local/bin/pgbouncer-repoint.sh
#
# pgquorum appends <role> <node> <epoch> and sets PGQUORUM_NEW_PRIMARY_HOST
# and PGQUORUM_NEW_PRIMARY_PORT (from the node's conninfo in repmgr.nodes).
# On "primary", the host= and port= of the entry PGBOUNCER_DB (default:
# every entry) of the [databases] section of PGBOUNCER_INI are rewritten in
# place, then PgBouncer reloads through its admin console (PGBOUNCER_ADMIN,
# a libpq conninfo whose user is in PgBouncer's admin_users). Other roles
# do nothing. Running it twice for one epoch does no harm.
#
# It runs as pgquorum's OS user: that user must be able to write
# PGBOUNCER_INI. Each entry must name host= and port= already.
set -eu

role=${1:?usage: pgbouncer-repoint.sh <role> <node> <epoch>}
node=${2:-}
epoch=${3:-}
[ "$role" = primary ] || exit 0

host=${PGQUORUM_NEW_PRIMARY_HOST:?PGQUORUM_NEW_PRIMARY_HOST is not set: run me as a pgquorum hook}
port=${PGQUORUM_NEW_PRIMARY_PORT:-5432}
ini=${PGBOUNCER_INI:-/etc/pgbouncer/pgbouncer.ini}
db=${PGBOUNCER_DB:-}
admin=${PGBOUNCER_ADMIN:-host=127.0.0.1 port=6432 dbname=pgbouncer user=pgbouncer}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# Within [databases] only: the entry named db (every entry when db is
# empty) gets the new host and port; the rest of its line stays.
awk -v db="$db" -v host="$host" -v port="$port" '
	/^[ \t]*\[/ { section = $0; gsub(/[ \t]/, "", section) }
	section == "[databases]" && $0 ~ /^[ \t]*[^;#[ \t][^=]*=/ {
		name = $0; sub(/[ \t]*=.*/, "", name); gsub(/^[ \t]+/, "", name)
		if (db == "" || name == db) {
			sub(/host=[^ \t]+/, "host=" host); sub(/port=[^ \t]+/, "port=" port); found = 1
		}
	}
	{ print }
	END { if (!found) exit 3 }' "$ini" >"$tmp" || {
	echo "pgbouncer-repoint: no [databases] entry ${db:-at all} in $ini" >&2
	exit 3
}
# In place: the directory of the ini need not be writable.
cat "$tmp" >"$ini"
psql "$admin" -Atq -c RELOAD
echo "pgbouncer-repoint: epoch $epoch: $ini points at $node ($host:$port), PgBouncer reloaded"
