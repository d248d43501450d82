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

package controllers

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/controllers/pki"
	"github.com/natsforge/natsforge/controllers/resources"
)

// manualNamespace is not watched by the suite's manager: the tests there
// drive a reconciler of their own (with a counted client, or a clock).
const manualNamespace = "tls-manual"

func getSecret(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	eventually(t, timeout, func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s)
	})
	return s
}

func secretCert(t *testing.T, s *corev1.Secret) *x509.Certificate {
	t.Helper()
	kp, err := pki.ParseKeyPair(s.Data["tls.crt"], s.Data["tls.key"])
	if err != nil {
		t.Fatalf("Secret %s: %v", s.Name, err)
	}
	return kp.Cert
}

func TestANewClusterServesTLSFromItsOwnCA(t *testing.T) {
	needAPIServer(t)
	const ns = "tls"
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	nc := createCluster(t, ns, "t1", userRef("alice", "alice-pw"))
	if got := getCluster(t, nc); got.Spec.TLS.Mode != v1alpha1.TLSModeOperator {
		t.Errorf("spec.tls.mode defaults to %q, want Operator", got.Spec.TLS.Mode)
	}

	caSecret := getSecret(t, ns, "t1-ca")
	ca := secretCert(t, caSecret)
	caKey := caSecret.Data["tls.key"]
	if pub, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() || !ca.IsCA ||
		ca.NotAfter.Sub(ca.NotBefore) != pki.CALifetime {
		t.Errorf("CA: %T key, isCA %v, valid %v to %v", ca.PublicKey, ca.IsCA, ca.NotBefore, ca.NotAfter)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	server := getSecret(t, ns, "t1-tls")
	cert := secretCert(t, server)
	want := []string{"t1", "t1.tls", "t1.tls.svc", "t1.tls.svc.cluster.local"}
	for i := range 3 {
		host := fmt.Sprintf("t1-%d.t1-routes.tls.svc", i)
		want = append(want, host, host+".cluster.local")
	}
	if !slices.Equal(cert.DNSNames, want) {
		t.Errorf("server certificate SANs\n got %v\nwant %v", cert.DNSNames, want)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "t1.tls.svc"}); err != nil {
		t.Errorf("server certificate does not verify for t1.tls.svc under the cluster CA: %v", err)
	}
	// Once the client Service has its cluster IP, the certificate names it
	// too (a client on the node network dials the IP).
	svc := &corev1.Service{}
	eventually(t, timeout, func() error { return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "t1"}, svc) })
	eventually(t, timeout, func() error {
		server = getSecret(t, ns, "t1-tls")
		cert = secretCert(t, server)
		_, err := cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: svc.Spec.ClusterIP})
		return err
	})
	if got := cert.NotAfter.Sub(cert.NotBefore); got != v1alpha1.DefaultCertificateDuration {
		t.Errorf("server certificate lifetime %v, want 90 days", got)
	}
	if !bytes.Equal(server.Data["ca.crt"], caSecret.Data["tls.crt"]) || server.Type != corev1.SecretTypeTLS {
		t.Errorf("server Secret type %s, ca.crt is the CA: %v", server.Type, bytes.Equal(server.Data["ca.crt"], caSecret.Data["tls.crt"]))
	}
	routes := secretCert(t, getSecret(t, ns, "t1-routes-tls"))
	if !slices.Equal(routes.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}) {
		t.Errorf("route certificate usages %v, want server and client auth (routes are mutual TLS)", routes.ExtKeyUsage)
	}
	if _, err := routes.Verify(x509.VerifyOptions{Roots: roots, DNSName: "t1-2.t1-routes.tls.svc",
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("route certificate: %v", err)
	}

	// The config serves TLS everywhere from the mounted Secrets.
	o, _ := waitForConfig(t, nc, map[string]string{"alice": "alice-1"})
	if o.TLS == nil || o.HTTPSPort != 8222 || o.HTTPPort != 0 || o.Cluster.TLS == nil || !o.Cluster.TLS.Verify {
		t.Errorf("config tls %+v https_port %d http_port %d cluster tls %+v", o.TLS, o.HTTPSPort, o.HTTPPort, o.Cluster.TLS)
	}
	sts := &appsv1.StatefulSet{}
	eventually(t, timeout, func() error { return k8s.Get(context.Background(), client.ObjectKeyFromObject(nc), sts) })
	var mounted []string
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.Projected != nil { // the config and its parts
			for _, p := range v.Projected.Sources {
				mounted = append(mounted, p.Secret.Name)
			}
			continue
		}
		mounted = append(mounted, v.Secret.SecretName)
	}
	wantMounted := []string{"t1-config"}
	for i := 1; i <= resources.MaxConfigParts; i++ {
		wantMounted = append(wantMounted, fmt.Sprintf("t1-config-%d", i))
	}
	if !slices.Equal(mounted, append(wantMounted, "t1-tls", "t1-routes-tls")) {
		t.Errorf("pods mount %v: the CA (and its key) must never be mounted", mounted)
	}

	got := waitForCondition(t, nc, v1alpha1.ConditionSecure, metav1.ConditionTrue, v1alpha1.ReasonTLSOperator)
	if got.Status.TLS == nil || got.Status.TLS.NotAfter == nil || !got.Status.TLS.NotAfter.Time.Equal(cert.NotAfter) ||
		got.Status.TLS.CertificateSHA256 != pki.Fingerprint(cert) || got.Status.TLS.Mode != v1alpha1.TLSModeOperator {
		t.Errorf("status.tls %+v, want notAfter %v", got.Status.TLS, cert.NotAfter)
	}

	// The CA key is in no other Secret, and no private key in an Event.
	var secrets corev1.SecretList
	if err := k8s.List(context.Background(), &secrets, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		for k, v := range s.Data {
			if s.Name != "t1-ca" && bytes.Contains(v, caKey) {
				t.Errorf("the CA key is in Secret %s key %s", s.Name, k)
			}
		}
	}
	var events eventsv1.EventList
	if err := k8s.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if strings.Contains(e.Note, "PRIVATE KEY") {
			t.Errorf("Event %s carries a private key", e.Reason)
		}
	}

	// Deleting the server Secret forces a renewal: a new certificate from the
	// same CA at once.
	if err := k8s.Delete(context.Background(), server); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, func() error {
		s := &corev1.Secret{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "t1-tls"}, s); err != nil {
			return err
		}
		renewed := secretCert(t, s)
		if renewed.SerialNumber.Cmp(cert.SerialNumber) == 0 {
			return fmt.Errorf("same certificate")
		}
		if _, err := renewed.Verify(x509.VerifyOptions{Roots: roots, DNSName: "t1.tls.svc"}); err != nil {
			return err
		}
		return nil
	})
	waitForEvent(t, ns, "t1", corev1.EventTypeNormal, "CertificateIssued", "Secret t1-tls")
}

