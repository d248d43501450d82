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
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/conf"
)

// secretSize is what the API server counts against its 1 MiB limit.
func secretSize(s *corev1.Secret) int {
	n := 0
	for k, v := range s.Data {
		n += len(k) + len(v)
	}
	return n
}

func TestASmallConfigStaysOneFileInOneSecret(t *testing.T) {
	nc := sampleCluster()
	secret, parts, err := ConfigSecrets(nc, []byte("port: 4222\n"), nil, []byte("{}"), []byte("h1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 0 || string(secret.Data[ConfigKey]) != "port: 4222\n" || string(secret.Data[FingerprintsKey]) != "{}" {
		t.Errorf("secret %v, %d parts", secret.Data, len(parts))
	}
}

// TestTenThousandUsersAreDeliveredInPartsTheBrokerJoins renders the config
// of 10,000 users with names of the longest length and permissions, cuts
// it, lays the Secrets out as the kubelet does and reads it back as the
// broker does.
func TestTenThousandUsersAreDeliveredInPartsTheBrokerJoins(t *testing.T) {
	nc := sampleCluster()
	var users []BrokerUser
	perm := &v1alpha1.Permissions{Publish: &v1alpha1.SubjectPermission{Allow: []v1alpha1.Subject{"orders.>"}}}
	for i := range 10000 {
		users = append(users, BrokerUser{Name: fmt.Sprintf("%s-%05d", strings.Repeat("u", 57), i),
			PasswordHash: "$2a$11$DoVmwh1Ic.e3VprNsLnwAu5n1WjvQ6FhZoq05biQhXF6TKE58GGUW", Permissions: perm})
	}
	config, err := RenderConfig(nc, ConfigInputs{Users: users, RoutePassword: "route-pw"})
	if err != nil {
		t.Fatal(err)
	}
	records := bytes.Repeat([]byte("r"), 2<<20) // about what 10,000 fingerprint records take
	secret, parts, err := ConfigSecrets(nc, config, nil, records, []byte("h"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("config of 10,000 users: %d bytes in %d parts; records %d bytes", len(config), len(parts), len(records))
	if len(parts) < 2 {
		t.Fatalf("%d parts for a config of %d bytes", len(parts), len(config))
	}
	dir := t.TempDir()
	files := map[string][]byte{ConfigKey: secret.Data[ConfigKey]}
	for _, s := range append([]*corev1.Secret{secret}, parts...) {
		if n := secretSize(s); n >= 1<<20 {
			t.Errorf("Secret %s holds %d bytes, over the API server's 1 MiB", s.Name, n)
		}
	}
	for i, p := range parts {
		if p.Name != fmt.Sprintf("demo-config-%d", i+1) {
			t.Errorf("part %d named %s", i+1, p.Name)
		}
		if b, ok := p.Data[ConfigPartKey(i+1)]; ok {
			files[ConfigPartKey(i+1)] = b
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	joined, err := conf.ReadConfig(filepath.Join(dir, ConfigKey))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(joined, config) {
		t.Error("the broker's joined parts are not the rendered config")
	}
	if !bytes.Equal(JoinFingerprints(secret, parts), records) {
		t.Error("the fingerprint records do not join back")
	}
}

func TestAConfigBeyondTheMountedPartsIsRefused(t *testing.T) {
	big := bytes.Repeat([]byte("# filler line\n"), (MaxConfigParts+1)*ConfigPartSize/14+1)
	if _, _, err := ConfigSecrets(sampleCluster(), big, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "the pods mount at most") {
		t.Errorf("err = %v", err)
	}
}
