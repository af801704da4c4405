#!/bin/sh
# check_primary.sh: keepalived vrrp_script telling whether the PostgreSQL
# cluster has a real primary that this host can reach through pgquorum.
#
#   check_primary.sh [URL...]      (default: http://127.0.0.1:5999)
#
# It runs "pgquorum check --expect primary" against each pgquorum URL in turn
# and stops at the first node that answers it is the primary with a majority
# of its site. On a database node, give it the local URL only; on an HAProxy
# host, give it every node's URL.
#
# Environment: PGQUORUM_BIN (default: pgquorum from PATH),
# PGQUORUM_CHECK_TIMEOUT (per URL, default 1s), PGQUORUM_CHECK_ARGS (more
# arguments of "pgquorum check", e.g. "--ca-file /etc/keepalived/nodes-ca.crt
# --cert /etc/keepalived/client.crt --key /etc/keepalived/client.key" for
# https:// URLs). The URLs are asked one after
# the other, so the vrrp_script "timeout" must exceed URLs x that timeout.
#
# Exit status: 0 a node answered Primary; 1 some node answered, none is the
# primary; 2 no node gave a verdict (all unreachable) or misuse. keepalived
# treats every non-zero status as a failed check.
set -eu

bin=${PGQUORUM_BIN:-pgquorum}
per_url=${PGQUORUM_CHECK_TIMEOUT:-1s}
PATH=${PATH:-/usr/bin:/bin}:/usr/local/bin:/usr/bin:/bin
export PATH

[ "$#" -gt 0 ] || set -- "http://127.0.0.1:5999"

answered=0
seen=""
for url in "$@"; do
	# shellcheck disable=SC2086 # PGQUORUM_CHECK_ARGS is a list of words
	if out=$("$bin" check --expect primary --url "$url" --timeout "$per_url" ${PGQUORUM_CHECK_ARGS:-} 2>&1); then
		echo "$out"
		exit 0
	else
		status=$?
	fi
	# 1: the node answered and is no primary; anything else is no verdict.
	[ "$status" -eq 1 ] && answered=$((answered + 1))
	seen="${seen:+$seen; }$url: $out"
done
echo "no primary reachable: $seen"
[ "$answered" -gt 0 ] && exit 1
exit 2
