#!/usr/bin/env bash
# Builds the .deb (make deb), checks it with lintian (no error, no warning
# that packaging/lintian-overrides does not justify), installs it with dpkg,
# runs the installed pgquorum against the installed config, verifies the
# installed unit with systemd-analyze and the installed binary's sd_notify
# messages (READY, WATCHDOG, STOPPING), checks that an edited config survives
# a reinstall, then purges it and checks that nothing is left behind. Needs
# root on Debian (bookworm); installs lintian, socat and systemd with apt-get when
# missing. Called by scripts/test.sh; about a minute once Go's cache is warm.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

if [ "$(id -u)" -ne 0 ]; then
	echo "package-test: run as root (dpkg -i, dpkg --purge)" >&2
	exit 2
fi
if dpkg-query -W -f='${Status}' pgquorum 2>/dev/null | grep -q installed; then
	echo "package-test: a pgquorum package is installed already; this test installs and purges its own (dpkg --purge pgquorum first)" >&2
	exit 2
fi
fail() {
	echo "package-test: FAIL: $*" >&2
	exit 1
}

missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v socat >/dev/null || missing+=(socat)
command -v ss >/dev/null || missing+=(iproute2)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ "${#missing[@]}" -gt 0 ]; then
	echo "== package-test: apt-get install ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "== make deb" >&2
rm -f dist/pgquorum_*.deb
make -s deb
debs=(dist/pgquorum_*.deb)
[ "${#debs[@]}" -eq 1 ] && [ -f "${debs[0]}" ] || fail "want one dist/pgquorum_*.deb, got ${debs[*]}"
deb=${debs[0]}

echo "== lintian $deb" >&2
lintian --fail-on error,warning "$deb" || fail "lintian"

