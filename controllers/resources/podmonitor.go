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
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// PodMonitorGVK is the Prometheus Operator's PodMonitor. The operator writes
// it as unstructured: the Prometheus Operator's Go module is not a dependency
// for one object, and the CRD may not be installed at all.
var PodMonitorGVK = schema.GroupVersionKind{Group: "monitoring.coreos.com", Version: "v1", Kind: "PodMonitor"}

// PodMonitorName is the PodMonitor of nc: the cluster's name.
func PodMonitorName(nc *v1alpha1.NatsCluster) string { return nc.Name }

// PodMonitor is the PodMonitor that scrapes every broker's /metrics on the
// monitoring port: HTTPS verified against the client certificate Secret's
// ca.crt and the client Service's name (which the server certificate
// carries, and which the pods' IPs, what Prometheus dials, do not), or plain
// HTTP when TLS is off.
func PodMonitor(nc *v1alpha1.NatsCluster) *unstructured.Unstructured {
	meta := objectMeta(nc, PodMonitorName(nc), "monitoring")
	labels := map[string]any{}
	for k, v := range nc.Spec.Monitoring.PodMonitorLabels {
		labels[k] = v
	}
	for k, v := range meta.Labels {
		labels[k] = v // ours win: the operator finds its objects by them
	}
	selector := map[string]any{}
	for k, v := range SelectorLabels(nc) {
		selector[k] = v
	}
	endpoint := map[string]any{
		"port":   MonitorPortName,
		"path":   "/metrics",
		"scheme": "http",
	}
	if TLSEnabled(nc) {
		endpoint["scheme"] = "https"
		endpoint["tlsConfig"] = map[string]any{
			"ca":         map[string]any{"secret": map[string]any{"name": ClientTLSSecretName(nc), "key": "ca.crt"}},
			"serverName": ClientServiceName(nc) + "." + nc.Namespace + ".svc",
		}
	}
	owner := meta.OwnerReferences[0]
	u := &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{
			"name":      meta.Name,
			"namespace": meta.Namespace,
			"labels":    labels,
			"ownerReferences": []any{map[string]any{
				"apiVersion": owner.APIVersion, "kind": owner.Kind, "name": owner.Name, "uid": string(owner.UID),
				"controller": true, "blockOwnerDeletion": true,
			}},
		},
		"spec": map[string]any{
			"selector":            map[string]any{"matchLabels": selector},
			"podMetricsEndpoints": []any{endpoint},
		},
	}}
	u.SetGroupVersionKind(PodMonitorGVK)
	return u
}
