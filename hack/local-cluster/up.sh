#!/usr/bin/env bash
# Brings up a single-node Kubernetes cluster inside a network namespace of its own:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd (+runc,
# CNI bridge), kubelet, kube-proxy (iptables), CoreDNS, cert-manager's controller
# (with its CRDs) and a NetworkPolicy enforcer, plus a local image registry.
# Idempotent: a second run starts only what is not running. Run as root.
#
#   hack/local-cluster/up.sh          # then: kubectl --kubeconfig bin/kubeconfig get nodes
#   hack/local-cluster/down.sh        # stops and removes all of it
#
# Kubernetes binaries come from hack/k8s-binaries.sh, CoreDNS from coredns.sh,
# cert-manager from hack/cert-manager.sh, the enforcer from hack/network-policies.sh
# (all built from Go modules and cached); containerd, runc and the CNI plugins from Debian.
# Images: pods pull from localhost:5001/...; push to ${LC_NODE_IP}:5001 from outside
# (e.g. make images REGISTRY=10.200.0.2:5001).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

require_root
# One local cluster per machine: the namespace, addresses and /run paths are fixed.
if [ -f "${LC_RUN}/owner" ] && [ "$(cat "${LC_RUN}/owner")" != "${LC_STATE}" ]; then
  die "a local cluster of $(cat "${LC_RUN}/owner") is up; stop it first (its hack/local-cluster/down.sh)"
fi
mkdir -p "${LC_STATE}" "${LC_RUN}" "${LC_LOGS}" "${LC_PIDS}" "${LC_PKI}" "${LC_KUBECONFIGS}" "${LC_TOOLS}"
# Files of this cluster created after this mark are ours (down uses it as a fallback).
# Machine-wide folders that containerd, the kubelet, CNI and `ip netns` create on
# first use: down removes the ones that were not there before (when empty).
echo "${LC_STATE}" > "${LC_RUN}/owner"
if [ ! -f "${LC_RUN}/up.stamp" ]; then
  touch "${LC_RUN}/up.stamp"
  for d in /run/netns /run/containerd /var/lib/cni /var/log/containers /etc/netns; do
    [ -e "${d}" ] && echo "${d}"
  done > "${LC_RUN}/preexisting" || true
fi

# ---------------------------------------------------------------------------------
# Prerequisites: Debian packages, binaries built from Go modules, our small tools.
# ---------------------------------------------------------------------------------
need_pkgs=()
command -v containerd >/dev/null || need_pkgs+=(containerd)
command -v runc >/dev/null || need_pkgs+=(runc)
[ -x /usr/lib/cni/bridge ] || need_pkgs+=(containernetworking-plugins)
command -v iptables >/dev/null || need_pkgs+=(iptables)
command -v conntrack >/dev/null || need_pkgs+=(conntrack)
command -v openssl >/dev/null || need_pkgs+=(openssl)
command -v curl >/dev/null || need_pkgs+=(curl)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi

missing=()
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
  [ -x "${K8S_BIN}/${b}" ] || missing+=("${b}")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "building Kubernetes binaries: ${missing[*]} (about 13 minutes cold; cached afterwards)"
  # hack/k8s-binaries.sh holds a per-machine lock itself, so two callers never
  # build at once (the second waits, then finds the binaries cached).
  "${LC_ROOT}/hack/k8s-binaries.sh" "${missing[@]}" >&2 ||
    die "building ${missing[*]} failed (hack/k8s-binaries.sh)"
fi
if [ ! -x "${COREDNS_BIN}" ]; then
  say "building CoreDNS ${COREDNS_VERSION} (about 3 minutes cold; cached afterwards)"
  COREDNS_VERSION="${COREDNS_VERSION}" "${LC_ROOT}/hack/local-cluster/coredns.sh" >/dev/null
fi
if [ "${LC_CERT_MANAGER}" = true ]; then
  # Cached after the first build (several minutes cold); holds the binary and crds/.
  CERT_MANAGER_DIR="$("${LC_ROOT}/hack/cert-manager.sh")" || die "building cert-manager failed (hack/cert-manager.sh)"