// manualReconciler reconciles only what a test asks, through a client whose
// requests are counted, at the time now returns.
func manualReconciler(t *testing.T, now func() time.Time) (*NatsClusterReconciler, *callCounter) {
	t.Helper()
	counted, calls := countingClient(t)
	return &NatsClusterReconciler{Client: counted, APIReader: counted, DefaultImage: DefaultImage("test"), Now: now}, calls
}

func writes(calls map[string]int) int {
	return calls["POST"] + calls["PUT"] + calls["PATCH"] + calls["DELETE"]
}

func createManualCluster(t *testing.T, name string, change func(*v1alpha1.NatsCluster)) *v1alpha1.NatsCluster {
	t.Helper()
	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: manualNamespace, Name: name}}
	nc.Spec.Auth = v1alpha1.AuthSpec{BcryptCost: testCost, Users: []v1alpha1.User{{Name: "app"}}}
	if change != nil {
		change(nc)
	}
	if err := k8s.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })
	return nc
}

func TestCertificatesAreCreatedOnceAndAResyncWritesNothing(t *testing.T) {
	needAPIServer(t)
	nc := createManualCluster(t, "resync", func(nc *v1alpha1.NatsCluster) {
		nc.Spec.Auth.Users = []v1alpha1.User{{Name: "alice", TLSIdentity: "CN=alice,O=acme"}}
	})
	r, calls := manualReconciler(t, nil)
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}
	calls.reset()
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if n := writes(calls.snapshot()); n == 0 {
		t.Fatal("the first reconcile wrote nothing")
	}
	before := map[string]string{}
	for _, name := range []string{"resync-ca", "resync-tls", "resync-routes-tls", "resync-user-alice"} {
		before[name] = pki.Fingerprint(secretCert(t, getSecret(t, manualNamespace, name)))
	}

	calls.reset()
	for range 3 {
		if _, err := r.Reconcile(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if got := calls.snapshot(); writes(got) != 0 {
		t.Errorf("three resyncs made %d writes (requests by method: %v), want 0", writes(got), got)
	}
	for name, fp := range before {
		if got := pki.Fingerprint(secretCert(t, getSecret(t, manualNamespace, name))); got != fp {
			t.Errorf("Secret %s holds another certificate after a resync", name)
		}
	}
}

func TestCertificatesAreRenewedAtTwoThirdsOfTheirLifetime(t *testing.T) {
	needAPIServer(t)
	now := time.Now()
	clock := func() time.Time { return now }
	nc := createManualCluster(t, "renewal", func(nc *v1alpha1.NatsCluster) {
		nc.Spec.TLS.CertificateDuration = &metav1.Duration{Duration: 3 * time.Hour}
	})
	r, calls := manualReconciler(t, clock)
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}
	reconcileAt := func(at time.Time) reconcile.Result {
		t.Helper()
		now = at
		res, err := r.Reconcile(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	start := now
	res := reconcileAt(start)
	first := secretCert(t, getSecret(t, manualNamespace, "renewal-tls"))
	ca := pki.Fingerprint(secretCert(t, getSecret(t, manualNamespace, "renewal-ca")))
	renewAt := first.NotBefore.Add(2 * time.Hour) // 2/3 of 3h
	if want := renewAt.Sub(start); res.RequeueAfter < want-time.Second || res.RequeueAfter > want+time.Second {
		t.Errorf("requeue after %v, want the renewal in %v", res.RequeueAfter, want)
	}

	// A second before 2/3 of the lifetime: nothing is written.
	calls.reset()
	reconcileAt(renewAt.Add(-time.Second))
	if n := writes(calls.snapshot()); n != 0 {
		t.Errorf("%d writes before the renewal time", n)
	}
	// At 2/3: the server and route certificates (and only they) are renewed.
	reconcileAt(renewAt)
	second := secretCert(t, getSecret(t, manualNamespace, "renewal-tls"))
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("the server certificate was not renewed at 2/3 of its lifetime")
	}
	if !second.NotBefore.Equal(renewAt.Add(-pki.Backdate).Truncate(time.Second)) {
		t.Errorf("renewed certificate valid from %v", second.NotBefore)
	}
	if got := pki.Fingerprint(secretCert(t, getSecret(t, manualNamespace, "renewal-ca"))); got != ca {
		t.Error("the CA changed with a renewal")
	}
	routes := secretCert(t, getSecret(t, manualNamespace, "renewal-routes-tls"))
	if routes.NotBefore.Before(renewAt.Add(-pki.Backdate - time.Second)) {
		t.Error("the route certificate was not renewed")
	}
	got := getCluster(t, nc)
	if got.Status.TLS == nil || !got.Status.TLS.NotAfter.Time.Equal(second.NotAfter) {
		t.Errorf("status.tls %+v does not follow the renewal", got.Status.TLS)
	}
	// The pod template does not change: a renewal rolls no pod.
	sts := &appsv1.StatefulSet{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(nc), sts); err != nil {
		t.Fatal(err)
	}
	if sts.Generation != 1 {
		t.Errorf("StatefulSet generation %d after a renewal, want 1", sts.Generation)
	}
}

func TestTheServerCertificateFollowsScalingAndExtraSANs(t *testing.T) {
	needAPIServer(t)
	nc := createManualCluster(t, "sans", nil)
	r, _ := manualReconciler(t, nil)
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	first := secretCert(t, getSecret(t, manualNamespace, "sans-tls"))
	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) {
		nc.Spec.Replicas = ptr.To[int32](4)
		nc.Spec.TLS.ExtraSANs = []string{"nats.example.com", "203.0.113.9"}
	})
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	second := secretCert(t, getSecret(t, manualNamespace, "sans-tls"))
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("not reissued")
	}
	for _, name := range []string{"sans-3.sans-routes.tls-manual.svc", "nats.example.com"} {
		if !slices.Contains(second.DNSNames, name) {
			t.Errorf("reissued certificate lacks %s: %v", name, second.DNSNames)
		}
	}
	if n := len(second.IPAddresses); n != 2 || second.IPAddresses[n-1].String() != "203.0.113.9" {
		t.Errorf("IP SANs %v, want the Service's cluster IP and 203.0.113.9", second.IPAddresses)
	}
	routes := secretCert(t, getSecret(t, manualNamespace, "sans-routes-tls"))
	if !slices.Contains(routes.DNSNames, "sans-3.sans-routes.tls-manual.svc") {
		t.Errorf("route certificate lacks the new pod: %v", routes.DNSNames)
	}
}

