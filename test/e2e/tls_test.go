//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/monitor"
)

// TLS by default (issue 13), on the local cluster with real nats.go clients.
// These tests resolve the cluster's Service names, so they run inside the
// cluster's network namespace (make e2e does: hack/local-cluster/exec.sh).

// connectTLS connects nats.go to url (tls://host:port) with cfg.
func connectTLS(url string, cfg *tls.Config, opts ...nats.Option) (*nats.Conn, error) {
	// Only url's servers, not the peers a broker names in its INFO (see connect).
	opts = append([]nats.Option{nats.Secure(cfg), nats.Timeout(3 * time.Second), nats.NoReconnect(), nats.IgnoreDiscoveredServers()}, opts...)
	return nats.Connect(url, opts...)
}

// TestTLSOperatorMode: a NatsCluster with no spec.tls gets mode Operator: it is
// reachable only over TLS, on the client port, the routes and monitoring; the
// generated user Secret carries ca.crt and a tls:// url that nats.go connects
// with; a forced renewal (the server certificate's Secret
// deleted) is served by every pod within seconds, without restarts, while
// existing clients stay connected.
func TestTLSOperatorMode(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newTLSNatsCluster(t, c, ns, "tls", 3, natsforgev1alpha1.TLSSpec{}, natsforgev1alpha1.User{Name: "gen"})
	waitReady(t, c, nc, 5*time.Minute)
	if nc.Spec.TLS.Mode != natsforgev1alpha1.TLSModeOperator {
		t.Errorf("spec.tls.mode defaulted to %q, want Operator", nc.Spec.TLS.Mode)
	}
	waitCondition(t, c, nc, natsforgev1alpha1.ConditionSecure, metav1.ConditionTrue, natsforgev1alpha1.ReasonTLSOperator, time.Minute)
	if nc.Status.TLS == nil || nc.Status.TLS.NotAfter == nil {
		t.Errorf("status.tls.notAfter is not set: %+v", nc.Status.TLS)
	}
	cfg := secretTLS(t, c, nc, nc.Name+"-tls")
	pods := waitMeshTLS(t, nc, cfg, brokerPods(t, c, nc), time.Minute)

	t.Run("only TLS", func(t *testing.T) {
		var gen corev1.Secret
		if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: nc.Name + "-user-gen"}, &gen); err != nil {
			t.Fatal(err)
		}
		url := string(gen.Data["url"])
		wantPrefix := "tls://gen:"
		wantSuffix := "@" + serviceName(nc) + ":4222"
		if !strings.HasPrefix(url, wantPrefix) || !strings.HasSuffix(url, wantSuffix) || len(gen.Data["ca.crt"]) == 0 {
			t.Fatalf("generated Secret: url %q (want %s...%s), keys %v (want ca.crt)", redactURL(url), wantPrefix, wantSuffix, keys(gen.Data))
		}
		// What a user does: the url, and ca.crt of the same Secret.
		conn, err := connectTLS(url, secretTLS(t, c, nc, gen.Name))
		if err != nil {
			t.Fatalf("nats.go with the generated Secret's url and ca.crt: %v", err)
		}
		if !conn.TLSRequired() {
			t.Errorf("connection does not report TLS")
		}
		conn.Close()

		for _, p := range pods {
			assertPlaintextRefused(t, "client port of "+p.Name, clientAddr(p), `{"user":"myname","pass":"password","verbose":false}`)
			cert, err := servedCertificate(clientAddr(p), cfg)
			if err != nil {
				t.Fatalf("%s: %v", p.Name, err)
			}
			for _, san := range []string{nc.Name, nc.Name + "." + ns, serviceName(nc), serviceName(nc) + ".cluster.local"} {
				if !slices.Contains(cert.DNSNames, san) {
					t.Errorf("%s serves a certificate without the SAN %s (has %v)", p.Name, san, cert.DNSNames)
				}
			}
			// Monitoring is HTTPS: plain HTTP gets no /varz.
			var v monitor.Varz
			if err := httpsMonitorGet(context.Background(), cfg, p.Status.PodIP, "/varz", &v); err != nil {
				t.Errorf("HTTPS /varz of %s: %v", p.Name, err)
			}
			if err := monitorGet(context.Background(), p.Status.PodIP, "/varz", &v); err == nil {
				t.Errorf("plain HTTP /varz of %s answered; want HTTPS only", p.Name)
			}
		}
	})

	t.Run("routes are TLS", func(t *testing.T) {
		for _, p := range pods {
			// A peer that does not start TLS is refused on the route port.
			assertPlaintextRefused(t, "route port of "+p.Name, net.JoinHostPort(p.Status.PodIP, "6222"), `{"verbose":false,"pedantic":false}`)
		}
		// The mesh is up (waitMeshTLS), and it carries messages between pods.
		for i := range pods {
			from, to := pods[i], pods[(i+1)%len(pods)]
			d := waitDeliveredTLS(t, cfg, clientAddr(from), clientAddr(to), "e2e.tls.mesh", 30*time.Second)
			t.Logf("%s -> %s over TLS routes: delivered after %s", from.Name, to.Name, d.Round(time.Millisecond))
		}
	})

	t.Run("operator renewal", func(t *testing.T) {
		rotateAndMeasure(t, c, nc, cfg, pods, "operator renewal (Secret "+nc.Name+"-tls deleted)", func(t *testing.T) {
			if err := c.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: nc.Name + "-tls"}}); err != nil {
				t.Fatal(err)
			}
		}, nc.Name+"-tls")
	})
}

