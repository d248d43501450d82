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

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// source is where a connection to a broker pod comes from: a pod in a
// namespace, or (inCluster false) an address outside the Kubernetes cluster.
type source struct {
	inCluster bool
	namespace map[string]string // the namespace's labels
	pod       map[string]string // the pod's labels
	sameNS    bool              // the pod is in the NatsCluster's namespace
}

// admits reads a NetworkPolicy as the NetworkPolicy API defines it (ingress,
// TCP, numeric ports, peers by podSelector and namespaceSelector): whether a
// connection from src to port of a selected pod is allowed.
func admits(t *testing.T, np *networkingv1.NetworkPolicy, src source, port int32) bool {
	t.Helper()
	matches := func(sel *metav1.LabelSelector, l map[string]string) bool {
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatal(err)
		}
		return s.Matches(labels.Set(l))
	}
	for _, rule := range np.Spec.Ingress {
		portMatches := len(rule.Ports) == 0
		for _, p := range rule.Ports {
			if p.Port == nil || p.Port.IntVal == port {
				portMatches = true
			}
		}
		if !portMatches {
			continue
		}
		if len(rule.From) == 0 {
			return true
		}
		for _, peer := range rule.From {
			if !src.inCluster || peer.IPBlock != nil {
				continue
			}
			switch {
			case peer.NamespaceSelector != nil && peer.PodSelector != nil:
				if matches(peer.NamespaceSelector, src.namespace) && matches(peer.PodSelector, src.pod) {
					return true
				}
			case peer.NamespaceSelector != nil:
				if matches(peer.NamespaceSelector, src.namespace) {
					return true
				}
			case peer.PodSelector != nil:
				if src.sameNS && matches(peer.PodSelector, src.pod) {
					return true
				}
			}
		}
	}
	return false
}

func TestNetworkPolicyAdmitsEachPortOnlyItsOwnPeers(t *testing.T) {
	nc := sampleCluster()
	ns := func(name string, extra ...string) map[string]string {
		l := map[string]string{LabelNamespaceName: name}
		for i := 0; i+1 < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	var (
		outside    = source{}
		appPod     = source{inCluster: true, namespace: ns("shop", "team", "shop"), pod: map[string]string{"app": "web"}}
		neighbour  = source{inCluster: true, namespace: ns("apps"), pod: map[string]string{"app": "web"}, sameNS: true}
		broker     = source{inCluster: true, namespace: ns("apps"), pod: SelectorLabels(nc), sameNS: true}
		otherNats  = source{inCluster: true, namespace: ns("apps"), pod: map[string]string{LabelName: AppName, LabelInstance: "other"}, sameNS: true}
		foreignNat = source{inCluster: true, namespace: ns("shop"), pod: SelectorLabels(nc)} // same labels, another namespace
		operator   = source{inCluster: true, namespace: ns("natsforge-system"), pod: map[string]string{"control-plane": "x"}}
		prometheus = source{inCluster: true, namespace: ns("monitoring", "purpose", "metrics"), pod: map[string]string{}}
	)
	type check struct {
		name string
		src  source
		port int32
		want bool
	}
	tests := []struct {
		name              string
		change            func(*v1alpha1.NetworkPolicySpec)
		operatorNamespace string
		checks            []check
	}{
		{
			name:              "defaults",
			operatorNamespace: "natsforge-system",
			checks: []check{
				{"a client outside the cluster on 4222", outside, ClientPort, true},
				{"a client pod in another namespace on 4222", appPod, ClientPort, true},
				{"a pod in another namespace on 6222", appPod, ClusterPort, false},
				{"a pod in another namespace on 8222", appPod, MonitorPort, false},
				{"a pod in the cluster's namespace on 6222", neighbour, ClusterPort, false},
				{"a pod in the cluster's namespace on 8222", neighbour, MonitorPort, false},
				{"a broker of this cluster on 6222", broker, ClusterPort, true},
				{"a broker of another cluster on 6222", otherNats, ClusterPort, false},
				{"a pod with the same labels in another namespace on 6222", foreignNat, ClusterPort, false},
				{"the operator on 8222", operator, MonitorPort, true},
				{"the operator on 6222", operator, ClusterPort, false},
				{"prometheus on 8222, unselected", prometheus, MonitorPort, false},
				{"anyone on another port", appPod, 9999, false},
			},
		},
		{
			name: "client and monitoring selectors",
			change: func(s *v1alpha1.NetworkPolicySpec) {
				s.ClientNamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}}
				s.MonitoringNamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"purpose": "metrics"}}
			},
			operatorNamespace: "natsforge-system",
			checks: []check{
				{"a client pod in a selected namespace on 4222", appPod, ClientPort, true},
				{"a pod in an unselected namespace on 4222", neighbour, ClientPort, false},
				{"a client outside the cluster on 4222", outside, ClientPort, false},
				{"prometheus on 8222, selected", prometheus, MonitorPort, true},
				{"the operator on 8222", operator, MonitorPort, true},
				{"a client pod in a selected namespace on 8222", appPod, MonitorPort, false},
			},
		},
		{
			name:              "operator namespace unknown, no monitoring selector",
			operatorNamespace: "",
			checks: []check{
				{"the operator on 8222", operator, MonitorPort, false},
				{"a client outside the cluster on 8222", outside, MonitorPort, false},
				{"a pod in another namespace on 8222", appPod, MonitorPort, false},
				{"a client pod on 4222", appPod, ClientPort, true},
			},
		},
	}
	for _, tt := range tests {
		nc := sampleCluster()
		if tt.change != nil {
			tt.change(&nc.Spec.NetworkPolicy)
		}
		np := NetworkPolicy(nc, tt.operatorNamespace)
		if got := np.Spec.PodSelector.MatchLabels; !labels.Equals(got, SelectorLabels(nc)) {
			t.Errorf("%s: selects pods %v, want the brokers' %v", tt.name, got, SelectorLabels(nc))
		}
		if len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != networkingv1.PolicyTypeIngress {
			t.Errorf("%s: policy types %v, want Ingress only", tt.name, np.Spec.PolicyTypes)
		}
		for _, c := range tt.checks {
			if got := admits(t, np, c.src, c.port); got != c.want {
				t.Errorf("%s: %s: admitted %v, want %v", tt.name, c.name, got, c.want)
			}
		}
	}
}

func TestNetworkPolicyIsOnUnlessDisabled(t *testing.T) {
	nc := sampleCluster()
	if !NetworkPolicyEnabled(nc) {
		t.Error("no spec.networkPolicy: disabled, want enabled (the API's default)")
	}
	nc.Spec.NetworkPolicy.Enabled = ptr.To(true)
	if !NetworkPolicyEnabled(nc) {
		t.Error("enabled: true reads as disabled")
	}
	nc.Spec.NetworkPolicy.Enabled = ptr.To(false)
	if NetworkPolicyEnabled(nc) {
		t.Error("enabled: false reads as enabled")
	}
}

func TestNetworkPolicyGolden(t *testing.T) {
	goldenYAML(t, "networkpolicy.yaml", NetworkPolicy(sampleCluster(), "natsforge-system"))
}
