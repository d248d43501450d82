package server

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/natsforge/natsforge/broker/conf"
)

// TLS on the client listener, as nats-server does it: INFO in the clear with
// tls_required, then the TLS handshake (or the handshake first, before INFO,
// with handshake_first), then the NATS protocol inside TLS. The certificate
// material is one immutable value behind an atomic pointer; reloading the
// files stores a new one, so new connections get the new certificate and
// existing ones keep theirs.

// DefaultTLSTimeout bounds a TLS handshake, as nats-server's.
const DefaultTLSTimeout = 2 * time.Second

// tlsMaterial is a loaded tls block: the files read, parsed and checked.
type tlsMaterial struct {
	opts   *conf.TLS
	config *tls.Config
	leaf   *x509.Certificate // the serving certificate, for its expiry
}

// loadTLS reads the files t names and builds the tls.Config. routes makes it
// mutual both ways (routes dial as well as accept), as nats-server does for
// cluster.tls. Errors name the file and never show key material.
func loadTLS(t *conf.TLS, routes bool) (*tlsMaterial, error) {
	if t == nil {
		return nil, nil
	}
	certPEM, err := os.ReadFile(t.CertFile)
	if err != nil {
		return nil, fmt.Errorf("cert_file %s: %w", t.CertFile, err)
	}
	keyPEM, err := os.ReadFile(t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("key_file %s: %w", t.KeyFile, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cert_file %s, key_file %s: %w", t.CertFile, t.KeyFile, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("cert_file %s: %w", t.CertFile, err)
	}
	pair.Leaf = leaf
	min, ok := conf.TLSMinVersion(t.MinVersion)
	if !ok {
		return nil, fmt.Errorf("min_version %q is not supported", t.MinVersion)
	}
	cfg := &tls.Config{
		MinVersion:   min,
		Certificates: []tls.Certificate{pair},
	}
	for _, name := range t.CipherSuites {
		id, ok := conf.TLSCipherSuite(name)
		if !ok {
			return nil, fmt.Errorf("cipher_suites: %q is not supported", name)
		}
		cfg.CipherSuites = append(cfg.CipherSuites, id)
	}
	for _, name := range t.CurvePreferences {
		id, ok := conf.TLSCurve(name)
		if !ok {
			return nil, fmt.Errorf("curve_preferences: %q is not supported", name)
		}
		cfg.CurvePreferences = append(cfg.CurvePreferences, id)
	}
	if t.CAFile != "" {
		caPEM, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file %s: %w", t.CAFile, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("ca_file %s: no PEM certificate in it", t.CAFile)
		}
		cfg.ClientCAs = pool
		if routes {
			cfg.RootCAs = pool
		}
	}
	if t.Verify || t.VerifyAndMap || routes {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return &tlsMaterial{opts: t, config: cfg, leaf: leaf}, nil
}

// timeout is the handshake bound.
func (m *tlsMaterial) timeout() time.Duration {
	if m.opts.Timeout > 0 {
		return m.opts.Timeout
	}
	return DefaultTLSTimeout
}

// clientTLS is the client listener's TLS, nil without it.
func (s *Server) clientTLS() *tlsMaterial { return s.tlsClient.Load() }

// MonitoringTLSConfig serves HTTPS monitoring (https_port) with the client
// listener's certificate, as nats-server: no client certificate asked for,
// and the certificate of the moment (reload swaps it) for each handshake.
// Nil without a tls block.
func (s *Server) MonitoringTLSConfig() *tls.Config {
	if s.clientTLS() == nil {
		return nil
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cfg := s.clientTLS().config.Clone()
			cfg.ClientAuth, cfg.ClientCAs = tls.NoClientCert, nil
			return cfg, nil
		},
	}
}

// connTLS is what a connection's handshake settled, for /connz and
// certificate mapping. Immutable once the connection is registered.
type connTLS struct {
	version string // "1.2", "1.3", as nats-server reports it
	cipher  string // Go's (= nats-server's) cipher suite name
	peer    *x509.Certificate
}

func newConnTLS(cs tls.ConnectionState) *connTLS {
	t := &connTLS{version: tlsVersionName(cs.Version), cipher: tls.CipherSuiteName(cs.CipherSuite)}
	if len(cs.PeerCertificates) > 0 {
		t.peer = cs.PeerCertificates[0]
	}
	return t
}

// tlsVersionName is nats-server's tlsVersion (monitor.go).
func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "1.0"
	case tls.VersionTLS11:
		return "1.1"
	case tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return fmt.Sprintf("Unknown [0x%x]", v)
}