// TestTLSCertManager: cert-manager (the real controller, on the local cluster)
// issues the server certificate from a CA Issuer into the Secret that
// spec.tls.client.secretName names; each renewal by cert-manager (as `cmctl
// renew`) is served by every pod within seconds, without restarts, while
// existing clients stay connected.
func TestTLSCertManager(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	ctx := context.Background()
	const name = "cm"
	dnsNames := []any{name, name + "." + ns, name + "." + ns + ".svc", name + "." + ns + ".svc.cluster.local"}
	for i := range 3 {
		dnsNames = append(dnsNames, fmt.Sprintf("%s-%d.%s-routes.%s.svc", name, i, name, ns))
	}
	for _, o := range []client.Object{
		cmObject("Issuer", ns, "selfsigned", map[string]any{"selfSigned": map[string]any{}}),
		cmObject("Certificate", ns, "ca", map[string]any{
			"isCA": true, "commonName": "e2e cert-manager CA", "secretName": "e2e-ca",
			"privateKey": map[string]any{"algorithm": "ECDSA", "size": int64(256)},
			"issuerRef":  map[string]any{"name": "selfsigned", "kind": "Issuer"},
		}),
		cmObject("Issuer", ns, "ca", map[string]any{"ca": map[string]any{"secretName": "e2e-ca"}}),
		cmObject("Certificate", ns, "nats", map[string]any{
			"secretName": "nats-tls", "dnsNames": dnsNames, "duration": "24h",
			"usages":     []any{"server auth", "client auth", "digital signature", "key encipherment"},
			"privateKey": map[string]any{"algorithm": "ECDSA", "size": int64(256), "rotationPolicy": "Always"},
			"issuerRef":  map[string]any{"name": "ca", "kind": "Issuer"},
		}),
	} {
		if err := c.Create(ctx, o); err != nil {
			if apierrors.IsNotFound(err) || strings.Contains(err.Error(), "no matches for kind") {
				t.Fatalf("cert-manager's CRDs are not installed (hack/local-cluster/up.sh installs them): %v", err)
			}
			t.Fatal(err)
		}
	}
	waitCertificateReady(t, c, ns, "nats", 2*time.Minute)
	issued, err := secretCertificate(ctx, c, ns, "nats-tls")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cert-manager issued serial %x into Secret nats-tls", issued.SerialNumber)

	nc := newTLSNatsCluster(t, c, ns, name, 3, natsforgev1alpha1.TLSSpec{
		Mode:   natsforgev1alpha1.TLSModeSecrets,
		Client: &natsforgev1alpha1.TLSSecretReference{SecretName: "nats-tls"},
	})
	waitReady(t, c, nc, 5*time.Minute)
	waitCondition(t, c, nc, natsforgev1alpha1.ConditionSecure, metav1.ConditionTrue, natsforgev1alpha1.ReasonTLSSecrets, time.Minute)
	cfg := secretTLS(t, c, nc, "nats-tls")
	pods := waitMeshTLS(t, nc, cfg, brokerPods(t, c, nc), time.Minute)
	for _, p := range pods {
		cert, err := servedCertificate(clientAddr(p), cfg)
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		if cert.SerialNumber.Cmp(issued.SerialNumber) != 0 {
			t.Fatalf("%s serves serial %x, want cert-manager's %x", p.Name, cert.SerialNumber, issued.SerialNumber)
		}
	}

	rotateAndMeasure(t, c, nc, cfg, pods, "cert-manager renewal (Issuing=True, as cmctl renew)", func(t *testing.T) {
		renewCertificate(t, c, ns, "nats")
	}, "nats-tls")
}