func TestACertificateUserGetsAClientCertificateAndIsMappedByIt(t *testing.T) {
	needAPIServer(t)
	const ns = "tls-users"
	nc := createCluster(t, ns, "cu",
		v1alpha1.User{Name: "alice", TLSIdentity: "CN=alice,O=acme"},
		v1alpha1.User{Name: "bob", TLSIdentity: "bob@example.com"})
	ca := secretCert(t, getSecret(t, ns, "cu-ca"))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for user, check := range map[string]func(*x509.Certificate) error{
		"alice": func(c *x509.Certificate) error {
			if got := c.Subject.ToRDNSequence().String(); got != "CN=alice,O=acme" {
				return fmt.Errorf("subject %q", got)
			}
			return nil
		},
		"bob": func(c *x509.Certificate) error {
			if !slices.Equal(c.EmailAddresses, []string{"bob@example.com"}) {
				return fmt.Errorf("emails %v", c.EmailAddresses)
			}
			return nil
		},
	} {
		s := getSecret(t, ns, "cu-user-"+user)
		c := secretCert(t, s)
		if err := check(c); err != nil {
			t.Errorf("%s: %v", user, err)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s's certificate is no client certificate of the cluster CA: %v", user, err)
		}
		if len(s.Data["ca.crt"]) == 0 || len(s.Data["password"]) != 0 {
			t.Errorf("%s's Secret lacks ca.crt or has a password", user)
		}
	}
	var o = waitForCertificateUsers(t, nc, 2)
	if o.TLS == nil || !o.TLS.VerifyAndMap {
		t.Errorf("client tls %+v, want verify_and_map", o.TLS)
	}
	for _, u := range o.Authorization.Users {
		if u.Password != "" || (u.Name != "CN=alice,O=acme" && u.Name != "bob@example.com") {
			t.Errorf("config user %q with password %v", u.Name, u.Password != "")
		}
	}
	got := waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionTrue, v1alpha1.ReasonAllUsersResolved)
	if got.Status.ResolvedUsers != 2 || got.Status.Users[0].Reason != v1alpha1.UserCertificate {
		t.Errorf("status users %+v", got.Status.Users)
	}
}

