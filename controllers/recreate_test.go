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
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// A NatsCluster created again under the name of one just deleted: a pod of
// the old StatefulSet is still terminating. The new StatefulSet waits until
// it is gone (created now, it would find the pod name taken by another
// owner's pod and never be told when it goes), then comes at once.
func TestARecreatedClusterWaitsForTheOldStatefulSetsPods(t *testing.T) {
	needAPIServer(t)
	ctx := context.Background()
	const ns = "workload"
	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "again"}}
	_ = k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default"}})
	sts := resources.StatefulSet(nc, "img")
	old := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.PodName(nc, 1), Labels: sts.Spec.Template.Labels,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: sts.Name,
				UID: types.UID("the-old-statefulset"), Controller: ptr.To(true)}}},
		Spec: sts.Spec.Template.Spec,
	}
	old.Spec.AutomountServiceAccountToken = ptr.To(false)
	if err := k8s.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(ctx, old, client.GracePeriodSeconds(0)) })

	nc = createCluster(t, ns, "again")
	// The reconcile got past writing the config (the phase before the
	// workload) and wrote its status (after every phase).
	eventually(t, timeout, func() error {
		cur := &v1alpha1.NatsCluster{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(nc), cur); err != nil {
			return err
		}
		if _, _, err := brokerConfig(nc); err != nil {
			return err
		}
		if cur.Status.ObservedGeneration != cur.Generation {
			return fmt.Errorf("status of generation %d, want %d", cur.Status.ObservedGeneration, cur.Generation)
		}
		return nil
	})
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sts.Name}, &appsv1.StatefulSet{}); !apierrors.IsNotFound(err) {
		t.Fatalf("a StatefulSet was created while a pod of the old one remains (get: %v)", err)
	}

	if err := k8s.Delete(ctx, old, client.GracePeriodSeconds(0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, func() error {
		return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: sts.Name}, &appsv1.StatefulSet{})
	})
}
