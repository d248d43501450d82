//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
)

// Operator install: E2E_INSTALL=helm (default) helm-installs charts/natsforge once per
// run with the images of E2E_IMAGE_PREFIX/E2E_IMAGE_TAG; E2E_INSTALL=none uses an
// operator that is already installed.
var (
	installOnce sync.Once
	installErr  error
	clientOnce  sync.Once
	clientErr   error
	crClient    client.Client
)

const operatorNamespace = "natsforge-system"

func helmBin() string {
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	return filepath.Join(repoRoot, "bin", "helm-"+envOr("HELM_VERSION", "v3.22.0"))
}

// typedClient returns a client that knows the NatsCluster types (made once).
func typedClient(t *testing.T) client.Client {
	t.Helper()
	clientOnce.Do(func() {
		scheme := runtime.NewScheme()
		if err := clientgoscheme.AddToScheme(scheme); err != nil {
			clientErr = err
			return
		}
		if err := natsforgev1alpha1.AddToScheme(scheme); err != nil {
			clientErr = err
			return
		}
		crClient, clientErr = client.New(restConfig, client.Options{Scheme: scheme})
	})
	if clientErr != nil {
		t.Fatal(clientErr)
	}
	return crClient
}

// ensureOperator installs the operator (once) and returns a client that knows the
// NatsCluster types.
func ensureOperator(t *testing.T) client.Client {
	t.Helper()
	c := typedClient(t)
	installOnce.Do(func() {
		if envOr("E2E_INSTALL", "helm") == "none" {
			return
		}
		cmd := exec.Command(helmBin(), "upgrade", "--install", "natsforge", filepath.Join(repoRoot, "charts", "natsforge"),
			"--namespace", operatorNamespace, "--create-namespace", "--wait", "--timeout", "5m",
			"--set", "image.repository="+imagePrefix+"/operator", "--set", "image.tag="+imageTag,
			"--set", "broker.image.repository="+imagePrefix+"/broker", "--set", "broker.image.tag="+imageTag)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath)
		out, err := cmd.CombinedOutput()
		if err != nil {
			installErr = fmt.Errorf("helm install: %v\n%s", err, out)
		}
	})
	if installErr != nil {
		t.Fatal(installErr)
	}
	return c
}

// newNatsCluster creates a Secret with myname's password and a NatsCluster of
// replicas pods with the users myname (that Secret) and any extra users, with
// spec.tls.mode Disabled: these tests (and the workload tests) speak plaintext
// to the pods; TLS, the default, is what tls_test.go covers (newTLSNatsCluster).
func newNatsCluster(t *testing.T, c client.Client, ns, name string, replicas int32, extra ...natsforgev1alpha1.User) *natsforgev1alpha1.NatsCluster {
	t.Helper()
	return createNatsCluster(t, c, ns, name, replicas, natsforgev1alpha1.TLSSpec{Mode: natsforgev1alpha1.TLSModeDisabled}, extra...)
}

// newTLSNatsCluster is newNatsCluster with spec.tls as given (the zero value:
// the API's default, mode Operator).
func newTLSNatsCluster(t *testing.T, c client.Client, ns, name string, replicas int32, tlsSpec natsforgev1alpha1.TLSSpec, extra ...natsforgev1alpha1.User) *natsforgev1alpha1.NatsCluster {
	t.Helper()
	return createNatsCluster(t, c, ns, name, replicas, tlsSpec, extra...)
}

func createNatsCluster(t *testing.T, c client.Client, ns, name string, replicas int32, tlsSpec natsforgev1alpha1.TLSSpec, extra ...natsforgev1alpha1.User) *natsforgev1alpha1.NatsCluster {
	t.Helper()
	ctx := context.Background()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-myname"},
		StringData: map[string]string{"password": "password"},
	}
	if err := c.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	nc := &natsforgev1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: natsforgev1alpha1.NatsClusterSpec{
			Replicas: &replicas,
			TLS:      tlsSpec,
			Auth: natsforgev1alpha1.AuthSpec{Users: append([]natsforgev1alpha1.User{{
				Name:              "myname",
				PasswordSecretRef: &natsforgev1alpha1.SecretKeyReference{Name: secret.Name, Key: "password"},
			}}, extra...)},
		},
	}
	if err := c.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	return nc
}

