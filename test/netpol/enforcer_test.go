/*
Copyright 2026 The natsforge Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package netpol checks that the NetworkPolicy a NatsCluster gets is enforced,
// on this machine's kernel, by the enforcer hack/network-policies.sh builds:
// an envtest API server holds the pods (loopback addresses, on one node) and
// the policy, the enforcer polices them, and unprivileged processes connect
// from the pods' addresses. It all runs in a private network namespace (the
// test re-runs itself under unshare -n), so it needs root and touches nothing
// of the machine's own netfilter. The enforcer always admits root's own
// packets (the kubelet's probes), hence the unprivileged connections.
package netpol

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

const (
	envInNetns   = "NATSFORGE_NETPOL_NETNS"
	envEnforcer  = "NATSFORGE_NETPOL_ENFORCER"
	envDial      = "NATSFORGE_NETPOL_DIAL" // "<source IP> <host:port>"
	nobody       = 65534
	dialTimeout  = 2 * time.Second
	nodeName     = "node1"
	operatorNS   = "natsforge-system"
	clusterNS    = "apps"
	otherNS      = "shop"
	brokerIP     = "10.0.0.2"
	peerIP       = "10.0.0.5"
	clientIP     = "10.0.0.3"
	operatorIP   = "10.0.0.4"
	neighbourIP  = "10.0.0.6"
	enforcerPoll = 90 * time.Second
)

func TestMain(m *testing.M) {
	// A child run as nobody: open one connection and say whether it opened.
	if spec := os.Getenv(envDial); spec != "" {
		src, dst, _ := strings.Cut(spec, " ")
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: dialTimeout}
		c, err := d.Dial("tcp", dst)
		if err != nil {
			fmt.Print("blocked")
			os.Exit(0)
		}
		_ = c.Close()
		fmt.Print("open")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func TestTheEnforcerAppliesANatsClustersNetworkPolicy(t *testing.T) {
	if os.Getenv(envInNetns) == "" {
		runInPrivateNetns(t)
		return
	}
	ctx := context.Background()
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		// kube-apiserver wants a default route to pick its advertised address.
		{"link", "add", "v0", "type", "veth", "peer", "name", "v1"},
		{"addr", "add", "10.9.9.9/24", "dev", "v0"},
		{"link", "set", "v0", "up"},
		{"link", "set", "v1", "up"},
		{"route", "add", "default", "via", "10.9.9.1", "dev", "v0"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	for _, ip := range []string{brokerIP, peerIP, clientIP, operatorIP, neighbourIP} {
		if out, err := exec.Command("ip", "addr", "add", ip+"/32", "dev", "lo").CombinedOutput(); err != nil {
			t.Fatalf("ip addr add %s: %v: %s", ip, err, out)
		}
	}

	env := &envtest.Environment{BinaryAssetsDirectory: filepath.Join(repoRoot(), "bin", "k8s", "1.37.2")}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	user, err := env.AddUser(envtest.User{Name: "enforcer", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfigPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	k8s, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}

	for _, ns := range []string{clusterNS, otherNS, operatorNS} {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: clusterNS}}
	pod := func(ns, name, ip string, labels map[string]string) {
		t.Helper()
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec: corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Image: "none"}}}}
		if err := k8s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
		if err := k8s.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	pod(clusterNS, resources.PodName(nc, 0), brokerIP, resources.SelectorLabels(nc))
	pod(clusterNS, resources.PodName(nc, 1), peerIP, resources.SelectorLabels(nc))
	pod(clusterNS, "neighbour", neighbourIP, map[string]string{"app": "web"})
	pod(otherNS, "client", clientIP, map[string]string{"app": "web"})
	pod(operatorNS, "operator", operatorIP, map[string]string{"app": "operator"})
	policy := resources.NetworkPolicy(nc, operatorNS)
	policy.OwnerReferences = nil // no NatsCluster CRD here
	if err := k8s.Create(ctx, policy); err != nil {
		t.Fatal(err)
	}

	for _, port := range []int{resources.ClientPort, resources.ClusterPort, resources.MonitorPort} {
		l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", brokerIP, port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				_ = c.Close()
			}
		}()
	}

	enforcer := exec.Command(os.Getenv(envEnforcer), "--kubeconfig", kubeconfigPath, "--hostname-override", nodeName,
		"--disable-nri", "--metrics-bind-address", "127.0.0.1:0")
	logPath := filepath.Join(t.TempDir(), "enforcer.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	enforcer.Stdout, enforcer.Stderr = logFile, logFile
	if err := enforcer.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = enforcer.Process.Signal(syscall.SIGTERM)
		_ = enforcer.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("enforcer log:\n%s", b)
		}
	})

	// nobody cannot run the test binary where go test built it (0700).
	dialerDir, err := os.MkdirTemp("", "netpol-dialer")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dialerDir) })
	dialer := filepath.Join(dialerDir, "dialer")
	binary, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dialer, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(dialer), 0o755); err != nil {
		t.Fatal(err)
	}
	dial := func(src string, port int) string {
		t.Helper()
		cmd := exec.Command(dialer)
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s:%d", envDial, src, brokerIP, port))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("dial from %s to %d: %v", src, port, err)
		}
		return string(out)
	}
	// Until the enforcer has its rules in place, everything is open.
	deadline := time.Now().Add(enforcerPoll)
	for dial(clientIP, resources.ClusterPort) != "blocked" {
		if time.Now().After(deadline) {
			t.Fatalf("after %v a pod of another namespace still opens %d: the enforcer enforces nothing", enforcerPoll, resources.ClusterPort)
		}
	}

	for _, c := range []struct {
		what string
		src  string
		port int
		want string
	}{
		{"a client in another namespace, 4222", clientIP, resources.ClientPort, "open"},
		{"a client in another namespace, 6222", clientIP, resources.ClusterPort, "blocked"},
		{"a client in another namespace, 8222", clientIP, resources.MonitorPort, "blocked"},
		{"a pod of the cluster's namespace, 6222", neighbourIP, resources.ClusterPort, "blocked"},
		{"a pod of the cluster's namespace, 8222", neighbourIP, resources.MonitorPort, "blocked"},
		{"a pod of the cluster's namespace, 4222", neighbourIP, resources.ClientPort, "open"},
		{"the cluster's other broker, 6222", peerIP, resources.ClusterPort, "open"},
		{"the operator, 8222", operatorIP, resources.MonitorPort, "open"},
		{"the operator, 6222", operatorIP, resources.ClusterPort, "blocked"},
	} {
		if got := dial(c.src, c.port); got != c.want {
			t.Errorf("%s: %s, want %s", c.what, got, c.want)
		}
	}
}

// runInPrivateNetns runs the test again in a network namespace of its own.
func runInPrivateNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs the NetworkPolicy enforcer in a private network namespace")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("needs unshare (util-linux) for a private network namespace")
	}
	binaries, _ := filepath.Glob(filepath.Join(repoRoot(), "bin", "network-policies", "*", "kube-network-policies"))
	if len(binaries) == 0 {
		if testing.Short() {
			t.Skip("no enforcer in bin/network-policies")
		}
		t.Fatal("no enforcer in bin/network-policies: build it with hack/network-policies.sh (make test does; about 2 minutes cold)")
	}
	if _, err := os.Stat(filepath.Join(repoRoot(), "bin", "k8s", "1.37.2", "kube-apiserver")); err != nil {
		t.Fatalf("no kube-apiserver (run hack/k8s-binaries.sh): %v", err)
	}
	cmd := exec.Command(unshare, "-n", os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.v")
	cmd.Env = append(os.Environ(), envInNetns+"=1", envEnforcer+"="+binaries[len(binaries)-1])
	out, err := cmd.CombinedOutput()
	t.Logf("in a private network namespace:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
}
