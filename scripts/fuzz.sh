#!/usr/bin/env bash
# Runs every fuzz target of the module, one after the other, each for
# FUZZTIME (default 10s). The targets are found by `go test -list`, so a new
# Fuzz function is fuzzed without being named here. `make fuzz` runs it;
# CI runs only the seed corpora, as part of go test.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
FUZZTIME=${FUZZTIME:-10s}

# `go test -list` prints a package's matching names, then its "ok" line.
targets=$(go test -list '^Fuzz' ./... | awk '
	/^Fuzz/ { names[++n] = $1; next }
	/^ok/   { for (i = 1; i <= n; i++) print $2, names[i]; n = 0 }')
if [ -z "$targets" ]; then
	echo "fuzz: no fuzz target found" >&2
	exit 1
fi
count=$(wc -l <<<"$targets")
echo "fuzz: $count targets, $FUZZTIME each" >&2
while read -r pkg name; do
	echo "== $name ($pkg)" >&2
	go test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" "$pkg"
done <<<"$targets"
