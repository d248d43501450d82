package conf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/natsforge/natsforge/broker/internal/testcerts"
)

// nats-server loads the files a tls block names while it parses, so every
// config that goes to it names real files: fixtures made once per test
// binary, two certificate pairs and two CAs.
var fixture struct {
	dir   string
	pairs [2]testcerts.Files
	cas   [2]string
}

func TestMain(m *testing.M) {
	// Fuzz workers are processes of their own; they inherit the fixture of
	// the process that started them through the environment, so that seeds
	// naming its files mean the same to them.
	const env = "NATSFORGE_CONF_TLS_FIXTURE"
	dir, owner := os.Getenv(env), false
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "conf-tls-"); err != nil {
			panic(err)
		}
		owner = true
		if err := os.Setenv(env, dir); err != nil {
			panic(err)
		}
	}
	fixture.dir = dir
	for i := range 2 {
		sub := filepath.Join(dir, fmt.Sprint(i))
		f := testcerts.Files{Cert: filepath.Join(sub, "tls.crt"), Key: filepath.Join(sub, "tls.key"), CA: filepath.Join(sub, "ca.crt")}
		if owner {
			ca := testcerts.NewCA(testcerts.Must, fmt.Sprintf("CA %d", i))
			f = ca.Server(testcerts.Must, fmt.Sprintf("server %d", i)).Write(testcerts.Must, sub, ca)
		}
		fixture.pairs[i], fixture.cas[i] = f, f.CA
	}
	code := m.Run()
	if owner {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintln(os.Stderr, "remove the TLS fixture:", err)
		}
	}
	os.Exit(code)
}

// tlsOptions is a tls block that uses every key, with files in dir.
func tlsOptions(dir string) *TLS {
	return &TLS{
		CertFile:         filepath.Join(dir, "tls.crt"),
		KeyFile:          filepath.Join(dir, "tls.key"),
		CAFile:           filepath.Join(dir, "ca.crt"),
		Verify:           true,
		VerifyAndMap:     true,
		Timeout:          1500 * time.Millisecond,
		HandshakeFirst:   true,
		CipherSuites:     []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
		CurvePreferences: []string{"X25519", "CurveP256"},
		MinVersion:       "1.3",
	}
}

