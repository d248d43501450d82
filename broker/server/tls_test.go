package server

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/internal/testcerts"
	"github.com/natsforge/natsforge/broker/monitor"
)

// pki is a CA, a server certificate for 127.0.0.1 in files, and a foreign
// CA nobody trusts.
type pki struct {
	ca, foreign *testcerts.CA
	files       testcerts.Files
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	ca := testcerts.NewCA(t, "natsforge test CA")
	return &pki{ca: ca, foreign: testcerts.NewCA(t, "foreign CA"), files: ca.Server(t, "broker").Write(t, t.TempDir(), ca)}
}

// serverTLS is a tls block serving p's certificate.
func (p *pki) serverTLS() *conf.TLS {
	return &conf.TLS{CertFile: p.files.Cert, KeyFile: p.files.Key, CAFile: p.files.CA}
}

// trust is the client side: trust p's CA, present certs.
func (p *pki) trust(certs ...tls.Certificate) nats.Option {
	return nats.Secure(&tls.Config{RootCAs: p.ca.Pool(), Certificates: certs, MinVersion: tls.VersionTLS12})
}

// bothServers runs the broker and nats-server with the same options.
func bothServers(t *testing.T, o *conf.Options) (ours, theirs string) {
	t.Helper()
	s := runServer(t, o)
	return s.ClientURL(), runOracle(t, o).ClientURL()
}

var addrPattern = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

// refusedInHandshake is how a client learns the server refused its
// certificate: TLS 1.3 finishes the client's side of the handshake first, so
// the client reads the server's alert, or (when the server's close overtakes
// it, which happens with nats-server) a broken pipe on its CONNECT.
var refusedInHandshake = regexp.MustCompile(`(nats: tls error: )?remote error: tls: certificate required|(nats: tls error: )?connection closed by remote after TLS handshake.*`)

func masked(err error) string {
	s := addrPattern.ReplaceAllString(err.Error(), "ADDR")
	return refusedInHandshake.ReplaceAllString(s, "refused in the TLS handshake (certificate required)")
}

