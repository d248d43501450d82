//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// metricsReaderRole is the chart's ClusterRole that may GET the operator's
// /metrics (release "natsforge").
const metricsReaderRole = "natsforge-metrics-reader"

// metricsScraperToken makes a ServiceAccount bound to the metrics-reader
// ClusterRole, as a Prometheus would be, and returns a token for it: the
// operator serves its metrics over HTTPS to authorized callers only.
func metricsScraperToken(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	const name = "e2e-metrics-scraper"
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: operatorNamespace, Name: name}}
	if _, err := kube.CoreV1().ServiceAccounts(operatorNamespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: metricsReaderRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: operatorNamespace, Name: name}},
	}
	if _, err := kube.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kube.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = kube.CoreV1().ServiceAccounts(operatorNamespace).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	tr, err := kube.CoreV1().ServiceAccounts(operatorNamespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// metricsHTTP trusts the operator's self-signed metrics certificate, as the
// chart's ServiceMonitor does; the bearer token is what authenticates.
var metricsHTTP = &http.Client{Timeout: 5 * time.Second,
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// scrapeMetrics reads the operator's Prometheus metrics (HTTPS on 8443, with
// the bearer token of a metrics reader) and sums samples by metric name and
// the controller or workqueue they are of: "workqueue_depth{natscluster}".
func scrapeMetrics(ctx context.Context, podIP, token string) (map[string]float64, error) {
	return getMetrics(ctx, metricsHTTP, "https://"+net.JoinHostPort(podIP, "8443")+"/metrics", token)
}

// brokerMetrics reads a broker pod's Prometheus metrics (plain HTTP on the
// monitoring port 8222: clusters with TLS disabled), summed as scrapeMetrics does.
func brokerMetrics(ctx context.Context, podIP string) (map[string]float64, error) {
	return getMetrics(ctx, http.DefaultClient, "http://"+net.JoinHostPort(podIP, "8222")+"/metrics", "")
}

func getMetrics(ctx context.Context, hc *http.Client, url, token string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return sumMetrics(resp.Body)
}

// sumMetrics parses the Prometheus text format and sums samples by metric
// name and the controller or workqueue they are of.
func sumMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		series := line[:sp]
		name, lbls, _ := strings.Cut(series, "{")
		key := name
		for _, l := range strings.Split(strings.TrimSuffix(lbls, "}"), ",") {
			k, v, _ := strings.Cut(l, "=")
			if k == "controller" || k == "name" {
				key = name + "{" + strings.Trim(v, `"`) + "}"
				break
			}
		}
		out[key] += v
	}
	return out, sc.Err()
}
