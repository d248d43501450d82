#!/usr/bin/env bash
# `make demo`: natsforge end to end, in plain steps a person can follow.
#
#   1. builds the operator and broker binaries and their images;
#   2. brings up the local single-node cluster (hack/local-cluster), or uses the
#      cluster of $KUBECONFIG when DEMO_USE_KUBECONFIG=true (then DEMO_REGISTRY must
#      be a registry that cluster pulls from, and DEMO_IMAGE_PREFIX its pull name);
#   3. helm-installs the operator (charts/natsforge);
#   4. applies the sample Secret and a 3-replica NatsCluster (config/samples);
#   5. waits for Ready, connects a NATS client as myname/password over TLS (the
#      default; --tlsca with the cluster's CA, from inside the local cluster's
#      network namespace where the Service name in the certificate resolves),
#      publishes and receives a message, shows a wrong password refused and a
#      client without the cluster's CA unable to connect;
#   6. prints what to try next.
#
# The local cluster is left running for those next steps; `make cluster-down` ends it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}"

KUBE_VERSION="${KUBE_VERSION:-1.37.2}"
NATSCLI_VERSION="${NATSCLI_VERSION:-v0.5.0}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
IMAGE_TAG="${IMAGE_TAG:-dev}"
NAMESPACE="${DEMO_NAMESPACE:-default}"
OPERATOR_NAMESPACE="${DEMO_OPERATOR_NAMESPACE:-natsforge-system}"
USE_KUBECONFIG="${DEMO_USE_KUBECONFIG:-false}"
KUBECTL="${ROOT}/bin/k8s/${KUBE_VERSION}/kubectl"
HELM="${ROOT}/bin/helm-${HELM_VERSION}"
NATS="${ROOT}/bin/nats-${NATSCLI_VERSION}"

