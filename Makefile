# natsforge: the operator (main.go) and the broker (broker/cmd/natsforge-broker).
# `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

# Versions: every tool is pinned here and installed into bin/ from the Go module proxy.
KUBE_VERSION          ?= 1.37.2
CONTROLLER_GEN_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
HELM_VERSION          ?= v3.22.0
NATSCLI_VERSION       ?= v0.5.0

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

LOCALBIN   := $(CURDIR)/bin
K8S_BIN    := $(LOCALBIN)/k8s/$(KUBE_VERSION)
CONTROLLER_GEN := $(LOCALBIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
GOLANGCI_LINT  := $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
HELM           := $(LOCALBIN)/helm-$(HELM_VERSION)
NATSCLI        := $(LOCALBIN)/nats-$(NATSCLI_VERSION)
KUBECTL        := $(K8S_BIN)/kubectl

# envtest runs a real kube-apiserver and etcd, built from Go modules by hack/.
export KUBEBUILDER_ASSETS := $(K8S_BIN)
export KUBE_VERSION
# Tests that drive the pinned tools find them here.
export HELM KUBECTL NATSCLI NATSCLI_VERSION

# Packages under test: everything but the end-to-end and benchmark suites, which
# have their own targets.
TEST_PKGS = $(shell go list ./... | grep -v -e /test/e2e -e /test/bench)

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code (api/**/zz_generated.deepcopy.go).
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC into config/, and copy the CRDs into the Helm chart.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	hack/sync-chart.sh

.PHONY: dashboard
dashboard: ## Generate the chart's Grafana dashboard (charts/natsforge/dashboards/natsforge.json) from hack/dashboard.
	go run ./hack/dashboard -o charts/natsforge/dashboards/natsforge.json

.PHONY: observability-chart
observability-chart: k8s-binaries ## Redraw docs/observability.png from a real Prometheus run (test/prometheus: 5 rotations, clients held 5 s between them).
	NATSFORGE_OBSERVABILITY_ROTATIONS=5 NATSFORGE_OBSERVABILITY_PAUSE=5s NATSFORGE_OBSERVABILITY_PNG=$(CURDIR)/docs/observability.png \
		go test -count=1 -run TestEveryDashboardPanelHasDataInARealPrometheus -v ./test/prometheus

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -s -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: ## Regenerate everything and fail if the committed files differ.
	@$(MAKE) --no-print-directory generate manifests dashboard fmt
	@go mod tidy
	@if [ -n "$$(git status --porcelain -- api config charts go.mod go.sum '*.go')" ]; then \
		git --no-pager diff --stat; git status --porcelain -- api config charts go.mod go.sum '*.go'; \
		echo "ERROR: generated files are out of date. Run 'make generate manifests dashboard fmt' and 'go mod tidy', then commit the result."; \
		exit 1; \
	fi
	@echo "verify: generated code, CRDs, RBAC, chart CRDs and go.mod are in sync."

.PHONY: test
test: k8s-binaries network-policies $(HELM) $(NATSCLI) ## Run every unit and integration test (envtest with a real kube-apiserver and etcd).
	go test -count=1 $(TEST_PKGS)

.PHONY: network-policies
network-policies: ## Build the NetworkPolicy enforcer from Go modules into bin/network-policies/ (cached; test/netpol runs it).
	@hack/network-policies.sh >/dev/null

.PHONY: test-race
test-race: $(NATSCLI) ## Run the broker packages under the race detector (CI runs it after make test).
	go test -race -count=1 ./broker/...

.PHONY: k8s-binaries
k8s-binaries: ## Build etcd, kube-apiserver and kubectl from Go modules into bin/k8s/ (cached).
	@hack/k8s-binaries.sh etcd kube-apiserver kubectl >/dev/null

##@ Run

.PHONY: demo
demo: ## The main job: bring up a local Kubernetes, helm-install the operator, deploy an authenticated 3-broker cluster, connect.
	hack/demo.sh

# A tag of its own per run: the nodes cache images by tag (pull policy
# IfNotPresent), so reusing "dev" would run the images of an earlier run.
# Simply expanded: the recipe names it three times, one value for all.
E2E_IMAGE_TAG := $(or $(E2E_IMAGE_TAG),e2e-$(shell date +%s))

# e2e-suite: the local cluster up (if it is not), this run's images pushed to
# it, and the suite of test/e2e compiled with build tags $(1) into $(2). The
# tests run inside the cluster's network namespace, where Service names resolve
# (nats.go dials tls://<name>.<ns>.svc as users do), compiled outside it (the
# namespace reaches no module proxy): run them with e2e-exec.
define e2e-suite
hack/local-cluster/up.sh
$(MAKE) --no-print-directory cluster-images IMAGE_TAG=$(E2E_IMAGE_TAG)
go test -c -tags '$(1)' -o $(2) ./test/e2e/
endef
e2e-exec = cd test/e2e && E2E_IMAGE_TAG=$(E2E_IMAGE_TAG) ../../hack/local-cluster/exec.sh

.PHONY: e2e
e2e: k8s-binaries $(HELM) $(NATSCLI) ## End-to-end tests on the local cluster (brings it up; `make cluster-down` ends it). E2E_RUN=regexp picks tests.
	$(call e2e-suite,e2e,$(LOCALBIN)/e2e.test)
	@# The "new version" TestChaosHelmUpgradeWhileClientsAreConnected upgrades
	@# the release to: the same binaries rebuilt under a second tag (which is
	@# also the images' version label, so their digests differ as well).
	$(MAKE) --no-print-directory cluster-images IMAGE_TAG=$(E2E_IMAGE_TAG)-next
	$(e2e-exec) $(LOCALBIN)/e2e.test -test.count=1 -test.v -test.timeout 45m $(if $(E2E_RUN),-test.run '$(E2E_RUN)')

# make soak: test/e2e/soak_test.go (build tags e2e and soak: make e2e never
# runs it, nor does CI). A 3-broker NatsCluster on the local cluster for
# SOAK_DURATION: steady traffic, a password rotation every minute, a scale to
# 5 brokers and back every SOAK_SCALE_EVERY; the brokers' and the operator's
# RSS and goroutines sampled every 15 s. Writes docs/soak.md, docs/soak.png
# and bin/soak-samples.json (SOAK_MD, SOAK_PNG, SOAK_SAMPLES elsewhere); fails
# on a leak. SOAK_TIMEOUT bounds the whole test (raise it with SOAK_DURATION).
SOAK_DURATION    ?= 30m
SOAK_SCALE_EVERY ?= 10m
SOAK_TIMEOUT     ?= 90m
SOAK_MD          ?= $(CURDIR)/docs/soak.md
SOAK_PNG         ?= $(CURDIR)/docs/soak.png
SOAK_SAMPLES     ?= $(LOCALBIN)/soak-samples.json

.PHONY: soak
soak: k8s-binaries $(HELM) ## Soak on the local cluster (not in CI): SOAK_DURATION (30m) of traffic, a rotation a minute, a scale 3->5->3 every 10m; RSS and goroutines in docs/soak.{md,png}.
	$(call e2e-suite,e2e soak,$(LOCALBIN)/soak.test)
	$(e2e-exec) env SOAK_DURATION=$(SOAK_DURATION) SOAK_SCALE_EVERY=$(SOAK_SCALE_EVERY) SOAK_COMMIT=$(VERSION) \
		SOAK_MD=$(SOAK_MD) SOAK_PNG=$(SOAK_PNG) SOAK_SAMPLES=$(SOAK_SAMPLES) \
		$(LOCALBIN)/soak.test -test.count=1 -test.v -test.timeout $(SOAK_TIMEOUT) -test.run '^TestSoak$$'

# A release version of its own per run (simply expanded: one value per run).
E2E_VERSION := $(or $(E2E_VERSION),0.0.0-e2e.$(shell date +%s))
E2E_RELEASE_DIST ?= $(LOCALBIN)/e2e-release

.PHONY: e2e-release
e2e-release: k8s-binaries $(HELM) $(NATSCLI) ## The README's "On your own cluster" on the local cluster: make release to its registry, install from a copy of dist/ with helm and with kubectl, then DEMO_USE_KUBECONFIG=true make demo.
	hack/local-cluster/up.sh
	$(MAKE) --no-print-directory release VERSION=$(E2E_VERSION) REGISTRY=$(CLUSTER_REGISTRY) REGISTRY_INSECURE=true RELEASE_DIST=$(E2E_RELEASE_DIST)
	go test -c -tags 'e2e release' -o $(LOCALBIN)/e2e-release.test ./test/e2e/
	cd test/e2e && E2E_IMAGE_TAG=$(E2E_VERSION) E2E_RELEASE_DIST=$(E2E_RELEASE_DIST) ../../hack/local-cluster/exec.sh $(LOCALBIN)/e2e-release.test -test.count=1 -test.v -test.timeout 30m -test.run 'TestRelease'
	@# make demo on "your own cluster", from outside it as a user would: the
	@# client reaches the brokers through a port-forward.
	DEMO_USE_KUBECONFIG=true KUBECONFIG=$(CLUSTER_KUBECONFIG) DEMO_REGISTRY=$(CLUSTER_REGISTRY) hack/demo.sh

##@ Build

.PHONY: build
build: ## Build the operator (bin/manager) and the broker (bin/natsforge-broker).
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $(LOCALBIN)/manager .
	CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)' -o $(LOCALBIN)/natsforge-broker ./broker/cmd/natsforge-broker