fi
if [ "${LC_NETWORK_POLICIES}" = true ]; then
  # Cached after the first build (about 2 minutes cold).
  NETWORK_POLICIES_BIN="$("${LC_ROOT}/hack/network-policies.sh")" || die "building the NetworkPolicy enforcer failed (hack/network-policies.sh)"
fi
say "building the image tool, pause and echo (static Go)"
(
  cd "${LC_ROOT}"
  CGO_ENABLED=0 go build -trimpath -o "${LC_TOOLS}/natsforge-images" ./hack/images
  CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags='-s -w' -o "${LC_TOOLS}/pause" ./hack/pause
  CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -ldflags='-s -w' -o "${LC_TOOLS}/echo" ./hack/local-cluster/echo
)

# ---------------------------------------------------------------------------------
# Network: namespace, veth pair, egress guard.
# ---------------------------------------------------------------------------------
if ! netns_exists; then
  say "network: creating namespace ${LC_NETNS} (node ${LC_NODE_IP}, machine side ${LC_HOST_IP})"
  ip netns add "${LC_NETNS}"
fi
if ! ip link show "${LC_VETH_HOST}" >/dev/null 2>&1; then
  ip link add "${LC_VETH_HOST}" type veth peer name "${LC_VETH_NODE}"
  ip link set "${LC_VETH_NODE}" netns "${LC_NETNS}"
  ip addr add "${LC_HOST_IP}/24" dev "${LC_VETH_HOST}"
  ip link set "${LC_VETH_HOST}" up
fi
in_ns ip link set lo up
if ! in_ns ip -4 addr show dev "${LC_VETH_NODE}" | grep -q "${LC_NODE_IP}/"; then
  in_ns ip addr add "${LC_NODE_IP}/24" dev "${LC_VETH_NODE}"
fi
in_ns ip link set "${LC_VETH_NODE}" up
in_ns ip route replace default via "${LC_HOST_IP}" dev "${LC_VETH_NODE}"
# The machine reaches pods and Services through the node (routes go with the veth).
ip route replace "${LC_POD_CIDR}" via "${LC_NODE_IP}" dev "${LC_VETH_HOST}"
ip route replace "${LC_SERVICE_CIDR}" via "${LC_NODE_IP}" dev "${LC_VETH_HOST}"
in_ns sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.route_localnet=1
# Bridged pod-to-pod packets pass the netfilter hooks (kube-proxy's and the
# NetworkPolicy enforcer's) only with br_netfilter and this switch, per namespace.
[ -e /proc/sys/net/bridge ] || modprobe br_netfilter 2>/dev/null || true
if ! in_ns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null && [ "${LC_NETWORK_POLICIES}" = true ]; then
  die "net.bridge.bridge-nf-call-iptables cannot be set (no br_netfilter): NetworkPolicies would not be enforced between pods; load br_netfilter or set LC_NETWORK_POLICIES=false"
fi
# Egress guard, inside the namespace only (it disappears with the namespace): what
# leaves through the veth must be for the node's own /24. A connection the node makes
# to a ClusterIP is routed to the veth (default route) before kube-proxy's DNAT,
# and the filter chain still sees that first route, so DNATed connections whose
# real destination (the reply's source) is a pod or the node are let through.
in_ns iptables -w -N NATSFORGE-EGRESS 2>/dev/null || in_ns iptables -w -F NATSFORGE-EGRESS
in_ns iptables -w -A NATSFORGE-EGRESS -d "${LC_NODE_NET}" -j RETURN
in_ns iptables -w -A NATSFORGE-EGRESS -m conntrack --ctstate DNAT --ctreplsrc "${LC_POD_CIDR}" -j RETURN
in_ns iptables -w -A NATSFORGE-EGRESS -m conntrack --ctstate DNAT --ctreplsrc "${LC_NODE_NET}" -j RETURN
in_ns iptables -w -A NATSFORGE-EGRESS -j REJECT --reject-with icmp-net-unreachable
for chain in OUTPUT FORWARD; do
  in_ns iptables -w -C "${chain}" -o "${LC_VETH_NODE}" -j NATSFORGE-EGRESS 2>/dev/null ||
    in_ns iptables -w -I "${chain}" 1 -o "${LC_VETH_NODE}" -j NATSFORGE-EGRESS