// waitReady waits for the NatsCluster's Ready condition.
func waitReady(t *testing.T, c client.Client, nc *natsforgev1alpha1.NatsCluster, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	waitFor(t, timeout, "NatsCluster "+nc.Name+" Ready", func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(nc), nc); err != nil {
			return false, err
		}
		return meta.IsStatusConditionTrue(nc.Status.Conditions, natsforgev1alpha1.ConditionReady), nil
	})
	t.Logf("NatsCluster %s Ready in %s", nc.Name, time.Since(start).Round(time.Millisecond))
}

// brokerPods lists the running pods of the NatsCluster's StatefulSet.
func brokerPods(t *testing.T, c client.Client, nc *natsforgev1alpha1.NatsCluster) []corev1.Pod {
	t.Helper()
	ctx := context.Background()
	var sts appsv1.StatefulSet
	if err := c.Get(ctx, client.ObjectKeyFromObject(nc), &sts); err != nil {
		t.Fatalf("StatefulSet %s: %v", nc.Name, err)
	}
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(nc.Namespace), client.MatchingLabels(sts.Spec.Selector.MatchLabels)); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func serviceAddr(t *testing.T, c client.Client, nc *natsforgev1alpha1.NatsCluster) string {
	t.Helper()
	var svc corev1.Service
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(nc), &svc); err != nil {
		t.Fatalf("Service %s: %v", nc.Name, err)
	}
	return net.JoinHostPort(svc.Spec.ClusterIP, "4222")
}

func connect(addr, user, pass string, opts ...nats.Option) (*nats.Conn, error) {
	// Only addr: a refused CONNECT must not go on to the peers the broker
	// names in its INFO (a peer not yet reloaded could answer in its place).
	opts = append([]nats.Option{nats.UserInfo(user, pass), nats.Timeout(3 * time.Second), nats.NoReconnect(), nats.IgnoreDiscoveredServers()}, opts...)
	return nats.Connect("nats://"+addr, opts...)
}

// connectService connects through a Service's ClusterIP. Ready says the pods
// are; kube-proxy programs the Service's new endpoints a moment later (its
// sync runs at most once a second), hence the retries.
func connectService(t *testing.T, addr, user, pass string) *nats.Conn {
	t.Helper()
	var conn *nats.Conn
	waitFor(t, 15*time.Second, "a connection through the Service at "+addr, func(context.Context) (bool, error) {
		var err error
		conn, err = connect(addr, user, pass)
		return err == nil, err
	})
	return conn
}

func isAuthError(err error) bool {
	return err != nil && (errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization violation"))
}

// TestNatsClusterConnect: a 3-pod NatsCluster becomes Ready; nats.go connects with
// the right password and is refused with a wrong one; a message published on one
// pod reaches a subscriber on another.
func TestNatsClusterConnect(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "demo", 3)
	waitReady(t, c, nc, 5*time.Minute)

	svc := serviceAddr(t, c, nc)
	connectService(t, svc, "myname", "password").Close()
	if _, err := connect(svc, "myname", "wrong"); !isAuthError(err) {
		t.Fatalf("connect with a wrong password: %v, want an authorization violation", err)
	}

	pods := brokerPods(t, c, nc)
	if len(pods) != 3 {
		t.Fatalf("%d broker pods, want 3", len(pods))
	}
	for i := range pods {
		from, to := pods[i], pods[(i+1)%len(pods)]
		// Routes may still be forming right after Ready (peers' DNS names appear
		// as the pods start, and resolvers cache a miss for up to 30 s).
		d := waitDelivered(t, clientAddr(from), clientAddr(to), "e2e.mesh", 60*time.Second)
		t.Logf("%s -> %s: delivered after %s", from.Name, to.Name, d.Round(time.Millisecond))
	}
}

