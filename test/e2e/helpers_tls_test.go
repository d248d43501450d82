//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
)

// Helpers of the TLS tests: the NATS handshake done by hand (INFO in plaintext,
// then TLS) to see which certificate each pod serves, plaintext attempts that
// must be refused, HTTPS monitoring, and cert-manager objects as unstructured
// (the project does not depend on cert-manager's Go module).

// secretTLS is a TLS client configuration trusting ca.crt of the Secret
// ns/name, for the server name <cluster>.<ns>.svc.
func secretTLS(t *testing.T, c client.Client, nc *natsforgev1alpha1.NatsCluster, secret string) *tls.Config {
	t.Helper()
	var s corev1.Secret
	waitFor(t, time.Minute, "Secret "+secret+" with ca.crt", func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: secret}, &s)
		return err == nil && len(s.Data["ca.crt"]) > 0, client.IgnoreNotFound(err)
	})
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(s.Data["ca.crt"]) {
		t.Fatalf("Secret %s: ca.crt holds no PEM certificate", secret)
	}
	return &tls.Config{RootCAs: pool, ServerName: serviceName(nc), MinVersion: tls.VersionTLS12}
}

// serviceName is the client Service's name inside the cluster: <name>.<ns>.svc.
func serviceName(nc *natsforgev1alpha1.NatsCluster) string {
	return nc.Name + "." + nc.Namespace + ".svc"
}

// readInfo reads the server's INFO line from a fresh connection.
func readInfo(conn net.Conn) (map[string]any, *bufio.Reader, error) {
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, nil, fmt.Errorf("reading INFO: %w", err)
	}
	body, ok := strings.CutPrefix(strings.TrimSpace(line), "INFO ")
	if !ok {
		return nil, nil, fmt.Errorf("first line %q is not INFO", line)
	}
	info := map[string]any{}
	if err := json.Unmarshal([]byte(body), &info); err != nil {
		return nil, nil, fmt.Errorf("INFO %q: %w", body, err)
	}
	return info, r, nil
}

// servedCertificate does the client side of the NATS handshake on addr (INFO
// in plaintext, then TLS) and returns the leaf certificate the server
// presented, verified against cfg.
func servedCertificate(addr string, cfg *tls.Config) (*x509.Certificate, error) {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	defer func() { _ = conn.Close() }()
	if _, _, err := readInfo(conn); err != nil {
		return nil, err
	}
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return tc.ConnectionState().PeerCertificates[0], nil
}

// plaintextAnswer connects to addr without TLS, checks that INFO demands TLS,
// sends CONNECT and PING in plaintext and returns what the server answered
// ("" when it closed the connection without a word).
func plaintextAnswer(addr, connect string) (info map[string]any, answer string, err error) {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, "", err
	}
	defer func() { _ = conn.Close() }()
	info, r, err := readInfo(conn)
	if err != nil {
		return nil, "", err
	}
	if _, err := fmt.Fprintf(conn, "CONNECT %s\r\nPING\r\n", connect); err != nil {
		return info, "", nil // refused already
	}
	line, _ := r.ReadString('\n')
	return info, strings.TrimSpace(line), nil
}

// assertPlaintextRefused: the listener at addr announces tls_required and does
// not answer a plaintext CONNECT/PING with PONG.
func assertPlaintextRefused(t *testing.T, what, addr, connect string) {
	t.Helper()
	info, answer, err := plaintextAnswer(addr, connect)
	if err != nil {
		t.Fatalf("%s %s: %v", what, addr, err)
	}
	t.Logf("%s %s: INFO tls_required=%v, plaintext CONNECT answered %q", what, addr, info["tls_required"], answer)
	if info["tls_required"] != true {
		t.Errorf("%s %s: INFO has tls_required=%v, want true (INFO %v)", what, addr, info["tls_required"], info)
	}
	if strings.HasPrefix(answer, "PONG") || strings.HasPrefix(answer, "+OK") {
		t.Errorf("%s %s: a plaintext CONNECT was answered %q, want a refusal", what, addr, answer)
	}
}

// httpsMonitorGet decodes a broker pod's monitoring endpoint over HTTPS.
func httpsMonitorGet(ctx context.Context, cfg *tls.Config, podIP, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+net.JoinHostPort(podIP, "8222")+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %s", path, podIP, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func fingerprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// secretCertificate parses tls.crt (its first certificate) of a Secret.
func secretCertificate(ctx context.Context, c client.Client, ns, name string) (*x509.Certificate, error) {
	var s corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		return nil, err
	}
	block, _ := pem.Decode(s.Data["tls.crt"])
	if block == nil {
		return nil, fmt.Errorf("Secret %s/%s: no PEM in tls.crt", ns, name)
	}
	return x509.ParseCertificate(block.Bytes)
}

