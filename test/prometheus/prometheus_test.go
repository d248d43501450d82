// Package prometheus runs a real Prometheus (Debian's prometheus package)
// against real brokers and the real operator, and every query of the Grafana
// dashboard the chart ships against it.
//
// The operator is the manager from main.go's pieces, in process, against
// envtest (a real kube-apiserver and etcd). The brokers are three
// natsforge-broker processes on 127.0.0.1, .2 and .3 loading the very
// config the operator wrote, so that the operator's /varz probe sees its own
// config digest, as in a cluster; each runs in a mount namespace of its own
// where /etc holds the TLS files the config names (/etc/nats-tls, as the
// pod's Secret volumes) and an /etc/hosts that gives the route names the
// certificates carry to the loopback addresses. The test plays the kubelet:
// it copies the config Secret into the brokers' config files when it changes.
package prometheus

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/controllers"
	"github.com/natsforge/natsforge/controllers/resources"
	"github.com/natsforge/natsforge/test/internal/promharness"
)

var (
	repoRoot   string
	restConfig *rest.Config
	scheme     = k8sruntime.NewScheme()
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	os.Exit(runWithAPIServer(m))
}

func runWithAPIServer(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		version := os.Getenv("KUBE_VERSION")
		if version == "" {
			version = "1.37.2"
		}
		assets = filepath.Join(repoRoot, "bin", "k8s", version)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	cfg, err := env.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "starting envtest (binaries from %s; run `make k8s-binaries`): %v\n", assets, err)
		return 1
	}
	defer func() { _ = env.Stop() }()
	restConfig = cfg
	return m.Run()
}

const (
	ns      = "obs"
	cluster = "demo"
	brokers = 3
)

// brokerIP is where broker i listens: a loopback address of its own.
func brokerIP(i int) string { return fmt.Sprintf("127.0.0.%d", i+1) }

// freePort finds a TCP port free on every broker address.
func freePort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		free := true
		for i := 1; i < brokers; i++ {
			l, err := net.Listen("tcp", net.JoinHostPort(brokerIP(i), strconv.Itoa(port)))
			if err != nil {
				free = false
				break
			}
			_ = l.Close()
		}
		if free {
			return port
		}
	}
	t.Fatal("no port free on every broker address")
	return 0
}

// poll calls cond until it returns nil or the deadline passes.
func poll(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, %s: %v", d, what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startOperator runs the operator's manager in process, serving its metrics
// on plain HTTP at the returned address; the digest prober asks pods on
// monitorPort.
func startOperator(t *testing.T, monitorPort int) (client.Client, string) {
	t.Helper()
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                controllers.MetricsOptions(metricsAddr, false, false),
		HealthProbeBindAddress: "0",
		Cache:                  controllers.CacheOptions(nil),
		Client:                 controllers.ClientOptions(),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &controllers.NatsClusterReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("natsforge-operator"),
		DefaultImage: controllers.DefaultImage("test"), Digests: controllers.HTTPDigestProber{Port: monitorPort},
		Cache: mgr.GetCache(),
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("manager: %v", err)
		}
	})
	k8s, err := client.New(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return k8s, metricsAddr
}

// broker is one natsforge-broker process.
type broker struct {
	i      int
	config string // the file the test writes the config Secret into
	cmd    *exec.Cmd
	logs   *bytes.Buffer
	mu     sync.Mutex
}

func (b *broker) log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.logs.String()
}

type lockedWriter struct{ b *broker }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	return w.b.logs.Write(p)
}

// startBroker runs broker i on its loopback address in a mount namespace
// of its own: /etc there is a tmpfs with the TLS files at the paths the
// config names and the route names in /etc/hosts.
func startBroker(t *testing.T, bin string, i int, dir, tlsDir string, ports [3]int, routes []string) *broker {
	t.Helper()
	var hosts strings.Builder
	for j := range brokers {
		fmt.Fprintf(&hosts, "%s %s\n", brokerIP(j), routeHost(j))
	}
	b := &broker{i: i, config: filepath.Join(dir, fmt.Sprintf("nats-%d.conf", i)), logs: &bytes.Buffer{}}
	script := `set -e
mount -t tmpfs natsforge-etc /etc
mkdir -p /etc/nats-tls
cp -r "$TLS_DIR/client" "$TLS_DIR/routes" /etc/nats-tls/
printf '%s' "$HOSTS" > /etc/hosts
exec "$@"`
	args := []string{"-m", "--propagation", "private", "sh", "-c", script, "sh", bin,
		"-c", b.config, "-a", brokerIP(i), "-p", strconv.Itoa(ports[0]), "-ms", strconv.Itoa(ports[2]),
		"--cluster", fmt.Sprintf("nats://%s:%d", brokerIP(i), ports[1]), "--routes", strings.Join(routes, ",")}
	b.cmd = exec.Command("unshare", args...)
	b.cmd.Env = append(os.Environ(), "TLS_DIR="+tlsDir, "HOSTS="+hosts.String())
	b.cmd.Stderr = lockedWriter{b}
	b.cmd.Stdout = lockedWriter{b}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("start broker %d: %v", i, err)
	}
	t.Cleanup(func() {
		_ = b.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = b.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = b.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("broker %d:\n%s", i, b.log())
		}
	})
	return b
}