// tlsEverywhere is TLS on clients, HTTPS monitoring and routes, as the
// operator renders it, with files in dir.
func tlsEverywhere(dir string) *Options {
	o := operatorOptions()
	o.HTTPPort, o.HTTPSPort = 0, DefaultHTTPPort
	o.TLS = &TLS{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"), CAFile: filepath.Join(dir, "ca.crt"), Timeout: 2 * time.Second}
	o.Cluster.TLS = &TLS{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"), CAFile: filepath.Join(dir, "ca.crt"), Verify: true}
	return o
}

func randomTLS(r *rand.Rand, routes bool) *TLS {
	p := fixture.pairs[r.IntN(2)]
	t := &TLS{CertFile: p.Cert, KeyFile: p.Key}
	switch r.IntN(3) {
	case 0:
		t.CAFile = fixture.cas[0]
	case 1:
		t.CAFile = fixture.cas[1]
	}
	t.Verify = r.IntN(2) == 0
	if !routes {
		t.VerifyAndMap = r.IntN(3) == 0
		t.HandshakeFirst = r.IntN(3) == 0
	}
	if r.IntN(2) == 0 {
		t.Timeout = randomDuration(r)
	}
	if r.IntN(3) == 0 {
		all := TLSCipherSuites()
		for _, i := range r.Perm(len(all))[:1+r.IntN(len(all)-1)] {
			t.CipherSuites = append(t.CipherSuites, all[i])
		}
	}
	if r.IntN(3) == 0 {
		all := sortedKeys(tlsCurves)
		for _, i := range r.Perm(len(all))[:1+r.IntN(3)] {
			t.CurvePreferences = append(t.CurvePreferences, all[i])
		}
	}
	t.MinVersion = []string{"", "1.2", "1.3"}[r.IntN(3)]
	return t
}

// fromNATSTLS reads back what nats-server made of a tls block: the files by
// what they hold (nats-server keeps no names), the rest from its tls.Config.
func fromNATSTLS(c *tls.Config, timeout float64, mapped, first bool) *TLS {
	t := &TLS{Timeout: seconds(timeout), VerifyAndMap: mapped, HandshakeFirst: first}
	t.Verify = c.ClientAuth == tls.RequireAndVerifyClientCert
	for _, p := range fixture.pairs {
		pem, _ := os.ReadFile(p.Cert)
		if kp, err := tls.X509KeyPair(pem, mustRead(p.Key)); err == nil && len(c.Certificates) > 0 &&
			slices.Equal(kp.Certificate[0], c.Certificates[0].Certificate[0]) {
			t.CertFile, t.KeyFile = p.Cert, p.Key
		}
	}
	for _, ca := range fixture.cas {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(mustRead(ca))
		if c.ClientCAs != nil && c.ClientCAs.Equal(pool) {
			t.CAFile = ca
		}
	}
	if !slices.Equal(c.CipherSuites, natsDefaultCiphers()) {
		for _, id := range c.CipherSuites {
			t.CipherSuites = append(t.CipherSuites, tls.CipherSuiteName(id))
		}
	}
	if !slices.Equal(c.CurvePreferences, natsDefaultCurves) {
		for _, id := range c.CurvePreferences {
			for name, cid := range tlsCurves {
				if cid == id {
					t.CurvePreferences = append(t.CurvePreferences, name)
				}
			}
		}
	}
	if c.MinVersion == tls.VersionTLS13 {
		t.MinVersion = "1.3"
	}
	return t
}

func mustRead(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	return b
}

func natsDefaultCiphers() []uint16 {
	var ids []uint16
	for _, cs := range tls.CipherSuites() {
		ids = append(ids, cs.ID)
	}
	return ids
}

// natsDefaultCurves is nats-server's defaultCurvePreferences (not FIPS).
var natsDefaultCurves = []tls.CurveID{tls.X25519MLKEM768, tls.SecP384r1MLKEM1024, tls.SecP256r1MLKEM768, tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}

// asNATSServerSeesTLS: verify_and_map implies verify; routes always verify;
// min_version "1.2" is the default.
func asNATSServerSeesTLS(t *TLS, routes bool) *TLS {
	if t == nil {
		return nil
	}
	c := *t
	c.Verify = c.Verify || c.VerifyAndMap || routes
	if c.MinVersion == "1.2" {
		c.MinVersion = ""
	}
	return &c
}

// tlsFilesLoad tells whether nats-server can load what o's tls blocks name;
// configs naming files that do not exist are beyond the comparison.
func tlsFilesLoad(o *Options) bool {
	ok := func(t *TLS) bool {
		if t == nil {
			return true
		}
		if _, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
			return false
		}
		if t.CAFile == "" {
			return true
		}
		b, err := os.ReadFile(t.CAFile)
		return err == nil && x509.NewCertPool().AppendCertsFromPEM(b)
	}
	return ok(o.TLS) && (o.Cluster == nil || ok(o.Cluster.TLS))
}

func TestTLSBlocksParseWithEveryKeyAndAlias(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       *Options
	}{
		{"every key", `
tls {
  cert_file: "/c/tls.crt", key_file: "/c/tls.key", ca_file: "/c/ca.crt"
  verify: true, verify_and_map: true, timeout: 1.5, handshake_first: true
  cipher_suites: ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"]
  curve_preferences: [X25519, CurveP256]
  min_version: "1.3"
}`, &Options{TLS: tlsOptions("/c")}},
		{"keys in any case, first as an alias, a timeout string", `TLS { CERT_FILE: a, Key_File: b, first: "on", timeout: "2s" }`,
			&Options{TLS: &TLS{CertFile: "a", KeyFile: "b", HandshakeFirst: true, Timeout: 2 * time.Second}}},
		{"immediate as an alias", `tls { cert_file: a, key_file: b, immediate: false }`, &Options{TLS: &TLS{CertFile: "a", KeyFile: "b"}}},
		{"https as host:port", "https: \"127.0.0.1:8443\"\ntls { cert_file: a, key_file: b }",
			&Options{HTTPSHost: "127.0.0.1", HTTPSPort: 8443, TLS: &TLS{CertFile: "a", KeyFile: "b"}}},
		{"https_port", "https_port: 8443\ntls { cert_file: a, key_file: b }", &Options{HTTPSPort: 8443, TLS: &TLS{CertFile: "a", KeyFile: "b"}}},
		{"route tls", `cluster { port: 6222, tls { cert_file: a, key_file: b, ca_file: c, timeout: 3 } }`,
			&Options{Cluster: &Cluster{Port: 6222, TLS: &TLS{CertFile: "a", KeyFile: "b", CAFile: "c", Timeout: 3 * time.Second}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings, err := Parse([]byte(tc.text), "t.conf")
			if err != nil || len(warnings) > 0 {
				t.Fatalf("%v %v", err, warnings)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s", diff(got, tc.want))
			}
		})
	}
}

func TestTLSBlockErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
		natsRefuses      bool // nats-server refuses it too (the rest it reads, and we do not support)
	}{
		{"an unknown key", "tls {\n  cert_file: a\n  kye_file: b\n}", `t.conf:3:3: error parsing tls config, unknown field "kye_file"`, true},
		{"a key nats-server has and we do not", "tls {\n  pinned_certs: []\n}", `t.conf:2:3: field "tls.pinned_certs" is not supported by natsforge-broker`, false},
		{"insecure", "cluster {\n  tls {\n    insecure: true\n  }\n}", `t.conf:3:5: field "cluster.tls.insecure" is not supported by natsforge-broker`, false},
		{"tls that is not a map", "tls: true", "t.conf:1: tls: expected a map, got a boolean", true},
		{"verify that is not a boolean", "tls {\n verify: \"yes\"\n}", "t.conf:2: tls.verify: expected a boolean, got a string", true},
		{"a cert_file that is not a string", "tls { cert_file: 1 }", "t.conf:1: tls.cert_file: expected a string, got a number", true},
		{"an empty cipher list", "tls {\n cipher_suites: []\n}", "t.conf:2: tls.cipher_suites: cannot be empty", true},
		{"an empty curve list", "tls {\n curve_preferences: []\n}", "t.conf:2: tls.curve_preferences: cannot be empty", true},
		{"a cipher that is not a string", "tls { cipher_suites: [true] }", "t.conf:1: tls.cipher_suites[0]: expected a string, got a boolean", true},
		{"a min_version as a number", "tls { min_version: 1.2 }", "t.conf:1: tls.min_version: expected a string, got a decimal number", true},
		{"an empty min_version", "tls { min_version: \"\" }", `t.conf:1: tls.min_version: empty TLS version (want "1.2" or "1.3")`, true},
		{"handshake_first auto", "tls { handshake_first: auto }", `t.conf:1: tls.handshake_first: "auto" is not supported (want true or false; no fallback to plain clients)`, false},
		{"handshake_first and first", "tls {\n handshake_first: true\n first: true\n}", "t.conf:3: tls.first: sets what handshake_first on line 2 sets; nats-server would apply one of them at random", false},
		{"a bad timeout", "tls { timeout: \"soon\" }", `t.conf:1: tls.timeout: invalid duration "soon"`, true},
		{"https_port that is not a number", "https_port: \"x\"", "t.conf:1: https_port: expected a number, got a string", false},
		{"https and https_port", "https: \"h:1\"\nhttps_port: 2", "t.conf:2: https_port: sets what https on line 1 sets; nats-server would apply one of them at random", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tc.text), "t.conf")
			if err == nil || err.Error() != tc.want {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Line < 1 {
				t.Errorf("error %T has no line", err)
			}
			if tc.natsRefuses {
				n := &natsserver.Options{}
				if err := n.ProcessConfigString(tc.text); err == nil {
					t.Errorf("nats-server accepts %q", tc.text)
				}
			}
		})
	}
}

