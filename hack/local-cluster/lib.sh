# Shared settings and helpers of hack/local-cluster/{up,down,exec}.sh. Sourced, not run.
#
# Everything the cluster runs lives in one network namespace (${LC_NETNS}) joined to
# the machine by a veth pair: the node is ${LC_NODE_IP}, the machine's end is
# ${LC_HOST_IP}. Processes enter only the network namespace (nsenter --net), not a
# mount namespace, so the kubelet's volume mounts are seen by containerd and runc.
# Inside the namespace an egress guard rejects any packet leaving through the veth
# for an address outside ${LC_NODE_NET}: nothing the cluster runs reaches further.

set -euo pipefail

LC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KUBE_VERSION="${KUBE_VERSION:-1.37.2}"
COREDNS_VERSION="${COREDNS_VERSION:-1.15.0}"
# cert-manager's controller runs on the node next to the control plane (set
# LC_CERT_MANAGER=false to leave it out); its version is pinned in
# hack/cert-manager/controller/go.mod and built by hack/cert-manager.sh.
LC_CERT_MANAGER="${LC_CERT_MANAGER:-true}"
LC_CERT_MANAGER_HEALTH="127.0.0.1:10270"
# The NetworkPolicy enforcer (sigs.k8s.io/kube-network-policies, built by
# hack/network-policies.sh) runs on the node as root, so NetworkPolicies are
# enforced (set LC_NETWORK_POLICIES=false to leave it out: then they are stored
# and ignored, as on a cluster without a NetworkPolicy implementation).
LC_NETWORK_POLICIES="${LC_NETWORK_POLICIES:-true}"
LC_NETWORK_POLICIES_METRICS="127.0.0.1:10280"
LC_NETWORK_POLICIES_QUEUE=100

LC_NETNS="${LC_NETNS:-natsforge-lc}"
LC_VETH_HOST="${LC_VETH_HOST:-nflc-host}"
LC_VETH_NODE="${LC_VETH_NODE:-nflc-node}"
LC_NODE_NET="${LC_NODE_NET:-10.200.0.0/24}"
LC_HOST_IP="${LC_HOST_IP:-10.200.0.1}"
LC_NODE_IP="${LC_NODE_IP:-10.200.0.2}"
LC_POD_CIDR="${LC_POD_CIDR:-10.244.0.0/24}"
LC_SERVICE_CIDR="${LC_SERVICE_CIDR:-10.96.0.0/16}"
LC_API_SERVICE_IP="${LC_API_SERVICE_IP:-10.96.0.1}"
LC_DNS_IP="${LC_DNS_IP:-10.96.0.10}"
LC_BRIDGE="${LC_BRIDGE:-nflc0}"
LC_NODE_NAME="${LC_NODE_NAME:-natsforge-node}"
LC_CNI_NAME="natsforge-lc"
LC_REGISTRY_PORT="${LC_REGISTRY_PORT:-5001}"
# Pods name images localhost:5001/...; the machine pushes to ${LC_NODE_IP}:5001.
LC_REGISTRY_PULL="localhost:${LC_REGISTRY_PORT}"
LC_REGISTRY_PUSH="${LC_NODE_IP}:${LC_REGISTRY_PORT}"
LC_IMAGE_TAG="${LC_IMAGE_TAG:-dev}"
LC_PAUSE_IMAGE="${LC_REGISTRY_PULL}/natsforge/pause:${LC_IMAGE_TAG}"

# Persistent state (certificates, etcd, kubelet, containerd's images) and runtime
# files (sockets, pids) that must stay short for unix socket paths.
LC_STATE="${LC_STATE:-${LC_ROOT}/bin/local-cluster}"
LC_RUN="${LC_RUN:-/run/natsforge-lc}"
LC_LOGS="${LC_STATE}/logs"
LC_PIDS="${LC_RUN}/pids"
LC_PKI="${LC_STATE}/pki"
LC_KUBECONFIGS="${LC_STATE}/kubeconfigs"
LC_CONTAINERD_SOCK="${LC_RUN}/containerd.sock"
LC_RUNC_ROOT="${LC_RUN}/runc"
# kube-apiserver's audit log of ServiceAccounts' writes (up.sh has the policy).
LC_AUDIT_LOG="${LC_RUN}/audit.log"
KUBECONFIG_OUT="${LC_ROOT}/bin/kubeconfig"

K8S_BIN="${LC_ROOT}/bin/k8s/${KUBE_VERSION}"
COREDNS_BIN="${LC_ROOT}/bin/coredns/${COREDNS_VERSION}/coredns"
LC_TOOLS="${LC_ROOT}/bin/local-cluster-tools"

