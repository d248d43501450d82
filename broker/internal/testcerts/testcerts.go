// Package testcerts makes ECDSA P-256 certificates for tests at run time, so
// that no key is ever committed. A CA signs server and client leaves; each
// can be written out as PEM files the way a Kubernetes TLS Secret holds them
// (tls.crt, tls.key, ca.crt).
package testcerts

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// CA is a certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	PEM  []byte
}

// Leaf is a certificate signed by a CA, with its key.
type Leaf struct {
	Cert    *x509.Certificate
	CertPEM []byte
	KeyPEM  []byte
}

// T is what the helpers need of a *testing.T (or of a TestMain, see Must).
type T interface {
	Helper()
	Fatal(args ...any)
}

// Must is a T that panics, for use outside a test (TestMain, fuzz setup).
var Must T = must{}

type must struct{}

func (must) Helper()           {}
func (must) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

var serial atomic.Int64

func init() { serial.Store(time.Now().UnixNano() & 0xffffffff) }

func nextSerial() *big.Int { return big.NewInt(serial.Add(1)) }

func newKey(t T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// NewCA makes a self-signed CA named cn.
func NewCA(t T, cn string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          nextSerial(),
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"natsforge tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Options shape a leaf.
type Options struct {
	Subject  pkix.Name
	DNSNames []string
	IPs      []net.IP
	Emails   []string
	NotAfter time.Time // zero: a day from now
	Server   bool      // server auth usage
	Client   bool      // client auth usage
}

// Server is a leaf for a server on localhost / 127.0.0.1 (and client use,
// as routes present it both ways).
func (ca *CA) Server(t T, cn string) *Leaf {
	return ca.Issue(t, Options{
		Subject:  pkix.Name{CommonName: cn},
		DNSNames: []string{"localhost"},
		IPs:      []net.IP{net.ParseIP("127.0.0.1"), net.IPv6loopback},
		Server:   true, Client: true,
	})
}

// Client is a client leaf with the given subject.
func (ca *CA) Client(t T, subject pkix.Name, emails ...string) *Leaf {
	return ca.Issue(t, Options{Subject: subject, Emails: emails, Client: true})
}

// Issue signs a leaf.
func (ca *CA) Issue(t T, o Options) *Leaf {
	t.Helper()
	key := newKey(t)
	notAfter := o.NotAfter
	if notAfter.IsZero() {
		notAfter = time.Now().Add(24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:   nextSerial(),
		Subject:        o.Subject,
		DNSNames:       o.DNSNames,
		IPAddresses:    o.IPs,
		EmailAddresses: o.Emails,
		NotBefore:      time.Now().Add(-time.Hour),
		NotAfter:       notAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
	}
	if o.Server {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if o.Client {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &Leaf{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
	}
}

// TLSCertificate is the leaf as a tls.Certificate (for a client).
func (l *Leaf) TLSCertificate(t T) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Pool is a cert pool holding the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Files are PEM files on disk.
type Files struct {
	Cert, Key, CA string
}

// Write writes the leaf and the CA into dir as tls.crt, tls.key and ca.crt,
// as a Kubernetes TLS Secret is mounted (without the ..data indirection; see
// SecretDir for that).
func (l *Leaf) Write(t T, dir string, ca *CA) Files {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := Files{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), CA: filepath.Join(dir, "ca.crt")}
	write(t, f.Cert, l.CertPEM)
	write(t, f.Key, l.KeyPEM)
	if ca != nil {
		write(t, f.CA, ca.PEM)
	}
	return f
}

func write(t T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// SecretVolume is a directory laid out as the kubelet mounts a Secret: the
// files are symlinks through `..data`, a symlink to a timestamped directory,
// and an update writes a new directory and swaps `..data` atomically.
type SecretVolume struct {
	Dir string
	gen int
}

// NewSecretVolume mounts files (name -> content) in dir.
func NewSecretVolume(t T, dir string, files map[string][]byte) *SecretVolume {
	t.Helper()
	v := &SecretVolume{Dir: dir}
	v.Update(t, files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// Update swaps in new content, as the kubelet does.
func (v *SecretVolume) Update(t T, files map[string][]byte) {
	t.Helper()
	v.gen++
	gen := fmt.Sprintf("..2026_11_30_00_00_%02d.%d", v.gen, v.gen)
	if err := os.MkdirAll(filepath.Join(v.Dir, gen), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		write(t, filepath.Join(v.Dir, gen, name), b)
	}
	tmp := filepath.Join(v.Dir, "..data_tmp")
	if err := os.Symlink(gen, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(v.Dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

// Secret is the content of a kubernetes.io/tls Secret with the CA: tls.crt,
// tls.key, ca.crt.
func (l *Leaf) Secret(ca *CA) map[string][]byte {
	return map[string][]byte{"tls.crt": l.CertPEM, "tls.key": l.KeyPEM, "ca.crt": ca.PEM}
}
