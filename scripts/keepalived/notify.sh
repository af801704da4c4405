#!/bin/sh
# notify.sh: keepalived "notify" script for the HAProxy hosts of a pgquorum
# cluster. keepalived calls it on every VRRP state change as
#
#   notify.sh GROUP|INSTANCE NAME STATE PRIORITY
#
# (STATE is MASTER, BACKUP, FAULT, STOP or DELETED). It logs one line through
# logger(1) when present and, if PGQUORUM_NOTIFY_LOG names a file, appends the
# line there too; then it runs the executable named by PGQUORUM_NOTIFY_HOOK, if
# set, with the same four arguments, bounded by PGQUORUM_NOTIFY_HOOK_TIMEOUT
# (default 30s) when timeout(1) exists.
#
# Exit status: 0 when the transition was logged, whatever the hook did (its
# failure is logged: keepalived does not act on a notify script's status);
# 2 on misuse: wrong arguments, or a hook that is not executable.
set -eu

tag=pgquorum-keepalived

usage() {
	echo "usage: $0 GROUP|INSTANCE NAME MASTER|BACKUP|FAULT|STOP|DELETED PRIORITY" >&2
	exit 2
}

# say logs one line to syslog (if logger exists) and to PGQUORUM_NOTIFY_LOG
# (if set). A logging failure is reported on stderr but is no misuse.
say() {
	if command -v logger >/dev/null 2>&1; then
		logger -t "$tag" -- "$1" 2>/dev/null || echo "$tag: logger failed" >&2
	fi
	if [ -n "${PGQUORUM_NOTIFY_LOG:-}" ]; then
		if ! printf '%s %s: %s\n' "$(date '+%Y-%m-%dT%H:%M:%S%z')" "$tag" "$1" >>"$PGQUORUM_NOTIFY_LOG"; then
			echo "$tag: cannot append to $PGQUORUM_NOTIFY_LOG" >&2
		fi
	fi
}

[ "$#" -eq 4 ] || usage
kind=$1
name=$2
state=$3
priority=$4
case "$kind" in GROUP | INSTANCE) ;; *) usage ;; esac
case "$state" in MASTER | BACKUP | FAULT | STOP | DELETED) ;; *) usage ;; esac
case "$priority" in '' | *[!0-9]*) usage ;; esac
[ -n "$name" ] || usage

say "$kind $name is now $state (priority $priority)"

hook=${PGQUORUM_NOTIFY_HOOK:-}
[ -n "$hook" ] || exit 0
if [ ! -f "$hook" ] || [ ! -x "$hook" ]; then
	say "hook $hook is not an executable file: not run"
	exit 2
fi
status=0
if command -v timeout >/dev/null 2>&1; then
	timeout "${PGQUORUM_NOTIFY_HOOK_TIMEOUT:-30s}" "$hook" "$kind" "$name" "$state" "$priority" || status=$?
else
	"$hook" "$kind" "$name" "$state" "$priority" || status=$?
fi
if [ "$status" -ne 0 ]; then
	say "hook $hook $kind $name $state $priority exited $status"
fi
exit 0
