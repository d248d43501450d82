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

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// The PodMonitor is written as unstructured and read straight from the API
// server (the operator starts no informer for a kind that may not exist).
//
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=podmonitors,verbs=get;create;update;delete

// podMonitorState is what the apply pod monitor phase found.
type podMonitorState struct {
	observed     bool // the phase ran
	wanted       bool // spec.monitoring.podMonitor
	crdInstalled bool
	name         string
}

// applyPodMonitor keeps the PodMonitor spec.monitoring.podMonitor asks for,
// or deletes the one the cluster controls when it is turned off. Without the
// Prometheus Operator's CRD there is nothing to write: the PodMonitor
// condition says so and the reconcile goes on.
func (r *NatsClusterReconciler) applyPodMonitor(ctx context.Context, rq *request) error {
	nc := rq.cluster
	rq.podMonitor = podMonitorState{wanted: nc.Spec.Monitoring.PodMonitor, crdInstalled: true, name: resources.PodMonitorName(nc)}
	err := r.keepPodMonitor(ctx, rq)
	// The condition is reported only from what was decided: after a
	// failure, Ready says what failed and the old PodMonitor condition stands.
	rq.podMonitor.observed = err == nil
	return err
}

func (r *NatsClusterReconciler) keepPodMonitor(ctx context.Context, rq *request) error {
	nc := rq.cluster
	if nc.Spec.Monitoring.PodMonitor {
		_, err := apply(ctx, r, nc, resources.PodMonitor(nc), newPodMonitor, updatePodMonitor)
		if crdMissing(err) {
			rq.podMonitor.crdInstalled = false
			return nil
		}
		return err
	}
	existing := newPodMonitor()
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: resources.PodMonitorName(nc)}, existing)
	switch {
	case crdMissing(err), apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("get PodMonitor %s: %w", resources.PodMonitorName(nc), err)
	case !metav1.IsControlledBy(existing, nc):
		return nil // someone else's PodMonitor of that name
	}
	uid := existing.GetUID()
	err = r.Client.Delete(ctx, existing, client.Preconditions{UID: &uid})
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete PodMonitor %s: %w", existing.GetName(), err)
	}
	return nil
}

func newPodMonitor() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(resources.PodMonitorGVK)
	return u
}

// crdMissing tells whether err says the API server serves no PodMonitors:
// no mapping for the kind, or (when the mapping was cached before the CRD
// went away) the resource not found on a write.
func crdMissing(err error) bool {
	if err == nil {
		return false
	}
	if meta.IsNoMatchError(err) {
		return true
	}
	// A create answered 404 names the resource and no object: the path is
	// not served.
	var status apierrors.APIStatus
	if !errors.As(err, &status) || !apierrors.IsNotFound(err) {
		return false
	}
	d := status.Status().Details
	return d != nil && d.Kind == "podmonitors" && d.Name == ""
}

// updatePodMonitor puts back the whole spec when it differs: every field of
// it is the operator's.
func updatePodMonitor(existing, desired *unstructured.Unstructured) bool {
	if equality.Semantic.DeepEqual(existing.Object["spec"], desired.Object["spec"]) {
		return false
	}
	existing.Object["spec"] = desired.Object["spec"]
	return true
}

// podMonitorCondition reports the PodMonitor asked for.
func podMonitorCondition(s podMonitorState) metav1.Condition {
	if !s.crdInstalled {
		return metav1.Condition{Type: v1alpha1.ConditionPodMonitor, Status: metav1.ConditionFalse,
			Reason:  v1alpha1.ReasonPodMonitorCRDNotInstalled,
			Message: "spec.monitoring.podMonitor is set, but the API server serves no monitoring.coreos.com/v1 PodMonitor: install the Prometheus Operator's CRDs"}
	}
	return metav1.Condition{Type: v1alpha1.ConditionPodMonitor, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonPodMonitorApplied, Message: "PodMonitor " + s.name + " scrapes every broker's /metrics"}
}