func waitForCertificateUsers(t *testing.T, nc *v1alpha1.NatsCluster, n int) *conf.Options {
	t.Helper()
	var o *conf.Options
	eventually(t, timeout, func() error {
		var err error
		if o, _, err = brokerConfig(nc); err != nil {
			return err
		}
		if o.Authorization == nil || len(o.Authorization.Users) != n {
			return fmt.Errorf("config users %+v, want %d", o.Authorization, n)
		}
		return nil
	})
	return o
}

// certManagerSecret writes a Secret of the shape cert-manager writes, with a
// certificate from ca valid for life from now.
func certManagerSecret(t *testing.T, ns, name string, ca *pki.KeyPair, life time.Duration) *pki.KeyPair {
	t.Helper()
	kp, err := pki.Issue(ca, pki.Request{Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		Usages: pki.ServerClientUsage, Lifetime: life}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeTLS}
	err = k8s.Get(ctx, client.ObjectKeyFromObject(s), s)
	s.Data = map[string][]byte{"tls.crt": kp.CertPEM, "tls.key": kp.KeyPEM, "ca.crt": ca.CertPEM}
	if err != nil {
		err = k8s.Create(ctx, s)
	} else {
		err = k8s.Update(ctx, s)
	}
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func waitForServedCertificate(t *testing.T, nc *v1alpha1.NatsCluster, kp *pki.KeyPair) {
	t.Helper()
	eventually(t, timeout, func() error {
		got := getCluster(t, nc)
		if got.Status.TLS == nil || got.Status.TLS.CertificateSHA256 != kp.Fingerprint() {
			return fmt.Errorf("status.tls %+v, want the certificate %s", got.Status.TLS, kp.Fingerprint())
		}
		return nil
	})
}

func TestSecretsModeServesTheNamedSecretAndKeepsTheLastGoodOneWhenItGoes(t *testing.T) {
	needAPIServer(t)
	const ns = "tls-secrets"
	ca, err := pki.NewCA("cert-manager CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	first := certManagerSecret(t, ns, "nats-cert", ca, 24*time.Hour)
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "cm"}}
	nc.Spec.Replicas = ptr.To[int32](1)
	nc.Spec.Auth = v1alpha1.AuthSpec{BcryptCost: testCost, Users: []v1alpha1.User{userRef("alice", "alice-pw")}}
	nc.Spec.TLS = v1alpha1.TLSSpec{Mode: v1alpha1.TLSModeSecrets, Client: &v1alpha1.TLSSecretReference{SecretName: "nats-cert"}}
	if err := k8s.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })

	waitForCondition(t, nc, v1alpha1.ConditionSecure, metav1.ConditionTrue, v1alpha1.ReasonTLSSecrets)
	waitForServedCertificate(t, nc, first)
	_, configSecret := waitForConfig(t, nc, map[string]string{"alice": "alice-1"})
	for _, name := range []string{"cm-ca", "cm-tls"} {
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &corev1.Secret{}); err == nil {
			t.Errorf("mode Secrets made Secret %s", name)
		}
	}

	// A pod serving the certificate proves it on /varz.
	pod := brokerPod(t, nc, 0)
	fakeDigest.Store(resources.ConfigDigest(configSecret.Data["nats.conf"]))
	makeReady(t, pod)
	waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)

	// cert-manager renews: the new certificate is known at once (the Secret
	// is watched), and ConfigPropagated waits until the broker serves it.
	fakeTLS.frozen.Store(true)
	second := certManagerSecret(t, ns, "nats-cert", ca, 24*time.Hour)
	waitForServedCertificate(t, nc, second)
	got := waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionFalse, v1alpha1.ReasonConfigPending)
	if msg := condition(got, v1alpha1.ConditionConfigPropagated).Message; !strings.Contains(msg, "serves an older certificate") {
		t.Errorf("ConfigPropagated message %q", msg)
	}
	eventually(t, timeout, func() error {
		cur := &corev1.Pod{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), cur); err != nil {
			return err
		}
		if cur.Annotations[resources.AnnotationTLSHash] == "" {
			return fmt.Errorf("pod not told about the new certificate: %v", cur.Annotations)
		}
		return nil
	})
	fakeTLS.frozen.Store(false)
	waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)

	// The Secret goes: Secure says so, the config and the mounts stay, and
	// the brokers keep serving the last good certificate.
	if err := k8s.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nats-cert"}}); err != nil {
		t.Fatal(err)
	}
	got = waitForCondition(t, nc, v1alpha1.ConditionSecure, metav1.ConditionFalse, v1alpha1.ReasonTLSSecretNotFound)
	if msg := condition(got, v1alpha1.ConditionSecure).Message; !strings.Contains(msg, "nats-cert not found") || !strings.Contains(msg, "last good certificate") {
		t.Errorf("Secure message %q", msg)
	}
	if got.Status.TLS == nil || got.Status.TLS.CertificateSHA256 != second.Fingerprint() {
		t.Errorf("status.tls %+v lost the certificate still served", got.Status.TLS)
	}
	if _, after, _ := brokerConfig(nc); !bytes.Equal(after.Data["nats.conf"], configSecret.Data["nats.conf"]) {
		t.Error("the config changed when the certificate Secret went missing")
	}
	if c := condition(got, v1alpha1.ConditionConfigPropagated); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("ConfigPropagated %+v: the broker still serves the last good certificate", c)
	}

	// A broken Secret is refused the same way, naming the problem.
	bad := certManagerSecret(t, ns, "nats-cert", ca, 24*time.Hour)
	s := getSecret(t, ns, "nats-cert")
	s.Data["tls.key"] = certManagerSecret(t, ns, "other", ca, time.Hour).KeyPEM
	if err := k8s.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	got = waitForCondition(t, nc, v1alpha1.ConditionSecure, metav1.ConditionFalse, v1alpha1.ReasonTLSSecretInvalid)
	if msg := condition(got, v1alpha1.ConditionSecure).Message; !strings.Contains(msg, "does not match") || strings.Contains(msg, string(bad.KeyPEM[40:80])) {
		t.Errorf("Secure message %q", msg)
	}
}

