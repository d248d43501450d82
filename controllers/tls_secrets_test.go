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
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/pki"
)

// testCA makes a CA signed by parent (self-signed when parent is nil), with
// no path length limit, as a cert-manager issuer backed by an intermediate
// would have.
func testCA(t *testing.T, name string, parent *pki.KeyPair) *pki.KeyPair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	signer, signerKey := tmpl, any(key)
	if parent != nil {
		signer, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &pki.KeyPair{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func TestASecretWhoseTLSCrtCarriesTheChainIsAccepted(t *testing.T) {
	root := testCA(t, "root", nil)
	inter := testCA(t, "intermediate", root)
	leaf, err := pki.Issue(inter, pki.Request{Subject: pkix.Name{CommonName: "nats"}, DNSNames: []string{"nats"},
		Usages: pki.ServerClientUsage, Lifetime: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	secret := func(certPEM []byte) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "nats-cert"},
			Data: map[string][]byte{"tls.crt": certPEM, "tls.key": leaf.KeyPEM, "ca.crt": root.CertPEM}}
	}
	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"}}
	nc.Spec.TLS = v1alpha1.TLSSpec{Mode: v1alpha1.TLSModeSecrets, Client: &v1alpha1.TLSSecretReference{SecretName: "nats-cert"}}

	for name, tt := range map[string]struct {
		certPEM     []byte
		wantProblem string
	}{
		"leaf and intermediate in tls.crt": {append(append([]byte{}, leaf.CertPEM...), inter.CertPEM...), ""},
		"leaf alone, the root in ca.crt":   {leaf.CertPEM, v1alpha1.ReasonTLSSecretInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithObjects(secret(tt.certPEM)).Build()
			r := &NatsClusterReconciler{Client: c, APIReader: c}
			rq := &request{cluster: nc, original: nc.DeepCopy(), now: time.Now()}
			if err := r.ensureCertificates(context.Background(), rq); err != nil {
				t.Fatal(err)
			}
			if rq.tls.problem != tt.wantProblem {
				t.Errorf("problem %q (%s), want %q", rq.tls.problem, rq.tls.message, tt.wantProblem)
			}
			if tt.wantProblem == "" && (rq.tls.serving == nil || rq.tls.serving.SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0) {
				t.Error("the leaf is not what is served")
			}
		})
	}
}
