# pgquorum: the README's two commands are scripts/demo.sh and scripts/test.sh;
# these targets are shortcuts for working on the code (docs/testing.md).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO ?= go

.PHONY: build static test unit lint fmt tidy fuzz cover soak chaos bench bench-failover bench-switchover bench-sync demo docs

build:
	$(GO) build -ldflags "$(STAMP)" -o bin/pgquorum ./cmd/pgquorum

# The static, trimmed binary the Dockerfile ships.
static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w $(STAMP)" -o bin/pgquorum ./cmd/pgquorum

test:
	bash scripts/test.sh

# Unit tests only: no PostgreSQL, no root.
unit:
	$(GO) test -race -short ./...

# golangci-lint (errcheck, sloglint, ...: see .golangci.yml), staticcheck
# and govulncheck, at the versions scripts/lint.sh pins.
lint:
	bash scripts/lint.sh

fmt:
	gofmt -w .

# Fails, changing nothing, when go.mod or go.sum is not what `go mod tidy`
# makes of them, and shows the difference.
tidy:
	$(GO) mod tidy -diff

# Every fuzz target of the module for FUZZTIME each (default 10s); CI runs
# only their seed corpora.
FUZZTIME ?= 10s
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

# Coverage of the unit tests (those of `make unit`, without the race
# detector): profile in bin/cover.out, per-function summary, total last.
cover:
	@mkdir -p bin
	$(GO) test -short -coverprofile=bin/cover.out ./...
	$(GO) tool cover -func=bin/cover.out

# A bounded soak of a real cluster under checks and faults (SOAK_DURATION,
# default 5m; about 7 min in all): fails on growth of goroutines, FDs, RSS,
# pool or database sessions. Not part of CI.
soak:
	bash scripts/soak.sh

# Seeded, randomised faults, alone and in pairs, on a real three-node
# cluster under load (CHAOS_DURATION, default 30m; CHAOS_SEED replays a
# run): prints a table per fault class and fails on any invariant
# violation (docs/testing.md). Not part of CI, which runs a fixed-seed
# subset of a few minutes (scripts/test.sh).
chaos:
	bash scripts/chaos.sh

bench:
	bash scripts/bench.sh

# Write outage of a failover through HAProxy: pgquorum (default and fast
# profiles) against repmgrd (defaults, 2 x 1 s), 5 runs each; about 25 min.
bench-failover:
	bash scripts/bench-failover.sh

# Write outage of "pgquorum switchover" through HAProxy, default and fast
# profiles, 5 runs each; about 3 min.
bench-switchover:
	bash scripts/bench-failover.sh --only pgquorum --fault switchover

# What synchronous replication costs through HAProxy: pgbench TPS and p99
# with failover.synchronous off, on k=1 and on k=2 (5 rounds x 30 s,
# interleaved), and the failover write outage of on against off (3 runs
# each); about 12 min. Knobs: BENCH_SYNC_ARGS="--rounds 5 --fsync".
bench-sync:
	bash scripts/bench-failover.sh --sync $(BENCH_SYNC_ARGS)

demo:
	bash scripts/demo.sh

# Rewrites the generated tables of docs/configuration.md from config.Keys and
# config.Profiles; go test ./config/ fails while they differ.
docs:
	$(GO) test ./config/ -run TestConfigurationDocIsGenerated -update
	$(GO) test ./deploy/grafana/gen -run TestDashboardIsGenerated -update

# Build identity, stamped into internal/buildinfo (pgquorum version).
ifndef COMMIT
COMMIT := $(shell git rev-parse HEAD 2>/dev/null)
endif
ifndef BUILD_DATE
BUILD_DATE := $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
endif
BUILDINFO = github.com/pgquorum/pgquorum/internal/buildinfo
STAMP = -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).revision=$(COMMIT) -X $(BUILDINFO).date=$(BUILD_DATE)

# Packages in dist/: the static binary, the unit (ExecStart=/usr/bin/...),
# the config as a conffile, completions and man pages that pgquorum itself
# writes, maintainer scripts in packaging/. nfpm is pinned and run from the
# Go module proxy. scripts/package-test.sh installs, checks and purges the .deb.
NFPM = $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
ifndef PKG_VERSION
PKG_VERSION := $(shell packaging/version.sh)
endif
PKG_ARCH ?= $(shell $(GO) env GOARCH)
PKG_MAINTAINER ?= pgquorum developers <pgquorum@example.org>
export PKG_VERSION PKG_ARCH PKG_MAINTAINER

.PHONY: deb rpm package-files
deb: package-files
	$(NFPM) package --config packaging/nfpm.yaml --packager deb --target dist/

rpm: package-files
	$(NFPM) package --config packaging/nfpm.yaml --packager rpm --target dist/

# The packaged binary is the static one, position-independent (ASLR): it
# needs no library, only the dynamic loader that every glibc system has.
package-files:
	rm -rf dist/pkg dist/pgquorum_* dist/pgquorum-*
	mkdir -p dist/pkg/completions dist/pkg/man dist/pkg/share dist/pkg/doc
	CGO_ENABLED=0 $(GO) build -buildmode=pie -trimpath -ldflags "-s -w $(STAMP)" -o dist/pkg/pgquorum ./cmd/pgquorum
	sed 's|/usr/local/bin/pgquorum|/usr/bin/pgquorum|g' scripts/pgquorum.service >dist/pkg/pgquorum.service
	dist/pkg/pgquorum completion bash >dist/pkg/completions/pgquorum.bash
	dist/pkg/pgquorum completion zsh >dist/pkg/completions/_pgquorum
	dist/pkg/pgquorum completion fish >dist/pkg/completions/pgquorum.fish
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) dist/pkg/pgquorum man dist/pkg/man
	gzip -9n dist/pkg/man/*.1
	cp packaging/share-README dist/pkg/share/README
	for f in deploy/prometheus/*.yml deploy/prometheus/*.yaml deploy/grafana/*.json; do \
		if [ -e "$$f" ]; then cp "$$f" dist/pkg/share/; fi; \
	done
	cp packaging/copyright dist/pkg/doc/copyright
	packaging/changelog.sh "$(PKG_VERSION)-1" "$(PKG_MAINTAINER)" | gzip -9n >dist/pkg/changelog.Debian.gz
