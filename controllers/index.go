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
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	for _, req := range r.clustersOfNatsUserSecret(ctx, secret) {
		if !slices.Contains(reqs, req) {
			reqs = append(reqs, req)
		}
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

// clusterRefIndex indexes NatsUsers by the NatsCluster they name,
// "<namespace>/<name>".
const clusterRefIndex = "natsuser.spec.clusterRef"

func clusterRefKey(namespace, name string) string { return namespace + "/" + name }

func indexClusterRef(obj client.Object) []string {
	nu, ok := obj.(*v1alpha1.NatsUser)
	if !ok {
		return nil
	}
	return []string{clusterRefKey(nu.ClusterKey())}
}

// natsUserSecretIndex indexes NatsUsers by the Secret their passwordSecretRef
// names (in their own namespace).
const natsUserSecretIndex = "natsuser.spec.passwordSecretRef.name"

func indexNatsUserSecret(obj client.Object) []string {
	nu, ok := obj.(*v1alpha1.NatsUser)
	if !ok || nu.Spec.PasswordSecretRef == nil {
		return nil
	}
	return []string{nu.Spec.PasswordSecretRef.Name}
}

// clusterOfNatsUser maps a NatsUser to the NatsCluster it names.
func clusterOfNatsUser(_ context.Context, obj client.Object) []reconcile.Request {
	nu, ok := obj.(*v1alpha1.NatsUser)
	if !ok {
		return nil
	}
	ns, name := nu.ClusterKey()
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}}}
}

// clustersOfNatsUsers maps NatsUsers to the NatsClusters they name, once each.
func clustersOfNatsUsers(users []v1alpha1.NatsUser) []reconcile.Request {
	var reqs []reconcile.Request
	for i := range users {
		ns, name := users[i].ClusterKey()
		req := reconcile.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}}
		if !slices.Contains(reqs, req) {
			reqs = append(reqs, req)
		}
	}
	return reqs
}

// clustersOfNamespaceUsers maps a namespace whose labels changed to the
// clusters its NatsUsers name: the change may admit or refuse them.
func (r *NatsClusterReconciler) clustersOfNamespaceUsers(ctx context.Context, ns client.Object) []reconcile.Request {
	var list v1alpha1.NatsUserList
	if err := r.Client.List(ctx, &list, client.InNamespace(ns.GetName())); err != nil {
		// A namespace the operator does not watch (--watch-namespaces) has
		// no NatsUsers it sees.
		logf.FromContext(ctx).V(1).Info("cannot list NatsUsers of a namespace", "namespace", ns.GetName(), "err", err.Error())
		return nil
	}
	return clustersOfNatsUsers(list.Items)
}

// clustersOfNatsUserSecret maps a Secret to the clusters of the NatsUsers
// that read their password from it, or whose generated Secret it is.
func (r *NatsClusterReconciler) clustersOfNatsUserSecret(ctx context.Context, secret client.Object) []reconcile.Request {
	var users []v1alpha1.NatsUser
	var list v1alpha1.NatsUserList
	if err := r.Client.List(ctx, &list, client.InNamespace(secret.GetNamespace()),
		client.MatchingFields{natsUserSecretIndex: secret.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "list NatsUsers naming a Secret", "secret", secret.GetName())
		return nil
	}
	users = append(users, list.Items...)
	if owner := metav1.GetControllerOf(secret); owner != nil && owner.Kind == "NatsUser" && strings.HasPrefix(owner.APIVersion, v1alpha1.GroupVersion.Group+"/") {
		nu := &v1alpha1.NatsUser{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: secret.GetNamespace(), Name: owner.Name}, nu); err == nil {
			users = append(users, *nu)
		}
	}
	return clustersOfNatsUsers(users)
}
