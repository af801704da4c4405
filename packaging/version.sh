#!/bin/sh
# Prints the package version from git describe, in a form dpkg and rpm order
# correctly: v1.2.0 -> 1.2.0; v1.2.0-3-gabc1234 (3 commits past the tag) ->
# 1.2.0+3.gabc1234, above 1.2.0 and below 1.2.1; no tag yet -> 0.0.0+N.gHASH
# with N the commit count, so that later builds sort higher; a dirty tree
# adds .dirty. Outside a git checkout: 0.0.0+unknown.
set -eu
cd "$(dirname "$0")/.."
desc=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null) || desc=
if [ -z "$desc" ]; then
	count=$(git rev-list --count HEAD 2>/dev/null) || { echo 0.0.0+unknown; exit 0; }
	hash=$(git rev-parse --short=7 HEAD)
	dirty=
	git diff --quiet HEAD 2>/dev/null || dirty=.dirty
	echo "0.0.0+$count.g$hash$dirty"
	exit 0
fi
echo "$desc" | sed -E 's/^v//; s/-dirty$/.dirty/; s/-([0-9]+)-(g[0-9a-f]+)/+\1.\2/'
