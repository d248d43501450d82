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

package resources

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/natsforge/natsforge/controllers/pki"

	"github.com/natsforge/natsforge/broker/conf"
)

// testHash is PROTOCOL.md's bcrypt test vector, for password
// IW@$6v(y1(t@fhPDvf!5^%.
const testHash = "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq"

func sampleInputs() ConfigInputs {
	nc := sampleCluster()
	return ConfigInputs{
		Users: []BrokerUser{
			{Name: "alice", PasswordHash: testHash},
			{Name: "app", PasswordHash: testHash, Permissions: nc.Spec.Auth.Users[1].Permissions},
		},
		RoutePassword: "ROUTEPASSWORD234",
	}
}

func TestConfigMatchesGoldenFile(t *testing.T) {
	b, err := RenderConfig(sampleCluster(), sampleInputs())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "nats.conf", b)
}

// natsServerOptions has nats-server read a rendered config, with the mounted
// certificate files made at test time in a temporary directory.
func natsServerOptions(t *testing.T, b []byte) *natsserver.Options {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"client", "routes"} {
		kp, err := pki.Issue(ca, pki.Request{Subject: pkix.Name{CommonName: sub}, DNSNames: []string{sub},
			Usages: pki.ServerClientUsage, Lifetime: time.Hour}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		d := filepath.Join(dir, sub)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		for name, data := range map[string][]byte{TLSCertKey: kp.CertPEM, TLSKeyKey: kp.KeyPEM, CACertKey: ca.CertPEM} {
			if err := os.WriteFile(filepath.Join(d, name), data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	b = []byte(strings.ReplaceAll(string(b), "/etc/nats-tls/", dir+"/"))
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := natsserver.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server refuses the rendered config: %v\n%s", err, b)
	}
	return opts
}

func TestConfigIsAcceptedByNatsServer(t *testing.T) {
	b, err := RenderConfig(sampleCluster(), sampleInputs())
	if err != nil {
		t.Fatal(err)
	}
	opts := natsServerOptions(t, b)
	if opts.TLSConfig == nil || opts.HTTPSPort != MonitorPort || opts.HTTPPort != 0 || opts.Cluster.TLSConfig == nil {
		t.Errorf("nats-server read tls %v https_port %d http_port %d cluster tls %v", opts.TLSConfig != nil, opts.HTTPSPort, opts.HTTPPort, opts.Cluster.TLSConfig != nil)
	}
	if len(opts.Users) != 2 || opts.Users[0].Username != "alice" || opts.Users[0].Password != testHash {
		t.Errorf("nats-server read users %+v", opts.Users)
	}
	app := opts.Users[1].Permissions
	if app == nil || app.Publish == nil || len(app.Publish.Deny) != 1 || app.Response == nil {
		t.Errorf("nats-server read app's permissions as %+v", app)
	}
	if len(opts.Routes) != 3 || opts.Cluster.Port != ClusterPort || opts.Cluster.Username != RouteUser {
		t.Errorf("nats-server read routes %v cluster %+v", opts.Routes, opts.Cluster)
	}
	if opts.MaxPayload != 2<<20 || opts.LameDuckDuration.Seconds() != 45 {
		t.Errorf("nats-server read max_payload %d lame_duck_duration %v", opts.MaxPayload, opts.LameDuckDuration)
	}
}

func TestConfigReadsBackToTheSameOptions(t *testing.T) {
	nc := sampleCluster()
	b, err := RenderConfig(nc, sampleInputs())
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := conf.Parse(b, "nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := BrokerOptions(nc, sampleInputs())
	if !equalYAML(t, got, want) {
		t.Errorf("parsed config differs from the options it was rendered from")
	}
}

func TestConfigWithNoResolvedUserLocksEveryoneOut(t *testing.T) {
	b, err := RenderConfig(sampleCluster(), ConfigInputs{RoutePassword: "x"})
	if err != nil {
		t.Fatal(err)
	}
	o, _, err := conf.Parse(b, "nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if o.Authorization == nil || len(o.Authorization.Users) != 1 || o.Authorization.Users[0].Name != LockedUser.Name {
		t.Errorf("a config without users must still require authentication, got %+v", o.Authorization)
	}
}

func TestConfigHoldsOnlyHashesOfUserPasswords(t *testing.T) {
	b, err := RenderConfig(sampleCluster(), sampleInputs())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(b), testHash) != 2 {
		t.Errorf("want both users' hashes in the config:\n%s", b)
	}
	if !strings.Contains(string(b), "ROUTEPASSWORD234") {
		t.Errorf("the route password must be in the config (routes dial with it)")
	}
}

func TestConfigDigestIsSHA256OfTheFile(t *testing.T) {
	if got := ConfigDigest([]byte("port: 4222\n")); got != "3fafc868c88e2afcf9c7761e74f276094876359f0f425ccab0f4bcd091541ea9" {
		t.Errorf("digest %q is not hex SHA-256", got)
	}
	o := BrokerOptions(sampleCluster(), sampleInputs())
	b, _ := conf.Render(o)
	d, err := conf.Digest(o)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimPrefix(d, "sha256:") != ConfigDigest(b) {
		t.Errorf("broker digest %s and operator digest %s of the same config differ", d, ConfigDigest(b))
	}
}

func TestCertificateUsersConfigIsAcceptedByNatsServer(t *testing.T) {
	nc := sampleCluster()
	in := sampleInputs()
	in.Users = []BrokerUser{{Name: "CN=alice,O=acme"}, {Name: "bob@example.com", Permissions: nc.Spec.Auth.Users[1].Permissions}}
	in.CertificateUsers = true
	b, err := RenderConfig(nc, in)
	if err != nil {
		t.Fatal(err)
	}
	opts := natsServerOptions(t, b)
	// verify_and_map alone makes nats-server require client certificates.
	if !opts.TLSMap || opts.TLSConfig.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("nats-server read verify_and_map %v client auth %v", opts.TLSMap, opts.TLSConfig.ClientAuth)
	}
	if len(opts.Users) != 2 || opts.Users[0].Username != "CN=alice,O=acme" || opts.Users[0].Password != "" {
		t.Errorf("nats-server read users %+v", opts.Users)
	}
}
