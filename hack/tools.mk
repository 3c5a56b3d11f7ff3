# hack/tools.mk: the tools cache (control-plane binaries, kwok, helm) and a
# local control plane for the demo. Included by the top-level Makefile; also
# usable alone: make -f hack/tools.mk tools
#
#   make tools              build etcd, kube-apiserver, kube-controller-manager,
#                           kube-scheduler, kwok, helm, the kwok stages, the
#                           MinIO server (bucket tests) and the CNCF
#                           Distribution registry (oci:// tests) into $(TOOLS); skipped
#                           when already built at the pinned versions
#   make controlplane       same as tools
#   make bench-tools        also build kubectl (for make bench only; no test
#                           needs it, so it is not part of tools)
#   make controlplane-up    start a control plane in the background;
#                           admin kubeconfig in .controlplane/kubeconfig
#   make controlplane-down  stop it and remove .controlplane

# Repository root, from this file's location (must be read before any other include).
CHARTER_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)

TOOLS ?= $(or $(CHARTER_TOOLS),$(HOME)/.cache/charter/tools)
# Tests (internal/testenv) find the tools through this variable.
export CHARTER_TOOLS := $(abspath $(TOOLS))

GO ?= go
CONTROLPLANE_DIR ?= $(CHARTER_ROOT)/.controlplane

# Pinned versions: Kubernetes and etcd come from hack/controlplane/go.mod,
# Helm from the main go.mod (the reference CLI matches the library charter uses).
KUBE_VERSION := $(shell awk '$$1 == "k8s.io/kubernetes" { print $$2; exit }' $(CHARTER_ROOT)/hack/controlplane/go.mod)
ETCD_VERSION := $(shell awk '$$1 == "go.etcd.io/etcd/server/v3" { print $$2; exit }' $(CHARTER_ROOT)/hack/controlplane/go.mod)
HELM_VERSION := $(shell awk '$$1 == "helm.sh/helm/v4" { print $$2; exit }' $(CHARTER_ROOT)/go.mod)
KWOK_VERSION := v0.8.0
# MinIO publishes no semver tags: this pseudo-version is the master commit of
# 2026-02-12 (what @latest resolved to), which builds with the go.mod Go version.
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
# The OCI registry (CNCF Distribution, `registry serve CONFIG`) for oci:// chart tests.
REGISTRY_VERSION := v3.1.2

TOOLS_VERSIONS := kubernetes=$(KUBE_VERSION) etcd=$(ETCD_VERSION) kwok=$(KWOK_VERSION) helm=$(HELM_VERSION) minio=$(MINIO_VERSION) registry=$(REGISTRY_VERSION)
TOOLS_STAMP := $(CHARTER_TOOLS)/versions
TOOLS_BINARIES := etcd kube-apiserver kube-controller-manager kube-scheduler kwok helm minio registry

# kwok "fast" stages: nodes become Ready and keep a lease; pods become
# Running/Ready at once, Job pods complete, deleted pods go away.
KWOK_STAGES := node/fast/node-initialize.yaml \
	node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
	pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml

# Without these the API server reports version v0.0.0-master, which breaks
# charts with a kubeVersion constraint.
KUBE_MAJOR := $(word 1,$(subst ., ,$(patsubst v%,%,$(KUBE_VERSION))))
KUBE_MINOR := $(word 2,$(subst ., ,$(patsubst v%,%,$(KUBE_VERSION))))
KUBE_LDFLAGS := $(foreach pkg,k8s.io/component-base/version k8s.io/client-go/pkg/version,\
	-X $(pkg).gitVersion=$(KUBE_VERSION) -X $(pkg).gitMajor=$(KUBE_MAJOR) \
	-X $(pkg).gitMinor=$(KUBE_MINOR) -X $(pkg).gitTreeState=clean)

.PHONY: tools controlplane controlplane-up controlplane-down tools-build bench-tools

tools:
	@if [ "$$(cat '$(TOOLS_STAMP)' 2>/dev/null)" = "$(TOOLS_VERSIONS)" ] \
		$(foreach b,$(TOOLS_BINARIES),&& [ -x '$(CHARTER_TOOLS)/$(b)' ]); then \
		echo "tools: $(CHARTER_TOOLS) is up to date ($(TOOLS_VERSIONS))"; \
	else \
		$(MAKE) --no-print-directory -f '$(CHARTER_ROOT)/hack/tools.mk' tools-build; \
	fi

