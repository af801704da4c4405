#!/bin/sh
# Prints a one-entry Debian changelog for package version $1 by maintainer
# $2, dated like the last commit: the history itself is git's.
set -eu
cd "$(dirname "$0")/.."
when=$(git log -1 --format=%ct 2>/dev/null || date +%s)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
cat <<END
pgquorum ($1) unstable; urgency=medium

  * Built from commit $commit; see https://github.com/pgquorum/pgquorum
    for the history.

 -- $2  $(date -u -R -d "@$when")
END