// TestPasswordRotation: after the user's Secret changes, every pod refuses the old
// password and accepts the new one within 60 s (median over several rotations in
// the log), without pod restarts, and another user's connections stay up.
func TestPasswordRotation(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "rot", 3, natsforgev1alpha1.User{Name: "other"})
	waitReady(t, c, nc, 5*time.Minute)
	pods := brokerPods(t, c, nc)

	// "other" has a generated password in <cluster>-user-other; keep one connection
	// to each pod open through the rotations and count disconnects.
	var otherSecret corev1.Secret
	waitFor(t, time.Minute, "generated Secret of user other", func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: nc.Name + "-user-other"}, &otherSecret)
		return err == nil, client.IgnoreNotFound(err)
	})
	var disconnects atomic.Int32
	for _, p := range pods {
		conn, err := connect(net.JoinHostPort(p.Status.PodIP, "4222"), "other", string(otherSecret.Data["password"]),
			nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnects.Add(1) }))
		if err != nil {
			t.Fatalf("user other on %s: %v", p.Name, err)
		}
		defer conn.Close()
	}
	restarts := func() (n int32) {
		for _, p := range brokerPods(t, c, nc) {
			for _, cs := range p.Status.ContainerStatuses {
				n += cs.RestartCount
			}
		}
		return n
	}
	restartsBefore := restarts()

	old := "password"
	var took []time.Duration
	for i := 1; i <= 3; i++ {
		next := fmt.Sprintf("rotated-%d-%d", i, time.Now().UnixNano())
		var s corev1.Secret
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: nc.Name + "-myname"}, &s); err != nil {
			t.Fatal(err)
		}
		s.Data = map[string][]byte{"password": []byte(next)}
		start := time.Now()
		if err := c.Update(context.Background(), &s); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 60*time.Second, fmt.Sprintf("rotation %d on every pod", i), func(context.Context) (bool, error) {
			for _, p := range pods {
				addr := net.JoinHostPort(p.Status.PodIP, "4222")
				if conn, err := connect(addr, "myname", old); err == nil {
					conn.Close()
					return false, nil
				}
				conn, err := connect(addr, "myname", next)
				if err != nil {
					return false, nil
				}
				conn.Close()
			}
			return true, nil
		})
		took = append(took, time.Since(start))
		old = next
	}
	slices.Sort(took)
	t.Logf("rotation: every pod refuses the old password and accepts the new one after %v (median %v)", took, took[len(took)/2])
	if d := disconnects.Load(); d != 0 {
		t.Errorf("user other saw %d disconnects during rotations", d)
	}
	if r := restarts(); r != restartsBefore {
		t.Errorf("broker containers restarted during rotations (%d -> %d)", restartsBefore, r)
	}
}

// TestGeneratedPasswordUser: a user without passwordSecretRef gets an owned Secret
// whose url connects.
func TestGeneratedPasswordUser(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "gen", 1, natsforgev1alpha1.User{Name: "app"})
	waitReady(t, c, nc, 5*time.Minute)
	var s corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: nc.Name + "-user-app"}, &s); err != nil {
		t.Fatal(err)
	}
	if string(s.Data["username"]) != "app" || len(s.Data["password"]) == 0 || len(s.Data["url"]) == 0 {
		t.Fatalf("generated Secret has keys %v", keys(s.Data))
	}
	if !metav1.IsControlledBy(&s, nc) {
		t.Errorf("generated Secret is not owned by the NatsCluster")
	}
	// The url names the Service; from outside the cluster's DNS, swap in its ClusterIP.
	// Retried: kube-proxy programs the Service a moment after Ready.
	waitFor(t, 15*time.Second, "a connection with the url of the generated Secret", func(context.Context) (bool, error) {
		conn, err := nats.Connect(string(s.Data["url"]), nats.Timeout(3*time.Second), nats.NoReconnect(),
			nats.SetCustomDialer(serviceDialer{t: t, c: c, ns: ns}))
		if err != nil {
			return false, err
		}
		conn.Close()
		return true, nil
	})
}

// serviceDialer dials "<svc>.<ns>...:port" at the Service's ClusterIP.
type serviceDialer struct {
	t  *testing.T
	c  client.Client
	ns string
}

func (d serviceDialer) Dial(network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(host) == nil {
		var svc corev1.Service
		name := strings.Split(host, ".")[0]
		if err := d.c.Get(context.Background(), client.ObjectKey{Namespace: d.ns, Name: name}, &svc); err != nil {
			return nil, err
		}
		host = svc.Spec.ClusterIP
	}
	return net.DialTimeout(network, net.JoinHostPort(host, port), 3*time.Second)
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
