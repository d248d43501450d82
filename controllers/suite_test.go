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

package controllers

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// The envtest suite runs a real kube-apiserver and etcd (built from Go modules
// by hack/k8s-binaries.sh; never downloaded) and one manager running the
// reconciler, watching only the namespaces below: each test owns one. The
// timing test uses a namespace the manager does not watch and drives its own
// reconciler, so that nothing else reconciles its cluster while it measures.
var watchedNamespaces = []string{
	"crd", "hashing", "workload", "rotation", "resync", "removal",
	"missing", "generated", "scaling", "validation", "paused", "propagation", "nudge", "nu-status", "takeover",
	"tls", "tls-users", "tls-secrets", "tls-exposed", "netpol", "monitoring",
	"natsusers", "nu-allowed", "nu-refused", "nu-conflict", "lastgood", "invalid", "accounts", "churn",
}

// operatorNamespace is where the suite's reconciler says the operator runs.
const operatorNamespace = "natsforge-system"

const unwatchedNamespace = "timing"

var (
	testEnv    *envtest.Environment
	restConfig *rest.Config
	k8s        client.Client // direct: no cache
	testScheme = runtime.NewScheme()
	reconciler *NatsClusterReconciler
	envErr     error // why the suite has no API server, if it has none
	// fakeDigest is the config_digest the fake /varz reports.
	fakeDigest atomic.Value
	// fakeRoutes is the routes count the fake /varz reports.
	fakeRoutes atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

// assetsDir is $KUBEBUILDER_ASSETS, or bin/k8s/1.37.2 of the repository.
func assetsDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	root, _ := filepath.Abs("..")
	return filepath.Join(root, "bin", "k8s", "1.37.2")
}

func runSuite(m *testing.M) int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true), zap.Level(zapLevel())))
	utilruntime.Must(clientgoscheme.AddToScheme(testScheme))
	utilruntime.Must(v1alpha1.AddToScheme(testScheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(testScheme))

	assets := assetsDir()
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		envErr = fmt.Errorf("no kube-apiserver in %s (run hack/k8s-binaries.sh or set KUBEBUILDER_ASSETS): %w", assets, err)
		return m.Run()
	}
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	cfg, err := testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "start envtest:", err)
		// Start may fail after the control plane is up (installing the CRDs).
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
		}
	}()
	restConfig = cfg

	k8s, err = client.New(cfg, client.Options{Scheme: testScheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, ns := range append(watchedNamespaces, unwatchedNamespace, manualNamespace, backoffNamespace) {
		if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			fmt.Fprintln(os.Stderr, "create namespace:", err)
			return 1
		}
	}

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testScheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  CacheOptions(watchedNamespaces),
		Client:                 ClientOptions(),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	varz := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		certificate := ""
		if r.TLS != nil {
			certificate = fakeTLS.servedFingerprint(r.TLS.ServerName)
		}
		_, _ = fmt.Fprintf(w, `{"routes":%d,"config_digest":%q,"tls_cert_sha256":%q}`, fakeRoutes.Load(), fakeDigest.Load(), certificate)
	}))
	varz.Listener = plainOrTLSListener{Listener: varz.Listener, config: &tls.Config{GetCertificate: fakeTLS.certificate}}
	varz.Start()
	defer varz.Close()
	_, port, _ := net.SplitHostPort(varz.Listener.Addr().String())
	varzPort, _ := strconv.Atoi(port)
	fakeDigest.Store("")

	reconciler = &NatsClusterReconciler{
		Client:       mgr.GetClient(),
		APIReader:    mgr.GetAPIReader(),
		Recorder:     mgr.GetEventRecorder("natsforge-operator"),
		DefaultImage: DefaultImage("test"),
		// Broker pods under envtest are objects only; a pod given the address
		// 127.0.0.1 is answered by this fake /varz.
		Digests:           HTTPDigestProber{Port: varzPort},
		OperatorNamespace: operatorNamespace,
		Cache:             mgr.GetCache(),
	}
	if err := reconciler.SetupWithManager(ctx, mgr); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return 1
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		fmt.Fprintln(os.Stderr, "cache did not sync")
		return 1
	}

	code := m.Run()
	cancel()
	if err := <-done; err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
	}
	return code
}

// zapLevel logs errors only, unless NATSFORGE_TEST_LOG is set.
func zapLevel() zapcore.Level {
	if os.Getenv("NATSFORGE_TEST_LOG") != "" {
		return zapcore.DebugLevel
	}
	return zapcore.ErrorLevel
}

// needAPIServer fails a test when the suite could not find the binaries: a
// controller test that silently skips tests nothing. Only -short skips it.
func needAPIServer(t *testing.T) {
	t.Helper()
	if envErr == nil {
		return
	}
	if testing.Short() {
		t.Skip(envErr)
	}
	t.Fatal(envErr)
}

// eventually polls check until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		select {
		case <-deadline:
			t.Fatalf("after %v: %v", timeout, err)
		case <-tick.C:
		}
	}
}
