package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/internal/logbuf"
)

// The issue's table, row by row: configs nats-server handles correctly, run
// through the broker binary and nats-server's binary in the same test. The
// broker fails closed: what it cannot enforce in full never starts, and
// never replaces a running config.

// runToExit runs bin and waits for it to exit; a server that starts instead
// is stopped after a while and reported as exit -1.
func runToExit(t *testing.T, bin string, args ...string) (code int, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out logbuf.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case ctx.Err() != nil:
		return -1, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatal(err)
	return 0, ""
}

var natsServerListenLine = regexp.MustCompile(`Listening for client connections on (\S+)`)

// startNATSServer runs nats-server on config and returns its client address.
func startNATSServer(t *testing.T, bin, config string) (addr string, logs *logbuf.Buffer, cmd *exec.Cmd) {
	t.Helper()
	return startListening(t, "nats-server", natsServerListenLine, bin, "-c", config, "-a", "127.0.0.1", "-p", "-1")
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// requiresAuth checks that addr refuses a client without credentials and
// serves user:pass.
func requiresAuth(t *testing.T, who, addr, user, pass string) {
	t.Helper()
	if nc, err := nats.Connect("nats://"+addr, nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("%s: a client without credentials: %v, want an authorization violation", who, err)
	}
	nc, err := nats.Connect("nats://"+user+":"+pass+"@"+addr, nats.NoReconnect())
	if err != nil {
		t.Fatalf("%s: %s with its password: %v", who, user, err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	nc.Close()
}

func TestTheIssueTableABritishSpellingStopsBothServersWithTheSameError(t *testing.T) {
	bin, natsBin := buildBinary(t), buildNATSServer(t)
	config := filepath.Join(t.TempDir(), "x.conf")
	writeFile(t, config, "port: 4222\nauthorisation { users: [ { user: a, password: b } ] }\n")

	theirCode, theirErr := runToExit(t, natsBin, "-c", config, "-a", "127.0.0.1", "-p", "-1")
	want := config + `:2:1: unknown field "authorisation"`
	if theirCode != 1 || strings.TrimSpace(theirErr) != "nats-server: "+want {
		t.Fatalf("nats-server: exit %d, stderr %q; the oracle changed", theirCode, theirErr)
	}
	ourCode, ourErr := runToExit(t, bin, "-c", config, "-a", "127.0.0.1", "-p", "-1")
	if ourCode != theirCode || strings.TrimPrefix(strings.TrimSpace(ourErr), "natsforge-broker: ") != strings.TrimPrefix(strings.TrimSpace(theirErr), "nats-server: ") {
		t.Errorf("broker: exit %d, stderr %q\nnats-server: exit %d, stderr %q", ourCode, ourErr, theirCode, theirErr)
	}
}

func TestTheIssueTableABadConfigWrittenUnderARunningBrokerKeepsAuthenticationEnforced(t *testing.T) {
	bin, natsBin := buildBinary(t), buildNATSServer(t)
	good := "authorization { users: [ { user: a, password: b } ] }\n"
	// Each bad config is refused by the broker's reload. nats-server refuses
	// the first two too, with the same error; it implements the others and
	// reloads them, still requiring credentials.
	for _, tc := range []struct{ name, bad, natsServerSays string }{
		{"British spelling", "authorisation { users: [ { user: a, password: b } ] }\n", `:1:0: unknown field "authorisation"`},
		{"an unknown user field", "authorization { users: [ { user: a, password: b, passwrod: c } ] }\n", `:1:49: unknown field "passwrod"`},
		{"subject mappings", "mappings { a: b }\nauthorization { users: [ { user: a, password: b } ] }\n", ""},
		{"an nkey user", "authorization { users: [ { user: a, password: b }, { nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4 } ] }\n", ""},
		{"response limits", "authorization { users: [ { user: a, password: b, permissions: { allow_responses: { max: 5 } } } ] }\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ours, theirs := filepath.Join(dir, "ours.conf"), filepath.Join(dir, "theirs.conf")
			writeFile(t, ours, good)
			writeFile(t, theirs, good)
			ourAddr, ourLogs, ourCmd := startBrokerProcess(t, bin, "-c", ours, "-m", "-1")
			theirAddr, theirLogs, theirCmd := startNATSServer(t, natsBin, theirs)
			requiresAuth(t, "broker", ourAddr, "a", "b")
			requiresAuth(t, "nats-server", theirAddr, "a", "b")

			writeFile(t, ours, tc.bad)
			writeFile(t, theirs, tc.bad)
			// The broker also watches its file; signal it all the same, as
			// an operator would.
			_ = ourCmd.Process.Signal(syscall.SIGHUP)
			_ = theirCmd.Process.Signal(syscall.SIGHUP)

			monitorAddr := monitorLine.FindStringSubmatch(ourLogs.String())
			if monitorAddr == nil {
				t.Fatalf("no monitoring address in\n%s", ourLogs.String())
			}
			var reloadErr string
			waitFor(t, 10*time.Second, "the broker's /varz to report the refused reload", func() bool {
				reloadErr, _ = getVarz(t, monitorAddr[1])["config_reload_error"].(string)
				return reloadErr != ""
			})
			if !strings.HasPrefix(reloadErr, ours+":1:") {
				t.Errorf("/varz config_reload_error = %q, want it to name %s, line and column", reloadErr, ours)
			}
			requiresAuth(t, "broker after the bad reload", ourAddr, "a", "b")
			if strings.Contains(ourLogs.String(), `msg="config reloaded"`) {
				t.Errorf("the broker says it reloaded:\n%s", ourLogs.String())
			}

			waitFor(t, 10*time.Second, "nats-server to process the reload", func() bool {
				l := theirLogs.String()
				return strings.Contains(l, "Failed to reload server configuration") || strings.Contains(l, "Reloaded server configuration")
			})
			if tc.natsServerSays != "" {
				if !strings.Contains(theirLogs.String(), "Failed to reload server configuration: "+theirs+tc.natsServerSays) {
					t.Fatalf("nats-server logs\n%s\nwant it to refuse with %s", theirLogs.String(), tc.natsServerSays)
				}
				if want := ours + tc.natsServerSays; reloadErr != want {
					t.Errorf("/varz config_reload_error = %q, want nats-server's %q", reloadErr, want)
				}
			}
			if nc, err := nats.Connect("nats://"+theirAddr, nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
				if nc != nil {
					nc.Close()
				}
				t.Fatalf("nats-server after the reload: a client without credentials: %v", err)
			}
		})
	}
}

var monitorLine = regexp.MustCompile(`listening for monitoring requests" addr=(\S+)`)

func getVarz(t *testing.T, addr string) map[string]any {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/varz")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	v := map[string]any{}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("/varz: %v\n%s", err, b)
	}
	return v
}

func TestTheIssueTableAccountUsersNeedCredentialsAsInNATSServer(t *testing.T) {
	bin, natsBin := buildBinary(t), buildNATSServer(t)
	config := filepath.Join(t.TempDir(), "x.conf")
	writeFile(t, config, "accounts { A { users: [ { user: x, password: y } ] } }\n")

	addr, _, _ := startNATSServer(t, natsBin, config)
	requiresAuth(t, "nats-server", addr, "x", "y")
	baddr, _ := startBroker(t, bin, "-c", config)
	requiresAuth(t, "natsforge-broker", baddr, "x", "y")
}

func TestTheIssueTableATLSBlockIsNeverServedAsPlaintext(t *testing.T) {
	bin, natsBin := buildBinary(t), buildNATSServer(t)
	dir := t.TempDir()
	pool := writeSelfSignedCert(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	config := filepath.Join(dir, "x.conf")
	writeFile(t, config, "tls { cert_file: \""+filepath.Join(dir, "cert.pem")+"\", key_file: \""+filepath.Join(dir, "key.pem")+"\" }\n")

	addr, _, _ := startNATSServer(t, natsBin, config)
	if nc, err := nats.Connect("nats://"+addr, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("nats-server served a plaintext client; the oracle changed")
	}
	nc, err := nats.Connect("tls://"+addr, nats.NoReconnect(), nats.Secure(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatalf("nats-server over TLS: %v", err)
	}
	nc.Close()

	// The broker serves the same config over TLS, and a plaintext client
	// fails against it as against nats-server.
	baddr, _ := startBroker(t, bin, "-c", config)
	if nc, err := nats.Connect("nats://"+baddr, nats.NoReconnect()); err == nil {
		nc.Close()
		t.Fatal("the broker served a plaintext client")
	}
	nc, err = nats.Connect("tls://"+baddr, nats.NoReconnect(), nats.Secure(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatalf("the broker over TLS: %v", err)
	}
	nc.Close()
}

// writeSelfSignedCert writes a certificate for 127.0.0.1 and its key, and
// returns a pool that trusts it.
func writeSelfSignedCert(t *testing.T, certPath, keyPath string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "natsforge test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certPath, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyPath, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}
