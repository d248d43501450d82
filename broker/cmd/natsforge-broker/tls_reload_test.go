package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/internal/testcerts"
)

func TestABrokerProcessFollowsASecretVolumeCertificateSwapAndKeepsServingOnABrokenOne(t *testing.T) {
	bin := buildBinary(t)
	ca := testcerts.NewCA(t, "process CA")
	first, second := ca.Server(t, "one"), ca.Server(t, "two")
	vol := testcerts.NewSecretVolume(t, t.TempDir(), first.Secret(ca))
	httpPort := freeLoopbackPorts(t, 1)[0]
	config := filepath.Join(t.TempDir(), "nats.conf")
	writeFile(t, config, fmt.Sprintf("http_port: %d\ntls {\n  cert_file: %q\n  key_file: %q\n  ca_file: %q\n}\n",
		httpPort, filepath.Join(vol.Dir, "tls.crt"), filepath.Join(vol.Dir, "tls.key"), filepath.Join(vol.Dir, "ca.crt")))
	addr, _ := startBroker(t, bin, "-c", config)
	if got := testcerts.ServedSerial(t, addr, ca.Pool()); got == nil || got.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("serial %v, want %v", got, first.Cert.SerialNumber)
	}
	old, err := nats.Connect("nats://"+addr, nats.Secure(&tls.Config{RootCAs: ca.Pool()}), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()

	vol.Update(t, second.Secret(ca))
	waitFor(t, 10*time.Second, "new connections to get the second certificate", func() bool {
		got := testcerts.ServedSerial(t, addr, ca.Pool())
		return got != nil && got.Cmp(second.Cert.SerialNumber) == 0
	})
	if err := old.FlushTimeout(3 * time.Second); err != nil || !old.IsConnected() {
		t.Fatalf("the connection from before the swap: %v", err)
	}

	vol.Update(t, map[string][]byte{"tls.crt": []byte("garbage"), "tls.key": second.KeyPEM, "ca.crt": ca.PEM})
	varz := func() map[string]any {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/varz", httpPort))
		if err != nil {
			return nil
		}
		defer func() { _ = resp.Body.Close() }()
		v := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return v
	}
	waitFor(t, 10*time.Second, "/varz to report the broken certificate", func() bool {
		e, _ := varz()["config_reload_error"].(string)
		return strings.Contains(e, filepath.Join(vol.Dir, "tls.crt"))
	})
	if got := testcerts.ServedSerial(t, addr, ca.Pool()); got == nil || got.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("with a broken certificate on disk, serial %v; want the second certificate's %v", got, second.Cert.SerialNumber)
	}
}
