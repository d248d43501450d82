#!/usr/bin/env bash
# Builds the local cluster's NetworkPolicy enforcer from Go modules (no downloads
# beyond the module proxy) into bin/network-policies/<version>/kube-network-policies:
# our main (hack/network-policies/enforcer, see its main.go for why it is ours)
# around the controller of sigs.k8s.io/kube-network-policies.
#
# The version is the one pinned in hack/network-policies/enforcer/go.mod (bump it
# there: go get sigs.k8s.io/kube-network-policies@vX.Y.Z && go mod tidy).
# A copy is kept in a per-user cache outside the clone
# (${XDG_CACHE_HOME:-~/.cache}/natsforge/network-policies/<version>-<source hash>)
# so a fresh clone on the same machine reuses it; nothing is rebuilt when present
# (about 2 minutes cold on 2 cores).
#
# What the binary needs to run, on the node, as root (CAP_NET_ADMIN):
#   --kubeconfig FILE            a user that may list and watch pods, namespaces
#                                and networking.k8s.io networkpolicies
#   --hostname-override NODE     the Node name the kubelet registered: only that
#                                node's pods are policed
#   --nfqueue-id N (100)         a free NFQUEUE number
#   --metrics-bind-address (127.0.0.1:9080), --disable-nri (without containerd's
#   NRI socket /var/run/nri/nri.sock it falls back to the API server's pod IPs
#   by itself), -v 2 to log each verdict.
# Kernel: nf_tables (an inet table "kube-network-policies" with a postrouting
# filter chain, sets, ct state), nft_compat with the xtables NFQUEUE target (our
# build uses it instead of nft_queue, which this machine's kernel lacks; see
# enforcer/overlay/xtqueue.go), nfnetlink_queue, nf_conntrack; bridged
# pod-to-pod traffic reaches the chain only with br_netfilter and
# net.bridge.bridge-nf-call-iptables=1. Packets a root process on the node sends
# (meta skuid 0: the kubelet's probes, and so any test run as root on the host)
# are always accepted: enforcement must be shown from a pod.
#
# Usage: hack/network-policies.sh   (prints the path of the binary)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="${ROOT}/hack/network-policies/enforcer"
BASE="${NATSFORGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/natsforge}"
MODULE=sigs.k8s.io/kube-network-policies
BIN=kube-network-policies

# One build at a time per machine (the Go build cache and module cache are shared;
# a second caller waits, then finds the result cached).
LOCK="${BASE}/network-policies.lock"
if [ -z "${NATSFORGE_NETWORK_POLICIES_LOCKED:-}" ] && command -v flock >/dev/null; then
  mkdir -p "${BASE}"
  export NATSFORGE_NETWORK_POLICIES_LOCKED=1
  exec flock "${LOCK}" "$0" "$@"
fi

log() { printf '[network-policies] %s\n' "$*" >&2; }

VERSION="$(sed -n "s#^[[:space:]]*\(require \)\{0,1\}${MODULE} \(v[0-9][^ ]*\).*#\2#p" "${SRC}/go.mod")"
[ -n "${VERSION}" ] || { log "no 'require ${MODULE} vX.Y.Z' line in ${SRC}/go.mod"; exit 2; }
# The cache key covers our main package, the overlay, its pinned dependencies and this
# script, so editing any builds anew while an unchanged tree never does.
KEY="${VERSION}-$(cat "${SRC}"/*.go "${SRC}/overlay/xtqueue.go" "${SRC}/go.mod" "${SRC}/go.sum" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
OUT="${ROOT}/bin/network-policies/${VERSION}"
CACHE="${BASE}/network-policies/${KEY}"

installed() { [ -x "${OUT}/${BIN}" ] && [ "$(cat "${OUT}/.key" 2>/dev/null)" = "${KEY}" ]; }
cached() { [ -x "${CACHE}/${BIN}" ]; }

