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

package controllers

import (
	"context"
	"errors"
	"fmt"
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// waitForNetworkPolicy waits until the cluster's NetworkPolicy is the one the
// builder makes from the cluster as it now is, controlled by the cluster.
func waitForNetworkPolicy(t *testing.T, nc *v1alpha1.NatsCluster) *networkingv1.NetworkPolicy {
	t.Helper()
	got := &networkingv1.NetworkPolicy{}
	eventually(t, timeout, func() error {
		cur := getCluster(t, nc)
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(nc), got); err != nil {
			return err
		}
		if !metav1.IsControlledBy(got, cur) {
			return fmt.Errorf("NetworkPolicy owners %v: not controlled by the NatsCluster", got.OwnerReferences)
		}
		if want := resources.NetworkPolicy(cur, operatorNamespace).Spec; !equality.Semantic.DeepEqual(got.Spec, want) {
			return fmt.Errorf("NetworkPolicy spec\n%+v\nwant\n%+v", got.Spec, want)
		}
		return nil
	})
	return got
}

func TestNetworkPolicyIsKeptByDefaultAndDeletedWhenDisabled(t *testing.T) {
	needAPIServer(t)
	const ns = "netpol"
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	nc := createCluster(t, ns, "np", userRef("alice", "alice-pw"))
	if got := getCluster(t, nc).Spec.NetworkPolicy.Enabled; !ptr.Deref(got, false) {
		t.Errorf("spec.networkPolicy.enabled defaults to %v, want true", got)
	}

	// By default: 4222 from anywhere, 6222 from the cluster's pods, 8222
	// from the operator's namespace.
	np := waitForNetworkPolicy(t, nc)
	byPort := map[int32][]networkingv1.NetworkPolicyPeer{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			byPort[p.Port.IntVal] = rule.From
		}
	}
	if len(byPort) != 3 || len(byPort[resources.ClientPort]) != 0 {
		t.Errorf("ingress %+v: want three ports, 4222 open to all", np.Spec.Ingress)
	}
	if from := byPort[resources.ClusterPort]; len(from) != 1 || from[0].NamespaceSelector != nil ||
		from[0].PodSelector == nil || from[0].PodSelector.MatchLabels[resources.LabelInstance] != "np" {
		t.Errorf("6222 from %+v, want the cluster's own pods", from)
	}
	if from := byPort[resources.MonitorPort]; len(from) != 1 || from[0].PodSelector != nil ||
		from[0].NamespaceSelector == nil || from[0].NamespaceSelector.MatchLabels[resources.LabelNamespaceName] != operatorNamespace {
		t.Errorf("8222 from %+v, want the operator's namespace", from)
	}

	// A selector in the spec reaches the policy.
	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) {
		nc.Spec.NetworkPolicy.ClientNamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "shop"}}
	})
	waitForNetworkPolicy(t, nc)

	// A hand-edited policy is put back.
	edited := np.DeepCopy()
	eventually(t, timeout, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(nc), edited); err != nil {
			return err
		}
		edited.Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}} // everyone, everywhere
		return k8s.Update(context.Background(), edited)
	})
	waitForNetworkPolicy(t, nc)

	// Disabled: the policy goes.
	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) { nc.Spec.NetworkPolicy.Enabled = ptr.To(false) })
	eventually(t, timeout, func() error {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(nc), &networkingv1.NetworkPolicy{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err == nil {
			return errors.New("the NetworkPolicy is still there with spec.networkPolicy.enabled false")
		}
		return err
	})
	waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionUnknown, v1alpha1.ReasonNoPodAddresses)

	// A resync of the disabled cluster writes nothing (and creates nothing).
	counted, calls := countingClient(t)
	r := *reconciler
	r.Client, r.APIReader = counted, counted
	calls.reset()
	for range 3 {
		if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}); err != nil {
			t.Fatal(err)
		}
	}
	if got := calls.snapshot(); writes(got) != 0 {
		t.Errorf("three resyncs of a cluster without a NetworkPolicy made %d writes (requests by method: %v), want 0", writes(got), got)
	}

	// Enabled again: it comes back.
	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) { nc.Spec.NetworkPolicy.Enabled = ptr.To(true) })
	waitForNetworkPolicy(t, nc)
}

func TestADisabledNetworkPolicyLeavesAForeignOneAlone(t *testing.T) {
	needAPIServer(t)
	const ns = "netpol"
	foreign := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "np-foreign"},
		Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
	}
	if err := k8s.Create(context.Background(), foreign); err != nil {
		t.Fatal(err)
	}
	createPasswordSecret(t, ns, "bob-pw", "bob-1")
	nc := &v1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "np-foreign"},
		Spec: v1alpha1.NatsClusterSpec{
			Auth:          v1alpha1.AuthSpec{Users: []v1alpha1.User{userRef("bob", "bob-pw")}, BcryptCost: testCost},
			NetworkPolicy: v1alpha1.NetworkPolicySpec{Enabled: ptr.To(false)},
		},
	}
	if err := k8s.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })
	waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionUnknown, v1alpha1.ReasonNoPodAddresses)
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(foreign), &networkingv1.NetworkPolicy{}); err != nil {
		t.Errorf("a NetworkPolicy the cluster does not control was touched: %v", err)
	}
}
