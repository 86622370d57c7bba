# Rampart: inline API security gateway. `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   ?= bin
PKGS  := ./...

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

build: ## build gateway, demo-upstream and gatewayctl into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./cmd/gateway ./cmd/demo-upstream ./cmd/gatewayctl

run: build ## run the demo upstream and the gateway (in-memory store; REDIS_URL for Redis)
	@set -m; $(BIN)/demo-upstream -listen 127.0.0.1:5000 & up=$$!; \
	trap 'kill $$up 2>/dev/null' EXIT INT TERM; \
	GATEWAY_TRUSTED_PROXIES=$${GATEWAY_TRUSTED_PROXIES:-} $(BIN)/gateway $${CONFIG:+-config $$CONFIG}

test: ## unit, integration and black-box tests with the race detector (needs redis-server; CI installs it)
	$(GO) test -race -count=1 $(PKGS)

test-short: ## the fast subset (no real Redis, no process tests)
	$(GO) test -short -count=1 $(PKGS)

contract: ## the store contract suite against a real redis-server
	$(GO) test -race -count=1 -run 'TestContract|TestRoundTrips' -v ./store/ ./gateway/

e2e: ## multi-replica end-to-end suite: redis-server, 3 gateways, HAProxy, demo upstream, all on loopback
	$(GO) test -tags e2e -count=1 -timeout 20m -v ./e2e/

compose-e2e: ## docker compose up --scale gateway=3 for real, traffic, scaling, teardown (needs Docker)
	bash scripts/compose-e2e.sh

bench: ## Go micro-benchmarks
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

bench-load: ## side-by-side load benchmark: gateway vs plain proxy (vs nginx)
	bash scripts/bench-load.sh

bench-events: ## events on vs off under mixed load; checks the stream holds every block counted by /metrics
	bash scripts/bench-events.sh

bench-detect: ## detection and false-positive rates on the dev corpus, plus analyser benchmarks
	bash scripts/bench-detect.sh

fuzz: ## run every fuzz target for FUZZTIME (default 30s)
	bash scripts/fuzz.sh $${FUZZTIME:-30s}

lint: ## gofmt, go vet, staticcheck (when installed)
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet $(PKGS)
	@if command -v staticcheck >/dev/null; then staticcheck $(PKGS); else echo "staticcheck not installed: skipped (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

cover: ## test coverage report (coverage.html)
	$(GO) test -count=1 -coverprofile=coverage.out $(PKGS)
	$(GO) tool cover -html=coverage.out -o coverage.html
	$(GO) tool cover -func=coverage.out | tail -1

docker: ## build the gateway and demo-upstream images
	docker build -t rampart/gateway:dev --target gateway .
	docker build -t rampart/demo-upstream:dev --target demo-upstream .

clean: ## remove build outputs
	rm -rf $(BIN) coverage.out coverage.html

.PHONY: help build run test test-short contract e2e compose-e2e bench bench-load bench-events bench-detect fuzz lint cover docker clean
