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
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// sampleCluster is the NatsCluster most tests build from.
func sampleCluster() *v1alpha1.NatsCluster {
	return &v1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "apps", UID: "0b5e1c6e-0000-4000-8000-000000000001"},
		Spec: v1alpha1.NatsClusterSpec{
			Replicas: ptr.To[int32](3),
			Auth: v1alpha1.AuthSpec{
				BcryptCost: 11,
				Users: []v1alpha1.User{
					{Name: "alice", PasswordSecretRef: &v1alpha1.SecretKeyReference{Name: "alice-pw", Key: "password"}},
					{Name: "app", Permissions: &v1alpha1.Permissions{
						Publish:        &v1alpha1.SubjectPermission{Allow: []v1alpha1.Subject{"orders.>"}, Deny: []v1alpha1.Subject{"orders.secret"}},
						Subscribe:      &v1alpha1.SubjectPermission{Allow: []v1alpha1.Subject{"replies.>"}},
						AllowResponses: true,
					}},
				},
				DefaultPermissions: &v1alpha1.Permissions{Subscribe: &v1alpha1.SubjectPermission{Allow: []v1alpha1.Subject{"PUBLIC.>"}}},
			},
			Config: v1alpha1.BrokerConfig{
				MaxPayload:       ptr.To[int32](2 << 20),
				LameDuckDuration: &metav1.Duration{Duration: 45e9},
			},
		},
	}
}

// golden compares got with testdata/name, or rewrites it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if line, w, g, differ := firstDifference(string(want), string(got)); differ {
		t.Errorf("%s differs from the golden file at line %d (go test -update rewrites it):\nwant: %s\ngot:  %s", name, line, w, g)
	}
}

func goldenYAML(t *testing.T, name string, obj any) {
	t.Helper()
	b, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, name, b)
}

func TestNamesFollowTheDesign(t *testing.T) {
	nc := sampleCluster()
	for got, want := range map[string]string{
		StatefulSetName(nc):          "demo",
		ClientServiceName(nc):        "demo",
		RoutesServiceName(nc):        "demo-routes",
		PDBName(nc):                  "demo",
		NetworkPolicyName(nc):        "demo",
		ConfigSecretName(nc):         "demo-config",
		RoutesSecretName(nc):         "demo-route-credentials",
		FingerprintKeySecretName(nc): "demo-fingerprint-key",
	} {
		if got != want {
			t.Errorf("name %q, want %q", got, want)
		}
	}
}

func TestGeneratedUserSecretNamesAreValidAndDistinct(t *testing.T) {
	nc := sampleCluster()
	tests := []struct {
		user, want string
	}{
		{"alice", "demo-user-alice"},
		{"app-1", "demo-user-app-1"},
		{"Alice", "demo-user-alice-3bc51062"},
		{"a_b", "demo-user-a-b-"},
		{"a.b", "demo-user-a-b-"},
		{"_", "demo-user-"},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got := GeneratedUserSecretName(nc, tt.user)
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("GeneratedUserSecretName(%q) = %q, want prefix %q", tt.user, got, tt.want)
		}
		if other, dup := seen[got]; dup {
			t.Errorf("users %q and %q share the Secret %q", other, tt.user, got)
		}
		seen[got] = tt.user
		if strings.Trim(got, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || strings.HasSuffix(got, "-") {
			t.Errorf("GeneratedUserSecretName(%q) = %q is not a valid Secret name", tt.user, got)
		}
	}
}

func TestRouteURLsListEveryPodWithCredentials(t *testing.T) {
	for _, n := range []int32{1, 3, 5} {
		nc := sampleCluster()
		nc.Spec.Replicas = ptr.To(n)
		urls := RouteURLs(nc, "s3cr3t/+")
		if len(urls) != int(n) {
			t.Fatalf("replicas %d: %d route URLs", n, len(urls))
		}
		for i, u := range urls {
			want := "nats://route:s3cr3t%2F+@demo-" + string(rune('0'+i)) + ".demo-routes.apps.svc:6222"
			if u != want {
				t.Errorf("replicas %d: route %d = %q, want %q", n, i, u, want)
			}
		}
	}
}

