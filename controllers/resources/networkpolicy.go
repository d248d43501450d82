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
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// LabelNamespaceName is the label the API server puts on every namespace,
// with the namespace's name as its value.
const LabelNamespaceName = "kubernetes.io/metadata.name"

// NetworkPolicyEnabled is spec.networkPolicy.enabled with the API's default
// (true) applied.
func NetworkPolicyEnabled(nc *v1alpha1.NatsCluster) bool {
	e := nc.Spec.NetworkPolicy.Enabled
	return e == nil || *e
}

// NetworkPolicy isolates the broker pods for ingress and admits, per port:
// clients on 4222 (from anywhere, or from the namespaces of
// spec.networkPolicy.clientNamespaceSelector); on 6222 only the cluster's own
// broker pods, since a route carries every message and the route password is
// the only other guard; on 8222 only the operator's namespace, which asks
// /varz, and the namespaces of spec.networkPolicy.monitoringNamespaceSelector,
// since /connz and /subsz list users, client addresses and subscriptions.
// operatorNamespace is "" when the operator does not know where it runs: then
// only the monitoring selector, if any, reaches 8222.
//
// The kubelet's probes on 8222 come from the pod's own node, which
// NetworkPolicy implementations admit regardless of the policy.
func NetworkPolicy(nc *v1alpha1.NatsCluster, operatorNamespace string) *networkingv1.NetworkPolicy {
	spec := nc.Spec.NetworkPolicy
	tcp := corev1.ProtocolTCP
	port := func(p int32) []networkingv1.NetworkPolicyPort {
		return []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: new(intstr.FromInt32(p))}}
	}

	clients := networkingv1.NetworkPolicyIngressRule{Ports: port(ClientPort)}
	if spec.ClientNamespaceSelector != nil {
		clients.From = []networkingv1.NetworkPolicyPeer{{NamespaceSelector: spec.ClientNamespaceSelector.DeepCopy()}}
	}
	routes := networkingv1.NetworkPolicyIngressRule{
		Ports: port(ClusterPort),
		From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(nc)}}},
	}
	rules := []networkingv1.NetworkPolicyIngressRule{clients, routes}

	var monitors []networkingv1.NetworkPolicyPeer
	if operatorNamespace != "" {
		monitors = append(monitors, networkingv1.NetworkPolicyPeer{NamespaceSelector: &metav1.LabelSelector{
			MatchLabels: map[string]string{LabelNamespaceName: operatorNamespace},
		}})
	}
	if spec.MonitoringNamespaceSelector != nil {
		monitors = append(monitors, networkingv1.NetworkPolicyPeer{NamespaceSelector: spec.MonitoringNamespaceSelector.DeepCopy()})
	}
	// A rule without peers admits everyone: with nobody to admit, 8222 gets
	// no rule at all.
	if len(monitors) > 0 {
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{Ports: port(MonitorPort), From: monitors})
	}

	return &networkingv1.NetworkPolicy{
		ObjectMeta: objectMeta(nc, NetworkPolicyName(nc), "broker"),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: SelectorLabels(nc)},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     rules,
		},
	}
}
