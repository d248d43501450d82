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
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/controllers/resources"
)

// applyNetworkPolicy keeps the NetworkPolicy "<name>" in line with
// spec.networkPolicy, or deletes it when the policy is disabled. It comes
// before the workload, so that a new cluster's pods start isolated.
func (r *NatsClusterReconciler) applyNetworkPolicy(ctx context.Context, rq *request) error {
	nc := rq.cluster
	if resources.NetworkPolicyEnabled(nc) {
		_, err := apply(ctx, r, nc, resources.NetworkPolicy(nc, r.OperatorNamespace),
			func() *networkingv1.NetworkPolicy { return &networkingv1.NetworkPolicy{} }, updateNetworkPolicy)
		return err
	}
	existing := &networkingv1.NetworkPolicy{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: resources.NetworkPolicyName(nc)}, existing)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get NetworkPolicy %s: %w", resources.NetworkPolicyName(nc), err)
	}
	if !metav1.IsControlledBy(existing, nc) {
		return nil // someone else's policy of that name: not the operator's to delete
	}
	err = r.Client.Delete(ctx, existing, client.Preconditions{UID: &existing.UID})
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete NetworkPolicy %s: %w", existing.Name, err)
	}
	return nil
}

// updateNetworkPolicy puts back the whole spec when it differs: every field
// of it is the operator's.
func updateNetworkPolicy(existing, desired *networkingv1.NetworkPolicy) bool {
	if equality.Semantic.DeepEqual(existing.Spec, desired.Spec) {
		return false
	}
	existing.Spec = desired.Spec
	return true
}