// acceptTLSClient runs on a goroutine of its own, so that a slow handshake
// holds up nobody else: INFO in the clear (unless handshake_first), the
// handshake within the TLS timeout, then the connection proceeds as a plain
// one does, over TLS. A failed handshake closes the socket, as nats-server
// does: a plain client that sent CONNECT gets nothing but the close.
func (s *Server) acceptTLSClient(nc net.Conn, m *tlsMaterial) {
	defer s.wg.Done()
	c := s.newConn(nc)
	deadline := time.Now().Add(m.timeout())
	if !m.opts.HandshakeFirst {
		_ = nc.SetWriteDeadline(deadline)
		if _, err := nc.Write(s.clientInfo(c, false)); err != nil {
			_ = nc.Close()
			return
		}
	}
	// max_connections is checked before the handshake costs anything, and
	// refused in the clear, as nats-server does.
	if max := s.getOpts().MaxConnections; max > 0 {
		s.mu.Lock()
		full := len(s.clients) >= max
		s.mu.Unlock()
		if full {
			s.logger.Info("maximum connections exceeded", "addr", nc.RemoteAddr().String())
			_ = nc.SetWriteDeadline(deadline)
			_, _ = nc.Write([]byte("-ERR '" + errTextMaxConnections + "'\r\n"))
			lingeringClose(nc)
			return
		}
	}
	tc := tls.Server(nc, m.config)
	_ = tc.SetDeadline(deadline)
	if err := tc.Handshake(); err != nil {
		s.logger.Debug("TLS handshake error", "addr", nc.RemoteAddr().String(), "err", err.Error())
		lingeringClose(nc)
		return
	}
	_ = tc.SetDeadline(time.Time{})
	c.nc = tc
	c.tls = newConnTLS(tc.ConnectionState())
	s.registerClient(c, m.opts.HandshakeFirst)
}

// lingeringClose closes a connection whose handshake failed so that the
// client reads the TLS alert the handshake sent ("certificate required")
// rather than a reset: what the client already sent is read and dropped, for
// a moment, after our side is shut for writing.
func lingeringClose(nc net.Conn) {
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		_ = tc.SetReadDeadline(time.Now().Add(250 * time.Millisecond))
		_, _ = io.Copy(io.Discard, io.LimitReader(tc, 64<<10))
	}
	_ = nc.Close()
}

// certUser maps a verified client certificate to a configured user, in
// nats-server's order (auth.go checkClientTLSCertSubject): an email SAN, a
// DNS SAN, a URI SAN, then the subject as an RFC 2253 distinguished name
// (attribute types in any case, RDNs in any order).
func (ac *authConfig) certUser(cert *x509.Certificate) *userAuth {
	if cert == nil {
		return nil
	}
	for _, e := range cert.EmailAddresses {
		if u := ac.users[e]; u != nil {
			return u
		}
	}
	for _, d := range cert.DNSNames {
		if u := ac.users[d]; u != nil {
			return u
		}
	}
	for _, uri := range cert.URIs {
		if u := ac.users[uri.String()]; u != nil {
			return u
		}
	}
	subject := cert.Subject.ToRDNSequence().String()
	if u := ac.users[subject]; u != nil {
		return u
	}
	want, ok := dnKey(subject)
	if !ok {
		return nil
	}
	for _, u := range ac.users {
		if k, ok := dnKey(u.name); ok && k == want {
			return u
		}
	}
	return nil
}

// dnKey is a distinguished name made comparable: its type=value pairs with
// the types upper-cased and escapes resolved, sorted. ok is false for a
// string that is not a DN (most user names).
func dnKey(dn string) (string, bool) {
	var pairs []string
	var cur strings.Builder
	flush := func() bool {
		p := cur.String()
		cur.Reset()
		typ, val, found := strings.Cut(p, "=")
		typ = strings.TrimSpace(typ)
		if !found || typ == "" || strings.ContainsAny(typ, " \t") {
			return false
		}
		pairs = append(pairs, strings.ToUpper(typ)+"="+strings.TrimSpace(val))
		return true
	}
	for i := 0; i < len(dn); i++ {
		switch ch := dn[i]; ch {
		case '\\':
			if i+1 < len(dn) {
				i++
				cur.WriteByte(dn[i])
			}
		case ',', '+', ';':
			if !flush() {
				return "", false
			}
		default:
			cur.WriteByte(ch)
		}
	}
	if !flush() {
		return "", false
	}
	// Sorted, so that a reordered DN matches (nats-server's RDNsMatch).
	for i := 1; i < len(pairs); i++ {
		for j := i; j > 0 && pairs[j] < pairs[j-1]; j-- {
			pairs[j], pairs[j-1] = pairs[j-1], pairs[j]
		}
	}
	return strings.Join(pairs, "\x00"), true
}
