# charter — make targets. `make demo` and `make test` are all a newcomer needs.
GO      ?= go
BIN     := bin/charter
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

include hack/tools.mk

.PHONY: all build test test-faults unit e2e demo demo-down vet fmt clean bench-sources bench-index bench bench-micro

all: build

build: ## build bin/charter
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/charter

unit: ## tests that need no control plane (e2e tests skip with -short)
	$(GO) test -short ./... -count=1

test: tools ## every test: unit and e2e against a real control plane the suite starts
	CHARTER_E2E=1 $(GO) test ./... -count=1 -timeout 45m

test-faults: tools ## the faults the daemon must survive (kill -9, API server outages, …; ~8 min)
	CHARTER_E2E=1 CHARTER_FAULTS=1 $(GO) test ./cmd/charter/ ./internal/testenv/ -run Fault -count=1 -timeout 40m -v

bench-sources: tools ## change → converged latency per source kind, and the cost of an idle git poll
	CHARTER_E2E=1 $(GO) test ./reconcile/ -run '^$$' -bench 'ChangeToConverged|IdleGitPoll' -benchtime 20x -count=1

bench-index: ## load a generated 30 MiB index.yaml: charter vs Helm's loader (time, memory)
	$(GO) test ./repo/ -run '^$$' -bench 'LoadIndex' -benchmem -count=1

bench: build bench-tools ## charter vs a helm loop vs kubectl on a local control plane (P1–P6, ≤ 30 min); BENCH_FLAGS=… for more
	$(GO) run ./hack/bench -scenario all $(BENCH_FLAGS)

bench-micro: ## go test -bench micro-benchmarks: render, plan (drift check), unchanged check, index parser (with -benchmem)
	$(GO) test ./render/ ./reconcile/ ./repo/ -run '^$$' -bench 'Render|Load$$|Plan|UnchangedCheck|ParseManifest|LoadIndex' -benchmem -count=1

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

demo: build tools ## start a local control plane, run the daemon on examples/, deploy the example chart
	hack/demo.sh

demo-down: controlplane-down ## stop the demo's daemon and control plane
	-@[ -f .demo/daemon.pid ] && kill $$(cat .demo/daemon.pid) 2>/dev/null; rm -rf .demo

clean: demo-down
	rm -rf bin
