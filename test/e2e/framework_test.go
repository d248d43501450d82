//go:build e2e

// Package e2e holds the end-to-end suite: it runs against a real cluster, by default
// the local one of hack/local-cluster (make cluster-up), through bin/kubeconfig.
//
//	make e2e                                  # cluster up, images, every test
//	make e2e E2E_RUN='TestTLS'                # some tests
//
// or by hand (the TLS tests need the cluster's DNS, hence the namespace):
//
//	make cluster-up cluster-images
//	go test -c -tags e2e -o bin/e2e.test ./test/e2e/
//	hack/local-cluster/exec.sh bin/e2e.test -test.v -test.run TestTLS
//
// Settings (environment):
//
//	E2E_KUBECONFIG    kubeconfig to use (default $KUBECONFIG, else bin/kubeconfig)
//	E2E_IMAGE_PREFIX  where the cluster pulls natsforge images (default localhost:5001/natsforge)
//	E2E_IMAGE_TAG     their tag (default dev)
//	E2E_KEEP          keep test namespaces after a run, for debugging
//
// The tests reach pod and Service addresses directly: on the local cluster the
// machine routes the pod and Service ranges through the node's veth. Service
// names (tls://<name>.<ns>.svc, as the generated user Secrets' urls give them)
// resolve only inside the cluster's network namespace, where make e2e runs the
// tests (hack/local-cluster/exec.sh).
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

var (
	repoRoot       string
	kubeconfigPath string
	restConfig     *rest.Config
	kube           kubernetes.Interface
	imagePrefix    = envOr("E2E_IMAGE_PREFIX", "localhost:5001/natsforge")
	imageTag       = envOr("E2E_IMAGE_TAG", "dev")
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	kubeconfig := os.Getenv("E2E_KUBECONFIG")
	if kubeconfig == "" {
		kubeconfig = os.Getenv("KUBECONFIG")
	}
	if kubeconfig == "" {
		kubeconfig = filepath.Join(repoRoot, "bin", "kubeconfig")
	}
	kubeconfigPath = kubeconfig
	if _, err := os.Stat(kubeconfig); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: no kubeconfig at %s: bring a cluster up first (make cluster-up)\n", kubeconfig)
		os.Exit(1)
	}
	var err error
	restConfig, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %s: %v\n", kubeconfig, err)
		os.Exit(1)
	}
	restConfig.QPS, restConfig.Burst = 50, 100
	kube, err = kubernetes.NewForConfig(restConfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	restConfig.Timeout = 30 * time.Second
	v, err := kube.Discovery().ServerVersion()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: cluster of %s does not answer: %v\n", kubeconfig, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "e2e: cluster %s (server %s), images %s:%s\n", restConfig.Host, v.GitVersion, imagePrefix, imageTag)
	os.Exit(m.Run())
}

// image is the reference of one of our images as the cluster pulls it.
func image(name string) string { return imagePrefix + "/" + name + ":" + imageTag }

// toolImage is the reference of a test tool image that hack/local-cluster/up.sh
// pushes (echo), under its own tag (E2E_TOOLS_TAG, default dev): make e2e
// pushes the operator and broker under a tag of its own per run, not these.
func toolImage(name string) string {
	return imagePrefix + "/" + name + ":" + envOr("E2E_TOOLS_TAG", "dev")
}

// newNamespace makes a namespace for one test and deletes it afterwards (unless
// E2E_KEEP is set or the test failed and E2E_KEEP=failed).
func newNamespace(t *testing.T) string {
	t.Helper()
	name := "e2e-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(name) > 50 {
		name = name[:50]
	}
	name = strings.TrimRight(name, "-") + "-" + rand.String(5)
	ctx := context.Background()
	if _, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: name, Labels: map[string]string{"natsforge.io/e2e": "true"},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
	// The service account controller makes "default" shortly after the namespace.
	waitFor(t, 30*time.Second, "default service account in "+name, func(ctx context.Context) (bool, error) {
		_, err := kube.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	})
	t.Cleanup(func() {
		keep := os.Getenv("E2E_KEEP")
		if keep == "true" || keep == "1" || (keep == "failed" && t.Failed()) {
			t.Logf("keeping namespace %s", name)
			return
		}
		if t.Failed() {
			dumpNamespace(t, name)
		}
		_ = kube.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

// waitFor polls cond every 250ms until it returns true, fails the test on an error
// or after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var lastErr error
	for {
		ok, err := cond(ctx)
		if ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitPodReady waits for a pod's Ready condition and returns the pod.
func waitPodReady(t *testing.T, ns, name string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	waitFor(t, timeout, "pod "+ns+"/"+name+" Ready", func(ctx context.Context) (bool, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = p
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	return pod
}

// waitPodDone waits for a pod to succeed (fails the test if it fails) and returns its log.
func waitPodDone(t *testing.T, ns, name string, timeout time.Duration) string {
	t.Helper()
	waitFor(t, timeout, "pod "+ns+"/"+name+" to finish", func(ctx context.Context) (bool, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			return true, nil
		case corev1.PodFailed:
			t.Fatalf("pod %s/%s failed; log:\n%s", ns, name, podLog(ns, name))
		}
		return false, nil
	})
	return podLog(ns, name)
}

func podLog(ns, name string) string {
	b, err := kube.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).Do(context.Background()).Raw()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return string(b)
}

// dumpNamespace logs pods, their states and events of a namespace, for a failed test.
func dumpNamespace(t *testing.T, ns string) {
	ctx := context.Background()
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, p := range pods.Items {
			t.Logf("pod %s: phase %s, node %s, ip %s", p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.PodIP)
			for _, cs := range p.Status.ContainerStatuses {
				t.Logf("  container %s: ready %v, restarts %d, state %+v", cs.Name, cs.Ready, cs.RestartCount, cs.State)
			}
		}
	}
	events, err := kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, e := range events.Items {
			t.Logf("event %s %s/%s: %s: %s", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
}

// nonRoot is the restricted security context every test pod runs with.
func nonRoot() (*corev1.PodSecurityContext, *corev1.SecurityContext) {
	yes, no := true, false
	return &corev1.PodSecurityContext{RunAsNonRoot: &yes, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		&corev1.SecurityContext{AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes,
			Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
}
