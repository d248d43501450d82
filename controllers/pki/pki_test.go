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

package pki

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

func mustCA(t *testing.T) *KeyPair {
	t.Helper()
	ca, err := NewCA("test-ca", t0)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func serverRequest() Request {
	return Request{
		Subject:  pkix.Name{CommonName: "nats"},
		DNSNames: []string{"nats", "nats.ns.svc"},
		IPs:      []net.IP{net.ParseIP("10.0.0.1")},
		Usages:   ServerUsage,
		Lifetime: 90 * 24 * time.Hour,
	}
}

func TestTheCAIsAnECDSAP256CAValidForTenYears(t *testing.T) {
	ca := mustCA(t)
	c := ca.Cert
	if !c.IsCA || c.PublicKeyAlgorithm != x509.ECDSA || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: isCA %v, algorithm %v, usage %v", c.IsCA, c.PublicKeyAlgorithm, c.KeyUsage)
	}
	if got := c.NotAfter.Sub(c.NotBefore); got != CALifetime {
		t.Errorf("CA lifetime %v, want %v", got, CALifetime)
	}
	if !strings.Contains(string(ca.KeyPEM), "PRIVATE KEY") {
		t.Error("key is not PEM")
	}
	back, err := ParseKeyPair(ca.CertPEM, ca.KeyPEM)
	if err != nil || back.Fingerprint() != ca.Fingerprint() {
		t.Errorf("CA does not parse back: %v", err)
	}
}

func TestIssuedCertificatesCarryTheRequestAndRenewAtTwoThirds(t *testing.T) {
	ca := mustCA(t)
	req := serverRequest()
	kp, err := Issue(ca, req, t0)
	if err != nil {
		t.Fatal(err)
	}
	c := kp.Cert
	if !slices.Equal(c.DNSNames, req.DNSNames) || !c.IPAddresses[0].Equal(req.IPs[0]) || !slices.Equal(c.ExtKeyUsage, ServerUsage) {
		t.Errorf("certificate DNS %v IPs %v usages %v", c.DNSNames, c.IPAddresses, c.ExtKeyUsage)
	}
	if c.NotAfter.Sub(c.NotBefore) != req.Lifetime || !c.NotBefore.Equal(t0.Add(-Backdate)) {
		t.Errorf("valid %v to %v", c.NotBefore, c.NotAfter)
	}
	if want := t0.Add(-Backdate).Add(60 * 24 * time.Hour); !RenewalTime(c).Equal(want) {
		t.Errorf("renewal %v, want %v (2/3 of 90 days)", RenewalTime(c), want)
	}
}

func TestReissueSaysWhyAndOnlyWhenNeeded(t *testing.T) {
	ca := mustCA(t)
	other := mustCA(t)
	req := serverRequest()
	kp, err := Issue(ca, req, t0)
	if err != nil {
		t.Fatal(err)
	}
	foreign, _ := Issue(other, req, t0)
	renewAt := RenewalTime(kp.Cert)
	tests := []struct {
		name    string
		current *KeyPair
		change  func(*Request)
		now     time.Time
		want    string
	}{
		{"unchanged, fresh", kp, nil, t0, ""},
		{"unchanged, a second before renewal", kp, nil, renewAt.Add(-time.Second), ""},
		{"at 2/3 of the lifetime", kp, nil, renewAt, "due for renewal"},
		{"missing", nil, nil, t0, "no certificate"},
		{"signed by another CA", foreign, nil, t0, "not valid under the cluster CA"},
		{"expired", kp, nil, kp.Cert.NotAfter.Add(time.Second), "not valid under the cluster CA"},
		{"a pod more", kp, func(r *Request) { r.DNSNames = append(r.DNSNames, "nats-3") }, t0, "DNS names changed"},
		{"names reordered", kp, func(r *Request) { slices.Reverse(r.DNSNames) }, t0, ""},
		{"an extra IP", kp, func(r *Request) { r.IPs = append(r.IPs, net.ParseIP("10.0.0.2")) }, t0, "IP addresses changed"},
		{"another lifetime", kp, func(r *Request) { r.Lifetime = time.Hour * 24 }, t0, "lifetime"},
		{"client usage too", kp, func(r *Request) { r.Usages = ServerClientUsage }, t0, "key usages changed"},
		{"another subject", kp, func(r *Request) { r.Subject.CommonName = "x" }, t0, "subject changed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := serverRequest()
			if tt.change != nil {
				tt.change(&r)
			}
			got := Reissue(tt.current, ca, r, tt.now)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("Reissue = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseKeyPairRefusesAForeignKeyWithoutQuotingIt(t *testing.T) {
	ca := mustCA(t)
	a, _ := Issue(ca, serverRequest(), t0)
	b, _ := Issue(ca, serverRequest(), t0)
	_, err := ParseKeyPair(a.CertPEM, b.KeyPEM)
	if err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("err %v", err)
	}
	if strings.Contains(err.Error(), "PRIVATE") || strings.Contains(err.Error(), string(b.KeyPEM[30:60])) {
		t.Error("error quotes the key")
	}
	if _, err := ParseKeyPair(a.CertPEM, []byte("garbage")); err == nil {
		t.Error("garbage key accepted")
	}
}

// TestRouteCertificatesWorkBothWaysInMutualTLS makes a real TLS handshake over
// loopback in which each side presents the route certificate and verifies the
// other's against the CA, as routes do.
func TestRouteCertificatesWorkBothWaysInMutualTLS(t *testing.T) {
	ca := mustCA(t)
	route, err := Issue(ca, Request{
		Subject: pkix.Name{CommonName: "nats-routes"}, DNSNames: []string{"nats-0.nats-routes.ns.svc"},
		Usages: ServerClientUsage, Lifetime: time.Hour,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(route.CertPEM, route.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert}, ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			err = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
		accepted <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
		Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "nats-0.nats-routes.ns.svc",
	})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = c.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("accept: %v", err)
	}
}

func TestIdentitiesBecomeTheSubjectOrEmailVerifyAndMapLooksFor(t *testing.T) {
	ca := mustCA(t)
	tests := []struct {
		identity    string
		wantSubject string
		wantEmails  []string
		wantErr     string
	}{
		{"CN=alice,O=acme", "CN=alice,O=acme", nil, ""},
		{"CN=bob,OU=dev,O=acme,L=Berlin,C=DE", "CN=bob,OU=dev,O=acme,L=Berlin,C=DE", nil, ""},
		{`CN=a\,b,O=acme`, `CN=a\,b,O=acme`, nil, ""},
		{"cn=carol", "CN=carol", nil, ""},
		{"carol@example.com", "CN=carol", []string{"carol@example.com"}, ""},
		{"DC=org,CN=x", "", nil, "attribute type"},
		{"CN=a,CN=b", "", nil, "twice"},
		{"carol", "", nil, "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.identity, func(t *testing.T) {
			id, err := ParseIdentity(tt.identity, "carol")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			kp, err := Issue(ca, Request{Subject: id.Subject, Emails: id.Emails, Usages: ClientUsage, Lifetime: time.Hour}, t0)
			if err != nil {
				t.Fatal(err)
			}
			// nats-server's literal lookup uses this string of the certificate.
			if got := kp.Cert.Subject.ToRDNSequence().String(); got != tt.wantSubject {
				t.Errorf("subject %q, want %q", got, tt.wantSubject)
			}
			if !slices.Equal(kp.Cert.EmailAddresses, tt.wantEmails) {
				t.Errorf("emails %v, want %v", kp.Cert.EmailAddresses, tt.wantEmails)
			}
		})
	}
}
