package server

import (
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/internal/testcerts"
)

func secretTLS(dir string) *conf.TLS {
	return &conf.TLS{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"), CAFile: filepath.Join(dir, "ca.crt")}
}

func TestACertificateSwappedInASecretVolumeServesNewConnectionsWhileOldOnesStay(t *testing.T) {
	ca := testcerts.NewCA(t, "rotating CA")
	first, second, third := ca.Server(t, "one"), ca.Server(t, "two"), ca.Server(t, "three")
	vol := testcerts.NewSecretVolume(t, t.TempDir(), first.Secret(ca))
	s := runServer(t, &conf.Options{TLS: secretTLS(vol.Dir)})
	addr := s.Addr().String()
	if got := testcerts.ServedSerial(t, addr, ca.Pool()); got.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("serial %v, want the first certificate's %v", got, first.Cert.SerialNumber)
	}
	old := connect(t, s.ClientURL(), nats.Secure(&tls.Config{RootCAs: ca.Pool()}))
	sub, _ := old.SubscribeSync("still.here")
	noErr(t, old.Flush())

	vol.Update(t, second.Secret(ca))
	eventually(t, 10*time.Second, "a new connection to get the second certificate", func() bool {
		got := testcerts.ServedSerial(t, addr, ca.Pool())
		return got != nil && got.Cmp(second.Cert.SerialNumber) == 0
	})
	if err := old.Publish("still.here", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(3 * time.Second); err != nil || !old.IsConnected() {
		t.Fatalf("the connection from before the rotation: %v (connected %v)", err, old.IsConnected())
	}

	// A broken certificate keeps the second one serving, and says so in /varz.
	vol.Update(t, map[string][]byte{"tls.crt": []byte("not a certificate"), "tls.key": second.KeyPEM, "ca.crt": ca.PEM})
	eventually(t, 10*time.Second, "/varz to report the refused certificate", func() bool {
		return strings.Contains(s.Varz().LastReloadError, "cert_file "+filepath.Join(vol.Dir, "tls.crt"))
	})
	if v := s.Varz(); v.ReloadErrors < 1 || strings.Contains(v.LastReloadError, "PRIVATE KEY") {
		t.Fatalf("reload errors %d, error %q", v.ReloadErrors, v.LastReloadError)
	}
	if got := testcerts.ServedSerial(t, addr, ca.Pool()); got == nil || got.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after a broken certificate, serial %v; want the second certificate's %v", got, second.Cert.SerialNumber)
	}

	// Fixed: the third certificate serves and the error clears.
	vol.Update(t, third.Secret(ca))
	eventually(t, 10*time.Second, "the third certificate", func() bool {
		got := testcerts.ServedSerial(t, addr, ca.Pool())
		return got != nil && got.Cmp(third.Cert.SerialNumber) == 0 && s.Varz().LastReloadError == ""
	})
}

func TestAReloadReadsTheCertificateFilesAgainOrRefusesMissingOnes(t *testing.T) {
	ca := testcerts.NewCA(t, "reload CA")
	first, second := ca.Server(t, "one"), ca.Server(t, "two")
	dir := t.TempDir()
	files := first.Write(t, dir, ca)
	path := filepath.Join(dir, "nats.conf")
	writeConf := func(certFile string) {
		body := fmt.Sprintf("tls { cert_file: %q, key_file: %q, ca_file: %q }\n", certFile, files.Key, files.CA)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConf(files.Cert)
	o, _, err := conf.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := runServer(t, o)
	if err := s.SetConfigFile(path, func(o *conf.Options) error { o.Host, o.Port = "127.0.0.1", RandomPort; return nil }); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr().String()

	// As SIGHUP does: the same config, new files.
	second.Write(t, dir, ca)
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := testcerts.ServedSerial(t, addr, ca.Pool()); got == nil || got.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after a reload, serial %v; want %v", got, second.Cert.SerialNumber)
	}

	// A config naming a file that is not there is refused whole.
	writeConf(filepath.Join(dir, "missing.crt"))
	if err := s.Reload(); err == nil || !strings.Contains(err.Error(), "cert_file "+filepath.Join(dir, "missing.crt")) {
		t.Fatalf("reload: %v", err)
	}
	if got := testcerts.ServedSerial(t, addr, ca.Pool()); got == nil || got.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after a refused reload, serial %v; want %v", got, second.Cert.SerialNumber)
	}
}
