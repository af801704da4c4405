# pgquorum: the README's two commands are scripts/demo.sh and scripts/test.sh;
# these targets are shortcuts for working on the code (docs/testing.md).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO ?= go

.PHONY: build static test unit lint fmt tidy fuzz cover soak bench bench-failover bench-switchover demo docs

build:
	$(GO) build -o bin/pgquorum ./cmd/pgquorum

# The static, trimmed binary the Dockerfile ships.
static:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/pgquorum ./cmd/pgquorum

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

demo:
	bash scripts/demo.sh

# Rewrites the generated tables of docs/configuration.md from config.Keys and
# config.Profiles; go test ./config/ fails while they differ.
docs:
	$(GO) test ./config/ -run TestConfigurationDocIsGenerated -update
