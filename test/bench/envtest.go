//go:build bench

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	crlog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers"
)

// operatorEnv is what the operator benchmarks run against: envtest's
// kube-apiserver and etcd, one namespace, the operator's manager caching it,
// and a reconciler (driven by the benchmark, not by the manager) whose
// writes are counted.
type operatorEnv struct {
	direct client.Client // no cache
	mgr    ctrl.Manager
	rec    *controllers.NatsClusterReconciler
	writes *atomic.Int64
	stop   func()
}

// startOperatorEnv starts envtest (KUBEBUILDER_ASSETS, else bin/k8s), creates
// namespace ns in it and runs the manager until stop, which cancels the
// context it returns, waits for the manager to return and then stops envtest
// (as the signal handler does, through stopEnv).
func startOperatorEnv(ns string) (context.Context, *operatorEnv, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join("bin", "k8s", "1.37.2")
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, nil, fmt.Errorf("no kube-apiserver in %s (make k8s-binaries): %w", assets, err)
	}
	crlog.SetLogger(logr.Discard())
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	env := &envtest.Environment{
		CRDDirectoryPaths:        []string{filepath.Join("config", "crd", "bases")},
		ErrorIfCRDPathMissing:    true,
		BinaryAssetsDirectory:    assets,
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	ctx, cancel := context.WithCancel(context.Background())
	var mgrRunning sync.WaitGroup
	e := &operatorEnv{writes: &atomic.Int64{}, stop: func() {
		cancel() // the manager first, and wait until it has returned
		mgrRunning.Wait()
		stopEnv.Store((*envtest.Environment)(nil))
		if err := env.Stop(); err != nil {
			logf("  stop envtest: %v", err)
		}
	}}
	cfg, err := env.Start()
	if err != nil {
		e.stop()
		return nil, nil, fmt.Errorf("start envtest: %w", err)
	}
	stopEnv.Store(env)
	started := false
	defer func() {
		if !started {
			e.stop()
		}
	}()

	if e.direct, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, nil, err
	}
	if err := e.direct.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return nil, nil, err
	}
	e.mgr, err = ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controllers.CacheOptions([]string{ns}),
		Client:                 controllers.ClientOptions(),
	})
	if err != nil {
		return nil, nil, err
	}
	mgrRunning.Add(1)
	go func() {
		defer mgrRunning.Done()
		if err := e.mgr.Start(ctx); err != nil {
			logf("  manager: %v", err)
		}
	}()
	if !e.mgr.GetCache().WaitForCacheSync(ctx) {
		return nil, nil, fmt.Errorf("cache did not sync")
	}
	e.rec = &controllers.NatsClusterReconciler{
		Client:       countingClient{e.mgr.GetClient(), e.writes},
		APIReader:    e.mgr.GetAPIReader(),
		DefaultImage: controllers.DefaultImage("bench"),
		Digests:      controllers.HTTPDigestProber{},
	}
	started = true
	return ctx, e, nil
}
