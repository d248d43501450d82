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
	"slices"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// secretNameIndex indexes NatsClusters by the names of the Secrets they read
// but do not own: those their users' passwordSecretRefs point at, and in
// tls.mode Secrets the certificate Secrets.
const secretNameIndex = "spec.auth.users.passwordSecretRef.name"

func indexSecretNames(obj client.Object) []string {
	nc, ok := obj.(*v1alpha1.NatsCluster)
	if !ok {
		return nil
	}
	var names []string
	for _, u := range nc.Spec.Auth.Users {
		if u.PasswordSecretRef != nil && !slices.Contains(names, u.PasswordSecretRef.Name) {
			names = append(names, u.PasswordSecretRef.Name)
		}
	}
	return names
}

// indexedSecretNames are the Secrets a NatsCluster reads and is reconciled
// for when they change: the password Secrets, and in tls.mode Secrets the
// certificate Secrets.
func indexedSecretNames(obj client.Object) []string {
	nc, ok := obj.(*v1alpha1.NatsCluster)
	if !ok {
		return nil
	}
	names := indexSecretNames(nc)
	if resources.TLSMode(nc) == v1alpha1.TLSModeSecrets {
		for _, n := range []string{resources.ClientTLSSecretName(nc), resources.RouteTLSSecretName(nc)} {
			if n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

// clustersNamingSecret maps a Secret to the NatsClusters in its namespace whose
// users read a password from it, so a password change reaches the config at
// once instead of at the next resync.
func (r *NatsClusterReconciler) clustersNamingSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	var list v1alpha1.NatsClusterList
	if err := r.Client.List(ctx, &list,
		client.InNamespace(secret.GetNamespace()),
		client.MatchingFields{secretNameIndex: secret.GetName()},
	); err != nil {
		logf.FromContext(ctx).Error(err, "list NatsClusters naming a Secret", "secret", secret.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, nc := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&nc)})
	}
	return reqs
}

// clusterOfPod maps a broker pod to its NatsCluster by the instance label.
func clusterOfPod(_ context.Context, pod client.Object) []reconcile.Request {
	labels := pod.GetLabels()
	name := labels[resources.LabelInstance]
	if name == "" || labels[resources.LabelName] != resources.AppName {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: pod.GetNamespace(), Name: name}}}
}

// brokerPodChanged lets through the pod changes propagation cares about: a pod
// appearing or going, getting an address, turning ready or not, or losing the
// config annotation.
var brokerPodChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*corev1.Pod)
		cur, okNew := e.ObjectNew.(*corev1.Pod)
		if !okOld || !okNew {
			return true
		}
		return old.Status.PodIP != cur.Status.PodIP ||
			podReady(old) != podReady(cur) ||
			old.Annotations[resources.AnnotationConfigHash] != cur.Annotations[resources.AnnotationConfigHash] ||
			old.Annotations[resources.AnnotationTLSHash] != cur.Annotations[resources.AnnotationTLSHash] ||
			old.DeletionTimestamp.IsZero() != cur.DeletionTimestamp.IsZero()
	},
}
