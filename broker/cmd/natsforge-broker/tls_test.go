package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
