# Images and the local cluster. Included by the top-level Makefile:
#
#   include hack/local-cluster.mk
#
#   make images                      OCI tarballs of operator, broker, pause in dist/images/,
#                                    each an index of linux/amd64 and linux/arm64 images
#   make images REGISTRY=ghcr.io/me  ... and push them there (docker login credentials apply)
#   make release VERSION=1.2.3 REGISTRY=ghcr.io/me
#                                    images pushed, chart, install.yaml, SBOMs, SHA256SUMS in dist/
#   make cluster-up                  single-node Kubernetes in network namespace natsforge-lc
#   make cluster-images              images pushed to the local cluster's registry
#   make cluster-down                stop and remove all of it
#
# Pods of the local cluster pull $(CLUSTER_IMAGE_PREFIX)/operator:$(IMAGE_TAG) and
# $(CLUSTER_IMAGE_PREFIX)/broker:$(IMAGE_TAG); kubectl --kubeconfig $(CLUSTER_KUBECONFIG).

IMAGE_TAG ?= dev
# Architectures of every image (one OCI index each); the binaries are cross-compiled.
IMAGE_ARCHS ?= amd64 arm64
IMAGES_OUT ?= dist/images
# Digests and SBOMs of the built images (make release sets them).
IMAGES_DIGESTS ?=
IMAGES_SBOM ?=
# Push target for `make images`; empty: archives only.
REGISTRY ?=
# Set to true for a registry served over plain http.
REGISTRY_INSECURE ?= false

CLUSTER_REGISTRY ?= 10.200.0.2:5001
CLUSTER_IMAGE_PREFIX ?= localhost:5001/natsforge
CLUSTER_KUBECONFIG ?= $(CURDIR)/bin/kubeconfig

IMAGES_BIN := bin/images
# Reproducible binaries: no paths of this machine (-trimpath), no build id, no
# VCS stamp; the version is the only input besides the source.
IMAGES_LDFLAGS := -s -w -buildid= -X main.version=$(VERSION)
IMAGES_GOBUILD = CGO_ENABLED=0 GOOS=linux GOARCH=$(1) go build -trimpath -buildvcs=false -ldflags='$(IMAGES_LDFLAGS)'
comma := ,
empty :=
space := $(empty) $(empty)

.PHONY: images image-binaries cluster-up cluster-down cluster-images

# Static linux binaries for the images, one folder per architecture:
# bin/images/<arch>/{manager,natsforge-broker,pause}.
image-binaries:
	@set -e; for arch in $(IMAGE_ARCHS); do mkdir -p $(IMAGES_BIN)/$$arch; \
	  echo "go build manager natsforge-broker pause (linux/$$arch)"; \
	  $(call IMAGES_GOBUILD,$$arch) -o $(IMAGES_BIN)/$$arch/manager . ; \
	  $(call IMAGES_GOBUILD,$$arch) -o $(IMAGES_BIN)/$$arch/natsforge-broker ./broker/cmd/natsforge-broker ; \
	  $(call IMAGES_GOBUILD,$$arch) -o $(IMAGES_BIN)/$$arch/pause ./hack/pause ; \
	done

# images: natsforge/operator, natsforge/broker and natsforge/pause, each an OCI
# image index of $(IMAGE_ARCHS), built without a Docker engine by hack/images (see
# also the Dockerfile for machines with one). Created at the HEAD commit's time:
# the same commit gives the same digests.
images: image-binaries ## Build the operator, broker and pause images for amd64 and arm64 (OCI tarballs in dist/images; REGISTRY=... pushes).
	go run ./hack/images --tag $(IMAGE_TAG) --arch $(subst $(space),$(comma),$(strip $(IMAGE_ARCHS))) \
	  --operator '$(IMAGES_BIN)/{arch}/manager' --broker '$(IMAGES_BIN)/{arch}/natsforge-broker' \
	  --pause '$(IMAGES_BIN)/{arch}/pause' \
	  $(if $(IMAGES_OUT),--out $(IMAGES_OUT)) $(if $(IMAGES_DIGESTS),--digests $(IMAGES_DIGESTS)) \
	  $(if $(IMAGES_SBOM),--sbom $(IMAGES_SBOM)) \
	  $(if $(REGISTRY),--push $(REGISTRY)) $(if $(filter true 1 yes,$(REGISTRY_INSECURE)),--insecure)

# release: what a user installs from. See hack/release.sh.
RELEASE_DIST ?= dist

.PHONY: release
release: $(HELM) ## Build and push multi-arch images tagged VERSION to REGISTRY; chart, install.yaml, SBOMs and SHA256SUMS in dist/ (make release VERSION=1.2.3 REGISTRY=ghcr.io/me).
	HELM=$(HELM) VERSION=$(VERSION) REGISTRY=$(REGISTRY) REGISTRY_INSECURE=$(REGISTRY_INSECURE) \
	  DIST=$(RELEASE_DIST) IMAGE_ARCHS='$(IMAGE_ARCHS)' hack/release.sh

##@ Local cluster

cluster-up: ## Bring up the single-node local Kubernetes (network namespace natsforge-lc; kubeconfig bin/kubeconfig).
	hack/local-cluster/up.sh

cluster-down: ## Stop and remove the local cluster, leaving nothing running or mounted.
	hack/local-cluster/down.sh

# The images, pushed to the running local cluster's registry (plain http), for
# the node's architecture only.
cluster-images: ## Push the images (this machine's architecture) to the local cluster's registry.
	$(MAKE) images REGISTRY=$(CLUSTER_REGISTRY) REGISTRY_INSECURE=true IMAGES_OUT= IMAGE_ARCHS=$$(go env GOARCH)