// TestTLSCertificateUser: a tlsIdentity user connects with the client
// certificate the operator issued into <cluster>-user-<name> (tls.crt, tls.key,
// ca.crt), is nobody without it, and its permissions hold. (Certificate users
// and password users do not mix in one cluster: the API refuses it.)
func TestTLSCertificateUser(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	replicas := int32(1)
	nc := &natsforgev1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "certs"},
		Spec: natsforgev1alpha1.NatsClusterSpec{
			Replicas: &replicas,
			Auth: natsforgev1alpha1.AuthSpec{Users: []natsforgev1alpha1.User{{
				Name:        "alice",
				TLSIdentity: "CN=alice,O=acme",
				Permissions: &natsforgev1alpha1.Permissions{
					Publish:   &natsforgev1alpha1.SubjectPermission{Allow: []natsforgev1alpha1.Subject{"alice.>"}},
					Subscribe: &natsforgev1alpha1.SubjectPermission{Allow: []natsforgev1alpha1.Subject{"alice.>"}},
				},
			}}},
		},
	}
	if err := c.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c, nc, 5*time.Minute)
	waitCondition(t, c, nc, natsforgev1alpha1.ConditionSecure, metav1.ConditionTrue, natsforgev1alpha1.ReasonTLSOperator, time.Minute)
	cfg := secretTLS(t, c, nc, nc.Name+"-tls")
	var s corev1.Secret
	waitFor(t, time.Minute, "certificate Secret of user alice", func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: nc.Name + "-user-alice"}, &s)
		return err == nil && len(s.Data["tls.crt"]) > 0, client.IgnoreNotFound(err)
	})
	for _, k := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if len(s.Data[k]) == 0 {
			t.Fatalf("Secret %s has no %s (keys %v)", s.Name, k, keys(s.Data))
		}
	}
	pair, err := tls.X509KeyPair(s.Data["tls.crt"], s.Data["tls.key"])
	if err != nil {
		t.Fatal(err)
	}
	withCert := cfg.Clone()
	withCert.Certificates = []tls.Certificate{pair}
	url := "tls://" + net.JoinHostPort(serviceName(nc), "4222")

	// Through the Service: kube-proxy programs its endpoints a moment after
	// Ready, hence the retries.
	asyncErrs := make(chan error, 16)
	var conn *nats.Conn
	waitFor(t, 15*time.Second, "alice connected with her certificate", func(context.Context) (bool, error) {
		var err error
		conn, err = connectTLS(url, withCert, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			asyncErrs <- err
		}))
		return err == nil, err
	})
	defer conn.Close()

	// Without the certificate (and without a password) alice is nobody: the
	// broker asks for a client certificate in the TLS handshake and refuses
	// the connection without one.
	if c, err := connectTLS(url, cfg, nats.Name("alice-without-cert")); err == nil {
		c.Close()
		t.Fatalf("a connection without a client certificate or password was accepted")
	} else {
		t.Logf("without a client certificate: %v", err)
		if errors.Is(err, nats.ErrNoServers) {
			t.Fatalf("without a client certificate: %v, want a refusal by the server", err)
		}
	}
	// A certificate of the cluster's own CA for another identity maps to no user.
	mallory := cfg.Clone()
	mallory.Certificates = []tls.Certificate{clientCertificateFromCA(t, c, ns, nc.Name+"-ca", "mallory", "acme")}
	if c, err := connectTLS(url, mallory); err == nil {
		c.Close()
		t.Fatalf("a certificate for CN=mallory,O=acme (no such user) was accepted")
	} else if !isAuthError(err) {
		t.Fatalf("CN=mallory,O=acme: %v, want an authorization violation", err)
	}
	sub, err := conn.SubscribeSync("alice.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Publish("alice.hello", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("alice did not receive her own message on alice.hello: %v", err)
	}
	// Outside her permissions: the server refuses, the connection stays.
	_ = conn.Publish("bob.hello", []byte("no"))
	if _, err := conn.SubscribeSync("bob.>"); err != nil {
		t.Fatal(err)
	}
	_ = conn.Flush()
	var violations []string
	deadline := time.After(5 * time.Second)
	for len(violations) < 2 {
		select {
		case err := <-asyncErrs:
			if errors.Is(err, nats.ErrPermissionViolation) || strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				violations = append(violations, err.Error())
			}
		case <-deadline:
			t.Fatalf("permission violations seen: %q; want one for publish to bob.hello and one for subscribe to bob.>", violations)
		}
	}
	t.Logf("alice refused: %q", violations)
	if !conn.IsConnected() {
		t.Errorf("alice's connection closed after a permission violation")
	}
}

