//go:build bench

package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/conf"
)

// TLS rows: both servers serve the same ECDSA P-256 certificate (made here,
// at run time) from the same tls {} block; clients trust its CA. tls://
// URLs make connect use benchTLS.

// benchTLS is the client side of the TLS rows: trust the run's CA, and no
// session cache, so every connection is a full handshake.
var benchTLS *tls.Config

func (h *harness) tlsScenario() scenario {
	c := h.cfg
	return scenario{group: "tls", runs: c.runs,
		note: "TLS 1.3 on the client listener (ECDSA P-256 certificate, Go's default key exchange); one nats.go publisher to one subscriber; " +
			"connects/s are nats.go connections (INFO, full TLS handshake without session resumption, CONNECT, PING/PONG) from 4 clients at once, each closed after",
		metrics: tlsMetrics(),
		start: func(t target) (func(int) ([]float64, error), func(), error) {
			o, err := baseOptions()
			if err != nil {
				return nil, nil, err
			}
			if o.TLS, err = h.benchCertificate(); err != nil {
				return nil, nil, err
			}
			p, err := h.startServer(t, o)
			if err != nil {
				return nil, nil, err
			}
			url := "tls://" + p.addr()
			return func(int) ([]float64, error) {
				var out []float64
				var errs []error
				for _, size := range payloadSizes {
					v, _, err := fanIn(url, url, size, 1, false, c.d)
					if err != nil {
						v = nan
						errs = append(errs, fmt.Errorf("%d B: %w", size, err))
					}
					out = append(out, v)
				}
				v, err := tlsConnects(url, 4, c.d)
				if err != nil {
					v = nan
					errs = append(errs, fmt.Errorf("connects: %w", err))
				}
				return append(out, v), errors.Join(errs...)
			}, p.stop, nil
		}}
}

// tlsMetrics are the TLS rows: 1 -> 1 at every payload size of the plain
// sweep, then full handshakes per second.
func tlsMetrics() []metric {
	var m []metric
	for _, size := range payloadSizes {
		m = append(m, metric{"TLS 1 pub -> 1 sub, " + sizeName(size), "msgs/s", true, 1})
	}
	return append(m, metric{"TLS connects (full handshakes)", "connects/s", true, 1})
}

// tlsConnects is full-handshake connections per second from n clients at once.
func tlsConnects(url string, n int, d time.Duration) (float64, error) {
	var done atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				nc, err := connect(url)
				if err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				nc.Close()
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return float64(done.Load()) / time.Since(start).Seconds(), nil
}

// tlsOption is what connect adds for a tls:// URL.
func tlsOption(url string) []nats.Option {
	if !strings.HasPrefix(url, "tls://") {
		return nil
	}
	return []nats.Option{nats.Secure(benchTLS)}
}

var benchCert struct {
	once sync.Once
	tls  *conf.TLS
	err  error
}

// benchCertificate makes the run's CA and a server certificate for
// 127.0.0.1 (ECDSA P-256) once, writes them to the temp dir and sets benchTLS.
func (h *harness) benchCertificate() (*conf.TLS, error) {
	benchCert.once.Do(func() {
		benchCert.tls, benchCert.err = writeBenchCertificate(h.tmp)
	})
	return benchCert.tls, benchCert.err
}

func writeBenchCertificate(dir string) (*conf.TLS, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "natsforge bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "natsforge bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	t := &conf.TLS{CertFile: filepath.Join(dir, "bench.crt"), KeyFile: filepath.Join(dir, "bench.key")}
	if err := os.WriteFile(t.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(t.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	benchTLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return t, nil
}
