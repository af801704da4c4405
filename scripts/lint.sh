#!/usr/bin/env bash
# Static analysis beyond go vet: golangci-lint (errcheck, sloglint: see
# .golangci.yml), staticcheck, and govulncheck against the Go vulnerability
# database. All come from the Go module proxy at pinned versions, built into
# a temporary GOBIN, so nothing is installed for good.
# Called by scripts/test.sh; `make lint` runs it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

# staticcheck 2026.2.2 knows Go 1.26; govulncheck 1.9.0 likewise.
STATICCHECK_VERSION=v0.8.2
GOVULNCHECK_VERSION=v1.9.0
# golangci-lint 2.15.0 is built with, and knows, Go 1.26.
GOLANGCI_LINT_VERSION=v2.15.0

tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
GOBIN="$tools" go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
GOBIN="$tools" go install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION"
GOBIN="$tools" go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION"

echo "== golangci-lint $GOLANGCI_LINT_VERSION" >&2
# Every finding, not the first few of each kind; the tagged test files too.
"$tools/golangci-lint" run --max-issues-per-linter 0 --max-same-issues 0 ./...
"$tools/golangci-lint" run --max-issues-per-linter 0 --max-same-issues 0 --build-tags race,soak,chaos ./tests/...

echo "== staticcheck $STATICCHECK_VERSION" >&2
# The race, soak and chaos build tags too: tests/race_test.go, the soak and
# the chaos harness are only compiled with them (scripts/test.sh vets the
# rest).
go vet -tags race,soak,chaos ./tests/...
"$tools/staticcheck" ./...
"$tools/staticcheck" -tags race,soak,chaos ./tests/...

echo "== govulncheck $GOVULNCHECK_VERSION" >&2
# The database is fetched at every run. Where it cannot be reached (a
# sandbox without that network), say so and go on: only an unreachable
# database skips the check, never a finding. GOVULNDB may name a mirror or
# a file:// copy.
db=${GOVULNDB:-https://vuln.go.dev}
case "$db" in
file://*) reachable=1 ;;
*) if curl -fsS --max-time 15 -o /dev/null "$db/index/db.json.gz"; then reachable=1; else reachable=0; fi ;;
esac
if [ "$reachable" = 1 ]; then
	"$tools/govulncheck" -db "$db" ./...
else
	echo "govulncheck: SKIPPED: the vulnerability database $db cannot be reached from here (set GOVULNDB to a reachable mirror or a file:// copy)" >&2
fi