// rotations is how many certificate rotations each rotation test measures.
const rotations = 5

// rotateAndMeasure keeps a client on every pod (publishing and receiving
// through the routes) and, rotations times, calls rotate and waits for a new
// certificate in Secret secret, then for every pod to serve it to a new
// connection. It reports how long the Secret took to change and how long every
// pod took after that, and fails on a restart, a disconnect, a lost message or
// a rotation slower than 30 s to reach every pod.
func rotateAndMeasure(t *testing.T, c client.Client, nc *natsforgev1alpha1.NatsCluster, cfg *tls.Config, pods []corev1.Pod,
	what string, rotate func(*testing.T), secret string) {
	t.Helper()
	ctx := context.Background()
	restartsBefore := podRestarts(t, c, nc)

	// A subscriber and a publisher on every pod: every message must reach every
	// subscriber, across routes, through all rotations.
	var disconnects atomic.Int32
	watch := nats.DisconnectErrHandler(func(*nats.Conn, error) { disconnects.Add(1) })
	var subs []*nats.Subscription
	var conns []*nats.Conn
	for _, p := range pods {
		conn, err := connectTLS("tls://"+clientAddr(p), cfg, nats.UserInfo("myname", "password"), watch)
		if err != nil {
			t.Fatalf("client on %s: %v", p.Name, err)
		}
		defer conn.Close()
		sub, err := conn.SubscribeSync("e2e.rotation")
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.Flush()
		subs = append(subs, sub)
		conns = append(conns, conn)
	}
	// Interest reaches the other pods asynchronously: wait until a message from
	// each pod reaches every subscriber.
	sent := 0
	roundTrip := func(label string) {
		t.Helper()
		for i, conn := range conns {
			sent++
			msg := fmt.Sprintf("%s from %s #%d", label, pods[i].Name, sent)
			if err := conn.Publish("e2e.rotation", []byte(msg)); err != nil {
				t.Fatalf("publish on %s: %v", pods[i].Name, err)
			}
			for j, sub := range subs {
				for {
					m, err := sub.NextMsg(10 * time.Second)
					if err != nil {
						t.Fatalf("%s: subscriber on %s did not receive %q: %v", label, pods[j].Name, msg, err)
					}
					if string(m.Data) == msg {
						break
					}
				}
			}
		}
	}
	waitFor(t, 30*time.Second, "interest on every pod", func(context.Context) (bool, error) {
		for _, conn := range conns {
			_ = conn.Publish("e2e.rotation", []byte("warm-up"))
		}
		for _, sub := range subs {
			if n, _, _ := sub.Pending(); n < len(conns) {
				return false, nil
			}
		}
		return true, nil
	})
	for _, sub := range subs {
		for {
			if _, err := sub.NextMsg(200 * time.Millisecond); err != nil {
				break
			}
		}
	}
	roundTrip("before")

	var issue, propagate, total []time.Duration
	for i := 1; i <= rotations; i++ {
		old, err := secretCertificate(ctx, c, nc.Namespace, secret)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		rotate(t)
		var next *x509.Certificate
		waitFor(t, 2*time.Minute, fmt.Sprintf("rotation %d: a new certificate in Secret %s", i, secret), func(ctx context.Context) (bool, error) {
			cert, err := secretCertificate(ctx, c, nc.Namespace, secret)
			if err != nil || cert.SerialNumber.Cmp(old.SerialNumber) == 0 {
				return false, client.IgnoreNotFound(err)
			}
			next = cert
			return true, nil
		})
		issued := time.Since(start)
		took := waitServed(t, pods, cfg, next.SerialNumber, start, 60*time.Second)
		worst := slices.Max(took)
		issue = append(issue, issued)
		propagate = append(propagate, worst-issued)
		total = append(total, worst)
		t.Logf("rotation %d: serial %x -> %x; in the Secret after %s, served by every pod after %s (per pod %v)",
			i, old.SerialNumber, next.SerialNumber, issued.Round(time.Millisecond), worst.Round(time.Millisecond), took)
		if worst-issued > 30*time.Second {
			t.Errorf("rotation %d reached every pod %s after the Secret changed; want within seconds", i, worst-issued)
		}
		roundTrip(fmt.Sprintf("after rotation %d", i))
	}
	t.Logf("%s: new certificate in the Secret: %s", what, durations(issue))
	t.Logf("%s: Secret changed -> served by every pod: %s", what, durations(propagate))
	t.Logf("%s: trigger -> served by every pod: %s", what, durations(total))

	if d := disconnects.Load(); d != 0 {
		t.Errorf("existing clients saw %d disconnects during the rotations", d)
	}
	for i, conn := range conns {
		if !conn.IsConnected() {
			t.Errorf("the client on %s is no longer connected", pods[i].Name)
		}
	}
	if r := podRestarts(t, c, nc); r != restartsBefore {
		t.Errorf("broker containers restarted during the rotations (%d -> %d)", restartsBefore, r)
	}
}

