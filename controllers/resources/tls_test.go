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
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

func TestServerSANsNameTheServiceEveryPodAndTheExtras(t *testing.T) {
	nc := sampleCluster()
	nc.Spec.Replicas = ptr.To[int32](2)
	nc.Spec.TLS.ExtraSANs = []string{"nats.example.com", "203.0.113.7"}
	dns, ips := ServerSANs(nc, "10.96.0.17")
	want := []string{
		"demo", "demo.apps", "demo.apps.svc", "demo.apps.svc.cluster.local",
		"demo-0.demo-routes.apps.svc", "demo-0.demo-routes.apps.svc.cluster.local",
		"demo-1.demo-routes.apps.svc", "demo-1.demo-routes.apps.svc.cluster.local",
		"nats.example.com",
	}
	if !slices.Equal(dns, want) {
		t.Errorf("DNS SANs\\n got %v\\nwant %v", dns, want)
	}
	if len(ips) != 2 || ips[0].String() != "10.96.0.17" || ips[1].String() != "203.0.113.7" {
		t.Errorf("IP SANs %v", ips)
	}
	// Every route URL's host is a route SAN: peers verify it when they dial.
	for _, u := range RouteURLs(nc, "pw") {
		host := u[len("nats://route:pw@") : len(u)-len(":6222")]
		if !slices.Contains(RouteDNSNames(nc), host) {
			t.Errorf("route URL host %s is not in the route certificate's names", host)
		}
	}
}

func TestTLSSecretNamesFollowTheMode(t *testing.T) {
	tests := []struct {
		name           string
		tls            v1alpha1.TLSSpec
		client, routes string
	}{
		{"default is Operator", v1alpha1.TLSSpec{}, "demo-tls", "demo-routes-tls"},
		{"Operator", v1alpha1.TLSSpec{Mode: v1alpha1.TLSModeOperator}, "demo-tls", "demo-routes-tls"},
		{"Secrets, routes share the client Secret", v1alpha1.TLSSpec{Mode: v1alpha1.TLSModeSecrets,
			Client: &v1alpha1.TLSSecretReference{SecretName: "cm"}}, "cm", "cm"},
		{"Secrets with a routes Secret", v1alpha1.TLSSpec{Mode: v1alpha1.TLSModeSecrets,
			Client: &v1alpha1.TLSSecretReference{SecretName: "cm"}, Routes: &v1alpha1.TLSSecretReference{SecretName: "cm-routes"}}, "cm", "cm-routes"},
		{"Disabled", v1alpha1.TLSSpec{Mode: v1alpha1.TLSModeDisabled}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := sampleCluster()
			nc.Spec.TLS = tt.tls
			if c, r := ClientTLSSecretName(nc), RouteTLSSecretName(nc); c != tt.client || r != tt.routes {
				t.Errorf("client %q routes %q, want %q %q", c, r, tt.client, tt.routes)
			}
			vols := StatefulSet(nc, "img").Spec.Template.Spec.Volumes
			var secrets []string
			for _, v := range vols[1:] {
				secrets = append(secrets, v.Secret.SecretName)
			}
			if tt.client == "" && len(secrets) != 0 || tt.client != "" && !slices.Equal(secrets, []string{tt.client, tt.routes}) {
				t.Errorf("mounted Secrets %v", secrets)
			}
		})
	}
}

func TestWithTLSTheConfigServesTLSEverywhere(t *testing.T) {
	nc := sampleCluster()
	o := BrokerOptions(nc, sampleInputs())
	if o.TLS == nil || o.TLS.CertFile != "/etc/nats-tls/client/tls.crt" || o.TLS.KeyFile != "/etc/nats-tls/client/tls.key" ||
		o.TLS.CAFile != "/etc/nats-tls/client/ca.crt" || o.TLS.Verify || o.TLS.VerifyAndMap {
		t.Errorf("client tls %+v", o.TLS)
	}
	if o.HTTPPort != 0 || o.HTTPSPort != MonitorPort {
		t.Errorf("monitoring http_port %d https_port %d, want HTTPS only", o.HTTPPort, o.HTTPSPort)
	}
	if c := o.Cluster.TLS; c == nil || !c.Verify || c.CertFile != "/etc/nats-tls/routes/tls.crt" || c.CAFile != "/etc/nats-tls/routes/ca.crt" {
		t.Errorf("route tls %+v: routes are mutual TLS with a CA", c)
	}

	nc.Spec.TLS.VerifyClients = true
	if o := BrokerOptions(nc, sampleInputs()); !o.TLS.Verify {
		t.Error("verifyClients does not turn on verify")
	}
	in := sampleInputs()
	in.CertificateUsers = true
	if o := BrokerOptions(nc, in); !o.TLS.VerifyAndMap {
		t.Error("certificate users do not turn on verify_and_map")
	}

	nc.Spec.TLS = v1alpha1.TLSSpec{Mode: v1alpha1.TLSModeDisabled}
	if o := BrokerOptions(nc, sampleInputs()); o.TLS != nil || o.Cluster.TLS != nil || o.HTTPPort != MonitorPort || o.HTTPSPort != 0 {
		t.Errorf("Disabled: tls %+v cluster tls %+v http %d https %d", o.TLS, o.Cluster.TLS, o.HTTPPort, o.HTTPSPort)
	}
}

func TestWithTLSProbesUseHTTPSAndThePodTemplateCarriesNoCertificate(t *testing.T) {
	nc := sampleCluster()
	sts := StatefulSet(nc, "img")
	c := sts.Spec.Template.Spec.Containers[0]
	for _, p := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		if p.HTTPGet.Scheme != corev1.URISchemeHTTPS {
			t.Errorf("probe scheme %s, want HTTPS", p.HTTPGet.Scheme)
		}
	}
	var mounts []string
	for _, m := range c.VolumeMounts {
		mounts = append(mounts, m.MountPath)
	}
	if !slices.Equal(mounts, []string{"/etc/nats", "/etc/nats-tls/client", "/etc/nats-tls/routes"}) {
		t.Errorf("mounts %v", mounts)
	}
	// Rotation must not roll pods: nothing about a certificate is in the template.
	before := StatefulSet(nc, "img")
	nc.Spec.TLS.CertificateDuration = &metav1.Duration{Duration: 1000 * 3600e9}
	after := StatefulSet(nc, "img")
	if specHashOf(before) != specHashOf(after) {
		t.Error("the certificate lifetime changes the pod template")
	}
	nc.Spec.TLS.Mode = v1alpha1.TLSModeDisabled
	c = StatefulSet(nc, "img").Spec.Template.Spec.Containers[0]
	if c.LivenessProbe.HTTPGet.Scheme != corev1.URISchemeHTTP || c.StartupProbe.HTTPGet.Scheme != corev1.URISchemeHTTP || len(c.VolumeMounts) != 1 {
		t.Errorf("Disabled: probe %s, mounts %v", c.LivenessProbe.HTTPGet.Scheme, c.VolumeMounts)
	}
}

func specHashOf(sts any) string {
	b, _ := yaml.Marshal(sts)
	return string(b)
}
