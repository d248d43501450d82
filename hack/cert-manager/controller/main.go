// Command cert-manager-controller runs cert-manager's certificate controllers, built
// from the Go module github.com/cert-manager/cert-manager (pinned in go.mod here).
//
// Why a main of our own: cert-manager's own main (cmd/controller) is a separate Go
// module, github.com/cert-manager/cert-manager/cmd/controller, that is never
// published (its go.mod replaces the root module with ../../, and the module proxy
// answers 404 for it), and the root module's zip leaves nested modules out. Every
// controller lives in the root module though (pkg/controller/...), registering
// itself with pkg/controller in its init; this file does what cmd/controller/app
// does with them: one ContextFactory, construct each enabled controller, run it,
// then start the shared informers it registered.
//
// Compiled in: the issuers and clusterissuers controllers with the SelfSigned and
// CA issuer types, the CertificateRequest approver and signers for those types, and
// the whole Certificate lifecycle (trigger, key manager, request manager, issuing,
// readiness, revision manager). Not compiled in: ACME, Vault, Venafi (they pull in
// every cloud DNS SDK and need the outside world), the ingress/gateway shims, the
// webhook and cainjector.
//
//	cert-manager-controller --kubeconfig FILE [--health-address 127.0.0.1:10270] [-v 2]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	controllerpkg "github.com/cert-manager/cert-manager/pkg/controller"
	logf "github.com/cert-manager/cert-manager/pkg/logs"

	// Controllers and issuer types register themselves in their init.
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	_ "github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	_ "github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	_ "github.com/cert-manager/cert-manager/pkg/controller/issuers"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the cluster (empty: in-cluster config)")
	resourceNS := flag.String("cluster-resource-namespace", "cert-manager", "namespace of the Secrets that ClusterIssuers refer to")
	namespace := flag.String("namespace", "", "watch only this namespace (empty: all)")
	workers := flag.Int("workers", 5, "workers per controller")
	health := flag.String("health-address", "", "serve /healthz here (200 once the informers have synced; empty: off)")
	klog.InitFlags(nil)
	flag.Parse()
	logf.InitLogs()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx = logf.NewContext(ctx, klog.Background(), "cert-manager-controller")
	if err := run(ctx, *kubeconfig, *resourceNS, *namespace, *health, *workers); err != nil {
		fmt.Fprintf(os.Stderr, "cert-manager-controller: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, kubeconfig, resourceNS, namespace, health string, workers int) error {
	factory, err := controllerpkg.NewContextFactory(ctx, controllerpkg.ContextOptions{
		Kubeconfig:         kubeconfig,
		Namespace:          namespace,
		KubernetesAPIQPS:   20,
		KubernetesAPIBurst: 50,
		IssuerOptions:      controllerpkg.IssuerOptions{ClusterResourceNamespace: resourceNS},
		// cert-manager's defaults (flags of cmd/controller).
		CertificateOptions: controllerpkg.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: time.Hour,
			CertificateRequestMaximumBackoffDuration: 32 * time.Hour,
		},
		SchedulerOptions: controllerpkg.SchedulerOptions{MaxConcurrentChallenges: 60},
	})
	if err != nil {
		return err
	}

	names := make([]string, 0, len(controllerpkg.Known()))
	for n := range controllerpkg.Known() {
		names = append(names, n)
	}
	slices.Sort(names)
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	for _, n := range names {
		if namespace != "" && n == "clusterissuers" {
			continue // as cmd/controller: ClusterIssuers need the whole cluster
		}
		c, err := controllerpkg.Known()[n](factory)
		if err != nil {
			return fmt.Errorf("controller %s: %w", n, err)
		}
		wg.Go(func() {
			if err := c.Run(workers, ctx); err != nil {
				errs <- fmt.Errorf("controller %s: %w", n, err)
			}
		})
	}
	klog.InfoS("controllers constructed", "controllers", strings.Join(names, ","))

	// The controllers registered their informers with the factory's shared
	// informer factories; a Context built now shares those and starts them.
	shared, err := factory.Build()
	if err != nil {
		return err
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())
	shared.HTTP01ResourceMetadataInformersFactory.Start(ctx.Done())
	if health != "" {
		if err := serveHealth(ctx, health, func() bool {
			for _, ok := range shared.SharedInformerFactory.WaitForCacheSync(ctx.Done()) {
				if !ok {
					return false
				}
			}
			for _, ok := range shared.KubeSharedInformerFactory.WaitForCacheSync(ctx.Done()) {
				if !ok {
					return false
				}
			}
			return true
		}); err != nil {
			return err
		}
	}

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case err := <-errs:
		return err
	case <-done:
		return nil
	}
}

// serveHealth answers /healthz on addr: 503 until synced has returned true (it
// blocks until the informers have synced), 200 afterwards.
func serveHealth(ctx context.Context, addr string, synced func() bool) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("health address: %w", err)
	}
	var ready atomic.Bool
	go func() { ready.Store(synced()) }()
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "informers not synced", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	go func() { _ = srv.Serve(ln) }()
	return nil
}