// outcome is what a client sees connecting with opts: "ok" once a message
// went round through the server, else the error (addresses masked).
func outcome(url, subject string, opts ...nats.Option) string {
	opts = append(opts, nats.Timeout(3*time.Second), nats.NoReconnect())
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return masked(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(subject)
	if err == nil {
		err = nc.Publish(subject, []byte("hi"))
	}
	if err == nil {
		_, err = sub.NextMsg(3 * time.Second)
	}
	if err != nil {
		if le := nc.LastError(); le != nil {
			err = le
		}
		return masked(err)
	}
	return "ok"
}

func TestTLSClientsSeeWhatNATSServerClientsSee(t *testing.T) {
	p := newPKI(t)
	alice := p.ca.Client(t, pkix.Name{CommonName: "alice"}).TLSCertificate(t)
	bob := p.ca.Client(t, pkix.Name{CommonName: "bob", Organization: []string{"natsforge"}}, "bob@example.com").TLSCertificate(t)
	dave := p.ca.Client(t, pkix.Name{CommonName: "dave"}).TLSCertificate(t)
	stranger := p.foreign.Client(t, pkix.Name{CommonName: "alice"}).TLSCertificate(t)
	users := func(us ...conf.User) *conf.Authorization { return &conf.Authorization{Users: us} }
	withTLS := func(f func(*conf.TLS)) *conf.TLS { c := p.serverTLS(); f(c); return c }
	verify := withTLS(func(c *conf.TLS) { c.Verify = true })
	mapped := withTLS(func(c *conf.TLS) { c.VerifyAndMap = true })
	const bcryptPassword = "IW@$6v(y1(t@fhPDvf!5^%"
	for _, tc := range []struct {
		name   string
		o      *conf.Options
		client []nats.Option
		want   string // "ok", or a fragment of the error both must show
	}{
		{"a user with a password", &conf.Options{TLS: p.serverTLS(), Authorization: users(conf.User{Name: "u", Password: "pw"})},
			[]nats.Option{p.trust(), nats.UserInfo("u", "pw")}, "ok"},
		{"a user with a bcrypt hash", &conf.Options{TLS: p.serverTLS(), Authorization: users(conf.User{Name: "u", Password: "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq"})},
			[]nats.Option{p.trust(), nats.UserInfo("u", bcryptPassword)}, "ok"},
		{"a wrong password", &conf.Options{TLS: p.serverTLS(), Authorization: users(conf.User{Name: "u", Password: "pw"})},
			[]nats.Option{p.trust(), nats.UserInfo("u", "nope")}, "authorization violation"},
		{"a server CA the client does not trust", &conf.Options{TLS: p.serverTLS()},
			[]nats.Option{nats.Secure(&tls.Config{RootCAs: p.foreign.Pool()})}, "certificate signed by unknown authority"},
		{"verify with a good client certificate", &conf.Options{TLS: verify}, []nats.Option{p.trust(alice)}, "ok"},
		{"verify without a client certificate", &conf.Options{TLS: verify}, []nats.Option{p.trust()}, "certificate required"},
		{"verify with a foreign client certificate", &conf.Options{TLS: verify}, []nats.Option{p.trust(stranger)}, "certificate required"},
		{"verify_and_map with a CN identity", &conf.Options{TLS: mapped, Authorization: users(conf.User{Name: "CN=alice"})},
			[]nats.Option{p.trust(alice)}, "ok"},
		{"verify_and_map with an email SAN identity", &conf.Options{TLS: mapped, Authorization: users(conf.User{Name: "bob@example.com"})},
			[]nats.Option{p.trust(bob)}, "ok"},
		{"verify_and_map with a DN in another order", &conf.Options{TLS: mapped, Authorization: users(conf.User{Name: "O=natsforge, cn=bob"})},
			[]nats.Option{p.trust(bob)}, "ok"},
		{"verify_and_map with an identity nobody has", &conf.Options{TLS: mapped, Authorization: users(conf.User{Name: "CN=alice"})},
			[]nats.Option{p.trust(dave)}, "authorization violation"},
		{"verify_and_map ignores a password in CONNECT", &conf.Options{TLS: mapped, Authorization: users(conf.User{Name: "CN=alice"}, conf.User{Name: "carol", Password: "pw"})},
			[]nats.Option{p.trust(dave), nats.UserInfo("carol", "pw")}, "authorization violation"},
		{"verify_and_map with a certificate of a user with a password, and no password", &conf.Options{TLS: mapped, Authorization: users(conf.User{Name: "CN=dave", Password: "pw"})},
			[]nats.Option{p.trust(dave)}, "authorization violation"},
		{"verify_and_map with a certificate and the user's password", &conf.Options{TLS: mapped, Authorization: users(conf.User{Name: "CN=dave", Password: "pw"})},
			[]nats.Option{p.trust(dave), nats.UserInfo("anyone", "pw")}, "ok"},
		{"handshake_first", &conf.Options{TLS: withTLS(func(c *conf.TLS) { c.HandshakeFirst = true })},
			[]nats.Option{p.trust(), nats.TLSHandshakeFirst()}, "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, theirs := bothServers(t, tc.o)
			got, want := outcome(ours, "t.x", tc.client...), outcome(theirs, "t.x", tc.client...)
			if got != want {
				t.Fatalf("the broker's client sees %q, nats-server's %q", got, want)
			}
			if tc.want == "ok" && got != "ok" || tc.want != "ok" && !strings.Contains(strings.ToLower(got), tc.want) {
				t.Fatalf("both clients see %q; want %q", got, tc.want)
			}
		})
	}
}

