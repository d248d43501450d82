//go:build e2e

package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestClusterSmoke checks what every other test relies on: the scheduler places a
// pod, the kubelet pulls its image from the local registry, mounts a Secret, runs
// it as non-root and probes it; the pod answers on the pod network, through its
// Service's ClusterIP (kube-proxy) and by name (CoreDNS), from outside the pod
// and from another pod.
func TestClusterSmoke(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	podSC, ctrSC := nonRoot()

	if _, err := kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke"},
		StringData: map[string]string{"password": "s3cret"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	echo := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Labels: map[string]string{"app": "echo"}},
		Spec: corev1.PodSpec{
			SecurityContext: podSC,
			Containers: []corev1.Container{{
				Name:            "echo",
				Image:           toolImage("echo"),
				Args:            []string{"serve", "--addr", ":8080"},
				Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				SecurityContext: ctrSC,
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "secret", MountPath: "/etc/smoke", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "secret", VolumeSource: corev1.VolumeSource{
				Secret: &corev1.SecretVolumeSource{SecretName: "smoke"}}}},
		},
	}
	start := time.Now()
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, echo, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc, err := kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "echo"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromString("http")}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := waitPodReady(t, ns, "echo", 2*time.Minute)
	t.Logf("pod ready in %s at %s on %s", time.Since(start).Round(time.Millisecond), pod.Status.PodIP, pod.Spec.NodeName)

	// The pod network, then the Service's ClusterIP.
	for _, addr := range []string{pod.Status.PodIP, svc.Spec.ClusterIP} {
		body := httpGet(t, "http://"+net.JoinHostPort(addr, "8080")+"/smoke")
		if !strings.HasPrefix(body, "echo /smoke") {
			t.Errorf("GET %s: %q, want the pod's hostname and path", addr, body)
		}
	}

	// The Service's name through the cluster DNS Service (CoreDNS).
	dns, err := kube.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fqdn := "echo." + ns + ".svc.cluster.local"
	addrs := lookup(t, net.JoinHostPort(dns.Spec.ClusterIP, "53"), fqdn)
	if len(addrs) != 1 || addrs[0] != svc.Spec.ClusterIP {
		t.Errorf("%s resolved to %v, want [%s]", fqdn, addrs, svc.Spec.ClusterIP)
	}

	// From another pod, by short name: its resolv.conf, CoreDNS and kube-proxy.
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe"},
		Spec: corev1.PodSpec{
			RestartPolicy:   corev1.RestartPolicyNever,
			SecurityContext: podSC,
			Containers: []corev1.Container{{
				Name: "probe", Image: toolImage("echo"), SecurityContext: ctrSC,
				Args: []string{"get", "http://echo:8080/from-pod"},
			}},
		},
	}
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out := waitPodDone(t, ns, "probe", 2*time.Minute); !strings.HasPrefix(out, "echo /from-pod") {
		t.Errorf("probe pod printed %q", out)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 3 * time.Second}
	var last error
	for range 20 {
		resp, err := c.Get(url)
		if err == nil {
			b, rerr := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return string(b)
			}
			last = rerr
			if last == nil {
				last = &httpStatusError{resp.StatusCode}
			}
		} else {
			last = err
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("GET %s: %v", url, last)
	return ""
}

type httpStatusError struct{ code int }

func (e *httpStatusError) Error() string { return http.StatusText(e.code) }

// lookup resolves name through the DNS server at server (ip:port), with retries.
func lookup(t *testing.T, server, name string) []string {
	t.Helper()
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
	var last error
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		addrs, err := r.LookupHost(ctx, name)
		cancel()
		if err == nil {
			return addrs
		}
		last = err
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("resolving %s at %s: %v", name, server, last)
	return nil
}
