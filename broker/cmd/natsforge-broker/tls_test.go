package main

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/internal/testcerts"
)

func TestABadCertificateAtStartUpExitsNonZeroNamingTheFile(t *testing.T) {
	bin := buildBinary(t)
	ca := testcerts.NewCA(t, "start CA")
	dir := t.TempDir()
	f := ca.Server(t, "broker").Write(t, dir, ca)
	broken := filepath.Join(dir, "broken.crt")
	if err := os.WriteFile(broken, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ block, file string }{
		"a missing cert_file":     {fmt.Sprintf("tls { cert_file: %q, key_file: %q }", filepath.Join(dir, "gone.crt"), f.Key), filepath.Join(dir, "gone.crt")},
		"a broken cert_file":      {fmt.Sprintf("tls { cert_file: %q, key_file: %q }", broken, f.Key), broken},
		"a missing route ca_file": {fmt.Sprintf("cluster { listen: \"127.0.0.1:0\", tls { cert_file: %q, key_file: %q, ca_file: %q } }", f.Cert, f.Key, filepath.Join(dir, "gone-ca.crt")), filepath.Join(dir, "gone-ca.crt")},
	} {
		t.Run(name, func(t *testing.T) {
			config := filepath.Join(t.TempDir(), "bad.conf")
			writeFile(t, config, tc.block+"\n")
			code, stderr := runToExit(t, bin, "-c", config, "-a", "127.0.0.1", "-p", "-1")
			if code == 0 || !strings.Contains(stderr, tc.file) || strings.Contains(stderr, "listening") {
				t.Fatalf("exit %d, stderr:\n%s\nwant a non-zero exit naming %s", code, stderr, tc.file)
			}
			if strings.Contains(stderr, "PRIVATE KEY") {
				t.Fatalf("stderr shows key material:\n%s", stderr)
			}
		})
	}
}

// natsServerFromFlags runs nats-server from the same arguments, through nats-server's own
// flag handling, as the oracle.
func natsServerFromFlags(t *testing.T, args ...string) (*natsserver.Server, error) {
	t.Helper()
	fs := flag.NewFlagSet("nats-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	o, err := natsserver.ConfigureOptions(fs, append([]string{"-a", "127.0.0.1", "-p", "-1"}, args...), func() {}, func() {}, func() {})
	if err != nil {
		return nil, err
	}
	o.NoLog, o.NoSigs = true, true
	s, err := natsserver.NewServer(o)
	if err != nil {
		return nil, err
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return s, nil
}

func TestTheTLSFlagsServeTLSAsNATSServersDo(t *testing.T) {
	bin := buildBinary(t)
	ca := testcerts.NewCA(t, "flags CA")
	f := ca.Server(t, "broker").Write(t, t.TempDir(), ca)
	good := ca.Client(t, pkix.Name{CommonName: "app"}).TLSCertificate(t)
	args := []string{"--tlscert", f.Cert, "--tlskey", f.Key, "--tlscacert", f.CA, "--tlsverify"}
	addr, _ := startBroker(t, bin, args...)
	ns, err := natsServerFromFlags(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	see := func(url string, certs ...tls.Certificate) string {
		nc, err := nats.Connect(url, nats.NoReconnect(), nats.Timeout(3*time.Second),
			nats.Secure(&tls.Config{RootCAs: ca.Pool(), Certificates: certs}))
		if err != nil {
			return "refused"
		}
		nc.Close()
		return "ok"
	}
	for name, certs := range map[string][]tls.Certificate{"a client certificate": {good}, "no client certificate": nil} {
		got, want := see("nats://"+addr, certs...), see(ns.ClientURL(), certs...)
		if got != want {
			t.Errorf("%s: broker %s, nats-server %s", name, got, want)
		}
	}
	if see("nats://"+addr, good) != "ok" || see("nats://"+addr) != "refused" {
		t.Error("--tlsverify does not verify")
	}

	// --https_port serves monitoring over HTTPS with the same certificate.
	port := freeLoopbackPorts(t, 1)[0]
	startBroker(t, bin, "--tlscert", f.Cert, "--tlskey", f.Key, "--https_port", fmt.Sprint(port))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	waitFor(t, 10*time.Second, "HTTPS /varz from --https_port", func() bool {
		resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d/varz", port))
		if err != nil {
			return false
		}
		_ = resp.Body.Close() // read to the end already
		return resp.StatusCode == 200
	})

	// Missing halves: nats-server's words, and no start.
	for _, args := range [][]string{{"--tls", "--tlskey", f.Key}, {"--tlscert", f.Cert}} {
		_, theirs := natsServerFromFlags(t, args...)
		code, stderr := runToExit(t, bin, append([]string{"-a", "127.0.0.1", "-p", "-1"}, args...)...)
		if code == 0 || theirs == nil || !strings.Contains(stderr, theirs.Error()) {
			t.Errorf("%v: exit %d, stderr %q; nats-server says %v", args, code, stderr, theirs)
		}
	}
}