func TestACertificateIdentityGetsItsUsersPermissions(t *testing.T) {
	p := newPKI(t)
	tlsc := p.serverTLS()
	tlsc.VerifyAndMap = true
	o := &conf.Options{TLS: tlsc, Authorization: &conf.Authorization{Users: []conf.User{
		{Name: "CN=alice", Permissions: &conf.Permissions{Publish: &conf.SubjectPermission{Allow: []string{"alice.>"}}}},
		{Name: "bob@example.com", Permissions: &conf.Permissions{Subscribe: &conf.SubjectPermission{Deny: []string{"secret.>"}}}},
	}}}
	alice := p.ca.Client(t, pkix.Name{CommonName: "alice"}).TLSCertificate(t)
	bob := p.ca.Client(t, pkix.Name{CommonName: "bob"}, "bob@example.com").TLSCertificate(t)
	ours, theirs := bothServers(t, o)
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		op   func(nc *nats.Conn) error
	}{
		{"alice publishes outside alice.>", alice, func(nc *nats.Conn) error { return nc.Publish("bob.x", nil) }},
		{"bob subscribes to secret.>", bob, func(nc *nats.Conn) error { _, err := nc.SubscribeSync("secret.x"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			see := func(url string) string {
				errs := make(chan error, 1)
				nc := connect(t, url, p.trust(tc.cert), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
					select {
					case errs <- err:
					default:
					}
				}))
				if err := tc.op(nc); err != nil {
					t.Fatal(err)
				}
				select {
				case err := <-errs:
					return err.Error()
				case <-time.After(3 * time.Second):
					return "no error"
				}
			}
			got, want := see(ours), see(theirs)
			if got != want || !strings.Contains(got, "permissions violation") {
				t.Fatalf("the broker's client sees %q, nats-server's %q", got, want)
			}
		})
	}
}

// infoOf reads the INFO a server sends first, as JSON fields.
func infoOf(t *testing.T, br *bufio.Reader) map[string]any {
	t.Helper()
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "INFO ") {
		t.Fatalf("first line %q: %v", line, err)
	}
	m := map[string]any{}
	if err := json.Unmarshal([]byte(strings.TrimSpace(line[5:])), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAPlainClientAgainstATLSServerGetsINFOAndThenTheCloseAsFromNATSServer(t *testing.T) {
	p := newPKI(t)
	for _, verify := range []bool{false, true} {
		tlsc := p.serverTLS()
		tlsc.Verify = verify
		s := runServer(t, &conf.Options{TLS: tlsc})
		oracle := runOracle(t, &conf.Options{TLS: tlsc})
		see := func(addr string) (tlsRequired, tlsVerify any, after string) {
			nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = nc.Close() }()
			_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
			br := bufio.NewReader(nc)
			info := infoOf(t, br)
			if _, err := nc.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n")); err != nil {
				t.Fatal(err)
			}
			rest, err := io.ReadAll(br)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("%s did not close the connection", addr)
			}
			return info["tls_required"], info["tls_verify"], string(rest)
		}
		r1, v1, a1 := see(s.Addr().String())
		r2, v2, a2 := see(oracle.Addr().String())
		if r1 != r2 || v1 != v2 || a1 != a2 {
			t.Errorf("verify %v: broker tls_required=%v tls_verify=%v then %q; nats-server %v %v then %q", verify, r1, v1, a1, r2, v2, a2)
		}
		if r1 != true {
			t.Errorf("tls_required is %v", r1)
		}
	}
}

func TestConnzShowsEachConnectionsTLSVersionAndCipher(t *testing.T) {
	p := newPKI(t)
	s := runServer(t, &conf.Options{TLS: p.serverTLS()})
	connect(t, s.ClientURL(), p.trust())
	cz := s.Connz(monitor.ConnzOptions{})
	if len(cz.Conns) != 1 {
		t.Fatalf("%d connections", len(cz.Conns))
	}
	c := cz.Conns[0]
	if c.TLSVersion != "1.3" || c.TLSCipher != "TLS_AES_128_GCM_SHA256" {
		t.Fatalf("tls_version %q, tls_cipher_suite %q", c.TLSVersion, c.TLSCipher)
	}
}

