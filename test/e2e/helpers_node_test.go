//go:build e2e

package e2e

// Helpers that reach past the API: probe pods (connections made from inside the
// pod network, where NetworkPolicies apply) and the local cluster's processes
// (a broker container's process, a component's pid file). The latter work only
// on the local cluster of hack/local-cluster, where the tests run as root on
// the node itself (make e2e: hack/local-cluster/exec.sh).

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// probe is one run of the echo tool image (echo dial ..., echo nats ...) in a
// pod of its own.
type probe struct {
	ns, name string
	args     []string
}

// runProbes runs the probes' pods all at once and returns each one's output by
// name. The pods run as non-root: the NetworkPolicy enforcer admits whatever
// root on the node sends, never what a pod sends.
func runProbes(t *testing.T, probes ...probe) map[string]string {
	t.Helper()
	ctx := context.Background()
	podSC, ctrSC := nonRoot()
	for _, p := range probes {
		ns, name, args := p.ns, p.name, p.args
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "probe"}},
			Spec: corev1.PodSpec{
				RestartPolicy:   corev1.RestartPolicyNever,
				SecurityContext: podSC,
				Containers: []corev1.Container{{
					Name: "probe", Image: toolImage("echo"), Args: args, SecurityContext: ctrSC,
					// up.sh pushes the tool images under the same tag each time it
					// runs; a node that pulled an older one must not keep it.
					ImagePullPolicy: corev1.PullAlways,
				}},
			},
		}
		if _, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("probe pod %s/%s: %v", ns, name, err)
		}
	}
	out := map[string]string{}
	for _, p := range probes {
		out[p.name] = waitPodDone(t, p.ns, p.name, 2*time.Minute)
	}
	return out
}

// dialResults parses echo dial's output ("host:port open|timeout|refused ...")
// into a map from address to its first word.
func dialResults(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			m[f[0]] = f[1]
		}
	}
	return m
}

// containerProcess finds the host pid of the main process of a pod's running
// container: the process whose cgroup path names the container's id (the
// kubelet's cgroupfs layout, .../pod<uid>/<container id>) and whose binary is
// exe. Local cluster only: the tests share the node's pid namespace.
func containerProcess(t *testing.T, pod *corev1.Pod, container, exe string) int {
	t.Helper()
	var id string
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name == container && cs.State.Running != nil {
			_, id, _ = strings.Cut(cs.ContainerID, "://")
		}
	}
	if id == "" {
		t.Fatalf("pod %s/%s: container %s is not running", pod.Namespace, pod.Name, container)
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		cg, err := os.ReadFile(filepath.Join(d, "cgroup"))
		if err != nil || !bytes.Contains(cg, []byte(id)) {
			continue
		}
		if target, err := os.Readlink(filepath.Join(d, "exe")); err != nil || filepath.Base(target) != exe {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		return pid
	}
	t.Fatalf("no process %s of container %s (%s) of pod %s/%s on this machine: the tests must run on the local cluster's node as root",
		exe, container, id, pod.Namespace, pod.Name)
	return 0
}

// lcPids is where hack/local-cluster keeps its components' pid files.
const lcPids = "/run/natsforge-lc/pids"

// componentPid is the pid of a local cluster component (kube-apiserver,
// kubelet, ...) from its pid file.
func componentPid(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(lcPids, name+".pid"))
	if err != nil {
		t.Fatalf("component %s: %v (a local cluster of hack/local-cluster only)", name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("component %s: pid file: %v", name, err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
		t.Fatalf("component %s: pid %d is not running", name, pid)
	}
	return pid
}