func TestACertificateAboutToExpireThatTheOperatorDoesNotManageIsWarnedOf(t *testing.T) {
	needAPIServer(t)
	const ns = "tls-secrets"
	ca, err := pki.NewCA("cert-manager CA", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certManagerSecret(t, ns, "expiring", ca, 10*24*time.Hour)
	createPasswordSecret(t, ns, "bob-pw", "bob-1")
	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "exp"}}
	nc.Spec.Auth = v1alpha1.AuthSpec{BcryptCost: testCost, Users: []v1alpha1.User{userRef("bob", "bob-pw")}}
	nc.Spec.TLS = v1alpha1.TLSSpec{Mode: v1alpha1.TLSModeSecrets, Client: &v1alpha1.TLSSecretReference{SecretName: "expiring"}}
	if err := k8s.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })
	waitForEvent(t, ns, "exp", corev1.EventTypeWarning, "CertificateExpiring", "expiring")
}

func waitForEvent(t *testing.T, ns, object, typ, reason, text string) {
	t.Helper()
	eventually(t, timeout, func() error {
		var events eventsv1.EventList
		if err := k8s.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Regarding.Name == object && e.Type == typ && e.Reason == reason && strings.Contains(e.Note, text) {
				return nil
			}
		}
		return fmt.Errorf("no %s Event %s on %s mentioning %q among %d", typ, reason, object, text, len(events.Items))
	})
}

