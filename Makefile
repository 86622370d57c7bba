# Rampart: inline API security gateway. `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   ?= bin
PKGS  := ./...
# The version stamped into the binaries (gateway -version) and the images'
# tags: the git description, or dev outside a checkout.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

build: ## build gateway, demo-upstream and gatewayctl into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/gateway ./cmd/demo-upstream ./cmd/gatewayctl

run: build ## run the demo upstream and the gateway (in-memory store; REDIS_URL for Redis; CONFIG=file)
	@BIN=$(BIN) bash scripts/run.sh

test: ## unit, integration and black-box tests with the race detector (needs redis-server; CI installs it)
	$(GO) test -race -count=1 $(PKGS)

test-short: ## the fast subset (no real Redis, no process tests)
	$(GO) test -short -count=1 $(PKGS)

contract: ## the store contract suite against a real redis-server
	$(GO) test -race -count=1 -run 'TestContract|TestRoundTrips' -v ./store/ ./gateway/

e2e: ## multi-replica end-to-end suite: redis-server, 3 gateways, HAProxy, demo upstream, all on loopback
	$(GO) test -tags e2e -count=1 -timeout 20m -v ./e2e/

test-cluster: ## store contract and 3-replica tests on a real Redis Cluster (3 masters, 3 replicas) and Sentinel (1+2, 3 sentinels), failover and reshard under load
	$(GO) test -tags cluster -count=1 -timeout 20m -v -run 'TestContractCluster|TestContractSentinel' ./store/
	$(GO) test -tags cluster -count=1 -timeout 20m -v -run 'TestClusterTopologies' ./e2e/

compose-e2e: ## docker compose up --scale gateway=3 for real (base, Redis Cluster, TLS and monitoring variants; PHASES="base tls" picks), teardown (needs Docker)
	RAMPART_E2E_PHASES="$(PHASES)" bash scripts/compose-e2e.sh

dev-cert: ## development CA and certificate in deploy/tls/ for deploy/compose/tls.yml
	bash scripts/dev-cert.sh

bench: ## Go micro-benchmarks
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

bench-load: ## the gateway's own cost vs a plain proxy, a plain proxy with one redis_rate call, nginx (LAYOUT=split|shared, REDIS=single|cluster, BASELINES=...)
	bash scripts/bench-load.sh

bench-events: ## events on vs off under mixed load; checks the stream holds every block counted by /metrics
	bash scripts/bench-events.sh

bench-detect: ## detection and false-positive rates on the dev corpus, plus analyser benchmarks
	bash scripts/bench-detect.sh

fuzz: ## run every fuzz target for FUZZTIME (default 30s)
	bash scripts/fuzz.sh $${FUZZTIME:-30s}

lint: ## gofmt, go vet, go mod tidy -diff, staticcheck (when installed), with the e2e and cluster build tags too
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)
	$(GO) vet -tags e2e,cluster ./e2e/ ./store/
	$(GO) mod tidy -diff
	@if command -v staticcheck >/dev/null; then staticcheck $(PKGS) && staticcheck -tags e2e,cluster ./e2e/ ./store/; else echo "staticcheck not installed: skipped (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

cover: ## test coverage report (coverage.html)
	$(GO) test -count=1 -coverprofile=coverage.out $(PKGS)
	$(GO) tool cover -html=coverage.out -o coverage.html
	$(GO) tool cover -func=coverage.out | tail -1

docker: ## build the gateway and demo-upstream images, tagged dev and $(VERSION)
	docker build --build-arg VERSION=$(VERSION) -t rampart/gateway:dev -t rampart/gateway:$(VERSION) --target gateway .
	docker build --build-arg VERSION=$(VERSION) -t rampart/demo-upstream:dev -t rampart/demo-upstream:$(VERSION) --target demo-upstream .

clean: ## remove build outputs
	rm -rf $(BIN) coverage.out coverage.html

.PHONY: help build run test test-short contract e2e test-cluster compose-e2e dev-cert bench bench-load bench-events bench-detect fuzz lint cover docker clean
