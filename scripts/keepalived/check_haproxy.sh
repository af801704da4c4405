#!/bin/sh
# check_haproxy.sh: keepalived vrrp_script telling whether HAProxy runs here.
#
#   check_haproxy.sh [PIDFILE [NAME]]   (default: /run/haproxy.pid haproxy)
#
# It reads the first PID of the pid file (the master's, with -W/-Ws) and
# checks that this process exists and is called NAME. This is "kill -0 PID"
# made safe: reading /proc works for an unprivileged script_user, where
# kill -0 on root's HAProxy fails with EPERM, and the name check refuses a
# stale pid file whose PID was reused by another process.
#
# Exit status: 0 HAProxy runs; 1 it does not (or the pid file is unreadable).
set -eu

pidfile=${1:-/run/haproxy.pid}
name=${2:-haproxy}

if [ ! -r "$pidfile" ]; then
	echo "haproxy down: cannot read $pidfile"
	exit 1
fi
pid=""
read -r pid <"$pidfile" || true
case "$pid" in
'' | *[!0-9]*)
	echo "haproxy down: no PID in $pidfile"
	exit 1
	;;
esac
comm=""
if [ -r "/proc/$pid/comm" ]; then
	read -r comm <"/proc/$pid/comm" || true
fi
if [ "$comm" != "$name" ]; then
	echo "haproxy down: PID $pid from $pidfile is ${comm:-not running}"
	exit 1
fi
echo "haproxy up: PID $pid"
