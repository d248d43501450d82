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

// Package pki issues the certificates of a NatsCluster in tls.mode Operator:
// a per-cluster CA (ECDSA P-256, ten years) and, signed by it, the server,
// route and certificate-user certificates. It is pure code: it takes the clock
// and the current certificate as inputs and never touches a client, so
// renewal and reissue decisions are tested with plain table tests.
//
// Keys are ECDSA P-256 in PKCS#8 PEM ("PRIVATE KEY"). A key is only ever
// returned to the caller to be written to its Secret; nothing here logs or
// formats one.
package pki

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// CALifetime is how long the cluster CA is valid.
const CALifetime = 10 * 365 * 24 * time.Hour

// Backdate is how far before "now" a certificate becomes valid, so that a
// broker or client whose clock is slightly behind the operator's accepts it.
const Backdate = 5 * time.Minute

// KeyPair is a certificate and its private key, parsed and as PEM.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// Fingerprint is the hex SHA-256 of the certificate's DER.
func (k *KeyPair) Fingerprint() string { return Fingerprint(k.Cert) }

// Fingerprint is the hex SHA-256 of a certificate's DER, as the broker reports
// the certificate it serves on /varz (tls_cert_sha256).
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// RenewalTime is when a certificate is due for renewal: at 2/3 of its
// lifetime, as cert-manager does by default.
func RenewalTime(c *x509.Certificate) time.Time {
	life := c.NotAfter.Sub(c.NotBefore)
	return c.NotBefore.Add(life * 2 / 3)
}

// NewCA makes a self-signed CA certificate valid from now (less Backdate) for
// CALifetime.
func NewCA(commonName string, now time.Time) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-Backdate).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"natsforge"}},
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(CALifetime),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	return sign(tmpl, tmpl, key, key)
}

// Request describes a leaf certificate.
type Request struct {
	// Subject is the certificate's subject; at least a CommonName.
	Subject pkix.Name
	// DNSNames, IPs and Emails are its subject alternative names.
	DNSNames []string
	IPs      []net.IP
	Emails   []string
	// Usages are its extended key usages: server, client, or both.
	Usages []x509.ExtKeyUsage
	// Lifetime is how long it is valid.
	Lifetime time.Duration
}

// Usages.
var (
	ServerUsage       = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	ClientUsage       = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	ServerClientUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
)

// Issue signs a new certificate for req with ca, valid from now (less
// Backdate) for req.Lifetime, with a fresh key.
func Issue(ca *KeyPair, req Request, now time.Time) (*KeyPair, error) {
	if ca == nil || !ca.Cert.IsCA {
		return nil, errors.New("issue: no CA")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-Backdate).Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               req.Subject,
		DNSNames:              req.DNSNames,
		IPAddresses:           req.IPs,
		EmailAddresses:        req.Emails,
		NotBefore:             notBefore,
		NotAfter:              notBefore.Add(req.Lifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           req.Usages,
		BasicConstraintsValid: true,
	}
	return sign(tmpl, ca.Cert, key, ca.Key)
}

// Reissue says why the current certificate must be replaced for req, signed
// by ca, at now; "" means it is still good. current may be nil (there is
// none). It is the whole renewal policy: missing or unparsable, not signed by
// the current CA, due for renewal (2/3 of its lifetime), a lifetime other than
// the one asked for, or names, subject or usages that changed.
func Reissue(current *KeyPair, ca *KeyPair, req Request, now time.Time) string {
	if current == nil {
		return "no certificate"
	}
	c := current.Cert
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return "not valid under the cluster CA"
	}
	switch {
	case !now.Before(RenewalTime(c)):
		return fmt.Sprintf("due for renewal since %s (2/3 of its lifetime)", RenewalTime(c).UTC().Format(time.RFC3339))
	case c.NotAfter.Sub(c.NotBefore) != req.Lifetime:
		return fmt.Sprintf("lifetime %v, want %v", c.NotAfter.Sub(c.NotBefore), req.Lifetime)
	case !sameSet(c.DNSNames, req.DNSNames):
		return "DNS names changed"
	case !sameSet(ipStrings(c.IPAddresses), ipStrings(req.IPs)):
		return "IP addresses changed"
	case !sameSet(c.EmailAddresses, req.Emails):
		return "email addresses changed"
	case c.Subject.ToRDNSequence().String() != req.Subject.ToRDNSequence().String():
		return "subject changed"
	case !slices.Equal(c.ExtKeyUsage, req.Usages):
		return "key usages changed"
	}
	return ""
}

// ParseKeyPair parses PEM certificate (the first block is the leaf) and key,
// and checks that they belong together. Its errors never quote the key.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("tls.key: no PEM block")
	}
	key, err := parseKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("tls.key: %w", err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("tls.key does not match the certificate in tls.crt")
	}
	return &KeyPair{Cert: cert, Key: key, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}

// ParseCertificate parses the first certificate of a PEM bundle.
func ParseCertificate(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return cert, nil
}

// ParseCertificates parses every certificate of a PEM bundle (such as ca.crt).
func ParseCertificates(bundle []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := bytes.TrimSpace(bundle); len(rest) > 0; rest = bytes.TrimSpace(rest) {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("not PEM")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate")
	}
	return out, nil
}

func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, errors.New("unsupported key type")
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not a PKCS#8, SEC 1 or PKCS#1 private key")
}

func sign(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, parentKey crypto.Signer) (*KeyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// serial is a random 128-bit serial number.
func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128)) // crypto/rand never fails
	return n.Add(n, big.NewInt(1))
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}
