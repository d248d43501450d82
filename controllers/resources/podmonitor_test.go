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
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

func TestThePodMonitorScrapesHTTPSVerifiedByTheCAOrPlainHTTPWithoutTLS(t *testing.T) {
	for _, tc := range []struct {
		mode                     v1alpha1.TLSMode
		client                   *v1alpha1.TLSSecretReference
		scheme, caSecret, server string
	}{
		{mode: v1alpha1.TLSModeOperator, scheme: "https", caSecret: "c-tls", server: "c.ns.svc"},
		{mode: v1alpha1.TLSModeSecrets, client: &v1alpha1.TLSSecretReference{SecretName: "from-cert-manager"}, scheme: "https", caSecret: "from-cert-manager", server: "c.ns.svc"},
		{mode: v1alpha1.TLSModeDisabled, scheme: "http"},
	} {
		nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c", UID: "u1"}}
		nc.Spec.TLS.Mode = tc.mode
		nc.Spec.TLS.Client = tc.client
		pm := PodMonitor(nc)
		eps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
		ep := eps[0].(map[string]any)
		ca, _, _ := unstructured.NestedString(ep, "tlsConfig", "ca", "secret", "name")
		server, _, _ := unstructured.NestedString(ep, "tlsConfig", "serverName")
		if ep["scheme"] != tc.scheme || ca != tc.caSecret || server != tc.server || ep["port"] != MonitorPortName {
			t.Errorf("%s: endpoint %v", tc.mode, ep)
		}
		if pm.GetKind() != "PodMonitor" || pm.GetAPIVersion() != "monitoring.coreos.com/v1" || pm.GetOwnerReferences()[0].UID != "u1" {
			t.Errorf("%s: %s %s owners %v", tc.mode, pm.GetAPIVersion(), pm.GetKind(), pm.GetOwnerReferences())
		}
	}
}
