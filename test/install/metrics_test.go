package install

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/natsforge/natsforge/controllers"
)

// TestOperatorMetricsAnswerOnlyAnAuthorizedScraper serves the operator's
// metrics as main.go does (controllers.MetricsOptions, secure by default),
// with the operator acting as its ServiceAccount under the chart's RBAC, and
// scrapes them over HTTPS: without a token, with the token of a
// ServiceAccount that may not read them, and with one bound to the chart's
// metrics-reader ClusterRole.
func TestOperatorMetricsAnswerOnlyAnAuthorizedScraper(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	objs := decodeObjects(t, run(t, tool(t, "HELM"), "template", "metrics", "charts/natsforge", "--namespace", "metrics-operator"))
	installOperatorAccess(t, objs)
	var reader string
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" && strings.HasSuffix(o.GetName(), "-metrics-reader") {
			reader = o.GetName()
		}
	}
	if reader == "" {
		t.Fatal("the chart renders no metrics-reader ClusterRole")
	}

	// The operator's identity: the chart's ServiceAccount, impersonated.
	operatorCfg := rest.CopyConfig(restConfig)
	operatorCfg.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:metrics-operator:metrics-natsforge",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:metrics-operator", "system:authenticated"}}
	httpClient, err := rest.HTTPClientFor(operatorCfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	srv, err := metricsserver.NewServer(controllers.MetricsOptions(addr, true, false), operatorCfg, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("metrics server: %v", err)
		}
	}()

	const ns = "metrics-scrapers"
	ensureNamespace(t, ns)
	scraper := serviceAccountToken(t, ns, "prometheus")
	stranger := serviceAccountToken(t, ns, "stranger")
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-reads-natsforge"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "prometheus"}},
	}
	if err := k8sClient.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}

	// The certificate is self-signed: a scraper skips verification (as the
	// chart's ServiceMonitor does) and relies on its token.
	https := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	scrape := func(token string) (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+addr+"/metrics", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := https.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := scrape(scraper)
		if err == nil && code == http.StatusOK {
			if !strings.Contains(body, "# HELP") {
				t.Errorf("the authorized scraper got no metrics: %.200s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the metrics-reader scraper still gets %d %.200q (%v) after 30s", code, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, tc := range []struct {
		who   string
		token string
		want  int
	}{
		{"no token", "", http.StatusUnauthorized},
		// controller-runtime's filter answers 500 here: the TokenReview comes
		// back with an error rather than just unauthenticated.
		{"a token the API server did not issue", "not-a-token", http.StatusInternalServerError},
		{"a ServiceAccount without metrics-reader", stranger, http.StatusForbidden},
	} {
		code, body, err := scrape(tc.token)
		if err != nil || code != tc.want || strings.Contains(body, "# HELP") {
			t.Errorf("%s: %d %.200q (%v), want %d and no metrics", tc.who, code, body, err, tc.want)
		}
	}
	// Plain HTTP gets no metrics.
	if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close() // read to the end already
		if strings.Contains(string(b), "# HELP") {
			t.Error("plain HTTP served the metrics")
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// serviceAccountToken creates a ServiceAccount and returns a token the API
// server issued for it (TokenRequest).
func serviceAccountToken(t *testing.T, ns, name string) string {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := k8sClient.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
	if err := k8sClient.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatalf("token for %s/%s: %v", ns, name, err)
	}
	if tr.Status.Token == "" {
		t.Fatalf("no token for %s/%s", ns, name)
	}
	return tr.Status.Token
}
