// Command kube-network-policies enforces Kubernetes NetworkPolicies on one node
// of the local cluster, built from the Go module sigs.k8s.io/kube-network-policies
// (pinned in go.mod here; hack/network-policies.sh builds it).
//
// Why a main of our own: upstream's cmd/main.go only runs inside a pod
// (rest.InClusterConfig), while the local cluster runs its node components as
// host processes with a kubeconfig, as it does cert-manager's controller. And
// upstream v0.8.0 parses --disable-nri without passing it on. Everything else
// is upstream's, but for a nil check that keeps --disable-nri from crashing
// (hack/network-policies.sh patches it in) and for how packets are queued (overlay/xtqueue.go: the
// xtables NFQUEUE target instead of nftables' queue expression, which needs a
// kernel module this project's machines lack): pkg/networkpolicy's
// controller, which puts the node's pods
// that some NetworkPolicy selects into an nftables set, sends the first packet
// of each new connection to or from them to an NFQUEUE, and accepts or drops
// it by evaluating the NetworkPolicies in user space. AdminNetworkPolicy and
// BaselineAdminNetworkPolicy are not compiled in (they need their CRDs).
//
//	kube-network-policies --kubeconfig FILE --hostname-override NODE [--nfqueue-id 100]
//	    [--metrics-bind-address 127.0.0.1:9080] [--disable-nri] [--fail-open] [-v 2]
//
// Besides /metrics, the metrics address serves /readyz (readiness.go): 200 once
// the nftables table is in place and the queue has its listener, that is once
// packets are policed; the local cluster's up.sh waits for it.
//
// It must run as root (CAP_NET_ADMIN) on the node, with the kernel's nf_tables
// (inet family, sets, ct), nft_compat with the xtables NFQUEUE target,
// nfnetlink_queue and conntrack; bridged pod
// traffic reaches its hook only with br_netfilter loaded and
// net.bridge.bridge-nf-call-iptables=1.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	nodeutil "k8s.io/component-helpers/node/util"
	"k8s.io/klog/v2"
	"sigs.k8s.io/kube-network-policies/pkg/networkpolicy"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		kubeconfig          string
		hostnameOverride    string
		queueID             int
		metricsBindAddress  string
		failOpen            bool
		disableNRI          bool
		netfilterBug1766Fix bool
	)
	klog.InitFlags(nil)
	flag.StringVar(&kubeconfig, "kubeconfig", "", "Path to the kubeconfig of the enforcer's user (it lists and watches pods, namespaces and networkpolicies).")
	flag.StringVar(&hostnameOverride, "hostname-override", "", "The name of the Node this runs on, as the kubelet registered it; only that node's pods are enforced. Empty means the hostname.")
	flag.IntVar(&queueID, "nfqueue-id", 100, "The NFQUEUE number the first packet of each new connection of a policed pod is sent to; no other program on the node may use it.")
	flag.StringVar(&metricsBindAddress, "metrics-bind-address", "127.0.0.1:9080", "Where /metrics is served.")
	flag.BoolVar(&failOpen, "fail-open", false, "Accept packets while the enforcer is not running instead of dropping them.")
	flag.BoolVar(&disableNRI, "disable-nri", false, "Do not ask the container runtime (NRI, /var/run/nri/nri.sock) for pod IPs; use the API server's only.")
	flag.BoolVar(&netfilterBug1766Fix, "netfilter-bug-1766-fix", true, "Accept DNS (udp/53) before queueing, to avoid a conntrack race of kernels before 6.12.")
	flag.Parse()

	if kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "--kubeconfig is required")
		return 2
	}
	if _, _, err := net.SplitHostPort(metricsBindAddress); err != nil {
		fmt.Fprintf(os.Stderr, "--metrics-bind-address %q: %v\n", metricsBindAddress, err)
		return 2
	}
	nodeName, err := nodeutil.GetHostname(hostnameOverride)
	if err != nil {
		fmt.Fprintf(os.Stderr, "node name: %v (set --hostname-override)\n", err)
		return 2
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubeconfig %s: %v\n", kubeconfig, err)
		return 2
	}
	config.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	config.ContentType = "application/vnd.kubernetes.protobuf"
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		fmt.Fprintf(os.Stderr, "client: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	http.Handle("/metrics", promhttp.Handler())
	http.HandleFunc("/readyz", readyz(nftTableName, queueID))
	go func() { utilruntime.HandleError(http.ListenAndServe(metricsBindAddress, nil)) }()

	factory := informers.NewSharedInformerFactory(clientset, 0)
	controller, err := networkpolicy.NewController(
		clientset,
		factory.Networking().V1().NetworkPolicies(),
		factory.Core().V1().Namespaces(),
		factory.Core().V1().Pods(),
		nil, nil, nil, nil, // nodes and the AdminNetworkPolicy APIs: not used
		networkpolicy.Config{
			FailOpen:            failOpen,
			QueueID:             queueID,
			NodeName:            nodeName,
			NetfilterBug1766Fix: netfilterBug1766Fix,
			NRIdisabled:         disableNRI,
		},
	)
	if err != nil {
		klog.ErrorS(err, "create the network policy controller")
		return 1
	}
	go func() { utilruntime.HandleError(controller.Run(ctx)) }()
	factory.Start(ctx.Done())
	klog.InfoS("enforcing NetworkPolicies", "node", nodeName, "nfqueue", queueID)

	<-ctx.Done()
	// The controller removes its nftables table as it stops.
	time.Sleep(5 * time.Second)
	return 0
}
