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
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// annotationSpecHash on the StatefulSet (not on its pod template) records the
// spec the operator last applied, so that a field removed from the desired
// spec is noticed too.
const annotationSpecHash = "natsforge.io/spec-hash"

// applyServices creates or updates the routes and client Services. They come
// before the certificates: the server certificate names the client
// Service's cluster IP.
func (r *NatsClusterReconciler) applyServices(ctx context.Context, rq *request) error {
	nc := rq.cluster
	newService := func() *corev1.Service { return &corev1.Service{} }
	if _, err := apply(ctx, r, nc, resources.RoutesService(nc), newService, updateService); err != nil {
		return err
	}
	svc, err := apply(ctx, r, nc, resources.ClientService(nc), newService, updateService)
	if err != nil {
		return err
	}
	rq.clientService = svc
	return nil
}

// applyWorkload creates or updates the StatefulSet and the PDB.
func (r *NatsClusterReconciler) applyWorkload(ctx context.Context, rq *request) error {
	nc := rq.cluster
	if waiting, err := r.oldPodsRemain(ctx, nc); err != nil || waiting > 0 {
		rq.oldPodsRemain = waiting
		return err
	}
	desiredSts := resources.StatefulSet(nc, resources.Image(nc, r.DefaultImage))
	desiredSts.Annotations = map[string]string{annotationSpecHash: specHash(desiredSts.Spec)}
	sts, err := apply(ctx, r, nc, desiredSts,
		func() *appsv1.StatefulSet { return &appsv1.StatefulSet{} }, updateStatefulSet)
	if err != nil {
		return err
	}
	rq.statefulSet = sts
	_, err = apply(ctx, r, nc, resources.PodDisruptionBudget(nc),
		func() *policyv1.PodDisruptionBudget { return &policyv1.PodDisruptionBudget{} }, updatePDB)
	return err
}

// oldPodsRemain counts, when nc has no StatefulSet yet, the broker pods of
// nc's name that another StatefulSet made: those of a cluster deleted and
// created again under the same name, still terminating (lame duck). A
// StatefulSet created now would find its pod names taken by pods of another
// owner, and their deletions, which name that owner, would not wake it: it
// could sit with fewer pods than asked for. So it is created once they are
// gone; their deletions bring the cluster back here.
func (r *NatsClusterReconciler) oldPodsRemain(ctx context.Context, nc *v1alpha1.NatsCluster) (int, error) {
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: resources.StatefulSetName(nc)}, &appsv1.StatefulSet{})
	if !apierrors.IsNotFound(err) {
		return 0, client.IgnoreNotFound(err)
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(nc.Namespace), client.MatchingLabels(resources.SelectorLabels(nc))); err != nil {
		return 0, fmt.Errorf("list pods: %w", err)
	}
	n := 0
	for i := range pods.Items {
		if owner := metav1.GetControllerOf(&pods.Items[i]); owner != nil && owner.Kind == "StatefulSet" {
			n++
		}
	}
	if n > 0 {
		// The cache may not have seen a StatefulSet of ours made a moment
		// ago, whose pods it has: the API server says.
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: resources.StatefulSetName(nc)}, &appsv1.StatefulSet{})
		if !apierrors.IsNotFound(err) {
			return 0, client.IgnoreNotFound(err)
		}
		logf.FromContext(ctx).Info("waiting for the pods of an earlier StatefulSet of this name to be gone", "pods", n)
	}
	return n, nil
}

// observeStatefulSet only reads the StatefulSet (for a paused cluster).
func (r *NatsClusterReconciler) observeStatefulSet(ctx context.Context, rq *request) error {
	sts := &appsv1.StatefulSet{}
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: rq.cluster.Namespace, Name: resources.StatefulSetName(rq.cluster)}, sts)
	if err != nil {
		return client.IgnoreNotFound(err)
	}
	rq.statefulSet = sts
	return nil
}