func TestValidateChecksTLSBlocks(t *testing.T) {
	ok := func() *TLS { return &TLS{CertFile: "a", KeyFile: "b"} }
	with := func(f func(*TLS)) *TLS { t := ok(); f(t); return t }
	for _, tc := range []struct {
		name string
		o    *Options
		want string
	}{
		{"no cert_file", &Options{TLS: &TLS{KeyFile: "b"}}, "tls.cert_file: a tls block needs a certificate (cert_file)"},
		{"no key_file", &Options{Cluster: &Cluster{TLS: &TLS{CertFile: "a"}}}, "cluster.tls.key_file: a tls block needs a private key (key_file)"},
		{"an unknown cipher", &Options{TLS: with(func(t *TLS) { t.CipherSuites = []string{"TLS_AES_128_GCM_SHA256", "RC4"} })}, `tls.cipher_suites[1]: unknown or insecure cipher suite "RC4"`},
		{"an insecure cipher", &Options{TLS: with(func(t *TLS) { t.CipherSuites = []string{"TLS_RSA_WITH_RC4_128_SHA"} })}, `tls.cipher_suites[0]: unknown or insecure cipher suite "TLS_RSA_WITH_RC4_128_SHA"`},
		{"an unknown curve", &Options{TLS: with(func(t *TLS) { t.CurvePreferences = []string{"P256"} })}, `tls.curve_preferences[0]: unknown curve "P256" (known: CurveP256, CurveP384, CurveP521, SecP256r1MLKEM768, SecP384r1MLKEM1024, X25519, X25519MLKEM768)`},
		{"TLS 1.1", &Options{TLS: with(func(t *TLS) { t.MinVersion = "1.1" })}, `tls.min_version: unsupported TLS version "1.1" (want "1.2" or "1.3")`},
		{"a negative timeout", &Options{TLS: with(func(t *TLS) { t.Timeout = -time.Second })}, "tls.timeout: -1s is negative"},
		{"verify_and_map on routes", &Options{Cluster: &Cluster{TLS: with(func(t *TLS) { t.VerifyAndMap = true })}}, "cluster.tls.verify_and_map: not supported for routes"},
		{"handshake_first on routes", &Options{Cluster: &Cluster{TLS: with(func(t *TLS) { t.HandshakeFirst = true })}}, "cluster.tls.handshake_first: not supported for routes"},
		{"http and https", &Options{HTTPPort: 8222, HTTPSPort: 8443, TLS: ok()}, "https_port: cannot be used with http_port (nats-server serves monitoring over one of them)"},
		{"https without tls", &Options{HTTPSPort: 8443}, "https_port: needs a tls {} block: HTTPS monitoring serves its certificate"},
		{"an https port out of range", &Options{HTTPSPort: 70000, TLS: ok()}, "https_port: port 70000 is out of range 0-65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if err == nil || !strings.Contains(err.Error()+"\n", tc.want+"\n") {
				t.Fatalf("got  %v\nwant %s", err, tc.want)
			}
			if _, err := Render(tc.o); err == nil {
				t.Error("Render accepts what Validate refuses")
			}
		})
	}
}

