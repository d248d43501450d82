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
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/monitor"
	"github.com/natsforge/natsforge/broker/server"
	"github.com/natsforge/natsforge/controllers/pki"
	"github.com/natsforge/natsforge/controllers/resources"
)

// TestTheProberReadsARealBrokersVarzOverHTTPSAndSeesRenewalsServed runs the
// real broker on the config the operator renders, with a server certificate
// issued as the operator issues it, and asks its HTTPS monitoring what it
// serves, as propagateConfig does, across renewals swapped in as the kubelet
// does.
func TestTheProberReadsARealBrokersVarzOverHTTPSAndSeesRenewalsServed(t *testing.T) {
	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "demo"}}
	nc.Spec.Auth.Users = []v1alpha1.User{{Name: "app"}}
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dns, ips := resources.ServerSANs(nc)
	cert, err := pki.Issue(ca, pki.Request{Subject: pkix.Name{CommonName: "demo"}, DNSNames: dns, IPs: ips,
		Usages: pki.ServerUsage, Lifetime: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mountSecret(t, dir, 1, map[string][]byte{"tls.crt": cert.CertPEM, "tls.key": cert.KeyPEM, "ca.crt": ca.CertPEM})
	hash, err := bcrypt.GenerateFromPassword([]byte("app-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	rendered, err := resources.RenderConfig(nc, resources.ConfigInputs{Users: []resources.BrokerUser{{Name: "app", PasswordHash: string(hash)}}, RoutePassword: "x"})
	if err != nil {
		t.Fatal(err)
	}
	file := []byte(strings.ReplaceAll(string(rendered), resources.TLSDir, dir))
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	local := func(o *conf.Options) error {
		// Loopback and free ports; the routes need the cluster's DNS, and
		// monitoring is served below on a test listener.
		o.Host, o.Port, o.HTTPSPort, o.Cluster = "127.0.0.1", server.RandomPort, 0, nil
		return nil
	}
	o, _, err := conf.Parse(file, path)
	if err != nil {
		t.Fatal(err)
	}
	_ = local(o)
	s, err := server.New(o, nil)
	if err != nil {
		t.Fatalf("the broker refuses the operator's config: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	if err := s.SetConfigFile(path, local); err != nil {
		t.Fatal(err)
	}
	mon := httptest.NewUnstartedServer(monitor.New(s).Handler())
	mon.TLS = s.MonitoringTLSConfig()
	mon.StartTLS()
	t.Cleanup(mon.Close)
	_, p, _ := net.SplitHostPort(mon.Listener.Addr().String())
	port, _ := strconv.Atoi(p)

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "demo-0", Labels: resources.SelectorLabels(nc)},
		Status: corev1.PodStatus{PodIP: "127.0.0.1"}}
	prober := HTTPDigestProber{Port: port}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	ctx := context.Background()

	got, err := prober.Varz(ctx, pod, &BrokerTrust{CA: roots})
	if err != nil {
		t.Fatalf("/varz over HTTPS trusting the cluster CA: %v", err)
	}
	if got.ConfigDigest != resources.ConfigDigest(file) || got.TLSCertSHA256 != cert.Fingerprint() {
		t.Errorf("/varz says config %q certificate %q, want %q %q", got.ConfigDigest, got.TLSCertSHA256, resources.ConfigDigest(file), cert.Fingerprint())
	}
	if _, err := prober.Varz(ctx, pod, &BrokerTrust{Pinned: cert.Fingerprint()}); err != nil {
		t.Errorf("pinned to the served certificate: %v", err)
	}

	other, _ := pki.NewCA("other", time.Now())
	foreign := x509.NewCertPool()
	foreign.AddCert(other.Cert)
	if _, err := prober.Varz(ctx, pod, &BrokerTrust{CA: foreign}); err == nil {
		t.Error("a broker whose certificate is not of the trusted CA was believed")
	}
	if _, err := prober.Varz(ctx, pod, &BrokerTrust{Pinned: strings.Repeat("0", 64)}); err == nil {
		t.Error("a certificate other than the pinned one was believed")
	}
	if _, err := prober.Varz(ctx, pod, nil); err == nil {
		t.Error("plain HTTP to the HTTPS monitoring port answered")
	}

	// A renewal, as the operator writes it and the kubelet swaps it in: the
	// broker reloads the files, and /varz proves the new certificate is
	// served; a client connected before stays connected, a new one sees
	// the new certificate.
	url := strings.Replace(s.ClientURL(), "nats://", "tls://", 1)
	asApp := []nats.Option{nats.Secure(&tls.Config{RootCAs: roots, ServerName: "demo.apps.svc", MinVersion: tls.VersionTLS12}),
		nats.UserInfo("app", "app-password"), nats.NoReconnect(), nats.Timeout(3 * time.Second)}
	before, err := nats.Connect(url, asApp...)
	if err != nil {
		t.Fatalf("connect over TLS: %v", err)
	}
	defer before.Close()
	// Five renewals, each timed from the swap to /varz proving it.
	var renewed *pki.KeyPair
	var took []time.Duration
	for v := 2; v <= 6; v++ {
		renewed, err = pki.Issue(ca, pki.Request{Subject: pkix.Name{CommonName: "demo"}, DNSNames: dns, IPs: ips,
			Usages: pki.ServerUsage, Lifetime: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		mountSecret(t, dir, v, map[string][]byte{"tls.crt": renewed.CertPEM, "tls.key": renewed.KeyPEM, "ca.crt": ca.CertPEM})
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := prober.Varz(ctx, pod, &BrokerTrust{CA: roots})
			if err == nil && got.TLSCertSHA256 == renewed.Fingerprint() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 10s /varz says %q (%v), want the renewed certificate %q", got.TLSCertSHA256, err, renewed.Fingerprint())
			}
			time.Sleep(10 * time.Millisecond)
		}
		took = append(took, time.Since(start))
	}
	t.Logf("a renewed certificate served and proven on /varz after the ..data swap: median %v, worst %v of %d (polled every 10ms)",
		median(took).Round(time.Millisecond), slices.Max(took).Round(time.Millisecond), len(took))
	if err := before.Flush(); err != nil || !before.IsConnected() {
		t.Errorf("the client connected before the renewal: connected %v, flush %v", before.IsConnected(), err)
	}
	after, err := nats.Connect(url, asApp...)
	if err != nil {
		t.Fatalf("connect after the renewal: %v", err)
	}
	defer after.Close()
	cs, err := after.TLSConnectionState()
	if err != nil || cs.PeerCertificates[0].SerialNumber.Cmp(renewed.Cert.SerialNumber) != 0 {
		t.Errorf("a new connection is served serial %v (%v), want the renewed %v", cs.PeerCertificates, err, renewed.Cert.SerialNumber)
	}
}

// mountSecret lays out files as the kubelet mounts a Secret: each key a
// symlink through ..data to a timestamped directory, swapped by renaming
// ..data at once.
func mountSecret(t *testing.T, dir string, version int, files map[string][]byte) {
	t.Helper()
	ts := filepath.Join(dir, fmt.Sprintf("..v%d", version))
	if err := os.Mkdir(ts, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(ts, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err != nil {
			if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}
