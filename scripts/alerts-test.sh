#!/usr/bin/env bash
# Checks pgquorum's Prometheus alerting rules and runs their unit tests:
# promtool check rules, then promtool test rules on deploy/prometheus/tests;
# and has promtool parse every query of the Grafana dashboard.
# Installs Debian's prometheus package (which has promtool) when missing;
# its service is not needed and the tests start none.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

if ! command -v promtool >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "alerts-test: promtool missing; run as root to install Debian's prometheus package" >&2
		exit 2
	fi
	echo "alerts-test: installing prometheus (for promtool)" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	apt-get install -y --no-install-recommends prometheus
fi

echo "== promtool check rules" >&2
promtool check rules deploy/prometheus/*.rules.yml
echo "== promtool test rules" >&2
promtool test rules deploy/prometheus/tests/*.yml
echo "== promtool check rules: the dashboard's queries" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go run ./deploy/grafana/gen -as-rules >"$tmp/dashboard.rules.yml"
promtool check rules "$tmp/dashboard.rules.yml"
