//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/test/internal/promharness"
)

// TestDashboardQueriesHaveDataInPrometheusScrapingTheCluster runs Debian's
// prometheus in the cluster's network namespace, scraping every broker pod's
// /metrics (HTTPS, verified against the cluster's CA, as the PodMonitor
// does) and the operator's (HTTPS with a metrics-reader token, as the
// chart's ServiceMonitor does); after traffic, a wrong password and a
// password rotation, every query of the chart's Grafana dashboard returns a
// number.
func TestDashboardQueriesHaveDataInPrometheusScrapingTheCluster(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newTLSNatsCluster(t, c, ns, "obs", 3, natsforgev1alpha1.TLSSpec{})
	updateNatsCluster(t, c, nc, func(nc *natsforgev1alpha1.NatsCluster) { nc.Spec.Monitoring.PodMonitor = true })
	waitReady(t, c, nc, 5*time.Minute)
	pods := brokerPods(t, c, nc)
	cfg := secretTLS(t, c, nc, nc.Name+"-tls")

	// Without the Prometheus Operator's CRD the cluster says so; with it,
	// the PodMonitor is in place.
	waitFor(t, time.Minute, "the PodMonitor condition", func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(nc), nc); err != nil {
			return false, err
		}
		for _, cond := range nc.Status.Conditions {
			if cond.Type == natsforgev1alpha1.ConditionPodMonitor {
				return cond.Reason == natsforgev1alpha1.ReasonPodMonitorApplied || cond.Reason == natsforgev1alpha1.ReasonPodMonitorCRDNotInstalled, nil
			}
		}
		return false, nil
	})

	operatorSelector := "app.kubernetes.io/name=natsforge,app.kubernetes.io/component=operator"
	var operator *corev1.Pod
	waitFor(t, 2*time.Minute, "a ready operator pod", func(ctx context.Context) (bool, error) {
		ops, err := kube.CoreV1().Pods(operatorNamespace).List(ctx, metav1.ListOptions{LabelSelector: operatorSelector})
		if err != nil {
			return false, err
		}
		for i := range ops.Items {
			if p := &ops.Items[i]; p.DeletionTimestamp == nil && isPodReady(p) {
				operator = p
				return true, nil
			}
		}
		return false, nil
	})
	dir := t.TempDir()
	var s corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: nc.Name + "-tls"}, &s); err != nil {
		t.Fatal(err)
	}
	caFile, tokenFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "token")
	if err := os.WriteFile(caFile, s.Data["ca.crt"], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(metricsScraperToken(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	var targets strings.Builder
	for _, p := range pods {
		fmt.Fprintf(&targets, "      - targets: ['%s']\n        labels: {namespace: %s, pod: %s}\n",
			net.JoinHostPort(p.Status.PodIP, "8222"), ns, p.Name)
	}
	promConfig := fmt.Sprintf(`global:
  scrape_interval: 2s
  evaluation_interval: 2s
scrape_configs:
  - job_name: brokers
    scheme: https
    tls_config: {ca_file: %s, server_name: %s}
    static_configs:
%s  - job_name: operator
    scheme: https
    bearer_token_file: %s
    tls_config: {insecure_skip_verify: true}
    static_configs:
      - targets: ['%s']
`, caFile, serviceName(nc), targets.String(), tokenFile, net.JoinHostPort(operator.Status.PodIP, "8443"))
	promAddr := promharness.Start(t, promConfig)

	traffic := func(password string) {
		t.Helper()
		sub, err := connectTLS("tls://"+clientAddr(pods[0]), cfg, nats.UserInfo("myname", password))
		if err != nil {
			t.Fatalf("connect %s: %v", pods[0].Name, err)
		}
		defer sub.Close()
		pub, err := connectTLS("tls://"+clientAddr(pods[1]), cfg, nats.UserInfo("myname", password))
		if err != nil {
			t.Fatalf("connect %s: %v", pods[1].Name, err)
		}
		defer pub.Close()
		ss, err := sub.SubscribeSync("obs")
		if err != nil {
			t.Fatal(err)
		}
		_ = sub.Flush()
		waitFor(t, 30*time.Second, "a message across the route", func(context.Context) (bool, error) {
			_ = pub.Publish("obs", []byte("ping"))
			_, err := ss.NextMsg(500 * time.Millisecond)
			return err == nil, nil
		})
		for range 100 {
			_ = pub.Publish("obs", []byte("payload"))
		}
		_ = pub.Flush()
		if conn, err := connectTLS("tls://"+clientAddr(pods[2]), cfg, nats.UserInfo("myname", "wrong")); err == nil {
			conn.Close()
			t.Fatal("a wrong password was let in")
		}
	}
	traffic("password")
	waitFor(t, time.Minute, "Prometheus scraping the operator and the brokers", func(context.Context) (bool, error) {
		op, err1 := promharness.Query(promAddr, `natsforge_rotation_propagation_seconds_count`)
		up, err2 := promharness.Query(promAddr, `up{job="brokers"} == 1`)
		return err1 == nil && err2 == nil && len(op) > 0 && len(up) == len(pods), nil
	})

	// A rotation (the operator is shared: count this one).
	before, err := promharness.Query(promAddr, `sum(natsforge_rotation_propagation_seconds_count)`)
	if err != nil || len(before) != 1 {
		t.Fatalf("rotations before: %v %v", before, err)
	}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: nc.Name + "-myname"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data = map[string][]byte{"password": []byte("rotated")}
	if err := c.Update(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the operator to see the rotation on every pod", func(context.Context) (bool, error) {
		got, err := promharness.Query(promAddr, `sum(natsforge_rotation_propagation_seconds_count)`)
		return err == nil && len(got) == 1 && got[0].Float() > before[0].Float(), nil
	})
	traffic("rotated")

	queries, err := promharness.DashboardQueries(repoRoot, "2m")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queries {
		waitFor(t, time.Minute, fmt.Sprintf("panel %q: %s", q.Panel, q.PromQL), func(context.Context) (bool, error) {
			err := promharness.HasNumber(promAddr, q.PromQL)
			return err == nil, err
		})
	}
}