func TestABadCertificateAtStartUpIsAnErrorNamingTheFile(t *testing.T) {
	p := newPKI(t)
	for name, tc := range map[string]struct {
		tls  *conf.TLS
		want string
	}{
		"a missing cert_file":                 {&conf.TLS{CertFile: p.files.Cert + ".gone", KeyFile: p.files.Key}, "tls: cert_file " + p.files.Cert + ".gone: open"},
		"a key that is not the certificate's": {&conf.TLS{CertFile: p.files.Cert, KeyFile: p.files.CA}, "tls: cert_file " + p.files.Cert + ", key_file " + p.files.CA + ": tls:"},
		"a ca_file without certificates":      {&conf.TLS{CertFile: p.files.Cert, KeyFile: p.files.Key, CAFile: p.files.Key}, "tls: ca_file " + p.files.Key + ": no PEM certificate in it"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(&conf.Options{TLS: tc.tls}, nil)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v, want %s...", err, tc.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Fatalf("error shows key material: %v", err)
			}
		})
	}
}

func TestLargeMessagesSplitAcrossTLSRecordsArriveIntact(t *testing.T) {
	p := newPKI(t)
	s := runServer(t, &conf.Options{TLS: p.serverTLS()})
	sub := connect(t, s.ClientURL(), p.trust())
	ss, _ := sub.SubscribeSync("big")
	noErr(t, sub.Flush())
	pub := connect(t, s.ClientURL(), p.trust())
	sizes := []int{20 << 10, 5 << 10, 40 << 10, 17 << 10, 70 << 10, 16 << 10}
	for i, n := range sizes {
		if err := pub.Publish("big", bytes.Repeat([]byte{byte('a' + i)}, n)); err != nil {
			t.Fatal(err)
		}
	}
	noErr(t, pub.Flush())
	for i, n := range sizes {
		m, err := ss.NextMsg(3 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Data, bytes.Repeat([]byte{byte('a' + i)}, n)) {
			t.Fatalf("message %d (%d B) arrived as %d B starting %q", i, n, len(m.Data), m.Data[:min(8, len(m.Data))])
		}
	}
}

func TestWithVerifyAndMapAClientSkippingCONNECTIsNotTheNoAuthUserAsInNATSServer(t *testing.T) {
	p := newPKI(t)
	tlsc := p.serverTLS()
	tlsc.VerifyAndMap = true
	o := &conf.Options{TLS: tlsc, NoAuthUser: "anon", Authorization: &conf.Authorization{Users: []conf.User{{Name: "CN=alice"}, {Name: "anon", Password: "pw"}}}}
	dave := p.ca.Client(t, pkix.Name{CommonName: "dave"}).TLSCertificate(t)
	s := runServer(t, o)
	oracle := runOracle(t, o)
	see := func(addr string) string {
		nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = nc.Close() }()
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(nc)
		infoOf(t, br)
		tc := tls.Client(nc, &tls.Config{RootCAs: p.ca.Pool(), Certificates: []tls.Certificate{dave}, ServerName: "127.0.0.1"})
		if _, err := tc.Write([]byte("PUB a 1\r\nx\r\nPING\r\n")); err != nil {
			return "write: " + err.Error()
		}
		b, _ := io.ReadAll(tc)
		return string(b)
	}
	got, want := see(s.Addr().String()), see(oracle.Addr().String())
	if got != want || strings.Contains(got, "PONG") {
		t.Fatalf("the broker sends %q, nats-server %q", got, want)
	}
}

func TestMaxConnectionsRefusesATLSClientBeforeTheHandshakeAsNATSServer(t *testing.T) {
	p := newPKI(t)
	o := &conf.Options{TLS: p.serverTLS(), MaxConnections: 1}
	s := runServer(t, o)
	oracle := runOracle(t, o)
	see := func(url, addr string) string {
		connect(t, url, p.trust())
		nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = nc.Close() }()
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(nc)
		infoOf(t, br)
		rest, _ := io.ReadAll(br)
		return string(rest)
	}
	got, want := see(s.ClientURL(), s.Addr().String()), see(oracle.ClientURL(), oracle.Addr().String())
	if got != want || got != "-ERR 'maximum connections exceeded'\r\n" {
		t.Fatalf("after INFO the broker sends %q, nats-server %q", got, want)
	}
}
