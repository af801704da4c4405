#!/bin/sh
# save-state.sh: keep HAProxy's server-state file (pgquorum haproxy-config
# --server-state-file) such that a starting HAProxy never sends a client to a
# server before a check has passed on it.
#
#   save-state.sh [-c CONFIG] SOCKET STATEFILE        before a reload or stop
#   save-state.sh -c CONFIG -i [-a MAXAGE] STATEFILE  before a start
#
# HAProxy 2.6 starts every server UP until its first check says otherwise
# (its "init-state" only comes with 3.1): a standby, or an old primary
# answering 509, would take writes for up to "inter" after each start. With
# a state file, the new HAProxy starts each server in the state saved there.
#
# The first form dumps "show servers state" from the admin SOCKET into
# STATEFILE, atomically (temporary file, then rename). With -c, the dump is
# reconciled with CONFIG, the haproxy.cfg the next HAProxy will load: HAProxy
# restores a server's port, check port and agent port from the file, over
# the config's, so a server whose ports changed, or that is new, is written
# DOWN with the config's port instead; servers no longer in CONFIG are
# dropped. If the socket gives no valid dump, the state is written from
# CONFIG with every server DOWN (fail closed) and a warning; without -c the
# file is left as it was and the exit status is 1.
#
# The second form (-i) is for ExecStartPre: when STATEFILE is missing,
# unreadable or older than MAXAGE seconds (default 60; a stop saves it just
# before), it is rewritten from CONFIG with every server DOWN, so a cold
# start behaves like "init-state down"; a fresh file is reconciled as above,
# but only the servers of a listener known to be read-only (one that has its
# own "http-check expect status 202", as pgquorum renders postgres_ro) keep
# their saved state: every other server starts DOWN, write listeners in
# whatever form (an expect in defaults, Patroni's OPTIONS /read-write with
# no expect), since a state saved before HAProxy stopped, or crashed, may
# predate a failover, and restoring the old primary UP would send it writes
# until "fall" checks failed. A planned restart thus costs the writes "rise"
# checks; a reload, which saves the running HAProxy's state just before,
# keeps every state. A server written DOWN needs "rise" passed checks to
# take clients.
#
# CONFIG is read as pgquorum haproxy-config renders it: "listen"/"backend"
# sections, "server NAME HOST:PORT [check port N] [agent-port N] ...".
#
# Clients for the admin socket, first found: socat (package socat), else
# OpenBSD netcat "nc -U" (netcat-openbsd). PGQUORUM_SOCKET_CLIENT=socat|nc
# forces one. Needs POSIX sh, awk, mktemp, timeout, date, stat (coreutils).
#
# Exit status: 0 state written; 1 no state written (see stderr); 2 misuse.
set -eu

usage() {
	echo "usage: save-state.sh [-c CONFIG] SOCKET STATEFILE | save-state.sh -c CONFIG -i [-a MAXAGE] STATEFILE" >&2
	exit 2
}

config="" init=0 maxage=60
while getopts c:ia: opt; do
	case "$opt" in
	c) config=$OPTARG ;;
	i) init=1 ;;
	a) maxage=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
case "$maxage" in '' | *[!0-9]*) usage ;; esac
if [ "$init" = 1 ]; then
	if [ "$#" -ne 1 ] || [ -z "$config" ]; then usage; fi
	socket="" state=$1
else
	[ "$#" -eq 2 ] || usage
	socket=$1 state=$2
fi
if [ -n "$config" ] && [ ! -r "$config" ]; then
	echo "save-state: cannot read config $config" >&2
	exit 1
fi

tmp=$(mktemp "$(dirname -- "$state")/.$(basename -- "$state").XXXXXX")
dump=$tmp.dump
trap 'rm -f "$tmp" "$dump"' EXIT

# ask_socket writes the answer to "show servers state" on stdout. HAProxy
# answers one command and closes; every client is bounded by 5 s.
ask_socket() {
	client=${PGQUORUM_SOCKET_CLIENT:-}
	if [ -z "$client" ]; then
		if command -v socat >/dev/null 2>&1; then
			client=socat
		elif command -v nc >/dev/null 2>&1 && nc -h 2>&1 | grep -q OpenBSD; then
			client=nc
		else
			echo "save-state: neither socat nor OpenBSD nc is installed" >&2
			return 1
		fi
	fi
	case "$client" in
	socat) printf 'show servers state\n' | timeout 5 socat -t 5 - "UNIX-CONNECT:$socket" ;;
	nc) printf 'show servers state\n' | timeout 5 nc -N -w 5 -U "$socket" ;;
	*)
		echo "save-state: PGQUORUM_SOCKET_CLIENT=$client: want socat or nc" >&2
		return 1
		;;
	esac
}

