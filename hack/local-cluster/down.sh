#!/usr/bin/env bash
# Stops and removes the local cluster made by up.sh: pods are drained first, every
# process is stopped by its recorded pid, the kubelet's and containerd's mounts are
# unmounted, the network namespace and veth are deleted (and with them every
# iptables rule of the cluster: all live inside the namespace), cgroups, CNI and
# state files are removed. Safe to run at any time, any number of times.
#
#   hack/local-cluster/down.sh [--keep-state]
#     --keep-state  keep bin/local-cluster (certificates, etcd data, pulled images)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
set +e # go on through every step, whatever failed before

keep_state=false
[ "${1:-}" = "--keep-state" ] && keep_state=true
require_root
if [ -f "${LC_RUN}/owner" ] && [ "$(cat "${LC_RUN}/owner")" != "${LC_STATE}" ]; then
  die "the local cluster that is up belongs to $(cat "${LC_RUN}/owner"); run its own down.sh"
fi

# stop_pid NAME PID [SECS]: SIGTERM, then SIGKILL after SECS.
stop_pid() {
  local name=$1 pid=$2 secs=${3:-10}
  [ -n "${pid}" ] && kill -0 "${pid}" 2>/dev/null || return 0
  kill -TERM "${pid}" 2>/dev/null
  local i
  for ((i = 0; i < secs * 5; i++)); do
    kill -0 "${pid}" 2>/dev/null || { say "${name}: stopped (pid ${pid})"; return 0; }
    sleep 0.2
  done
  kill -KILL "${pid}" 2>/dev/null
  say "${name}: killed (pid ${pid}) after ${secs}s"
}
stop_component() {
  local name=$1
  if running "${name}"; then
    stop_pid "${name}" "$(pid_of "${name}")" "${2:-10}"
  elif [ -f "${LC_PIDS}/${name}.pid" ]; then
    say "${name}: stopped"
  fi
  rm -f "${LC_PIDS}/${name}.pid" "${LC_PIDS}/${name}.exe" "${LC_PIDS}/${name}.args"
}

# pids_with_arg STRING: processes whose command line contains STRING (not grep itself).
pids_with_arg() {
  grep -lsaF -- "$1" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 | while read -r pid; do
    [ "$(cat "/proc/${pid}/comm" 2>/dev/null)" = grep ] || echo "${pid}"
  done
}

ctr_k8s() { ctr --address "${LC_CONTAINERD_SOCK}" --namespace k8s.io "$@"; }

# 1. Drain: with no controllers left to replace them, delete every pod and let the
#    kubelet stop their containers and sandboxes (which removes their network
#    namespaces and volume mounts the regular way).
if running kube-apiserver && running kubelet && running containerd; then
  stop_component kube-controller-manager
  stop_component kube-scheduler
  say "draining: deleting all pods"
  kubectl_admin delete pods --all --all-namespaces --force --grace-period=0 --wait=false >/dev/null 2>&1
  for ((i = 0; i < 120; i++)); do
    [ -z "$(ctr_k8s tasks ls -q 2>/dev/null)" ] && break
    sleep 0.5
  done
  left="$(ctr_k8s tasks ls -q 2>/dev/null | wc -l)"
  [ "${left}" = 0 ] && say "draining: no containers left" || say "draining: ${left} containers still running; killing them"
fi

# 2. Components (containerd comes after its containers, below): SIGTERM to all at
#    once, then wait for each.
for name in "${LC_COMPONENTS[@]}"; do
  [ "${name}" = containerd ] && continue
  running "${name}" && kill -TERM "$(pid_of "${name}")" 2>/dev/null
