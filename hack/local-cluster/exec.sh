#!/usr/bin/env bash
# Runs a command inside the local cluster's network namespace, where pod and Service
# addresses and the node's own ports are reachable and names resolve through the
# cluster DNS (short names in namespace default), with KUBECONFIG set.
#
#   hack/local-cluster/exec.sh curl -s http://10.244.0.5:8080/
#   hack/local-cluster/exec.sh bin/e2e.test -test.v   # (go test -c -tags e2e -o bin/e2e.test ./test/e2e/)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_root
netns_exists || die "the local cluster is not up (make cluster-up)"
[ $# -gt 0 ] || die "usage: $0 COMMAND [ARGS...]"
export KUBECONFIG="${KUBECONFIG_OUT}"
# ip netns exec also mounts /etc/netns/<name>/resolv.conf over /etc/resolv.conf, in a
# mount namespace of the command's own.
exec ip netns exec "${LC_NETNS}" "$@"
