#!/usr/bin/env bash
# Builds cert-manager's controller from Go modules (no downloads beyond the module
# proxy) and takes its CustomResourceDefinitions from the same module, into
# bin/cert-manager/<version>/:
#
#   cert-manager-controller   hack/cert-manager/controller (see its main.go for why
#                             it is our main around cert-manager's own controllers)
#   crds/*.yaml               deploy/crds of github.com/cert-manager/cert-manager
#                             (plain controller-gen output, not Helm templates)
#
# The version is the one pinned in hack/cert-manager/controller/go.mod (bump it
# there: go get github.com/cert-manager/cert-manager@vX.Y.Z && go mod tidy).
# A copy is kept in a per-user cache outside the clone
# (${XDG_CACHE_HOME:-~/.cache}/natsforge/cert-manager/<version>-<source hash>) so a
# fresh clone on the same machine reuses it; nothing is rebuilt when present.
#
# Usage: hack/cert-manager.sh   (prints the folder holding the binary and crds/)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="${ROOT}/hack/cert-manager/controller"
BASE="${NATSFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/natsforge}"
MODULE=github.com/cert-manager/cert-manager

# One build at a time per machine (the Go build cache and module cache are shared;
# a second caller waits, then finds the result cached).
LOCK="${BASE}/cert-manager.lock"
if [ -z "${NATSFORGE_CERT_MANAGER_LOCKED:-}" ] && command -v flock >/dev/null; then
  mkdir -p "${BASE}"
  export NATSFORGE_CERT_MANAGER_LOCKED=1
  exec flock "${LOCK}" "$0" "$@"
fi

log() { printf '[cert-manager] %s\n' "$*" >&2; }

VERSION="$(sed -n "s#^[[:space:]]*\(require \)\{0,1\}${MODULE} \(v[0-9][^ ]*\).*#\2#p" "${SRC}/go.mod")"
[ -n "${VERSION}" ] || { log "no 'require ${MODULE} vX.Y.Z' line in ${SRC}/go.mod"; exit 2; }
# The cache key covers our main and its pinned dependencies, so editing either
# builds anew while an unchanged tree never does.
KEY="${VERSION}-$(cat "${SRC}/main.go" "${SRC}/go.mod" "${SRC}/go.sum" | sha256sum | cut -c1-12)"
OUT="${ROOT}/bin/cert-manager/${VERSION}"
CACHE="${BASE}/cert-manager/${KEY}"

installed() { [ -x "${OUT}/cert-manager-controller" ] && [ -f "${OUT}/crds/cert-manager.io_certificates.yaml" ] && [ "$(cat "${OUT}/.key" 2>/dev/null)" = "${KEY}" ]; }
cached() { [ -x "${CACHE}/cert-manager-controller" ] && [ -f "${CACHE}/crds/cert-manager.io_certificates.yaml" ]; }

if ! installed && ! cached; then
  start=$(date +%s)
  log "building cert-manager ${VERSION} (controller) from Go modules (minutes when cold)"
  mkdir -p "${CACHE}.tmp/crds"
  (
    cd "${SRC}"
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "${CACHE}.tmp/cert-manager-controller" .
    dir="$(go list -m -f '{{.Dir}}' "${MODULE}")"
    [ -n "${dir}" ] && [ -f "${dir}/deploy/crds/cert-manager.io_certificates.yaml" ] || {
      log "${MODULE}@${VERSION} holds no deploy/crds"; exit 1; }
    cp "${dir}"/deploy/crds/*.yaml "${CACHE}.tmp/crds/"
  )
  chmod -R u+w "${CACHE}.tmp"
  rm -rf "${CACHE}" && mv "${CACHE}.tmp" "${CACHE}"
  log "built in $(( $(date +%s) - start ))s"
fi
if ! installed; then
  rm -rf "${OUT}.tmp" && mkdir -p "$(dirname "${OUT}")"
  cp -r "${CACHE}" "${OUT}.tmp" && echo "${KEY}" > "${OUT}.tmp/.key"
  rm -rf "${OUT}" && mv "${OUT}.tmp" "${OUT}"
  log "from cache ${CACHE}"
fi
echo "${OUT}"