// nats-server itself refuses what Validate refuses for missing files and
// for http with https, so Validate is not stricter than it needs to be.
func TestNATSServerRefusesWhatValidateRefusesForTLS(t *testing.T) {
	p := fixture.pairs[0]
	for name, text := range map[string]string{
		"no key_file":       fmt.Sprintf("tls { cert_file: %q }", p.Cert),
		"no cert_file":      fmt.Sprintf("tls { key_file: %q }", p.Key),
		"an unknown cipher": fmt.Sprintf("tls { cert_file: %q, key_file: %q, cipher_suites: [RC4] }", p.Cert, p.Key),
		"an unknown curve":  fmt.Sprintf("tls { cert_file: %q, key_file: %q, curve_preferences: [P256] }", p.Cert, p.Key),
		"TLS 1.1":           fmt.Sprintf("tls { cert_file: %q, key_file: %q, min_version: \"1.1\" }", p.Cert, p.Key),
	} {
		n := &natsserver.Options{}
		if err := n.ProcessConfigString(text); err == nil {
			t.Errorf("%s: nats-server accepts %s", name, text)
		}
	}
	// http with https, and https without tls, nats-server refuses at start.
	for name, o := range map[string]*natsserver.Options{
		"http and https":    {HTTPPort: -1, HTTPSPort: -1, TLSConfig: &tls.Config{}},
		"https without tls": {HTTPSPort: -1},
	} {
		o.Port, o.NoLog, o.NoSigs = -1, true, true
		s, err := natsserver.NewServer(o)
		if err != nil {
			continue
		}
		if err := s.StartMonitoring(); err == nil {
			t.Errorf("%s: nats-server starts monitoring", name)
		}
		s.Shutdown()
	}
}

