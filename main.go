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

// Command manager is the natsforge operator: it reconciles NatsCluster objects
// into running clusters of natsforge brokers.
package main

import (
	"context"
	"flag"
	"os"
	"runtime/debug"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers"
)

// version is set at build time: -ldflags "-X main.version=v0.1.0". It picks the
// default broker image.
var version = "dev"

func main() {
	var (
		metricsAddr     string
		secureMetrics   bool
		enableHTTP2     bool
		probeAddr       string
		leaderElect     bool
		watchNamespaces string
		brokerImage     string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8443", "The address the metrics endpoint binds to; \"0\" turns it off.")
	flag.BoolVar(&secureMetrics, "metrics-secure", true, "Serve metrics over HTTPS to callers the API server authenticates and authorizes for GET /metrics; false serves plain HTTP to anyone.")
	flag.BoolVar(&enableHTTP2, "enable-http2", false, "Serve HTTP/2 on the metrics endpoint (off: HTTP/2 stream reset attacks).")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the health probe endpoint binds to.")
	flag.BoolVar(&leaderElect, "leader-elect", false, "Enable leader election, so that only one manager is active at a time.")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces to watch; empty watches all namespaces.")
	flag.StringVar(&brokerImage, "broker-image", controllers.DefaultImage(version), "The broker image of NatsClusters that set no spec.image.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	switch limit, err := controllers.MemoryLimit(os.Getenv); {
	case err != nil:
		log.Error(err, "no Go memory limit set")
	case limit > 0:
		debug.SetMemoryLimit(limit)
		log.Info("Go memory limit set to nine tenths of the container's", "bytes", limit)
	}

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                 scheme,
		Metrics:                controllers.MetricsOptions(metricsAddr, secureMetrics, enableHTTP2),
		HealthProbeBindAddress: probeAddr,
		LeaderElection:         leaderElect,
		LeaderElectionID:       "natsforge-operator.natsforge.io",
		// The operator exits right after the manager stops, so it can hand the lease
		// over at once instead of making a new pod wait for it to expire.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         controllers.CacheOptions(splitList(watchNamespaces)),
		Client:                        controllers.ClientOptions(),
	})
	if err != nil {
		log.Error(err, "create manager")
		os.Exit(1)
	}

	ctx := ctrl.SetupSignalHandler()
	if err := setup(ctx, mgr, brokerImage); err != nil {
		log.Error(err, "set up controllers")
		os.Exit(1)
	}
	log.Info("starting manager", "version", version, "brokerImage", brokerImage, "watchNamespaces", watchNamespaces)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "run manager")
		os.Exit(1)
	}
}

func setup(ctx context.Context, mgr ctrl.Manager, brokerImage string) error {
	r := &controllers.NatsClusterReconciler{
		Client:       mgr.GetClient(),
		APIReader:    mgr.GetAPIReader(),
		Recorder:     mgr.GetEventRecorder("natsforge-operator"),
		DefaultImage: brokerImage,
		Digests:      controllers.HTTPDigestProber{},
		Cache:        mgr.GetCache(),
		// Each cluster's NetworkPolicy admits this namespace to /varz.
		OperatorNamespace: controllers.OperatorNamespace(),
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	return mgr.AddReadyzCheck("readyz", healthz.Ping)
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