func TestDisabledTLSBehindALoadBalancerIsPlaintextExposed(t *testing.T) {
	needAPIServer(t)
	const ns = "tls-exposed"
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "open"}}
	nc.Spec.Auth = v1alpha1.AuthSpec{BcryptCost: testCost, Users: []v1alpha1.User{userRef("alice", "alice-pw"), {Name: "gen"}}}
	nc.Spec.TLS.Mode = v1alpha1.TLSModeDisabled
	if err := k8s.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })
	waitForCondition(t, nc, v1alpha1.ConditionSecure, metav1.ConditionFalse, v1alpha1.ReasonTLSDisabled)
	o, _ := waitForConfig(t, nc, map[string]string{"alice": "alice-1", "gen": generatedPassword(t, ns, "open-user-gen")})
	if o.TLS != nil || o.Cluster.TLS != nil || o.HTTPPort != 8222 {
		t.Errorf("Disabled config serves tls %+v cluster tls %+v http_port %d", o.TLS, o.Cluster.TLS, o.HTTPPort)
	}
	gen := getSecret(t, ns, "open-user-gen")
	if !strings.HasPrefix(string(gen.Data["url"]), "nats://") || gen.Data["ca.crt"] != nil {
		t.Errorf("Disabled: url %q, ca.crt %v", gen.Data["url"], gen.Data["ca.crt"] != nil)
	}

	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) { nc.Spec.Service.Type = corev1.ServiceTypeLoadBalancer })
	got := waitForCondition(t, nc, v1alpha1.ConditionSecure, metav1.ConditionFalse, v1alpha1.ReasonPlaintextExposed)
	if msg := condition(got, v1alpha1.ConditionSecure).Message; !strings.Contains(msg, "LoadBalancer") {
		t.Errorf("Secure message %q", msg)
	}
	waitForEvent(t, ns, "open", corev1.EventTypeWarning, v1alpha1.ReasonPlaintextExposed, "cleartext")
}

func TestAUserTurningIntoACertificateUserGetsItsSecretAnew(t *testing.T) {
	needAPIServer(t)
	nc := createManualCluster(t, "turn", nil)
	r, _ := manualReconciler(t, nil)
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if s := getSecret(t, manualNamespace, "turn-user-app"); s.Type != corev1.SecretTypeOpaque || len(s.Data["password"]) == 0 {
		t.Fatalf("generated Secret type %s", s.Type)
	}
	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) { nc.Spec.Auth.Users[0].TLSIdentity = "CN=app" })
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	s := getSecret(t, manualNamespace, "turn-user-app")
	if s.Type != corev1.SecretTypeTLS || len(s.Data["password"]) != 0 || secretCert(t, s).Subject.CommonName != "app" {
		t.Errorf("certificate user's Secret: type %s, has a password %v", s.Type, len(s.Data["password"]) != 0)
	}
	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) { nc.Spec.Auth.Users[0].TLSIdentity = "" })
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if s := getSecret(t, manualNamespace, "turn-user-app"); s.Type != corev1.SecretTypeOpaque || len(s.Data["password"]) == 0 ||
		!strings.HasPrefix(string(s.Data["url"]), "tls://") || len(s.Data["ca.crt"]) == 0 {
		t.Errorf("password user's Secret again: type %s, keys %d", s.Type, len(s.Data))
	}
}