// apply is the one write path for cached child objects: create desired when it
// is missing, otherwise let update copy what drifted into the existing object
// and write only when update reports a change. Conflicts are retried with a
// fresh read from the API server; objects nc does not control are never taken
// over.
func apply[T client.Object](ctx context.Context, r *NatsClusterReconciler, nc *v1alpha1.NatsCluster,
	desired T, newObj func() T, update func(existing, desired T) bool) (T, error) {
	kind := reflect.TypeOf(desired).Elem().Name()
	if gvk := desired.GetObjectKind().GroupVersionKind(); gvk.Kind != "" {
		kind = gvk.Kind // unstructured
	}
	key := client.ObjectKeyFromObject(desired)
	var result T
	var reader client.Reader = r.Client
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		existing := newObj()
		err := reader.Get(ctx, key, existing)
		reader = r.APIReader // after a conflict the cache may still be behind: read the API server
		if apierrors.IsNotFound(err) {
			err = r.Client.Create(ctx, desired)
			if err == nil {
				result = desired
				return nil
			}
			if !apierrors.IsAlreadyExists(err) {
				return err
			}
			// The cache lags behind a create of a moment ago.
			err = r.APIReader.Get(ctx, key, existing)
		}
		if err != nil {
			return err
		}
		if !metav1.IsControlledBy(existing, nc) {
			return fmt.Errorf("refusing to take over %s %s: it exists and is not controlled by this NatsCluster", kind, key.Name)
		}
		changed := update(existing, desired)
		if !hasAll(existing.GetLabels(), desired.GetLabels()) {
			existing.SetLabels(mergeMaps(existing.GetLabels(), desired.GetLabels()))
			changed = true
		}
		if !hasAll(existing.GetAnnotations(), desired.GetAnnotations()) {
			existing.SetAnnotations(mergeMaps(existing.GetAnnotations(), desired.GetAnnotations()))
			changed = true
		}
		if changed {
			if err := r.Client.Update(ctx, existing); err != nil {
				return err
			}
		}
		result = existing
		return nil
	})
	if err != nil {
		return result, fmt.Errorf("apply %s %s: %w", kind, key.Name, err)
	}
	return result, nil
}

// updateStatefulSet copies the mutable parts of the desired spec when they
// changed (spec hash) or drifted (fields the API server did not default differ).
func updateStatefulSet(existing, desired *appsv1.StatefulSet) bool {
	same := existing.Annotations[annotationSpecHash] == desired.Annotations[annotationSpecHash] &&
		equality.Semantic.DeepEqual(existing.Spec.Replicas, desired.Spec.Replicas) &&
		existing.Spec.UpdateStrategy.Type == desired.Spec.UpdateStrategy.Type &&
		equality.Semantic.DeepDerivative(desired.Spec.Template, existing.Spec.Template)
	if same {
		return false
	}
	existing.Spec.Replicas = desired.Spec.Replicas
	existing.Spec.Template = desired.Spec.Template
	existing.Spec.UpdateStrategy = desired.Spec.UpdateStrategy
	// Selector, serviceName and podManagementPolicy are immutable: they were set
	// at creation and never change for a given NatsCluster.
	return true
}

func specHash(spec any) string {
	b, _ := json.Marshal(spec)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// updateService copies type, selector, ports and publishNotReadyAddresses,
// keeping the node ports the API server allocated.
func updateService(existing, desired *corev1.Service) bool {
	changed := false
	if existing.Spec.Type != desired.Spec.Type {
		existing.Spec.Type = desired.Spec.Type
		changed = true
	}
	if !equality.Semantic.DeepEqual(existing.Spec.Selector, desired.Spec.Selector) {
		existing.Spec.Selector = desired.Spec.Selector
		changed = true
	}
	if existing.Spec.PublishNotReadyAddresses != desired.Spec.PublishNotReadyAddresses {
		existing.Spec.PublishNotReadyAddresses = desired.Spec.PublishNotReadyAddresses
		changed = true
	}
	if !samePorts(existing.Spec.Ports, desired.Spec.Ports) || (existing.Spec.Type == corev1.ServiceTypeClusterIP && hasNodePorts(existing.Spec.Ports)) {
		nodePorts := map[string]int32{}
		for _, p := range existing.Spec.Ports {
			nodePorts[p.Name] = p.NodePort
		}
		ports := make([]corev1.ServicePort, len(desired.Spec.Ports))
		copy(ports, desired.Spec.Ports)
		if existing.Spec.Type != corev1.ServiceTypeClusterIP {
			for i := range ports {
				ports[i].NodePort = nodePorts[ports[i].Name]
			}
		}
		existing.Spec.Ports = ports
		changed = true
	}
	return changed
}

func samePorts(a, b []corev1.ServicePort) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Port != b[i].Port || a[i].TargetPort != b[i].TargetPort || a[i].Protocol != b[i].Protocol {
			return false
		}
	}
	return true
}

func hasNodePorts(ports []corev1.ServicePort) bool {
	for _, p := range ports {
		if p.NodePort != 0 {
			return true
		}
	}
	return false
}

func updatePDB(existing, desired *policyv1.PodDisruptionBudget) bool {
	if equality.Semantic.DeepEqual(existing.Spec.MinAvailable, desired.Spec.MinAvailable) &&
		equality.Semantic.DeepEqual(existing.Spec.MaxUnavailable, desired.Spec.MaxUnavailable) &&
		equality.Semantic.DeepEqual(existing.Spec.Selector, desired.Spec.Selector) {
		return false
	}
	existing.Spec.MinAvailable = desired.Spec.MinAvailable
	existing.Spec.MaxUnavailable = desired.Spec.MaxUnavailable
	existing.Spec.Selector = desired.Spec.Selector
	return true
}