// TestTLSDisabledExposed: mode Disabled with a LoadBalancer Service gives
// Secure=False (PlaintextExposed) and a Warning Event; the cluster still
// serves plaintext, as asked.
func TestTLSDisabledExposed(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "plain", 1)
	updateNatsCluster(t, c, nc, func(nc *natsforgev1alpha1.NatsCluster) {
		nc.Spec.Service.Type = corev1.ServiceTypeLoadBalancer
	})
	cond := waitCondition(t, c, nc, natsforgev1alpha1.ConditionSecure, metav1.ConditionFalse, natsforgev1alpha1.ReasonPlaintextExposed, 2*time.Minute)
	t.Logf("Secure=False (%s): %s", cond.Reason, cond.Message)
	waitFor(t, time.Minute, "a Warning Event about the plaintext exposure", func(ctx context.Context) (bool, error) {
		events, err := kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + nc.Name})
		if err != nil {
			return false, err
		}
		for _, e := range events.Items {
			if e.Type == corev1.EventTypeWarning && e.Reason == natsforgev1alpha1.ReasonPlaintextExposed {
				t.Logf("event %s: %s", e.Reason, e.Message)
				return true, nil
			}
		}
		return false, nil
	})
	waitReady(t, c, nc, 5*time.Minute)
	connectService(t, serviceAddr(t, c, nc), "myname", "password").Close()
}