if ! installed && ! cached; then
  start=$(date +%s)
  log "building ${MODULE} ${VERSION} from Go modules (minutes when cold)"
  rm -rf "${CACHE}.tmp" && mkdir -p "${CACHE}.tmp/src"
  (
    cd "${SRC}"
    # Upstream's controller queues with the nftables "queue" expression, which
    # needs nft_queue; overlay/xtqueue.go explains why the build swaps in the
    # xtables NFQUEUE target (through nft_compat) at both places it is made.
    # The module is copied out of the module cache (which go build must not
    # overlay), patched there and swapped in by a replace directive of a
    # temporary copy of go.mod; the pinned version stays the one in go.mod.
    mod="${CACHE}.tmp/src/kube-network-policies"
    # go list -m gives no Dir for a module not yet in the module cache (a cold
    # machine): download it first, and stop here if it is still missing.
    go mod download "${MODULE}"
    dir="$(go list -m -f '{{.Dir}}' "${MODULE}")"
    [ -n "${dir}" ] || { log "${MODULE}: not in the module cache after go mod download"; exit 1; }
    cp -r "${dir}" "${mod}" && chmod -R u+w "${mod}"
    ctrl="${mod}/pkg/networkpolicy/controller.go"
    awk '
      /^\tqueue := &expr\.Queue\{Num: uint16\(c\.config\.QueueID\)\}$/ {
        print "\tqueue := xtNFQueue(uint16(c.config.QueueID), c.config.FailOpen)"; skip = 3; next
      }
      skip > 0 { skip--; next }
      { print }
    ' "${ctrl}" > "${ctrl}.new" && mv "${ctrl}.new" "${ctrl}"
    if [ "$(grep -c 'xtNFQueue(' "${ctrl}")" != 2 ] || grep -q 'expr\.Queue{' "${ctrl}"; then
      log "${MODULE}@${VERSION}: pkg/networkpolicy/controller.go no longer builds its queue expression as expected; revisit overlay/xtqueue.go"
      exit 1
    fi
    cp overlay/xtqueue.go "${mod}/pkg/networkpolicy/xtqueue.go"
    # With --disable-nri upstream leaves its NRI plugin nil, yet looks a
    # packet's address up there whenever no pod of the API has it (the node,
    # a masqueraded Service connection, a pod the informer has not seen yet):
    # a nil dereference that kills the enforcer at the first such packet.
    # A nil plugin knows no pod.
    nri="${mod}/pkg/networkpolicy/nri.go"
    awk '
      { print }
      /^func \(p \*nriPlugin\) GetPodFromIP\(ip string\) string \{$/ { print "\tif p == nil {\n\t\treturn \"\"\n\t}"; n++ }
      END { if (n != 1) exit 1 }
    ' "${nri}" > "${nri}.new" && mv "${nri}.new" "${nri}" || {
      log "${MODULE}@${VERSION}: pkg/networkpolicy/nri.go no longer has GetPodFromIP as expected; revisit its nil-plugin patch"
      exit 1
    }
    cp go.mod "${CACHE}.tmp/src/build.mod" && cp go.sum "${CACHE}.tmp/src/build.sum"
    echo "replace ${MODULE} => ${mod}" >> "${CACHE}.tmp/src/build.mod"
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -modfile "${CACHE}.tmp/src/build.mod" -o "${CACHE}.tmp/${BIN}" .
  )
  rm -rf "${CACHE}.tmp/src"
  rm -rf "${CACHE}" && mv "${CACHE}.tmp" "${CACHE}"
  log "built in $(( $(date +%s) - start ))s"
fi
if ! installed; then
  rm -rf "${OUT}.tmp" && mkdir -p "$(dirname "${OUT}")"
  cp -r "${CACHE}" "${OUT}.tmp" && echo "${KEY}" > "${OUT}.tmp/.key"
  rm -rf "${OUT}" && mv "${OUT}.tmp" "${OUT}"
  log "from cache ${CACHE}"
fi
echo "${OUT}/${BIN}"
