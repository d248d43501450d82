# syntax=docker/dockerfile:1
#
# natsforge images for machines with a Docker engine (or BuildKit/Podman):
#
#   docker build --target operator -t natsforge/operator:dev .
#   docker build --target broker   -t natsforge/broker:dev .
#
# Both are static Go binaries on distroless "static:nonroot" (user 65532, no shell).
# Machines without a Docker engine build the same images with `make images`
# (hack/images), which needs no daemon and no base image.

ARG GO_VERSION=1.26
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

# --- module cache, shared by both builds -------------------------------------
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS deps
WORKDIR /workspace
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download

# --- operator binary -----------------------------------------------------------
FROM deps AS build-operator
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN --mount=type=bind,target=/workspace,rw \
    --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -ldflags='-s -w' -o /out/manager .

# --- broker binary -------------------------------------------------------------
FROM deps AS build-broker
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN --mount=type=bind,target=/workspace,rw \
    --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -ldflags='-s -w' -o /out/natsforge-broker ./broker/cmd/natsforge-broker

# --- runtime images --------------------------------------------------------------
FROM ${BASE_IMAGE} AS operator
ARG VERSION=dev
ARG REVISION=""
LABEL org.opencontainers.image.title="natsforge operator" \
      org.opencontainers.image.description="Kubernetes operator for natsforge NATS clusters" \
      org.opencontainers.image.source="https://github.com/natsforge/natsforge" \
      org.opencontainers.image.url="https://github.com/natsforge/natsforge" \
      org.opencontainers.image.vendor="natsforge" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
WORKDIR /
COPY --from=build-operator /out/manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]

FROM ${BASE_IMAGE} AS broker
ARG VERSION=dev
ARG REVISION=""
LABEL org.opencontainers.image.title="natsforge broker" \
      org.opencontainers.image.description="natsforge's NATS-protocol message broker" \
      org.opencontainers.image.source="https://github.com/natsforge/natsforge" \
      org.opencontainers.image.url="https://github.com/natsforge/natsforge" \
      org.opencontainers.image.vendor="natsforge" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
WORKDIR /
COPY --from=build-broker /out/natsforge-broker /natsforge-broker
USER 65532:65532
EXPOSE 4222 6222 8222
ENTRYPOINT ["/natsforge-broker"]
