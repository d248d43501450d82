#!/usr/bin/env bash
# Builds the Kubernetes binaries that envtest and the local cluster need from Go
# modules (no downloads beyond the module proxy), into bin/k8s/<version>/.
#
# A copy is kept in a per-user cache outside the clone
# (${XDG_CACHE_HOME:-~/.cache}/natsforge/k8s/<version>) so a fresh clone on the
# same machine reuses it instead of rebuilding (about 13 minutes cold on 2 cores).
#
# Usage: hack/k8s-binaries.sh [binary...]   (default: etcd kube-apiserver kubectl)
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${ROOT}/bin/k8s/${KUBE_VERSION}"
CACHE="${NATSFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/natsforge}/k8s/${KUBE_VERSION}"
WORK="${NATSFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/natsforge}/k8s-build/${KUBE_VERSION}"

# One build at a time per machine: builds share the helper modules in the cache,
# and a second caller only has to wait for the first to find its binaries cached.
LOCK="${NATSFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/natsforge}/k8s-binaries.lock"
if [ -z "${NATSFORGE_K8S_BINARIES_LOCKED:-}" ] && command -v flock >/dev/null; then
  mkdir -p "$(dirname "${LOCK}")"
  export NATSFORGE_K8S_BINARIES_LOCKED=1
  exec flock "${LOCK}" "$0" "$@"
fi

binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(etcd kube-apiserver kubectl)

mkdir -p "${OUT}" "${CACHE}"

log() { printf '[k8s-binaries] %s\n' "$*" >&2; }

# install_from_cache copies a cached binary into bin/ when bin/ lacks it.
install_from_cache() {
  local b=$1
  if [ ! -x "${OUT}/${b}" ] && [ -x "${CACHE}/${b}" ]; then
    cp "${CACHE}/${b}" "${OUT}/${b}.tmp" && mv "${OUT}/${b}.tmp" "${OUT}/${b}"
    log "${b}: from cache ${CACHE}"
  fi
}

# kube_module writes the helper module that pins k8s.io/kubernetes and replaces each
# of its staging modules with the matching published version.
kube_module() {
  local dir="${WORK}/kubernetes"
  if [ -f "${dir}/go.sum" ]; then echo "${dir}"; return; fi
  mkdir -p "${dir}"
  local staging_ver="v0.${KUBE_VERSION#*.}"
  (
    cd "${dir}"
    cat > go.mod <<MOD
module k8sbins

go 1.26.0

require k8s.io/kubernetes v${KUBE_VERSION}
MOD
    local modfile
    modfile="$(go mod download -json "k8s.io/kubernetes@v${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    {
      echo "replace ("
      sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "${modfile}" | sort -u |
        while read -r m; do echo "    ${m} => ${m} ${staging_ver}"; done
      echo ")"
    } >> go.mod
    cat > tools.go <<'GO'
//go:build tools

package k8sbins

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)
GO
    go mod tidy >&2
  )
  echo "${dir}"
}

etcd_module() {
  local dir="${WORK}/etcd"
  if [ -f "${dir}/go.sum" ]; then echo "${dir}"; return; fi
  mkdir -p "${dir}"
  (
    cd "${dir}"
    cat > go.mod <<MOD
module etcdbin

go 1.26.0

require go.etcd.io/etcd/server/v3 v${ETCD_VERSION}
MOD
    cat > tools.go <<'GO'
//go:build tools

package etcdbin

import _ "go.etcd.io/etcd/server/v3"
GO
    go mod tidy >&2
  )
  echo "${dir}"
}

for b in "${binaries[@]}"; do
  install_from_cache "${b}"
  if [ -x "${OUT}/${b}" ]; then continue; fi
  start=$(date +%s)
  log "${b}: building from Go modules (minutes when cold)"
  case "${b}" in
    etcd)
      dir="$(etcd_module)"
      (cd "${dir}" && go build -trimpath -o "${CACHE}/etcd.tmp" go.etcd.io/etcd/server/v3)
      ;;
    kube-apiserver|kubectl|kube-controller-manager|kube-scheduler|kubelet|kube-proxy)
      dir="$(kube_module)"
      (cd "${dir}" && go build -trimpath -o "${CACHE}/${b}.tmp" "k8s.io/kubernetes/cmd/${b}")
      ;;
    *) log "unknown binary ${b}"; exit 2 ;;
  esac
  mv "${CACHE}/${b}.tmp" "${CACHE}/${b}"
  install_from_cache "${b}"
  log "${b}: built in $(( $(date +%s) - start ))s"
done
echo "${OUT}"