# valid_dump tells whether $1 is a version-1 state dump with at least one
# server: an error message ("Unknown command", "Permission denied") is not.
valid_dump() {
	awk 'NR == 1 && $0 != "1" { exit 1 }
	     NR == 2 && $1 != "#" { exit 1 }
	     NR > 2 && NF >= 20 && $1 !~ /^#/ { n++ }
	     END { exit (NR >= 3 && n > 0) ? 0 : 1 }' "$1"
}

# never_checked_down rewrites state file $1 (stdin: "-") with every server
# that no check has reached yet (check status 0 UNKNOWN or 1 INI) DOWN: a
# dump taken just after a start holds HAProxy's unchecked initial UP, which
# would otherwise be restored as a fully healthy server. Fields (1-based):
# 6 srv_op_state, 11 srv_check_status, 13 srv_check_health.
never_checked_down() {
	awk 'NR > 2 && NF >= 20 && $1 !~ /^#/ && $6 != 0 && ($11 == 0 || $11 == 1) { $6 = 0; $13 = 0 } { print }' "$1"
}

# reconcile CONFIG STATE writes, for every server of CONFIG, STATE's line
# when its ports agree with CONFIG, else a DOWN line with CONFIG's port.
# With init=1 (the -i form), only servers of read-only listeners keep their
# state; every other server is DOWN.
# STATE fields (1-based): 2 be_name, 4 srv_name, 6 srv_op_state, 19
# srv_port, 22 srv_check_port, 25 srv_agent_port.
reconcile() {
	awk -v init="$init" '
	FNR == NR {
		if ($1 == "listen" || $1 == "backend") { be = $2; next }
		if (be != "" && $1 == "http-check" && $2 == "expect" && $3 == "status" && $4 == "202") { ro[be] = 1; next }
		if ($1 == "frontend" || $1 == "global" || $1 == "defaults" || $1 == "peers" || $1 == "resolvers") { be = ""; next }
		if ($1 != "server" || be == "") next
		k = be " " $2
		order[++n] = k; bes[n] = be; names[n] = $2
		port[k] = $3; sub(/.*:/, "", port[k])
		cport[k] = 0; aport[k] = 0
		for (i = 4; i < NF; i++) {
			if ($i == "port") cport[k] = $(i + 1)
			if ($i == "agent-port") aport[k] = $(i + 1)
		}
		next
	}
	FNR == 1 { valid = ($0 == "1"); next }
	!valid || /^[ \t]*#/ || NF < 20 { next }
	{
		k = $2 " " $4
		if (!(k in port) || $19 != port[k]) next
		if (cport[k] != 0 && $22 != cport[k]) next
		if (aport[k] != 0 && NF >= 25 && $25 != aport[k]) next
		keep[k] = $0
	}
	END {
		print "1"
		print "# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port"
		for (i = 1; i <= n; i++) {
			k = order[i]
			if ((k in keep) && !(init && !(bes[i] in ro))) { print keep[k]; continue }
			if ((k in keep) && init) writedown++
			# DOWN with the config port; zero check/agent ports and states
			# leave the config in force. Check status 1 (INI, never
			# checked): HAProxy 2.6.12 was seen to crash or stop checking
			# on a line with status 0.
			print "0 " bes[i] " 0 " names[i] " - 0 0 1 1 0 1 0 0 0 0 0 0 - " port[k] " - 0 0 - - 0"
			down++
		}
		if (down > writedown) printf("save-state: %d of %d servers written DOWN (new, changed, or no valid saved state)\n", down - writedown, n) > "/dev/stderr"
		if (writedown) printf("save-state: %d servers of listeners not known read-only written DOWN at start: a saved UP may predate a failover\n", writedown) > "/dev/stderr"
	}' "$1" "$2"
}

# fresh tells whether file $1 exists and was written at most $2 seconds ago.
fresh() {
	[ -r "$1" ] || return 1
	age=$(($(date +%s) - $(stat -c %Y -- "$1")))
	[ "$age" -le "$2" ]
}

if [ "$init" = 1 ]; then
	src=/dev/null
	if fresh "$state" "$maxage"; then
		src=$state
	else
		echo "save-state: $state missing or older than ${maxage}s: every server starts DOWN" >&2
	fi
	never_checked_down "$src" | reconcile "$config" - >"$tmp"
elif ask_socket >"$dump" && valid_dump "$dump"; then
	if [ -n "$config" ]; then
		never_checked_down "$dump" | reconcile "$config" - >"$tmp"
	else
		never_checked_down "$dump" >"$tmp"
	fi
elif [ -n "$config" ]; then
	echo "save-state: no valid \"show servers state\" from $socket: every server starts DOWN" >&2
	reconcile "$config" /dev/null >"$tmp"
else
	echo "save-state: no valid \"show servers state\" from $socket; $state left as it was" >&2
	exit 1
fi
chmod 0644 "$tmp"
mv -f -- "$tmp" "$state"
