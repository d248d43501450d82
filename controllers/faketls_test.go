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
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/pki"
	"github.com/natsforge/natsforge/controllers/resources"
)

// fakeBrokerTLS stands in for the brokers' HTTPS monitoring port under
// envtest: like a broker, it serves the certificate of its cluster's mounted
// client TLS Secret, read when a connection arrives (the probe's SNI, a pod's
// route name, says which cluster), and keeps serving the last good one when
// the Secret is gone or broken. frozen stops it picking up new certificates,
// as a broker that has not reloaded yet.
type fakeBrokerTLS struct {
	frozen atomic.Bool
	mu     sync.Mutex
	served map[string]*tls.Certificate // by cluster "<ns>/<name>"
}

// fakeTLS is the suite's fake broker TLS.
var fakeTLS = &fakeBrokerTLS{served: map[string]*tls.Certificate{}}

// clusterOfServerName reads "<pod>.<name>-routes.<ns>.svc".
func clusterOfServerName(sni string) (client.ObjectKey, error) {
	parts := strings.Split(sni, ".")
	if len(parts) != 4 || !strings.HasSuffix(parts[1], "-routes") {
		return client.ObjectKey{}, fmt.Errorf("server name %q is no pod route name", sni)
	}
	return client.ObjectKey{Namespace: parts[2], Name: strings.TrimSuffix(parts[1], "-routes")}, nil
}

func (f *fakeBrokerTLS) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	key, err := clusterOfServerName(hello.ServerName)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	last := f.served[key.String()]
	f.mu.Unlock()
	if f.frozen.Load() && last != nil {
		return last, nil
	}
	ctx := context.Background()
	nc := &v1alpha1.NatsCluster{}
	s := &corev1.Secret{}
	err = k8s.Get(ctx, key, nc)
	if err == nil {
		err = k8s.Get(ctx, client.ObjectKey{Namespace: key.Namespace, Name: resources.ClientTLSSecretName(nc)}, s)
	}
	var cert tls.Certificate
	if err == nil {
		cert, err = tls.X509KeyPair(s.Data[resources.TLSCertKey], s.Data[resources.TLSKeyKey])
	}
	if err != nil {
		if last != nil {
			return last, nil // as the broker: the last good certificate stays
		}
		return nil, err
	}
	f.mu.Lock()
	f.served[key.String()] = &cert
	f.mu.Unlock()
	return &cert, nil
}

// servedFingerprint is what the fake /varz reports as tls_cert_sha256 for the
// cluster a probe named.
func (f *fakeBrokerTLS) servedFingerprint(sni string) string {
	key, err := clusterOfServerName(sni)
	if err != nil {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.served[key.String()]
	if c == nil || c.Leaf == nil {
		return ""
	}
	return pki.Fingerprint(c.Leaf)
}

// plainOrTLSListener serves plain HTTP and HTTPS on one port, as the fake
// /varz must for clusters with and without TLS: a connection whose first byte
// is a TLS handshake record is handed to crypto/tls.
type plainOrTLSListener struct {
	net.Listener
	config *tls.Config
}

func (l plainOrTLSListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	first, err := br.Peek(1)
	if err != nil {
		_ = c.Close()
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		return l.Accept()
	}
	pc := peekedConn{Conn: c, r: br}
	if first[0] == 0x16 { // TLS handshake record
		return tls.Server(pc, l.config), nil
	}
	return pc, nil
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
