package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/natsforge/natsforge/broker/internal/testcerts"
)

// get fetches url with client, returning status and body.
func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHTTPSMonitoringServesEveryEndpointAndRefusesPlainHTTPAsNATSServer(t *testing.T) {
	bin := buildBinary(t)
	ca := testcerts.NewCA(t, "monitor CA")
	f := ca.Server(t, "broker").Write(t, t.TempDir(), ca)
	ports := freeLoopbackPorts(t, 2)
	config := filepath.Join(t.TempDir(), "https.conf")
	writeFile(t, config, fmt.Sprintf("https: \"127.0.0.1:%d\"\ntls { cert_file: %q, key_file: %q, ca_file: %q, verify: true }\n", ports[0], f.Cert, f.Key, f.CA))
	startBroker(t, bin, "-c", config)

	// nats-server with the same certificate, https on the other port.
	cfg, err := natsserver.GenTLSConfig(&natsserver.TLSConfigOpts{CertFile: f.Cert, KeyFile: f.Key, CaFile: f.CA, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, HTTPHost: "127.0.0.1", HTTPSPort: ports[1],
		TLSConfig: cfg, TLSVerify: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server did not start")
	}

	// No client certificate: monitoring does not ask for one, even with
	// verify on the client listener (as nats-server).
	trusting := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	waitFor(t, 10*time.Second, "HTTPS /healthz", func() bool {
		resp, err := trusting.Get(fmt.Sprintf("https://127.0.0.1:%d/healthz", ports[0]))
		if err == nil {
			_ = resp.Body.Close() // read to the end already
		}
		return err == nil && resp.StatusCode == 200
	})
	for _, path := range []string{"/varz", "/connz", "/routez", "/subsz", "/healthz", "/metrics"} {
		code, body := get(t, trusting, fmt.Sprintf("https://127.0.0.1:%d%s", ports[0], path))
		if code != 200 || body == "" {
			t.Errorf("%s over HTTPS: %d %q", path, code, body)
		}
	}
	_, body := get(t, trusting, fmt.Sprintf("https://127.0.0.1:%d/varz", ports[0]))
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil || v["https_port"] != float64(ports[0]) {
		t.Errorf("/varz https_port: %v (%v)", v["https_port"], err)
	}

	// Plain HTTP on the HTTPS port: the same refusal from both.
	plain := &http.Client{Timeout: 5 * time.Second}
	oursCode, oursBody := get(t, plain, fmt.Sprintf("http://127.0.0.1:%d/varz", ports[0]))
	theirCode, theirBody := get(t, plain, fmt.Sprintf("http://127.0.0.1:%d/varz", ports[1]))
	if oursCode != theirCode || oursBody != theirBody || oursCode != http.StatusBadRequest || strings.Contains(oursBody, "server_id") {
		t.Errorf("plain HTTP: broker %d %q, nats-server %d %q", oursCode, oursBody, theirCode, theirBody)
	}
	// A client that does not trust the certificate is refused by both.
	untrusting := &http.Client{Timeout: 5 * time.Second}
	for _, port := range ports {
		if _, err := untrusting.Get(fmt.Sprintf("https://127.0.0.1:%d/varz", port)); err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("port %d: an untrusting client got %v", port, err)
		}
	}
}
