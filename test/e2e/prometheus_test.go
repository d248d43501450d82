//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
)

// TestDashboardQueriesHaveDataInPrometheusScrapingTheCluster runs Debian's
// prometheus in the cluster's network namespace, scraping every broker pod's
// /metrics (HTTPS, verified against the cluster's CA, as the PodMonitor
// does) and the operator's (HTTPS with a metrics-reader token, as the
// chart's ServiceMonitor does); after traffic, a wrong password and a
// password rotation, every query of the chart's Grafana dashboard returns a
// number.
func TestDashboardQueriesHaveDataInPrometheusScrapingTheCluster(t *testing.T) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("no prometheus binary: apt-get install prometheus (.ci/run installs it)")
	}
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
	promAddr := runPrometheus(t, bin, dir, promConfig)

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
		op, err1 := promQuery(promAddr, `natsforge_rotation_propagation_seconds_count`)
		up, err2 := promQuery(promAddr, `up{job="brokers"} == 1`)
		return err1 == nil && err2 == nil && len(op) > 0 && len(up) == len(pods), nil
	})

	// A rotation (the operator is shared: count this one).
	before, err := promQuery(promAddr, `sum(natsforge_rotation_propagation_seconds_count)`)
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
		got, err := promQuery(promAddr, `sum(natsforge_rotation_propagation_seconds_count)`)
		return err == nil && len(got) == 1 && got[0] > before[0], nil
	})
	traffic("rotated")

	raw, err := os.ReadFile(filepath.Join("..", "..", "charts", "natsforge", "dashboards", "natsforge.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			q := strings.ReplaceAll(tg.Expr, "$__rate_interval", "2m")
			waitFor(t, time.Minute, fmt.Sprintf("panel %q: %s", p.Title, q), func(context.Context) (bool, error) {
				got, err := promQuery(promAddr, q)
				if err != nil {
					return false, err
				}
				for _, v := range got {
					if !math.IsNaN(v) {
						return true, nil
					}
				}
				return false, nil
			})
		}
	}
}

// runPrometheus starts prometheus with config, its data under dir, on a free
// loopback port, and stops it when the test ends.
func runPrometheus(t *testing.T, bin, dir, config string) string {
	t.Helper()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	var mu sync.Mutex
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stderr = lockedBuffer{&mu, &logs}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("prometheus:\n%s", logs.String())
			mu.Unlock()
		}
	})
	waitFor(t, 30*time.Second, "prometheus ready", func(ctx context.Context) (bool, error) {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	return addr
}

type lockedBuffer struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (l lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// promQuery is an instant query's sample values.
func promQuery(addr, q string) ([]float64, error) {
	resp, err := http.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s", body.Error)
	}
	var out []float64
	for _, r := range body.Data.Result {
		v, err := strconv.ParseFloat(fmt.Sprint(r.Value[1]), 64)
		if err != nil {
			v = math.NaN()
		}
		out = append(out, v)
	}
	return out, nil
}
