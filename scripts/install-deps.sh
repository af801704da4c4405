#!/usr/bin/env bash
# Installs what pgquorum's demo and tests need on a fresh Debian bookworm
# machine, as root: PostgreSQL 15 with repmgr, HAProxy, keepalived, wrk,
# pgbouncer (the hooks test), Chromium (headless, for the screenshot test of /ui),
# bubblewrap (the systemd unit's filesystem view, tests/unitview_test.go).
# Go is expected at /usr/local/go (as on our machines); set GO to override.
set -euo pipefail

packages=(postgresql-15 postgresql-15-repmgr haproxy keepalived nftables wrk iproute2 curl ca-certificates socat chromium pgbouncer bubblewrap)

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: run as root (apt-get, and PostgreSQL runs as the postgres OS user)" >&2
	exit 2
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ] || [ "${PGQUORUM_FORCE_APT:-0}" = 1 ]; then
	echo "install-deps: installing ${missing[*]:-${packages[*]}}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends "${packages[@]}"
fi

# Package scripts may start services where an init system runs; the demo and
# the tests start their own instances on free loopback ports, never these.
for bin in /usr/lib/postgresql/15/bin/initdb /usr/bin/repmgr /usr/sbin/haproxy /usr/sbin/pgbouncer /usr/bin/bwrap; do
	[ -x "$bin" ] || { echo "install-deps: $bin missing after install" >&2; exit 1; }
done
if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	echo "install-deps: add /usr/local/go/bin to PATH" >&2
fi