// waitServed waits until every pod serves a certificate with the given serial
// to a new connection, and returns when each one first did, counted from start.
func waitServed(t *testing.T, pods []corev1.Pod, cfg *tls.Config, serial *big.Int, start time.Time, timeout time.Duration) []time.Duration {
	t.Helper()
	took := make([]time.Duration, len(pods))
	waitFor(t, timeout, fmt.Sprintf("serial %x served by every pod", serial), func(context.Context) (bool, error) {
		all := true
		for i, p := range pods {
			if took[i] != 0 {
				continue
			}
			cert, err := servedCertificate(clientAddr(p), cfg)
			if err == nil && cert.SerialNumber.Cmp(serial) == 0 {
				took[i] = time.Since(start)
				continue
			}
			all = false
		}
		return all, nil
	})
	return took
}

// podRestarts is the sum of the restart counts of the cluster's broker containers.
func podRestarts(t *testing.T, c client.Client, nc *natsforgev1alpha1.NatsCluster) (n int32) {
	t.Helper()
	for _, p := range brokerPods(t, c, nc) {
		for _, cs := range p.Status.ContainerStatuses {
			n += cs.RestartCount
		}
	}
	return n
}

// waitCondition waits for the NatsCluster's condition typ to have status and
// reason, and returns it.
func waitCondition(t *testing.T, c client.Client, nc *natsforgev1alpha1.NatsCluster, typ string, status metav1.ConditionStatus, reason string, timeout time.Duration) metav1.Condition {
	t.Helper()
	var got metav1.Condition
	waitFor(t, timeout, fmt.Sprintf("condition %s=%s (%s) on %s", typ, status, reason, nc.Name), func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(nc), nc); err != nil {
			return false, err
		}
		cond := meta.FindStatusCondition(nc.Status.Conditions, typ)
		if cond == nil {
			return false, fmt.Errorf("no %s condition yet", typ)
		}
		got = *cond
		if cond.Status != status || cond.Reason != reason {
			return false, fmt.Errorf("%s=%s (%s): %s", typ, cond.Status, cond.Reason, cond.Message)
		}
		return true, nil
	})
	return got
}

// durations formats a sorted copy of d with its median and worst.
func durations(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	for i := range s {
		s[i] = s[i].Round(time.Millisecond)
	}
	return fmt.Sprintf("median %v, worst %v (n=%d: %v)", s[len(s)/2], s[len(s)-1], len(s), s)
}

// cmObject is a cert-manager object (cert-manager.io/v1) as unstructured.
func cmObject(kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetAPIVersion("cert-manager.io/v1")
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// waitCertificateReady waits for a cert-manager Certificate's Ready condition.
func waitCertificateReady(t *testing.T, c client.Client, ns, name string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "Certificate "+name+" Ready", func(ctx context.Context) (bool, error) {
		u := cmObject("Certificate", ns, name, nil)
		if err := c.Get(ctx, client.ObjectKeyFromObject(u), u); err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, x := range conds {
			m, _ := x.(map[string]any)
			if m["type"] == "Ready" {
				if m["status"] == "True" {
					return true, nil
				}
				return false, fmt.Errorf("Ready=%v: %v", m["status"], m["message"])
			}
		}
		return false, nil
	})
}

// renewCertificate does what `cmctl renew` does: it sets the Certificate's
// Issuing condition to True (status subresource), and cert-manager issues anew.
func renewCertificate(t *testing.T, c client.Client, ns, name string) {
	t.Helper()
	u := cmObject("Certificate", ns, name, nil)
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(u), u); err != nil {
		t.Fatal(err)
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	conds = slices.DeleteFunc(conds, func(x any) bool { m, _ := x.(map[string]any); return m["type"] == "Issuing" })
	conds = append(conds, map[string]any{
		"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
		"message":            "Certificate re-issuance manually triggered by the e2e test",
		"lastTransitionTime": time.Now().UTC().Format(time.RFC3339),
		"observedGeneration": u.GetGeneration(),
	})
	if err := unstructured.SetNestedSlice(u.Object, conds, "status", "conditions"); err != nil {
		t.Fatal(err)
	}
	if err := c.Status().Update(context.Background(), u); err != nil {
		t.Fatalf("renew Certificate %s: %v", name, err)
	}
}

// clientCertificateFromCA issues, at test time, a client certificate for
// subject cn/org signed by the CA in Secret caSecret (tls.crt, tls.key): a
// certificate the cluster trusts for an identity of the test's choosing.
func clientCertificateFromCA(t *testing.T, c client.Client, ns, caSecret, cn, org string) tls.Certificate {
	t.Helper()
	var s corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: caSecret}, &s); err != nil {
		t.Fatal(err)
	}
	ca, err := tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"])
	if err != nil {
		t.Fatalf("CA Secret %s: %v", caSecret, err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn, Organization: []string{org}},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