func TestRenderOfTLSMatchesTheGoldenFileAndReadsBack(t *testing.T) {
	o := tlsEverywhere("/etc/nats/tls")
	got, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "tls.golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("Render differs from %s (go test -update rewrites it):\n%s", path, got)
	}
	back, _, err := Parse(got, "tls.conf")
	if err != nil || !reflect.DeepEqual(back, o) {
		t.Errorf("%v %s", err, diff(back, o))
	}
}

func TestNATSServerReadsRenderedTLSAsWeDo(t *testing.T) {
	everyKey := &Options{TLS: tlsOptions(filepath.Dir(fixture.pairs[0].Cert)), HTTPSHost: "127.0.0.1", HTTPSPort: 8443,
		Cluster: &Cluster{Port: 6222, TLS: &TLS{CertFile: fixture.pairs[1].Cert, KeyFile: fixture.pairs[1].Key, CAFile: fixture.cas[1], Timeout: 3 * time.Second, MinVersion: "1.2"}}}
	for name, o := range map[string]*Options{
		"every key":       everyKey,
		"tls everywhere":  tlsEverywhere(filepath.Dir(fixture.pairs[0].Cert)),
		"route tls alone": {Cluster: &Cluster{TLS: &TLS{CertFile: fixture.pairs[0].Cert, KeyFile: fixture.pairs[0].Key}}},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Render(o)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := natsServerReads(t, b), asNATSServerSeesIt(o); !reflect.DeepEqual(got, want) {
				t.Errorf("nats-server read differently:\n%s\nfrom\n%s", diff(got, want), b)
			}
		})
	}
}

// FuzzTLSBlock fuzzes tls blocks (top-level and in cluster): Parse never
// panics and errors name a line; what it reads and Validate accepts renders
// and reads back the same, and nats-server reads it the same way.
func FuzzTLSBlock(f *testing.F) {
	p, q := fixture.pairs[0], fixture.pairs[1]
	for _, s := range []string{
		fmt.Sprintf("tls { cert_file: %q, key_file: %q }", p.Cert, p.Key),
		fmt.Sprintf("tls {\n cert_file: %q\n key_file: %q\n ca_file: %q\n verify: true\n timeout: 0.5\n}\nhttps_port: 8443", p.Cert, p.Key, p.CA),
		fmt.Sprintf("tls { cert_file: %q, key_file: %q, verify_and_map: true, handshake_first: on, min_version: \"1.3\" }", q.Cert, q.Key),
		fmt.Sprintf("tls { cert_file: %q, key_file: %q, cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256], curve_preferences: [CurveP256, X25519] }", p.Cert, p.Key),
		fmt.Sprintf("https: \"localhost:8443\"\ncluster { port: 6222, tls { cert_file: %q, key_file: %q, ca_file: %q, timeout: \"3s\" } }\ntls { cert_file: %q, key_file: %q }", q.Cert, q.Key, q.CA, p.Cert, p.Key),
		"tls { first: true, cert_file: x }",
		"tls { pinned_certs: [] }",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if strings.Contains(strings.ToLower(string(data)), "include") {
			return
		}
		o, _, err := Parse(data, "fuzz.conf")
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Line < 1 {
				t.Fatalf("error %T %v is not an *Error with a line", err, err)
			}
			return
		}
		if o.Validate() != nil {
			return
		}
		b, err := Render(o)
		if err != nil {
			t.Fatal(err)
		}
		again, _, err := Parse(b, "rendered.conf")
		if err != nil || !reflect.DeepEqual(again, o) {
			t.Fatalf("render then parse: %v\n%s\n%s", err, diff(again, o), b)
		}
		if !tlsFilesLoad(o) {
			return
		}
		got, err := natsServerReadsString(b)
		if err != nil {
			t.Fatalf("nats-server rejects the rendered config: %v\n%s", err, b)
		}
		if want := asNATSServerSeesIt(o); !reflect.DeepEqual(got, want) {
			t.Fatalf("nats-server read differently:\n%s\nfrom\n%s", diff(got, want), b)
		}
	})
}
