#!/usr/bin/env bash
# Restarts one component of the running local cluster, as an outage would: stops
# it by its recorded pid (SIGTERM, or SIGKILL with --kill; SIGKILL after 15 s
# either way) and starts it again with the command line up.sh gave it. It does
# not wait for the component to be ready again: callers (the e2e chaos tests)
# measure that themselves.
#
#   hack/local-cluster/restart.sh [--kill] kube-apiserver|kubelet|etcd|...
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Components run in the machine's mount namespace (the kubelet needs its cgroup
# mounts, containerd sees its volume mounts). A caller inside exec.sh (ip netns
# exec, as the e2e tests are) has a mount namespace of its own with /sys
# remounted: start from the machine's, as up.sh does, which is where the other
# components run (pid 1's may not be readable here).
for peer in containerd etcd registry; do
  [ "${peer}" != "${!#}" ] && running "${peer}" || continue
  host_mnt="/proc/$(pid_of "${peer}")/ns/mnt"
  if [ "$(readlink /proc/self/ns/mnt)" != "$(readlink "${host_mnt}")" ]; then
    exec nsenter --mount="${host_mnt}" -- "$(readlink -f "${BASH_SOURCE[0]}")" "$@"
  fi
  break
done

sig=TERM
[ "${1:-}" = "--kill" ] && { sig=KILL; shift; }
[ $# = 1 ] || die "usage: $0 [--kill] COMPONENT (one of: ${LC_COMPONENTS[*]})"
name=$1
require_root
netns_exists || die "the local cluster is not up (make cluster-up)"
[ -f "${LC_PIDS}/${name}.args" ] || die "${name}: no recorded command line in ${LC_PIDS} (not a component up.sh started)"
mapfile -d '' args < "${LC_PIDS}/${name}.args"

if running "${name}"; then
  pid="$(pid_of "${name}")"
  kill "-${sig}" "${pid}"
  for ((i = 0; i < 75; i++)); do
    kill -0 "${pid}" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "${pid}" 2>/dev/null; then
    kill -KILL "${pid}"
    while kill -0 "${pid}" 2>/dev/null; do sleep 0.1; done
  fi
  say "${name}: stopped (SIG${sig}, pid ${pid})"
fi
start "${name}" "${args[@]}"