// TestFirstReconcileTimingWithAndWithoutTLS measures what TLS adds to the
// first reconcile of a cluster (a CA, the server and route certificates: key
// generation, signing, three Secrets more), interleaving clusters with and
// without TLS in the same run so that the two share the machine's load. It
// logs and asserts nothing about time. Run it with:
//
//	go test ./controllers -run TestFirstReconcileTimingWithAndWithoutTLS -v
func TestFirstReconcileTimingWithAndWithoutTLS(t *testing.T) {
	needAPIServer(t)
	if testing.Short() {
		t.Skip("timing")
	}
	const rounds = 7
	r, _ := manualReconciler(t, nil)
	first := func(name string, mode v1alpha1.TLSMode) time.Duration {
		t.Helper()
		nc := createManualCluster(t, name, func(nc *v1alpha1.NatsCluster) { nc.Spec.TLS.Mode = mode })
		start := time.Now()
		if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	var with, without []time.Duration
	for i := range rounds {
		with = append(with, first(fmt.Sprintf("timing-tls-%d", i), v1alpha1.TLSModeOperator))
		without = append(without, first(fmt.Sprintf("timing-plain-%d", i), v1alpha1.TLSModeDisabled))
	}
	t.Logf("first reconcile with TLS (mode Operator): median %v, min %v, max %v; without (Disabled): median %v, min %v, max %v; ratio of medians %.2f (%d of each, interleaved)",
		median(with), slices.Min(with), slices.Max(with), median(without), slices.Min(without), slices.Max(without),
		float64(median(with))/float64(median(without)), rounds)
}

func TestATLSIdentityTheOperatorCannotIssueLeavesOnlyThatUserOut(t *testing.T) {
	needAPIServer(t)
	nc := createManualCluster(t, "badid", func(nc *v1alpha1.NatsCluster) {
		nc.Spec.Auth.Users = []v1alpha1.User{{Name: "a", TLSIdentity: "CN=a"}, {Name: "b", TLSIdentity: "DC=org,CN=b"}}
	})
	r, _ := manualReconciler(t, nil)
	if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}); err != nil {
		t.Fatal(err)
	}
	got := getCluster(t, nc)
	c := condition(got, v1alpha1.ConditionUsersResolved)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonInvalidTLSIdentity || !strings.Contains(c.Message, "user b") {
		t.Errorf("UsersResolved %+v", c)
	}
	o, _, err := brokerConfig(nc)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Authorization.Users) != 1 || o.Authorization.Users[0].Name != "CN=a" {
		t.Errorf("config users %+v, want only CN=a", o.Authorization.Users)
	}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: manualNamespace, Name: "badid-user-b"}, &corev1.Secret{}); err == nil {
		t.Error("a certificate was issued for an identity the operator cannot issue")
	}
}

func TestWithVerifyClientsAGeneratedUserGetsAClientCertificateToo(t *testing.T) {
	needAPIServer(t)
	nc := createManualCluster(t, "verify", func(nc *v1alpha1.NatsCluster) { nc.Spec.TLS.VerifyClients = true })
	r, calls := manualReconciler(t, nil)
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	s := getSecret(t, manualNamespace, "verify-user-app")
	c := secretCert(t, s)
	roots := x509.NewCertPool()
	roots.AddCert(secretCert(t, getSecret(t, manualNamespace, "verify-ca")))
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil || c.Subject.CommonName != "app" {
		t.Errorf("client certificate CN=%s: %v", c.Subject.CommonName, err)
	}
	if len(s.Data["password"]) == 0 || len(s.Data["ca.crt"]) == 0 {
		t.Error("the Secret lost its password or ca.crt")
	}
	o, _, err := brokerConfig(nc)
	if err != nil {
		t.Fatal(err)
	}
	if o.TLS == nil || !o.TLS.Verify {
		t.Errorf("client tls %+v, want verify", o.TLS)
	}
	calls.reset()
	for range 3 {
		if _, err := r.Reconcile(context.Background(), req); err != nil {
			t.Fatal(err)
		}
	}
	if got := calls.snapshot(); writes(got) != 0 {
		t.Errorf("three resyncs made %d writes (%v), want 0", writes(got), got)
	}
}