# The components, in start order; down stops them in reverse.
LC_COMPONENTS=(registry etcd kube-apiserver kube-controller-manager kube-scheduler containerd network-policies kubelet kube-proxy coredns cert-manager)

LC_T0=$(date +%s)
say() { printf '[local-cluster %4ss] %s\n' "$(( $(date +%s) - LC_T0 ))" "$*" >&2; }
die() { printf '[local-cluster] ERROR: %s\n' "$*" >&2; exit 1; }

require_root() { [ "$(id -u)" = 0 ] || die "must run as root (network namespaces, mounts, containerd)"; }

netns_exists() { [ -e "/run/netns/${LC_NETNS}" ] && ip netns list | grep -qw "^${LC_NETNS}"; }

# in_ns runs a command in the cluster's network namespace (and nothing else).
in_ns() { nsenter --net="/run/netns/${LC_NETNS}" -- "$@"; }

pid_of() { cat "${LC_PIDS}/$1.pid" 2>/dev/null || true; }

# running NAME: the process of NAME's pid file is alive and still runs NAME's binary.
running() {
  local pid; pid="$(pid_of "$1")"
  [ -n "${pid}" ] && [ -e "/proc/${pid}" ] || return 1
  local exe; exe="$(readlink "/proc/${pid}/exe" 2>/dev/null || true)"
  [ -n "${exe}" ] && [ -f "${LC_PIDS}/$1.exe" ] && [ "${exe}" = "$(cat "${LC_PIDS}/$1.exe")" ]
}

# start NAME BINARY ARGS...: runs BINARY in the namespace, detached, logging to
# ${LC_LOGS}/NAME.log, its pid in ${LC_PIDS}/NAME.pid. No-op if already running.
start() {
  local name=$1; shift
  if running "${name}"; then say "${name}: already running (pid $(pid_of "${name}"))"; return 0; fi
  mkdir -p "${LC_LOGS}" "${LC_PIDS}"
  printf '\n==== %s start %s\n' "$(date -u +%FT%TZ)" "$*" >> "${LC_LOGS}/${name}.log"
  # setsid: own session, so the caller's terminal or job control cannot signal it.
  # nsenter and setsid exec in place: $! is the component's own pid.
  nsenter --net="/run/netns/${LC_NETNS}" -- setsid "$@" >> "${LC_LOGS}/${name}.log" 2>&1 < /dev/null &
  local pid=$!
  echo "${pid}" > "${LC_PIDS}/${name}.pid"
  readlink -f "$1" > "${LC_PIDS}/${name}.exe"
  # The command line, NUL-separated, for restart.sh.
  printf '%s\0' "$@" > "${LC_PIDS}/${name}.args"
  sleep 0.2
  if ! kill -0 "${pid}" 2>/dev/null; then
    fail "${name}" "exited at once"
  fi
  say "${name}: started (pid ${pid}, log ${LC_LOGS}/${name}.log)"
}

# fail NAME WHY: names the failed component, shows the end of its log, exits.
fail() {
  local name=$1 why=$2
  printf '[local-cluster] ERROR: %s %s. Log: %s\n' "${name}" "${why}" "${LC_LOGS}/${name}.log" >&2
  if [ -f "${LC_LOGS}/${name}.log" ]; then
    echo "---- last lines of ${LC_LOGS}/${name}.log" >&2
    tail -n 25 "${LC_LOGS}/${name}.log" >&2
    echo "----" >&2
  fi
  echo "[local-cluster] the cluster is left as it is for inspection; 'make cluster-down' removes it." >&2
  exit 1
}

# wait_for NAME SECONDS CMD...: polls CMD (every 0.5 s) until it succeeds; fails NAME
# if the process dies or time runs out.
wait_for() {
  local name=$1 secs=$2; shift 2
  local deadline=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    if ! running "${name}"; then fail "${name}" "exited"; fi
    if [ "$(date +%s)" -ge "${deadline}" ]; then fail "${name}" "was not ready after ${secs}s"; fi
    sleep 0.5
  done
}

# put FILE: writes stdin to FILE only when the content differs, so a running
# component that watches its file (kube-proxy exits when it changes) is left alone.
put() {
  local f=$1
  cat > "${f}.new"
  if cmp -s "${f}.new" "${f}"; then rm -f "${f}.new"; else mv "${f}.new" "${f}"; fi
}

kubectl_admin() { "${K8S_BIN}/kubectl" --kubeconfig "${KUBECONFIG_OUT}" "$@"; }