step=0
say() { step=$((step + 1)); printf '\n==> %d. %s\n' "${step}" "$*"; }
info() { printf '    %s\n' "$*"; }
die() { printf '\nERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------
say "Building the operator and the broker"
make --no-print-directory build
[ -x "${KUBECTL}" ] || hack/k8s-binaries.sh kubectl >/dev/null
[ -x "${HELM}" ] || make --no-print-directory "${HELM}" >/dev/null
if [ ! -x "${NATS}" ]; then
  info "building the nats CLI ${NATSCLI_VERSION} (once)"
  GOBIN="${ROOT}/bin/.tmp-natscli" go install "github.com/nats-io/natscli/nats@${NATSCLI_VERSION}"
  mv "${ROOT}/bin/.tmp-natscli/nats" "${NATS}" && rmdir "${ROOT}/bin/.tmp-natscli"
fi

# ---------------------------------------------------------------------------
if [ "${USE_KUBECONFIG}" = true ]; then
  say "Using the cluster of KUBECONFIG=${KUBECONFIG:?set KUBECONFIG}"
  : "${DEMO_REGISTRY:?set DEMO_REGISTRY, a registry your cluster pulls from}"
  IMAGE_PREFIX="${DEMO_IMAGE_PREFIX:-${DEMO_REGISTRY}/natsforge}"
  say "Building the images and pushing them to ${DEMO_REGISTRY}"
  make --no-print-directory images REGISTRY="${DEMO_REGISTRY}" IMAGES_OUT= IMAGE_TAG="${IMAGE_TAG}"
  LOCAL=false
else
  say "Bringing up the local cluster (minutes the first time; the binaries are cached)"
  hack/local-cluster/up.sh
  export KUBECONFIG="${ROOT}/bin/kubeconfig"
  IMAGE_PREFIX="localhost:5001/natsforge"
  say "Building the images and pushing them to the local cluster's registry"
  make --no-print-directory cluster-images IMAGE_TAG="${IMAGE_TAG}"
  LOCAL=true
fi
k() { "${KUBECTL}" "$@"; }
k get nodes -o wide

# ---------------------------------------------------------------------------
say "Installing the operator with Helm (charts/natsforge)"
"${HELM}" upgrade --install natsforge charts/natsforge \
  --namespace "${OPERATOR_NAMESPACE}" --create-namespace \
  --set image.repository="${IMAGE_PREFIX}/operator" --set image.tag="${IMAGE_TAG}" \
  --set broker.image.repository="${IMAGE_PREFIX}/broker" --set broker.image.tag="${IMAGE_TAG}" \
  --wait --timeout 5m
k -n "${OPERATOR_NAMESPACE}" get deployments,pods

# ---------------------------------------------------------------------------
say "Creating the sample user Secret and a 3-replica NatsCluster (config/samples)"
# The basic sample: a Secret with myname's password and a 3-replica NatsCluster.
SAMPLE="${DEMO_SAMPLE:-config/samples/natsforge_v1alpha1_natscluster.yaml}"
[ -f "${SAMPLE}" ] || die "sample ${SAMPLE} not found (set DEMO_SAMPLE)"
k -n "${NAMESPACE}" apply -f "${SAMPLE}"
NC="$(k -n "${NAMESPACE}" get natsclusters -o jsonpath='{.items[0].metadata.name}')"
[ -n "${NC}" ] || die "no NatsCluster in namespace ${NAMESPACE} after applying ${SAMPLE}"
info "NatsCluster: ${NC}"
if [ "${LOCAL}" != true ] &&
  [ "$(k -n "${NAMESPACE}" get natscluster "${NC}" -o jsonpath='{.spec.tls.mode}')" = Operator ]; then
  # The client below reaches the cluster through a port-forward, as localhost.
  k -n "${NAMESPACE}" patch natscluster "${NC}" --type merge -p '{"spec":{"tls":{"extraSANs":["localhost"]}}}'
fi
SECRET="$(k -n "${NAMESPACE}" get natscluster "${NC}" -o jsonpath='{.spec.auth.users[?(@.name=="myname")].passwordSecretRef.name}')"
SECRET="${SECRET:-<the user Secret>}"

# ---------------------------------------------------------------------------
say "Waiting for NatsCluster ${NC} to be Ready"
start=$(date +%s)
if ! k -n "${NAMESPACE}" wait "natscluster/${NC}" --for=condition=Ready --timeout=5m; then
  k -n "${NAMESPACE}" describe "natscluster/${NC}" || true
  k -n "${NAMESPACE}" get pods -o wide || true
  die "NatsCluster ${NC} did not become Ready"
fi
info "Ready in $(( $(date +%s) - start ))s"
k -n "${NAMESPACE}" get natscluster "${NC}"
k -n "${NAMESPACE}" get pods -l "app.kubernetes.io/instance=${NC}" -o wide 2>/dev/null || true

# ---------------------------------------------------------------------------
# TLS is on unless the NatsCluster says otherwise: condition Secure=True means
# clients, routes and monitoring are served over TLS (the default, mode Operator).
SECURE="$(k -n "${NAMESPACE}" get natscluster "${NC}" -o jsonpath='{.status.conditions[?(@.type=="Secure")].status}')"
MODE="$(k -n "${NAMESPACE}" get natscluster "${NC}" -o jsonpath='{.spec.tls.mode}')"
PF_PID=""
SUB_PID=""
cleanup() {
  [ -z "${PF_PID}" ] || kill "${PF_PID}" 2>/dev/null || true
  [ -z "${SUB_PID}" ] || kill "${SUB_PID}" 2>/dev/null || true
}
trap cleanup EXIT
RUN=()      # prefix of every nats command (the cluster's network namespace, locally)
TLSARGS=()  # --tlsca with TLS
if [ "${SECURE}" = True ]; then
  say "Connecting a NATS client over TLS (mode ${MODE:-Operator}) as myname/password"
  # The CA that signs the server certificate: ca.crt of the Secret the brokers serve.
  if [ "${MODE}" = Secrets ]; then
    CA_SECRET="$(k -n "${NAMESPACE}" get natscluster "${NC}" -o jsonpath='{.spec.tls.client.secretName}')"
  else
    CA_SECRET="${NC}-tls"
  fi
  CA_FILE="${ROOT}/bin/demo/${NC}-ca.crt"
  mkdir -p "$(dirname "${CA_FILE}")"
  k -n "${NAMESPACE}" get secret "${CA_SECRET}" -o jsonpath='{.data.ca\.crt}' | base64 -d > "${CA_FILE}"
  [ -s "${CA_FILE}" ] || die "Secret ${CA_SECRET} has no ca.crt"
  info "CA: ${CA_FILE} (ca.crt of Secret ${CA_SECRET}; the generated user Secrets carry it too)"
  TLSARGS=(--tlsca "${CA_FILE}")
  SCHEME=tls
  if [ "${LOCAL}" = true ]; then
    # The certificate names the Service (<name>.<namespace>.svc); that name
    # resolves inside the cluster's network namespace, where the client runs.
    RUN=("${ROOT}/hack/local-cluster/exec.sh")
    HOSTPORT="${NC}.${NAMESPACE}.svc:4222"
  else
    # Through a port-forward the client sees localhost: the certificate must name
    # it (spec.tls.extraSANs: [localhost]).
    k -n "${NAMESPACE}" port-forward "service/${NC}" 14222:4222 >/dev/null 2>&1 &
    PF_PID=$!
    sleep 2
    HOSTPORT="localhost:14222"
  fi
else
  say "Connecting a NATS client as myname/password (plaintext: Secure=${SECURE:-unknown})"
  SCHEME=nats
  if [ "${LOCAL}" = true ]; then
    # The machine routes the cluster's Service range through the node: connect to the
    # Service's ClusterIP directly, over the pod network.
    HOSTPORT="$(k -n "${NAMESPACE}" get service "${NC}" -o jsonpath='{.spec.clusterIP}'):4222"
  else
    k -n "${NAMESPACE}" port-forward "service/${NC}" 14222:4222 >/dev/null 2>&1 &
    PF_PID=$!
    sleep 2
    HOSTPORT="127.0.0.1:14222"
  fi
fi
nats_() { "${RUN[@]}" "${NATS}" "${TLSARGS[@]}" "$@"; }
URL="${SCHEME}://myname:password@${HOSTPORT}"
info "server: ${SCHEME}://myname:***@${HOSTPORT}"
SUBLOG="$(mktemp)"
# A subscriber and a publisher: through the Service they may land on different pods.
timeout 90 "${RUN[@]}" "${NATS}" "${TLSARGS[@]}" --server "${URL}" --timeout 5s sub demo.hello --count 1 > "${SUBLOG}" 2>&1 &
SUB_PID=$!
sleep 1
# Right after Ready the routes between pods may still be forming: publish once a
# second until the subscriber has the message (at most 60 s).
sent=0
while kill -0 "${SUB_PID}" 2>/dev/null && [ "${sent}" -lt 60 ]; do
  if [ "${sent}" = 0 ]; then
    nats_ --server "${URL}" --timeout 5s pub demo.hello "hello from natsforge" 2>&1 | sed 's/^/    /'
  else
    nats_ --server "${URL}" --timeout 5s pub demo.hello "hello from natsforge" >/dev/null 2>&1 || true
  fi
  sent=$((sent + 1))
  sleep 1
done
if wait "${SUB_PID}" && grep -q "hello from natsforge" "${SUBLOG}"; then
  info "received: $(grep -m1 'hello from natsforge' "${SUBLOG}")   (after ${sent} publish(es))"
  rm -f "${SUBLOG}"
else
  sed 's/^/    /' "${SUBLOG}" >&2
  rm -f "${SUBLOG}"
  die "the subscriber did not receive the message within 60 s"
fi

say "A wrong password is refused"
if nats_ --server "${SCHEME}://myname:wrong@${HOSTPORT}" --timeout 5s pub demo.hello "should not arrive" 2>&1 | sed 's/^/    /'; then
  die "a wrong password was accepted"
fi
if [ "${SCHEME}" = tls ]; then
  say "Without the cluster's CA a client cannot connect (the brokers require TLS; their certificate is the cluster's)"
  if "${RUN[@]}" "${NATS}" --server "nats://myname:password@${HOSTPORT}" --timeout 5s pub demo.hello "should not arrive" 2>&1 | sed 's/^/    /'; then
    die "a client without the cluster's CA connected"
  fi
fi

# ---------------------------------------------------------------------------
say "What to try next"
NATS_ALIAS="${RUN[*]:+${RUN[*]} }${NATS}${TLSARGS[*]:+ ${TLSARGS[*]}}"
cat <<EOF
    export KUBECONFIG=${KUBECONFIG}
    alias nats='${NATS_ALIAS}'   kubectl='${KUBECTL}'

    Rotate the password (clients with the old one are cut off in seconds, pods stay up):
      kubectl -n ${NAMESPACE} patch secret ${SECRET} --type merge -p '{"stringData":{"password":"n3w-password"}}'
      nats --server ${SCHEME}://myname:n3w-password@${HOSTPORT} pub demo.hello again

    Scale:
      kubectl -n ${NAMESPACE} patch natscluster ${NC} --type merge -p '{"spec":{"replicas":5}}'
      kubectl -n ${NAMESPACE} get pods -w

    Connect your own client:  ${SCHEME}://myname:password@${HOSTPORT}
      nats --server ${SCHEME}://myname:password@${HOSTPORT} sub '>'
EOF
if [ "${SCHEME}" = tls ]; then
  cat <<EOF
      (nats.go: nats.Connect("${SCHEME}://myname:password@${HOSTPORT}", nats.RootCAs("${CA_FILE}")))
EOF
fi
if [ "${LOCAL}" = true ]; then
  printf '\n    The local cluster keeps running; stop it with: make cluster-down\n'
fi