.PHONY: run-broker
run-broker: build ## Run the broker on its own with the NATS docs' user (myname/password).
	$(LOCALBIN)/natsforge-broker --user myname --pass password

##@ Tools

$(CONTROLLER_GEN):
	@mkdir -p $(LOCALBIN)/.tmp-cg && GOBIN=$(LOCALBIN)/.tmp-cg go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	@mv $(LOCALBIN)/.tmp-cg/controller-gen $@ && rmdir $(LOCALBIN)/.tmp-cg

$(GOLANGCI_LINT):
	@mkdir -p $(LOCALBIN)/.tmp-gl && GOBIN=$(LOCALBIN)/.tmp-gl go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	@mv $(LOCALBIN)/.tmp-gl/golangci-lint $@ && rmdir $(LOCALBIN)/.tmp-gl

$(HELM):
	@mkdir -p $(LOCALBIN)/.tmp-helm && GOBIN=$(LOCALBIN)/.tmp-helm go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@mv $(LOCALBIN)/.tmp-helm/helm $@ && rmdir $(LOCALBIN)/.tmp-helm

# The nats CLI: the broker's tests drive it (cached outside the clone, like hack/'s builds).
$(NATSCLI):
	@hack/natscli.sh >/dev/null

.PHONY: tools
tools: $(CONTROLLER_GEN) $(GOLANGCI_LINT) $(HELM) $(NATSCLI) ## Install the pinned tools into bin/.

-include hack/local-cluster.mk
-include hack/bench.mk