controlplane: tools

tools-build:
	@test -n "$(KUBE_VERSION)" -a -n "$(ETCD_VERSION)" -a -n "$(HELM_VERSION)" || \
		{ echo "tools: cannot read pinned versions from hack/controlplane/go.mod and go.mod" >&2; exit 1; }
	@echo "tools: building $(TOOLS_VERSIONS) into $(CHARTER_TOOLS) (first build takes a long time)"
	@mkdir -p '$(CHARTER_TOOLS)/kwok-stages'
	@rm -f '$(TOOLS_STAMP)'
	cd '$(CHARTER_ROOT)/hack/controlplane' && $(GO) build -ldflags '$(KUBE_LDFLAGS)' -o '$(CHARTER_TOOLS)/' \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler
	cd '$(CHARTER_ROOT)/hack/controlplane' && $(GO) build -o '$(CHARTER_TOOLS)/etcd' go.etcd.io/etcd/server/v3
	GOBIN='$(CHARTER_TOOLS)' $(GO) install sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION)
	GOBIN='$(CHARTER_TOOLS)' $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	GOBIN='$(CHARTER_TOOLS)' $(GO) install github.com/minio/minio@$(MINIO_VERSION)
	GOBIN='$(CHARTER_TOOLS)' $(GO) install github.com/distribution/distribution/v3/cmd/registry@$(REGISTRY_VERSION)
	@set -e; \
	src=$$(cd / && $(GO) mod download -json sigs.k8s.io/kwok@$(KWOK_VERSION) | \
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$$/\1/p'); \
	test -d "$$src/kustomize/stage" || { echo "tools: kwok stages not found in module sigs.k8s.io/kwok@$(KWOK_VERSION)" >&2; exit 1; }; \
	rm -f '$(CHARTER_TOOLS)'/kwok-stages/*.yaml; \
	for f in $(KWOK_STAGES); do \
		echo "cp $$src/kustomize/stage/$$f $(CHARTER_TOOLS)/kwok-stages/"; \
		install -m 0644 "$$src/kustomize/stage/$$f" '$(CHARTER_TOOLS)/kwok-stages/'; \
	done
	@echo '$(TOOLS_VERSIONS)' > '$(TOOLS_STAMP)'
	@echo "tools: done; $(CHARTER_TOOLS) holds $(TOOLS_BINARIES) and kwok-stages/"

# kubectl for the benchmark harness (hack/bench), at the control plane's
# Kubernetes version. hack/controlplane's go.sum does not cover kubectl's
# extra dependencies, so it is built from a scratch copy of that module.
KUBECTL_STAMP := $(CHARTER_TOOLS)/kubectl.version

bench-tools: tools
	@if [ -x '$(CHARTER_TOOLS)/kubectl' ] && [ "$$(cat '$(KUBECTL_STAMP)' 2>/dev/null)" = "$(KUBE_VERSION)" ]; then \
		echo "bench-tools: $(CHARTER_TOOLS)/kubectl is up to date ($(KUBE_VERSION))"; \
	else \
		set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
		cp '$(CHARTER_ROOT)/hack/controlplane/go.mod' '$(CHARTER_ROOT)/hack/controlplane/go.sum' "$$tmp/"; \
		echo "bench-tools: building kubectl $(KUBE_VERSION) into $(CHARTER_TOOLS)"; \
		cd "$$tmp" && $(GO) build -mod=mod -ldflags '$(KUBE_LDFLAGS)' -o '$(CHARTER_TOOLS)/kubectl' k8s.io/kubernetes/cmd/kubectl; \
		echo '$(KUBE_VERSION)' > '$(KUBECTL_STAMP)'; \
	fi

controlplane-up: tools
	cd '$(CHARTER_ROOT)' && $(GO) run ./internal/testenv/cmd/controlplane up --dir '$(CONTROLPLANE_DIR)'

controlplane-down:
	cd '$(CHARTER_ROOT)' && $(GO) run ./internal/testenv/cmd/controlplane down --dir '$(CONTROLPLANE_DIR)'