func routeHost(i int) string {
	return fmt.Sprintf("%s.%s-routes.%s.svc", resources.PodName(&v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Name: cluster}}, int32(i)), cluster, ns)
}

// writeFileAtomic replaces path as the kubelet updates a Secret volume:
// the reader sees the old file or the new one, never half of one.
func writeFileAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// startPrometheus runs Debian's prometheus with its own data directory on a
// free loopback port, scraping the brokers over HTTPS (verified against the
// cluster's CA and the client Service's name, as the PodMonitor says) and
// the operator every second.
func startPrometheus(t *testing.T, caFile string, monitorPort int, operatorAddr string) string {
	t.Helper()
	var targets strings.Builder
	for i := range brokers {
		fmt.Fprintf(&targets, "      - targets: ['%s:%d']\n        labels: {namespace: %s, pod: %s}\n",
			brokerIP(i), monitorPort, ns, resources.PodName(&v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Name: cluster}}, int32(i)))
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: brokers
    scheme: https
    tls_config:
      ca_file: %s
      server_name: %s.%s.svc
    static_configs:
%s  - job_name: operator
    static_configs:
      - targets: ['%s']
`, caFile, cluster, ns, targets.String(), operatorAddr)
	return promharness.Start(t, config)
}

func secretData(t *testing.T, k8s client.Client, name string) map[string][]byte {
	t.Helper()
	var s corev1.Secret
	poll(t, 60*time.Second, "Secret "+name, func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s)
	})
	return s.Data
}

func setPassword(t *testing.T, k8s client.Client, name, password string) {
	t.Helper()
	poll(t, 30*time.Second, "update Secret "+name, func() error {
		var s corev1.Secret
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
			return err
		}
		s.Data = map[string][]byte{"password": []byte(password)}
		return k8s.Update(context.Background(), &s)
	})
}

func condition(k8s client.Client, typ string) (*metav1.Condition, error) {
	var nc v1alpha1.NatsCluster
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: cluster}, &nc); err != nil {
		return nil, err
	}
	for i := range nc.Status.Conditions {
		if nc.Status.Conditions[i].Type == typ {
			return &nc.Status.Conditions[i], nil
		}
	}
	return nil, fmt.Errorf("no condition %s yet", typ)
}

// waitPropagated waits until the operator reports every broker serving
// config.
func waitPropagated(t *testing.T, k8s client.Client, config []byte) {
	t.Helper()
	want := resources.ConfigDigest(config)
	poll(t, 90*time.Second, "every broker serving the current config", func() error {
		c, err := condition(k8s, v1alpha1.ConditionConfigPropagated)
		if err != nil {
			return err
		}
		var nc v1alpha1.NatsCluster
		_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: cluster}, &nc)
		if nc.Status.ConfigHash != want {
			return fmt.Errorf("status.configHash %s, want %s", nc.Status.ConfigHash, want)
		}
		if c.Status != metav1.ConditionTrue || c.ObservedGeneration != nc.Generation {
			return fmt.Errorf("%s %s: %s", c.Status, c.Reason, c.Message)
		}
		return nil
	})
}

func TestEveryDashboardPanelHasDataInARealPrometheusAfterARotationAndTraffic(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatal("no unshare (util-linux): the brokers need mount namespaces of their own")
	}
	bin := filepath.Join(t.TempDir(), "natsforge-broker")
	build := exec.Command("go", "build", "-o", bin, "github.com/natsforge/natsforge/broker/cmd/natsforge-broker")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatalf("go build natsforge-broker: %v", err)
	}
	ports := [3]int{freePort(t), freePort(t), freePort(t)} // client, cluster, monitoring
	k8s, operatorAddr := startOperator(t, ports[2])
	ctx := context.Background()

	// The cluster: TLS from the operator's CA (the default), a user whose
	// password Secret exists and one whose does not.
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alice-pw"},
		Data: map[string][]byte{"password": []byte("alice-1")}}); err != nil {
		t.Fatal(err)
	}
	nc := &v1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: cluster},
		Spec: v1alpha1.NatsClusterSpec{
			Replicas: ptr.To[int32](brokers),
			Auth: v1alpha1.AuthSpec{BcryptCost: 6, Users: []v1alpha1.User{
				{Name: "alice", PasswordSecretRef: &v1alpha1.SecretKeyReference{Name: "alice-pw"}},
				{Name: "bob", PasswordSecretRef: &v1alpha1.SecretKeyReference{Name: "bob-pw"}},
			}},
		},
	}
	if err := k8s.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}

	// The kubelet's part: Secret volumes as files.
	dir := t.TempDir()
	tlsDir := filepath.Join(dir, "tls")
	for sub, secret := range map[string]string{"client": resources.ServerTLSSecretName(nc), "routes": resources.RoutesTLSSecretName(nc)} {
		if err := os.MkdirAll(filepath.Join(tlsDir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
		for k, v := range secretData(t, k8s, secret) {
			if err := os.WriteFile(filepath.Join(tlsDir, sub, k), v, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	caFile := filepath.Join(tlsDir, "client", "ca.crt")
	configOf := func() []byte {
		t.Helper()
		var data []byte
		poll(t, 60*time.Second, "the config Secret", func() error {
			data = secretData(t, k8s, resources.ConfigSecretName(nc))[resources.ConfigKey]
			if len(data) == 0 {
				return fmt.Errorf("empty")
			}
			return nil
		})
		return data
	}
	config := configOf()
	first := filepath.Join(dir, "first.conf")
	writeFileAtomic(t, first, config)
	opts, _, err := conf.LoadFile(first)
	if err != nil {
		t.Fatalf("the operator's config: %v", err)
	}
	// The routes as rendered (credentials and the pods' route names), on this
	// test's cluster port.
	var routes []string
	for _, r := range opts.Cluster.Routes {
		u, err := url.Parse(r)
		if err != nil {
			t.Fatal(err)
		}
		u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(ports[1]))
		routes = append(routes, u.String())
	}
	var bs []*broker
	for i := range brokers {
		b := startBroker(t, bin, i, dir, tlsDir, ports, routes)
		writeFileAtomic(t, b.config, config)
		bs = append(bs, b)
	}
	_ = bs

	// The pods the StatefulSet controller would make, ready at the brokers'
	// addresses, so that the operator asks them which config they serve.
	template := resources.StatefulSet(nc, "natsforge/broker:test").Spec.Template
	for i := range brokers {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.PodName(nc, int32(i)), Labels: template.Labels},
			Spec: template.Spec}
		pod.Spec.AutomountServiceAccountToken = ptr.To(false)
		if err := k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}}); err != nil && i == 0 {
			_ = err // may exist already
		}
		if err := k8s.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		pod.Status.PodIP = brokerIP(i)
		pod.Status.PodIPs = []corev1.PodIP{{IP: brokerIP(i)}}
		pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		if err := k8s.Status().Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	waitPropagated(t, k8s, config)
	promStart := time.Now()
	promAddr := startPrometheus(t, caFile, ports[2], operatorAddr)

	// Traffic: clients over TLS on two brokers, messages across the routes,
	// and wrong passwords.
	ca := x509.NewCertPool()
	pem, _ := os.ReadFile(caFile)
	ca.AppendCertsFromPEM(pem)
	tlsConfig := &tls.Config{RootCAs: ca, ServerName: cluster + "." + ns + ".svc", MinVersion: tls.VersionTLS12}
	connect := func(i int, password string) (*nats.Conn, error) {
		return nats.Connect(fmt.Sprintf("tls://%s:%d", brokerIP(i), ports[0]), nats.UserInfo("alice", password),
			nats.Secure(tlsConfig), nats.NoReconnect(), nats.Timeout(10*time.Second))
	}
	traffic := func(password string) {
		t.Helper()
		sub, err := connect(0, password)
		if err != nil {
			t.Fatalf("alice on broker 0: %v", err)
		}
		defer sub.Close()
		pub, err := connect(1, password)
		if err != nil {
			t.Fatalf("alice on broker 1: %v", err)
		}
		defer pub.Close()
		s, err := sub.SubscribeSync("PUBLIC.orders")
		if err != nil {
			t.Fatal(err)
		}
		_ = sub.Flush()
		poll(t, 10*time.Second, "interest across the route", func() error {
			if err := pub.Publish("PUBLIC.orders", []byte("ping")); err != nil {
				return err
			}
			_, err := s.NextMsg(200 * time.Millisecond)
			return err
		})
		for range 200 {
			if err := pub.Publish("PUBLIC.orders", []byte("an order of 32 bytes, or close..")); err != nil {
				t.Fatal(err)
			}
		}
		_ = pub.Flush()
		for range 200 {
			if _, err := s.NextMsg(5 * time.Second); err != nil {
				t.Fatalf("a message did not arrive: %v", err)
			}
		}
		if nc, err := connect(2, "wrong"); err == nil {
			nc.Close()
			t.Fatal("a wrong password was let in")
		}
	}
	// Clients that stay connected with a password until it rotates: the
	// brokers cut them when they load the new config.
	hold := func(password string) []*nats.Conn {
		t.Helper()
		var held []*nats.Conn
		for i := range brokers {
			for range i + 2 {
				nc, err := connect(i, password)
				if err != nil {
					t.Fatalf("alice on broker %d: %v", i, err)
				}
				t.Cleanup(nc.Close)
				held = append(held, nc)
			}
		}
		return held
	}
	traffic("alice-1")
	held := hold("alice-1")

	// Prometheus scrapes the operator before anything rotates, so that
	// the rotations are increases it sees.
	poll(t, 30*time.Second, "Prometheus to scrape the operator and every broker", func() error {
		got, err := promharness.Query(promAddr, `natsforge_rotation_propagation_seconds_count`)
		if err != nil || len(got) == 0 {
			return fmt.Errorf("operator: %v %v", got, err)
		}
		got, err = promharness.Query(promAddr, `up{job="brokers"} == 1`)
		if err != nil || len(got) != brokers {
			return fmt.Errorf("brokers up: %v %v", got, err)
		}
		return nil
	})

	// Rotations: the Secret changes, the operator writes a new config, the
	// kubelet (this test) delivers it, the brokers reload it, the operator
	// sees every broker serve it; clients of the old password are cut and
	// come back with the new one.
	rotations := 3
	if n, err := strconv.Atoi(os.Getenv("NATSFORGE_OBSERVABILITY_ROTATIONS")); err == nil && n > 0 {
		rotations = n
	}
	// For the picture only: how long the clients stay between rotations,
	// so that a 1 s scrape shows them (the test itself waits on conditions).
	pause, _ := time.ParseDuration(os.Getenv("NATSFORGE_OBSERVABILITY_PAUSE"))
	for n := 2; n <= rotations+1; n++ {
		time.Sleep(pause)
		setPassword(t, k8s, "alice-pw", fmt.Sprintf("alice-%d", n))
		var rotated []byte
		poll(t, 60*time.Second, "a new config", func() error {
			rotated = configOf()
			if bytes.Equal(rotated, config) {
				return fmt.Errorf("unchanged")
			}
			return nil
		})
		config = rotated
		for _, b := range bs {
			writeFileAtomic(t, b.config, rotated)
		}
		waitPropagated(t, k8s, rotated)
		poll(t, 10*time.Second, "the clients of the old password cut", func() error {
			for _, nc := range held {
				if !nc.IsClosed() {
					return fmt.Errorf("%s still connected", nc.ConnectedUrl())
				}
			}
			return nil
		})
		traffic(fmt.Sprintf("alice-%d", n))
		held = hold(fmt.Sprintf("alice-%d", n))
	}

	// Prometheus has scraped the rotation.
	poll(t, 60*time.Second, "Prometheus to have the rotation", func() error {
		got, err := promharness.Query(promAddr, "natsforge_rotation_propagation_seconds_count")
		if err != nil {
			return err
		}
		if len(got) == 0 || got[0].Float() < float64(rotations) {
			return fmt.Errorf("%v", got)
		}
		return nil
	})

	// Every panel's every query returns a number, in Grafana's words with
	// $__rate_interval at a window holding many 1 s scrapes.
	queries, err := promharness.DashboardQueries(repoRoot, "1m")
	if err != nil {
		t.Fatal(err)
	}
	panels := map[string]bool{}
	for _, q := range queries {
		panels[q.Panel] = true
	}
	if len(panels) < 10 {
		t.Fatalf("only %d panels with queries", len(panels))
	}
	for _, q := range queries {
		poll(t, 30*time.Second, fmt.Sprintf("panel %q: %s", q.Panel, q.PromQL), func() error {
			return promharness.HasNumber(promAddr, q.PromQL)
		})
	}
	// And per pod where the panel says so.
	got, err := promharness.Query(promAddr, `sum by (pod) (gnatsd_varz_connections)`)
	if err != nil || len(got) != brokers {
		t.Errorf("connections per pod: %v %v", got, err)
	}
	// docs/observability.png: `make observability-chart` sets these.
	if data, png := os.Getenv("NATSFORGE_OBSERVABILITY_DATA"), os.Getenv("NATSFORGE_OBSERVABILITY_PNG"); data != "" || png != "" {
		r := fetchRanges(t, promAddr, promStart)
		if data != "" {
			saveRanges(t, r, data)
		}
		if png != "" {
			renderChart(t, r, png)
		}
	}
}