func TestGeneratedUserSecretCarriesConnectDetails(t *testing.T) {
	s := GeneratedUserSecret(sampleCluster(), "app", "PW123", []byte("CA PEM"))
	want := map[string]string{
		UsernameKey: "app",
		PasswordKey: "PW123",
		URLKey:      "tls://app:PW123@demo.apps.svc:4222",
		CACertKey:   "CA PEM",
	}
	for k, v := range want {
		if string(s.Data[k]) != v {
			t.Errorf("%s = %q, want %q", k, s.Data[k], v)
		}
	}
	if !IsGeneratedUserSecret(s.Labels) || s.Annotations[AnnotationUser] != "app" {
		t.Errorf("generated Secret not marked as such: labels %v annotations %v", s.Labels, s.Annotations)
	}
	if len(s.OwnerReferences) != 1 || !ptr.Deref(s.OwnerReferences[0].Controller, false) {
		t.Errorf("generated Secret is not controlled by the NatsCluster: %v", s.OwnerReferences)
	}
}

func TestPodDisruptionBudgetKeepsAMajority(t *testing.T) {
	tests := []struct {
		replicas       int32
		minAvailable   string
		maxUnavailable string
	}{
		{1, "", "1"},
		{2, "", "1"},
		{3, "2", ""},
		{5, "3", ""},
	}
	for _, tt := range tests {
		nc := sampleCluster()
		nc.Spec.Replicas = ptr.To(tt.replicas)
		pdb := PodDisruptionBudget(nc)
		gotMin, gotMax := "", ""
		if pdb.Spec.MinAvailable != nil {
			gotMin = pdb.Spec.MinAvailable.String()
		}
		if pdb.Spec.MaxUnavailable != nil {
			gotMax = pdb.Spec.MaxUnavailable.String()
		}
		if gotMin != tt.minAvailable || gotMax != tt.maxUnavailable {
			t.Errorf("replicas %d: minAvailable %q maxUnavailable %q, want %q %q", tt.replicas, gotMin, gotMax, tt.minAvailable, tt.maxUnavailable)
		}
	}
}

func TestServicesAreAsSpecified(t *testing.T) {
	nc := sampleCluster()
	routes := RoutesService(nc)
	if routes.Spec.ClusterIP != "None" || !routes.Spec.PublishNotReadyAddresses {
		t.Errorf("routes Service: clusterIP %q publishNotReadyAddresses %v, want headless and publishing not-ready pods",
			routes.Spec.ClusterIP, routes.Spec.PublishNotReadyAddresses)
	}
	if len(routes.Spec.Ports) != 1 || routes.Spec.Ports[0].Port != ClusterPort {
		t.Errorf("routes Service ports %v, want only %d", routes.Spec.Ports, ClusterPort)
	}

	client := ClientService(nc)
	if client.Spec.Type != "ClusterIP" || client.Spec.PublishNotReadyAddresses {
		t.Errorf("client Service: type %q publishNotReadyAddresses %v", client.Spec.Type, client.Spec.PublishNotReadyAddresses)
	}
	if len(client.Spec.Ports) != 1 || client.Spec.Ports[0].Port != ClientPort {
		t.Errorf("client Service ports %v, want only %d", client.Spec.Ports, ClientPort)
	}
	nc.Spec.Service = v1alpha1.ServiceSpec{Type: "LoadBalancer", Annotations: map[string]string{"lb": "internal"}}
	client = ClientService(nc)
	if client.Spec.Type != "LoadBalancer" || client.Annotations["lb"] != "internal" {
		t.Errorf("client Service ignores spec.service: %v %v", client.Spec.Type, client.Annotations)
	}

	goldenYAML(t, "routes-service.yaml", RoutesService(sampleCluster()))
	goldenYAML(t, "client-service.yaml", ClientService(sampleCluster()))
	goldenYAML(t, "pdb.yaml", PodDisruptionBudget(sampleCluster()))
}

// firstDifference finds the first line where want and got differ.
func firstDifference(want, got string) (line int, w, g string, differ bool) {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var a, b string
		if i < len(wl) {
			a = wl[i]
		}
		if i < len(gl) {
			b = gl[i]
		}
		if a != b || i >= len(wl) || i >= len(gl) {
			return i + 1, a, b, true
		}
	}
	return 0, "", "", false
}

func TestWithoutTLSTheGeneratedUserSecretHasAPlainURLAndNoCA(t *testing.T) {
	nc := sampleCluster()
	nc.Spec.TLS.Mode = v1alpha1.TLSModeDisabled
	s := GeneratedUserSecret(nc, "app", "PW123", nil)
	if got := string(s.Data[URLKey]); got != "nats://app:PW123@demo.apps.svc:4222" {
		t.Errorf("url %q", got)
	}
	if _, ok := s.Data[CACertKey]; ok {
		t.Error("ca.crt without TLS")
	}
}