done
for ((i = ${#LC_COMPONENTS[@]} - 1; i >= 0; i--)); do
  name="${LC_COMPONENTS[i]}"
  [ "${name}" = containerd ] && continue
  stop_component "${name}"
done

# 3. Containers the drain did not stop, then containerd and its shims.
if [ -d "${LC_RUNC_ROOT}/k8s.io" ]; then
  for id in $(runc --root "${LC_RUNC_ROOT}/k8s.io" list -q 2>/dev/null); do
    runc --root "${LC_RUNC_ROOT}/k8s.io" kill --all "${id}" KILL 2>/dev/null
  done
  sleep 1
fi
stop_component containerd 15
# Shims outlive containerd; they are ours when started with our socket address.
for pid in $(pids_with_arg "${LC_CONTAINERD_SOCK}"); do
  [ "$(cat "/proc/${pid}/comm" 2>/dev/null)" = containerd-shim ] || continue
  stop_pid containerd-shim "${pid}" 5
done
if [ -d "${LC_RUNC_ROOT}/k8s.io" ]; then
  for id in $(runc --root "${LC_RUNC_ROOT}/k8s.io" list -q 2>/dev/null); do
    runc --root "${LC_RUNC_ROOT}/k8s.io" delete --force "${id}" 2>/dev/null
  done
fi

# 4. Anything still in the cluster's network namespace was started by the cluster.
if netns_exists; then
  ns_inode="$(stat -L -c %i "/run/netns/${LC_NETNS}")"
  for pid in $(find /proc -mindepth 3 -maxdepth 3 -path '/proc/[0-9]*/ns/net' -lname "net:?${ns_inode}?" 2>/dev/null | cut -d/ -f3); do
    stop_pid "process in ${LC_NETNS} ($(tr '\0' ' ' 2>/dev/null < "/proc/${pid}/cmdline" | cut -c1-60))" "${pid}" 5
  done
fi

# 5. Mounts: kubelet volumes, containerd's rootfs and shm mounts, pod network
#    namespaces that our containerd made (created after up.stamp), deepest first.
mounts_of_ours() {
  awk '{print $5}' /proc/self/mountinfo | sed 's/\\040/ /g' | while read -r m; do
    case "${m}" in
      "${LC_STATE}"/*|"${LC_RUN}"/*) echo "${m}" ;;
      /run/netns/cni-*)
        if [ -f "${LC_RUN}/up.stamp" ] && [ "${m}" -nt "${LC_RUN}/up.stamp" ]; then echo "${m}"; fi ;;
    esac
  done | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-
}
n=0
while read -r m; do
  [ -n "${m}" ] || continue
  umount "${m}" 2>/dev/null || umount -l "${m}" 2>/dev/null
  case "${m}" in /run/netns/cni-*) rm -f "${m}" ;; esac
  n=$((n + 1))
done < <(mounts_of_ours)
[ "${n}" -gt 0 ] && say "unmounted ${n} mounts"

# 6. Network: the namespace (with the bridge, pod veths and every iptables rule
#    inside it), the veth pair and the machine's routes through it.
if netns_exists; then
  ip netns delete "${LC_NETNS}" && say "network: deleted namespace ${LC_NETNS}"
fi
if ip link show "${LC_VETH_HOST}" >/dev/null 2>&1; then
  ip link delete "${LC_VETH_HOST}" && say "network: deleted ${LC_VETH_HOST}"
fi

# 7. What the kubelet and CNI left on the machine: empty pod cgroups, CNI result
#    cache entries, log symlinks into our state.
if [ -f "${LC_RUN}/up.stamp" ] || [ -d "${LC_STATE}/kubelet" ]; then
  for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "${cg}" ] || continue
    find "${cg}" -depth -type d -exec rmdir {} + 2>/dev/null
  done
fi
rm -f /var/lib/cni/results/"${LC_CNI_NAME}"-* 2>/dev/null
if [ -d /var/log/containers ]; then
  find /var/log/containers -maxdepth 1 -type l -lname "${LC_STATE}/*" -delete 2>/dev/null
fi

# 8. Files, and the machine-wide folders first made for this cluster, when empty.
rm -rf "/etc/netns/${LC_NETNS}"
if [ -f "${LC_RUN}/preexisting" ]; then
  for d in /run/containerd /var/lib/cni /var/log/containers /etc/netns; do
    grep -qx "${d}" "${LC_RUN}/preexisting" && continue
    find "${d}" -depth -type d -empty -delete 2>/dev/null
  done
  if ! grep -qx /run/netns "${LC_RUN}/preexisting" && [ -d /run/netns ] && [ -z "$(ls -A /run/netns)" ]; then
    umount /run/netns 2>/dev/null
    rmdir /run/netns 2>/dev/null
  fi
fi
rm -rf "${LC_RUN}"
rm -f "${KUBECONFIG_OUT}"
if ! ${keep_state}; then
  rm -rf "${LC_STATE}" && say "removed ${LC_STATE}"
fi

# 9. Check: nothing of ours running, mounted or configured.
problems=0
for pid in $(pids_with_arg "${LC_STATE}") $(pids_with_arg "${LC_RUN}") \
  $(grep -l ':/kubepods' /proc/[0-9]*/cgroup 2>/dev/null | cut -d/ -f3); do
  [ -e "/proc/${pid}" ] || continue
  echo "[local-cluster] still running: pid ${pid}: $(tr '\0' ' ' 2>/dev/null < "/proc/${pid}/cmdline")" >&2
  problems=1
done
if grep -qE " (${LC_STATE}|${LC_RUN})[/ ]" /proc/self/mountinfo; then
  echo "[local-cluster] still mounted:" >&2
  grep -E " (${LC_STATE}|${LC_RUN})[/ ]" /proc/self/mountinfo | awk '{print "  " $5}' >&2
  problems=1
fi
netns_exists && { echo "[local-cluster] namespace ${LC_NETNS} still exists" >&2; problems=1; }
ip link show "${LC_VETH_HOST}" >/dev/null 2>&1 && { echo "[local-cluster] ${LC_VETH_HOST} still exists" >&2; problems=1; }
if [ "${problems}" = 0 ]; then
  say "down: nothing left running, mounted or configured"
else
  exit 1
fi
