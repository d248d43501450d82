# Images and the local cluster. Included by the top-level Makefile:
#
#   include hack/local-cluster.mk
#
#   make images                      OCI tarballs of operator, broker, pause in dist/images/
#   make images REGISTRY=ghcr.io/me  ... and push them there (docker login credentials apply)
#   make cluster-up                  single-node Kubernetes in network namespace natsforge-lc
#   make cluster-images              images pushed to the local cluster's registry
#   make cluster-down                stop and remove all of it
#
# Pods of the local cluster pull $(CLUSTER_IMAGE_PREFIX)/operator:$(IMAGE_TAG) and
# $(CLUSTER_IMAGE_PREFIX)/broker:$(IMAGE_TAG); kubectl --kubeconfig $(CLUSTER_KUBECONFIG).

IMAGE_TAG ?= dev
IMAGE_ARCH ?= amd64
IMAGES_OUT ?= dist/images
# Push target for `make images`; empty: archives only.
REGISTRY ?=
# Set to true for a registry served over plain http.
REGISTRY_INSECURE ?= false

CLUSTER_REGISTRY ?= 10.200.0.2:5001
CLUSTER_IMAGE_PREFIX ?= localhost:5001/natsforge
CLUSTER_KUBECONFIG ?= $(CURDIR)/bin/kubeconfig

IMAGES_BIN := bin/images
IMAGES_GOBUILD := CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) go build -trimpath -ldflags='$(or $(LDFLAGS),-s -w)'

.PHONY: images image-binaries cluster-up cluster-down cluster-images

# Static linux binaries for the images. Parts that do not exist yet are skipped.
image-binaries:
	@mkdir -p $(IMAGES_BIN)
	@if [ -f main.go ]; then echo "go build manager"; $(IMAGES_GOBUILD) -o $(IMAGES_BIN)/manager . ; \
	  else echo "images: no main.go yet; skipping natsforge/operator"; rm -f $(IMAGES_BIN)/manager; fi
	@if ls broker/cmd/natsforge-broker/*.go >/dev/null 2>&1; then echo "go build natsforge-broker"; \
	  $(IMAGES_GOBUILD) -o $(IMAGES_BIN)/natsforge-broker ./broker/cmd/natsforge-broker ; \
	  else echo "images: no broker/cmd/natsforge-broker yet; skipping natsforge/broker"; rm -f $(IMAGES_BIN)/natsforge-broker; fi
	@echo "go build pause"; $(IMAGES_GOBUILD) -o $(IMAGES_BIN)/pause ./hack/pause

# images: natsforge/operator, natsforge/broker and natsforge/pause, built without a
# Docker engine by hack/images (see also the Dockerfile for machines with one).
images: image-binaries ## Build the operator, broker and pause images (OCI tarballs in dist/images; REGISTRY=... pushes).
	go run ./hack/images --tag $(IMAGE_TAG) --arch $(IMAGE_ARCH) --pause $(IMAGES_BIN)/pause \
	  $$([ -f $(IMAGES_BIN)/manager ] && echo --operator $(IMAGES_BIN)/manager) \
	  $$([ -f $(IMAGES_BIN)/natsforge-broker ] && echo --broker $(IMAGES_BIN)/natsforge-broker) \
	  $(if $(IMAGES_OUT),--out $(IMAGES_OUT)) \
	  $(if $(REGISTRY),--push $(REGISTRY)) $(if $(filter true 1 yes,$(REGISTRY_INSECURE)),--insecure)

##@ Local cluster

cluster-up: ## Bring up the single-node local Kubernetes (network namespace natsforge-lc; kubeconfig bin/kubeconfig).
	hack/local-cluster/up.sh

cluster-down: ## Stop and remove the local cluster, leaving nothing running or mounted.
	hack/local-cluster/down.sh

# The images, pushed to the running local cluster's registry (plain http).
cluster-images: ## Push the images to the local cluster's registry.
	$(MAKE) images REGISTRY=$(CLUSTER_REGISTRY) REGISTRY_INSECURE=true IMAGES_OUT=
