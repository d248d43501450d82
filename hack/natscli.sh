#!/usr/bin/env bash
# Builds the nats CLI (github.com/nats-io/natscli), pinned by NATSCLI_VERSION
# (the Makefile's), from the Go module proxy into bin/nats-<version>. The broker's
# tests run it against a cluster (broker/server/natscli_test.go). A copy is kept in
# a per-user cache outside the clone (${XDG_CACHE_HOME:-~/.cache}/natsforge/natscli/
# <version>/nats), so a fresh clone on the same machine reuses it; nothing is rebuilt
# when present (about a minute cold on 2 cores).
#
# Usage: hack/natscli.sh   (prints the path of the binary)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BASE="${NATSFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/natsforge}"
VERSION="${NATSCLI_VERSION:-v0.5.0}"
OUT="${ROOT}/bin/nats-${VERSION}"
CACHE="${BASE}/natscli/${VERSION}"

# One build at a time per machine; a second caller waits, then finds it cached.
if [ -z "${NATSFORGE_NATSCLI_LOCKED:-}" ] && command -v flock >/dev/null; then
  mkdir -p "${BASE}"
  export NATSFORGE_NATSCLI_LOCKED=1
  exec flock "${BASE}/natscli.lock" "$0" "$@"
fi

if [ ! -x "${CACHE}/nats" ]; then
  printf '[natscli] building github.com/nats-io/natscli/nats@%s from Go modules\n' "${VERSION}" >&2
  rm -rf "${CACHE}.tmp" && mkdir -p "${CACHE}.tmp"
  GOBIN="${CACHE}.tmp" GOFLAGS=-mod=mod go install "github.com/nats-io/natscli/nats@${VERSION}"
  rm -rf "${CACHE}" && mv "${CACHE}.tmp" "${CACHE}"
fi
if [ ! -x "${OUT}" ] || ! cmp -s "${CACHE}/nats" "${OUT}"; then
  mkdir -p "${ROOT}/bin" && cp "${CACHE}/nats" "${OUT}.tmp" && mv "${OUT}.tmp" "${OUT}"
fi
echo "${OUT}"