// TestTLSReadyTime measures, in the same run, how long a NatsCluster of 1 and
// of 3 pods takes from creation to Ready with TLS (mode Operator) and without
// (mode Disabled), alternating, three of each. It reports; it asserts nothing about
// the ratio (the machine is shared).
func TestTLSReadyTime(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	for _, replicas := range []int32{1, 3} {
		measureReadyTime(t, c, ns, replicas)
	}
}

func measureReadyTime(t *testing.T, c client.Client, ns string, replicas int32) {
	var withTLS, without []time.Duration
	for i := range 3 {
		for _, mode := range []natsforgev1alpha1.TLSMode{natsforgev1alpha1.TLSModeOperator, natsforgev1alpha1.TLSModeDisabled} {
			name := fmt.Sprintf("%s-%d-%d", strings.ToLower(string(mode)), replicas, i)
			start := time.Now()
			nc := newTLSNatsCluster(t, c, ns, name, replicas, natsforgev1alpha1.TLSSpec{Mode: mode})
			waitReady(t, c, nc, 5*time.Minute)
			d := time.Since(start)
			if mode == natsforgev1alpha1.TLSModeDisabled {
				without = append(without, d)
			} else {
				withTLS = append(withTLS, d)
			}
			if err := c.Delete(context.Background(), nc); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 2*time.Minute, "pods of "+name+" gone", func(ctx context.Context) (bool, error) {
				pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=" + name})
				return err == nil && len(pods.Items) == 0, err
			})
		}
	}
	t.Logf("time to Ready, %d pods, TLS (Operator): %s", replicas, durations(withTLS))
	t.Logf("time to Ready, %d pods, no TLS (Disabled): %s", replicas, durations(without))
	slices.Sort(withTLS)
	slices.Sort(without)
	t.Logf("time to Ready, %d pods: median ratio TLS/plaintext %.2f", replicas, float64(withTLS[1])/float64(without[1]))
}

// waitMeshTLS waits until every pod reports (HTTPS /routez) one route to each
// other pod, and returns the pods.
func waitMeshTLS(t *testing.T, nc *natsforgev1alpha1.NatsCluster, cfg *tls.Config, pods []corev1.Pod, timeout time.Duration) []corev1.Pod {
	t.Helper()
	waitFor(t, timeout, "a full mesh over TLS routes", func(ctx context.Context) (bool, error) {
		for _, p := range pods {
			var r monitor.Routez
			if err := httpsMonitorGet(ctx, cfg, p.Status.PodIP, "/routez", &r); err != nil {
				return false, err
			}
			if len(r.Routes) != len(pods)-1 {
				return false, fmt.Errorf("%s has %d routes, want %d", p.Name, len(r.Routes), len(pods)-1)
			}
		}
		return true, nil
	})
	return pods
}

// waitDeliveredTLS is waitDelivered over TLS.
func waitDeliveredTLS(t *testing.T, cfg *tls.Config, fromAddr, toAddr, subject string, timeout time.Duration) time.Duration {
	t.Helper()
	sub, err := connectTLS("tls://"+toAddr, cfg, nats.UserInfo("myname", "password"))
	if err != nil {
		t.Fatalf("subscriber on %s: %v", toAddr, err)
	}
	defer sub.Close()
	s, err := sub.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.Flush()
	pub, err := connectTLS("tls://"+fromAddr, cfg, nats.UserInfo("myname", "password"))
	if err != nil {
		t.Fatalf("publisher on %s: %v", fromAddr, err)
	}
	defer pub.Close()
	start := time.Now()
	for time.Since(start) < timeout {
		_ = pub.Publish(subject, []byte(fromAddr))
		if m, _ := s.NextMsg(200 * time.Millisecond); m != nil {
			return time.Since(start)
		}
	}
	t.Fatalf("a message published on %s did not reach a subscriber on %s within %s", fromAddr, toAddr, timeout)
	return 0
}

// redactURL hides the password of a nats url for logs.
func redactURL(u string) string {
	if i, j := strings.Index(u, "://"), strings.LastIndex(u, "@"); i >= 0 && j > i {
		if k := strings.Index(u[i+3:j], ":"); k >= 0 {
			return u[:i+3+k+1] + "***" + u[j:]
		}
	}
	return u
}