# Which of the package's paths exist before it comes: after the purge,
# every other one must be gone.
mapfile -t paths < <(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' | grep -v '^/$')
declare -A existed=()
for p in "${paths[@]}" /etc/pgquorum /var/lib/pgquorum; do
	[ -e "$p" ] && existed[$p]=1
done

# A node's repmgr.conf, where the shipped config looks for it, when this
# machine has none: removed at the end.
repmgr_conf=/etc/repmgr.conf
made_repmgr_conf=0
serve_pid=
socat_pid=
cleanup() {
	# Only the processes this script started, by their PID.
	for pid in $serve_pid $socat_pid; do kill "$pid" 2>/dev/null || true; done
	if dpkg-query -W -f='${Status}' pgquorum 2>/dev/null | grep -q installed; then
		dpkg --purge pgquorum >/dev/null || true
	fi
	[ "$made_repmgr_conf" = 1 ] && rm -f "$repmgr_conf"
	return 0
}
trap cleanup EXIT

echo "== dpkg -i" >&2
dpkg -i "$deb" >/dev/null
mapfile -t listed < <(dpkg -L pgquorum)
[ "${#listed[@]}" -gt 10 ] || fail "dpkg -L lists ${#listed[@]} paths"
# The package never starts the daemon: a node joins the vote only once its
# operator has configured it. (Other pgquorums may run on this machine:
# look for the installed binary.)
for exe in /proc/[0-9]*/exe; do
	if [ "$(readlink "$exe" 2>/dev/null)" = /usr/bin/pgquorum ]; then
		fail "a /usr/bin/pgquorum process runs after dpkg -i (${exe%/exe})"
	fi
done

installed_version=$(pgquorum --version | head -1)
echo "$installed_version" >&2
want="pgquorum $(git describe --tags --always --dirty 2>/dev/null || echo dev)"
[ "$installed_version" = "$want" ] || fail "pgquorum --version says '$installed_version', want '$want'"
pgquorum version --json | grep -q '"revision": "'"$(git rev-parse HEAD)"'"' || fail "pgquorum version --json lacks the commit"

conffiles=$(dpkg-query -W -f='${Conffiles}' pgquorum)
grep -q '/etc/pgquorum/pgquorum.yaml' <<<"$conffiles" || fail "/etc/pgquorum/pgquorum.yaml is not a conffile: $conffiles"

as_postgres=()
if getent passwd postgres >/dev/null; then
	as_postgres=(runuser -u postgres --)
	[ "$(stat -c %U:%a /var/lib/pgquorum)" = postgres:700 ] || fail "/var/lib/pgquorum is $(stat -c %U:%a /var/lib/pgquorum), want postgres:700"
	[ "$(stat -c %U:%G:%a /etc/pgquorum/pgquorum.yaml)" = root:postgres:640 ] ||
		fail "/etc/pgquorum/pgquorum.yaml is $(stat -c %U:%G:%a /etc/pgquorum/pgquorum.yaml), want root:postgres:640"
fi

echo "== pgquorum serve --check-config, as the unit runs it" >&2
if [ ! -e "$repmgr_conf" ]; then
	# Without the node's repmgr.conf the shipped config must be refused,
	# naming the key.
	if out=$("${as_postgres[@]}" pgquorum serve --check-config --config /etc/pgquorum/pgquorum.yaml 2>&1); then
		fail "check-config passed without $repmgr_conf: $out"
	fi
	grep -q 'repmgr.config_file' <<<"$out" || fail "check-config without $repmgr_conf: $out"
	made_repmgr_conf=1
	cat >"$repmgr_conf" <<-'END'
	node_id=1
	node_name='pkgtest1'
	conninfo='host=127.0.0.1 port=5432 user=repmgr dbname=repmgr'
	data_directory='/var/lib/postgresql/15/main'
	END
fi
out=$("${as_postgres[@]}" pgquorum serve --check-config --config /etc/pgquorum/pgquorum.yaml 2>&1) ||
	fail "check-config of the installed config: $out"
grep -q 'consensus.state_dir' <<<"$out" || fail "check-config printed no effective config: $out"

echo "== the installed pgquorum says READY=1, feeds the watchdog, says STOPPING=1" >&2
# systemd's side of sd_notify played by socat on a unixgram socket; the
# database is unreachable on purpose (port 1): a Down verdict is a verdict.
work=$(mktemp -d)
printf '%s\n' "node_id=1" "node_name='pkgtest1'" "conninfo='host=127.0.0.1 port=1 user=repmgr dbname=repmgr'" \
	"data_directory='/var/lib/postgresql/15/main'" >"$work/repmgr.conf"
socat -u "UNIX-RECV:$work/notify" "OPEN:$work/notified,creat" &
socat_pid=$!
# A free port below the ephemeral range (32768-60999 on Linux).
for _ in $(seq 20); do
	port=$((20000 + RANDOM % 10000))
	ss -Htln "sport = :$port" | grep -q . || break
done
for _ in $(seq 50); do [ -S "$work/notify" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$work/notify WATCHDOG_USEC=10000000 pgquorum serve --config /etc/pgquorum/pgquorum.yaml \
	--repmgr.config_file "$work/repmgr.conf" --consensus.state_dir "" --server.listen "127.0.0.1:$port" \
	--log.level error 2>"$work/serve.log" &
serve_pid=$!
for _ in $(seq 150); do grep -q 'WATCHDOG=1' "$work/notified" 2>/dev/null && break; sleep 0.1; done
kill -TERM "$serve_pid" 2>/dev/null || fail "pgquorum serve ended by itself: $(cat "$work/serve.log")"
wait "$serve_pid" || fail "pgquorum serve exited $? on SIGTERM: $(cat "$work/serve.log")"
serve_pid=
sleep 0.2
kill "$socat_pid" 2>/dev/null || true
wait "$socat_pid" 2>/dev/null || true
socat_pid=
notified=$(tr '\n' ' ' <"$work/notified")
rm -rf "$work"
case "$notified" in
READY=1*WATCHDOG=1*STOPPING=1) ;;
*) fail "sd_notify messages: '$notified', want READY=1, then WATCHDOG=1, then STOPPING=1" ;;
esac

echo "== systemd-analyze verify" >&2
unit=/lib/systemd/system/pgquorum.service
grep -q '^ExecStart=/usr/bin/pgquorum serve' "$unit" || fail "$unit does not start /usr/bin/pgquorum"
if grep -q /usr/local "$unit"; then fail "$unit names /usr/local"; fi
# Documentation=man:pgquorum-serve(1) is checked where man is installed.
man=--man=no
if command -v man >/dev/null; then
	man=--man=yes
	man -w pgquorum-serve >/dev/null || fail "man -w pgquorum-serve"
fi
systemd-analyze verify "$man" "$unit" || fail "systemd-analyze verify $unit"

echo "== reinstall keeps an edited config" >&2
echo "# edited by package-test" >>/etc/pgquorum/pgquorum.yaml
dpkg -i "$deb" >/dev/null
grep -q '^# edited by package-test' /etc/pgquorum/pgquorum.yaml || fail "dpkg -i replaced the edited conffile"

echo "== dpkg --purge" >&2
dpkg --purge pgquorum >/dev/null
left=()
for p in "${listed[@]}" /etc/pgquorum /var/lib/pgquorum; do
	[ "$p" = /. ] && continue
	if [ -z "${existed[$p]:-}" ] && [ -e "$p" ]; then left+=("$p"); fi
done
[ "${#left[@]}" -eq 0 ] || fail "left behind after dpkg --purge: ${left[*]}"
echo "package-test: ok (${#listed[@]} paths installed and purged)" >&2
