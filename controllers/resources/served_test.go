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

package resources

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/server"
	"github.com/natsforge/natsforge/controllers/pki"
)

// The tests in this file run the real broker on the config the operator
// renders, with certificates issued as the operator issues them, and connect
// real nats.go clients the way the README tells users to: trusting ca.crt and
// naming the Service. Routes and monitoring are left out: route names need
// the cluster's DNS, and each has its own broker tests.

// servedCluster issues nc's server certificate the way the operator does,
// writes it where the rendered config points (moved to a temporary
// directory), and starts a broker on the rendered config.
func servedCluster(t *testing.T, nc *v1alpha1.NatsCluster, in ConfigInputs) (url string, ca *pki.KeyPair) {
	t.Helper()
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dns, ips := ServerSANs(nc)
	kp, err := pki.Issue(ca, pki.Request{Subject: pkix.Name{CommonName: "server"}, DNSNames: dns, IPs: ips,
		Usages: pki.ServerUsage, Lifetime: CertificateDuration(nc)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range map[string][]byte{TLSCertKey: kp.CertPEM, TLSKeyKey: kp.KeyPEM, CACertKey: ca.CertPEM} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	b, err := RenderConfig(nc, in)
	if err != nil {
		t.Fatal(err)
	}
	o, _, err := conf.Parse([]byte(strings.ReplaceAll(string(b), TLSDir, dir)), ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	o.Host, o.Port, o.HTTPSPort, o.Cluster = "127.0.0.1", server.RandomPort, 0, nil
	s, err := server.New(o, nil)
	if err != nil {
		t.Fatalf("the broker refuses the operator's config: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return strings.Replace(s.ClientURL(), "nats://", "tls://", 1), ca
}

// asUser is nats.go trusting the cluster's CA, for the Service's name.
func asUser(ca *pki.KeyPair, certs ...tls.Certificate) nats.Option {
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	return nats.Secure(&tls.Config{RootCAs: roots, ServerName: "demo.apps.svc", Certificates: certs, MinVersion: tls.VersionTLS12})
}

// roundTrip connects and sends a message to itself on subject.
func roundTrip(url, subject string, opts ...nats.Option) error {
	nc, err := nats.Connect(url, append(opts, nats.Timeout(3*time.Second), nats.NoReconnect())...)
	if err != nil {
		return err
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		return err
	}
	if err := nc.Publish(subject, []byte("hi")); err != nil {
		return err
	}
	if _, err := sub.NextMsg(time.Second); err != nil {
		if last := nc.LastError(); last != nil {
			return last // a permissions violation arrives asynchronously
		}
		return err
	}
	return nc.LastError()
}

func TestAPasswordUserConnectsOverTLSTrustingTheClusterCA(t *testing.T) {
	nc := sampleCluster()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	url, ca := servedCluster(t, nc, ConfigInputs{Users: []BrokerUser{{Name: "alice", PasswordHash: string(hash)}}, RoutePassword: "x"})

	if err := roundTrip(url, "PUBLIC.a", nats.UserInfo("alice", "s3cret"), asUser(ca)); err != nil {
		t.Errorf("alice over TLS: %v", err)
	}
	if err := roundTrip(url, "PUBLIC.a", nats.UserInfo("alice", "wrong"), asUser(ca)); err == nil {
		t.Error("a wrong password connected")
	}
	other, _ := pki.NewCA("other", time.Now())
	if err := roundTrip(url, "PUBLIC.a", nats.UserInfo("alice", "s3cret"), asUser(other)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client trusting another CA: %v, want a certificate error", err)
	}
	plain := strings.Replace(url, "tls://", "nats://", 1)
	if err := roundTrip(plain, "PUBLIC.a", nats.UserInfo("alice", "s3cret")); err == nil {
		t.Error("a plaintext client connected")
	}
}

func TestCertificateUsersAreMappedByTheCertificatesTheOperatorIssues(t *testing.T) {
	nc := sampleCluster()
	nc.Spec.Auth.DefaultPermissions = nil
	orders := &v1alpha1.Permissions{Publish: &v1alpha1.SubjectPermission{Allow: []v1alpha1.Subject{"orders.>"}},
		Subscribe: &v1alpha1.SubjectPermission{Allow: []v1alpha1.Subject{"orders.>"}}}
	url, ca := servedCluster(t, nc, ConfigInputs{
		Users:            []BrokerUser{{Name: "CN=alice,O=acme", Permissions: orders}, {Name: "bob@example.com"}},
		RoutePassword:    "x",
		CertificateUsers: true,
	})
	clientCert := func(ca *pki.KeyPair, identity, name string) tls.Certificate {
		t.Helper()
		id, err := pki.ParseIdentity(identity, name)
		if err != nil {
			t.Fatal(err)
		}
		kp, err := pki.Issue(ca, pki.Request{Subject: id.Subject, Emails: id.Emails, Usages: pki.ClientUsage, Lifetime: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		c, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	alice := clientCert(ca, "CN=alice,O=acme", "alice")
	if err := roundTrip(url, "orders.new", asUser(ca, alice)); err != nil {
		t.Errorf("alice with her certificate: %v", err)
	}
	if err := roundTrip(url, "payments.new", asUser(ca, alice)); err == nil || !strings.Contains(err.Error(), "Permissions Violation") {
		t.Errorf("alice outside her permissions: %v, want a Permissions Violation", err)
	}
	if err := roundTrip(url, "anything", asUser(ca, clientCert(ca, "bob@example.com", "bob"))); err != nil {
		t.Errorf("bob by his email SAN: %v", err)
	}
	if err := roundTrip(url, "orders.new", asUser(ca, clientCert(ca, "CN=mallory,O=acme", "mallory"))); err == nil {
		t.Error("an identity that is no user connected")
	}
	other, _ := pki.NewCA("other", time.Now())
	if err := roundTrip(url, "orders.new", asUser(ca, clientCert(other, "CN=alice,O=acme", "alice"))); err == nil {
		t.Error("alice's identity from another CA connected")
	}
	if err := roundTrip(url, "orders.new", asUser(ca)); err == nil {
		t.Error("a client without a certificate connected")
	}
}