done

# Commands run through exec.sh (ip netns exec) resolve names with the cluster DNS.
mkdir -p "/etc/netns/${LC_NETNS}"
put "/etc/netns/${LC_NETNS}/resolv.conf" <<EOF
nameserver ${LC_DNS_IP}
search default.svc.cluster.local svc.cluster.local cluster.local
options ndots:5
EOF

# ---------------------------------------------------------------------------------
# PKI and kubeconfigs (made once; kept until down).
# ---------------------------------------------------------------------------------
gen_cert() { # name subject eku [sans]
  local n=$1 subj=$2 eku=$3 sans=${4:-}
  [ -f "${LC_PKI}/${n}.crt" ] && return 0
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "${LC_PKI}/${n}.key" -out "${LC_PKI}/${n}.csr" -subj "${subj}" 2>/dev/null
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=${eku}"
    [ -z "${sans}" ] || echo "subjectAltName=${sans}"
  } > "${LC_PKI}/${n}.ext"
  openssl x509 -req -in "${LC_PKI}/${n}.csr" -CA "${LC_PKI}/ca.crt" -CAkey "${LC_PKI}/ca.key" \
    -CAcreateserial -days 3650 -extfile "${LC_PKI}/${n}.ext" -out "${LC_PKI}/${n}.crt" 2>/dev/null
  rm -f "${LC_PKI}/${n}.csr" "${LC_PKI}/${n}.ext"
}
if [ ! -f "${LC_PKI}/ca.crt" ]; then
  say "pki: creating a CA and certificates (openssl)"
  rm -f "${LC_PKI}"/*.crt
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "${LC_PKI}/ca.key" -out "${LC_PKI}/ca.crt" -days 3650 -subj "/CN=natsforge-local-cluster-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
fi
gen_cert apiserver "/CN=kube-apiserver" serverAuth \
  "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:${LC_NODE_IP},IP:${LC_API_SERVICE_IP}"
gen_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
gen_cert admin "/O=system:masters/CN=natsforge-admin" clientAuth
gen_cert kube-controller-manager "/CN=system:kube-controller-manager" clientAuth
gen_cert kube-scheduler "/CN=system:kube-scheduler" clientAuth
gen_cert kube-proxy "/CN=system:kube-proxy" clientAuth
gen_cert kubelet "/O=system:nodes/CN=system:node:${LC_NODE_NAME}" clientAuth
gen_cert kubelet-serving "/CN=${LC_NODE_NAME}" serverAuth "DNS:${LC_NODE_NAME},IP:${LC_NODE_IP}"
gen_cert coredns "/CN=system:coredns" clientAuth
gen_cert cert-manager "/CN=system:cert-manager" clientAuth
gen_cert network-policies "/CN=system:natsforge-network-policies" clientAuth
if [ ! -f "${LC_PKI}/sa.key" ]; then
  openssl genrsa -out "${LC_PKI}/sa.key" 2048 2>/dev/null
  openssl rsa -in "${LC_PKI}/sa.key" -pubout -out "${LC_PKI}/sa.pub" 2>/dev/null
fi
chmod 600 "${LC_PKI}"/*.key

write_kubeconfig() { # file user cert
  local file=$1 user=$2 cert=$3
  (umask 077; put "${file}") <<EOF
apiVersion: v1
kind: Config
clusters:
- name: natsforge-local
  cluster:
    server: https://${LC_NODE_IP}:6443
    certificate-authority-data: $(base64 -w0 < "${LC_PKI}/ca.crt")
users:
- name: ${user}
  user:
    client-certificate-data: $(base64 -w0 < "${LC_PKI}/${cert}.crt")
    client-key-data: $(base64 -w0 < "${LC_PKI}/${cert}.key")
contexts:
- name: natsforge-local
  context:
    cluster: natsforge-local
    user: ${user}
    namespace: default
current-context: natsforge-local
EOF
  chmod 600 "${file}"
}
write_kubeconfig "${KUBECONFIG_OUT}" natsforge-admin admin
for c in kube-controller-manager kube-scheduler kube-proxy kubelet coredns cert-manager network-policies; do
  write_kubeconfig "${LC_KUBECONFIGS}/${c}.kubeconfig" "${c}" "${c}"
done

# ---------------------------------------------------------------------------------
# Registry, etcd, containerd: independent of each other; started first.
# ---------------------------------------------------------------------------------
start registry "${LC_TOOLS}/natsforge-images" registry --quiet \
  --address "0.0.0.0:${LC_REGISTRY_PORT}" --dir "${LC_STATE}/registry"
wait_for registry 20 curl -fsS "http://${LC_REGISTRY_PUSH}/v2/"

start etcd "${K8S_BIN}/etcd" --name natsforge-local --data-dir "${LC_STATE}/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster natsforge-local=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381 \
  --unsafe-no-fsync --quota-backend-bytes 2147483648 --log-level warn

mkdir -p "${LC_STATE}/cni/net.d" "${LC_STATE}/cni/ipam" "${LC_STATE}/containerd/root" "${LC_RUN}/containerd"
put "${LC_STATE}/cni/net.d/10-natsforge.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "${LC_CNI_NAME}",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${LC_BRIDGE}",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "${LC_STATE}/cni/ipam",
        "ranges": [[{"subnet": "${LC_POD_CIDR}"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
put "${LC_STATE}/containerd/config.toml" <<EOF
# containerd of the natsforge local cluster: its own root, state and socket.
version = 2
root = "${LC_STATE}/containerd/root"
state = "${LC_RUN}/containerd"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = "${LC_CONTAINERD_SOCK}"

[ttrpc]
  address = "${LC_RUN}/containerd-ttrpc.sock"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${LC_PAUSE_IMAGE}"
  # This sandbox may not lower oom_score_adj.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "${LC_RUNC_ROOT}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${LC_STATE}/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."${LC_REGISTRY_PULL}"]
    endpoint = ["http://127.0.0.1:${LC_REGISTRY_PORT}"]
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."${LC_REGISTRY_PUSH}"]
    endpoint = ["http://127.0.0.1:${LC_REGISTRY_PORT}"]
EOF
start containerd "$(command -v containerd)" --config "${LC_STATE}/containerd/config.toml"

# The sandbox image, and a small test image, into the registry.
say "registry: pushing ${LC_PAUSE_IMAGE} and ${LC_REGISTRY_PULL}/natsforge/echo:${LC_IMAGE_TAG}"
"${LC_TOOLS}/natsforge-images" --tag "${LC_IMAGE_TAG}" --push "${LC_REGISTRY_PUSH}" --insecure \
  --pause "${LC_TOOLS}/pause" --image "natsforge/echo=${LC_TOOLS}/echo" >> "${LC_LOGS}/images.log" 2>&1 ||
  fail images "could not push the pause and echo images"

wait_for etcd 30 in_ns curl -fsS http://127.0.0.1:2379/health

# ---------------------------------------------------------------------------------
# Control plane.
# ---------------------------------------------------------------------------------
# An audit log of the writes ServiceAccounts make (create, update, patch,
# delete; metadata only, never a body), so a test can count what the operator
# wrote, including updates that changed nothing (those keep the object's
# resourceVersion and show nowhere else). Leases and Events are left out: the
# leader election renews every few seconds. Nobody else is logged, so the file
# stays small (capped at 50 MB, one old file kept).
put "${LC_STATE}/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  resources:
  - group: coordination.k8s.io
    resources: ["leases"]
  - group: ""
    resources: ["events"]
  - group: events.k8s.io
    resources: ["events"]
- level: Metadata
  userGroups: ["system:serviceaccounts"]
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
EOF
start kube-apiserver "${K8S_BIN}/kube-apiserver" \
  --audit-policy-file "${LC_STATE}/audit-policy.yaml" --audit-log-path "${LC_AUDIT_LOG}" \
  --audit-log-maxsize 50 --audit-log-maxbackup 1 \
  --advertise-address "${LC_NODE_IP}" --bind-address 0.0.0.0 --secure-port 6443 \
  --etcd-servers http://127.0.0.1:2379 \
  --client-ca-file "${LC_PKI}/ca.crt" \
  --tls-cert-file "${LC_PKI}/apiserver.crt" --tls-private-key-file "${LC_PKI}/apiserver.key" \
  --kubelet-client-certificate "${LC_PKI}/apiserver-kubelet-client.crt" \
  --kubelet-client-key "${LC_PKI}/apiserver-kubelet-client.key" --kubelet-preferred-address-types InternalIP \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --service-account-key-file "${LC_PKI}/sa.pub" --service-account-signing-key-file "${LC_PKI}/sa.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range "${LC_SERVICE_CIDR}" --allow-privileged=true --profiling=false

# containerd should be up by now; check it while the API server starts.
wait_for containerd 30 test -S "${LC_CONTAINERD_SOCK}"
wait_for kube-apiserver 120 kubectl_admin get --raw /readyz

say "kube-apiserver: ready; applying CoreDNS RBAC and the kube-dns Service"
kubectl_admin apply --server-side --force-conflicts -f - > /dev/null <<EOF || fail kube-apiserver "rejected the bootstrap objects"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: natsforge-local:coredns
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: natsforge-local:coredns
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "natsforge-local:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: ${LC_DNS_IP}
  ports:
  - {name: dns, port: 53, protocol: UDP, targetPort: 53}
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 53}
---
# CoreDNS runs on the node itself (not as a pod); this slice points the Service at it.
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-node
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: natsforge-local-cluster
addressType: IPv4
endpoints:
- addresses: ["${LC_NODE_IP}"]
  conditions: {ready: true}
  nodeName: ${LC_NODE_NAME}
ports:
- {name: dns, port: 53, protocol: UDP}
- {name: dns-tcp, port: 53, protocol: TCP}
EOF

start kube-controller-manager "${K8S_BIN}/kube-controller-manager" \
  --kubeconfig "${LC_KUBECONFIGS}/kube-controller-manager.kubeconfig" \
  --authentication-kubeconfig "${LC_KUBECONFIGS}/kube-controller-manager.kubeconfig" \
  --authorization-kubeconfig "${LC_KUBECONFIGS}/kube-controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false \
  --cluster-signing-cert-file "${LC_PKI}/ca.crt" --cluster-signing-key-file "${LC_PKI}/ca.key" \
  --root-ca-file "${LC_PKI}/ca.crt" --service-account-private-key-file "${LC_PKI}/sa.key" \
  --use-service-account-credentials=true --service-cluster-ip-range "${LC_SERVICE_CIDR}" \
  --cluster-cidr "${LC_POD_CIDR}" --allocate-node-cidrs=false
start kube-scheduler "${K8S_BIN}/kube-scheduler" \
  --kubeconfig "${LC_KUBECONFIGS}/kube-scheduler.kubeconfig" \
  --authentication-kubeconfig "${LC_KUBECONFIGS}/kube-scheduler.kubeconfig" \
  --authorization-kubeconfig "${LC_KUBECONFIGS}/kube-scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --leader-elect=false

# ---------------------------------------------------------------------------------
# cert-manager: its CRDs (from the module, server-side: some exceed the size of
# client-side apply's annotation), the permissions of its Helm chart's controller
# roles for the parts compiled in, and the controller itself on the node, like
# kube-controller-manager. No webhook: objects are not validated or defaulted at
# admission (the CRDs' own schemas still apply).
# ---------------------------------------------------------------------------------
if [ "${LC_CERT_MANAGER}" = true ]; then
  kubectl_admin apply --server-side --force-conflicts -f "${CERT_MANAGER_DIR}/crds" > /dev/null ||
    fail kube-apiserver "rejected cert-manager's CRDs (${CERT_MANAGER_DIR}/crds)"
  kubectl_admin apply --server-side --force-conflicts -f - > /dev/null <<EOF || fail kube-apiserver "rejected cert-manager's RBAC"
apiVersion: v1
kind: Namespace
metadata:
  name: cert-manager
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: natsforge-local:cert-manager
rules:
- apiGroups: [cert-manager.io, acme.cert-manager.io]
  resources: ["*"]
  verbs: ["*"]
- apiGroups: [cert-manager.io]
  resources: [signers]
  verbs: [approve]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update, delete, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: natsforge-local:cert-manager
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "natsforge-local:cert-manager"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:cert-manager"}
EOF
  kubectl_admin wait --for condition=Established --timeout 60s \
    crd/certificates.cert-manager.io crd/certificaterequests.cert-manager.io \
    crd/issuers.cert-manager.io crd/clusterissuers.cert-manager.io > /dev/null ||
    fail kube-apiserver "did not establish cert-manager's CRDs"
  start cert-manager "${CERT_MANAGER_DIR}/cert-manager-controller" \
    --kubeconfig "${LC_KUBECONFIGS}/cert-manager.kubeconfig" \
    --cluster-resource-namespace cert-manager --health-address "${LC_CERT_MANAGER_HEALTH}" -v 2
fi

# ---------------------------------------------------------------------------------
# NetworkPolicy enforcer: the permissions of upstream's install.yaml (list and
# watch pods, namespaces and NetworkPolicies; events), and the enforcer itself on
# the node, started before the kubelet so that no pod runs unpoliced. It polices
# the first packet of each new connection to or from a pod some NetworkPolicy
# selects (nftables and an NFQUEUE in this namespace). Packets a root process of
# the node sends (the kubelet's probes, tests run here as root) are always
# accepted: enforcement shows only between pods.
# ---------------------------------------------------------------------------------
if [ "${LC_NETWORK_POLICIES}" = true ]; then
  kubectl_admin apply --server-side --force-conflicts -f - > /dev/null <<EOF || fail kube-apiserver "rejected the NetworkPolicy enforcer's RBAC"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: natsforge-local:network-policies
rules:
- apiGroups: [""]
  resources: [pods, namespaces]
  verbs: [list, watch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [list, watch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: natsforge-local:network-policies
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "natsforge-local:network-policies"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:natsforge-network-policies"}
EOF
  # --disable-nri: our containerd has no NRI socket; pod IPs come from the API.
  start network-policies "${NETWORK_POLICIES_BIN}" \
    --kubeconfig "${LC_KUBECONFIGS}/network-policies.kubeconfig" --hostname-override "${LC_NODE_NAME}" \
    --nfqueue-id "${LC_NETWORK_POLICIES_QUEUE}" --metrics-bind-address "${LC_NETWORK_POLICIES_METRICS}" \
    --disable-nri -v 2
fi

# ---------------------------------------------------------------------------------
# Node: kubelet, kube-proxy, CoreDNS.
# ---------------------------------------------------------------------------------
mkdir -p "${LC_STATE}/kubelet" "${LC_STATE}/pod-logs"
put "${LC_STATE}/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "${LC_PKI}/ca.crt"}
authorization: {mode: Webhook}
address: ${LC_NODE_IP}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: "${LC_PKI}/kubelet-serving.crt"
tlsPrivateKeyFile: "${LC_PKI}/kubelet-serving.key"
containerRuntimeEndpoint: "unix://${LC_CONTAINERD_SOCK}"
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: ["${LC_DNS_IP}"]
resolvConf: ""
podLogsDir: "${LC_STATE}/pod-logs"
serializeImagePulls: false
evictionHard: {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%"}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
maxPods: 110
EOF
start kubelet "${K8S_BIN}/kubelet" --config "${LC_STATE}/kubelet-config.yaml" \
  --kubeconfig "${LC_KUBECONFIGS}/kubelet.kubeconfig" --root-dir "${LC_STATE}/kubelet" \
  --hostname-override "${LC_NODE_NAME}" --node-ip "${LC_NODE_IP}"

put "${LC_STATE}/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "${LC_KUBECONFIGS}/kube-proxy.kubeconfig"}
mode: iptables
hostnameOverride: ${LC_NODE_NAME}
clusterCIDR: ${LC_POD_CIDR}
nodePortAddresses: [primary]
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Without a cluster-wide overlay, same-bridge pod-to-Service-to-pod replies must
# come back through the node: masquerade all Service traffic.
iptables: {masqueradeAll: true, minSyncPeriod: 1s}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
start kube-proxy "${K8S_BIN}/kube-proxy" --config "${LC_STATE}/kube-proxy-config.yaml"

put "${LC_STATE}/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    bind ${LC_NODE_IP}
    errors
    health 127.0.0.1:18080
    ready 127.0.0.1:18181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${LC_KUBECONFIGS}/coredns.kubeconfig natsforge-local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    # Answers for 30 s, but a name that does not exist yet (a NatsCluster's
    # peer before its pod has an address) for 2 s at most: with the 30 s most
    # clusters cache NXDOMAIN for, a new cluster's routes form only after
    # half a minute, and every e2e test that makes one waited that long.
    cache 30 {
        denial 9984 2 1
    }
    loadbalance
}
# No upstream: names outside the cluster do not resolve (nothing leaves the node).
.:53 {
    bind ${LC_NODE_IP}
    template ANY ANY {
        rcode NXDOMAIN
    }
}
EOF
start coredns "${COREDNS_BIN}" -conf "${LC_STATE}/Corefile"

wait_for kubelet 90 in_ns curl -fsS http://127.0.0.1:10248/healthz
wait_for kube-proxy 60 in_ns curl -fsS http://127.0.0.1:10256/healthz
wait_for coredns 60 in_ns curl -fsS http://127.0.0.1:18181/ready
wait_for kube-controller-manager 60 in_ns curl -fsSk https://127.0.0.1:10257/healthz
wait_for kube-scheduler 60 in_ns curl -fsSk https://127.0.0.1:10259/healthz
if [ "${LC_CERT_MANAGER}" = true ]; then
  wait_for cert-manager 60 in_ns curl -fsS "http://${LC_CERT_MANAGER_HEALTH}/healthz"
fi
if [ "${LC_NETWORK_POLICIES}" = true ]; then
  # Ready: its nftables table is written and its NFQUEUE has a listener.
  wait_for network-policies 60 in_ns curl -fsS "http://${LC_NETWORK_POLICIES_METRICS}/readyz"
fi
node_ready() {
  [ "$(kubectl_admin get node "${LC_NODE_NAME}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]
}
wait_for kubelet 120 node_ready
# The service account controller must have made "default" before pods can be created.
wait_for kube-controller-manager 60 kubectl_admin -n default get serviceaccount default

say "cluster is up in $(( $(date +%s) - LC_T0 ))s"
cat >&2 <<EOF

  kubeconfig:  ${KUBECONFIG_OUT}      (kubectl --kubeconfig ${KUBECONFIG_OUT} get nodes)
  API server:  https://${LC_NODE_IP}:6443
  registry:    push to ${LC_REGISTRY_PUSH} (plain http), pods pull ${LC_REGISTRY_PULL}/<repo>:<tag>
  pod network: ${LC_POD_CIDR}, Services ${LC_SERVICE_CIDR}, DNS ${LC_DNS_IP} (cluster.local)
  inside:      hack/local-cluster/exec.sh <command>   (runs in the cluster's network namespace)
  logs:        ${LC_LOGS}/
  stop:        make cluster-down   (or hack/local-cluster/down.sh)
EOF
