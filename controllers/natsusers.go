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
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// NatsUsers are users kept in objects of their own, in any namespace the
// cluster admits. The "resolve users" phase admits them (namespace, name
// conflicts), reads or generates their passwords in their own namespaces and
// appends them to the spec's users, so that they go through the same hashing
// and config; their statuses are written after the cluster's
// (natsuser_status.go).

// natsUser is one NatsUser naming the cluster being reconciled, and what
// became of it.
type natsUser struct {
	obj *v1alpha1.NatsUser
	// refusal is the reason the cluster does not take the user (a NatsUser
	// reason), and refusalMessage says why; both empty when it is admitted.
	refusal, refusalMessage string
	// user is the admitted user as resolved; its name is the username.
	user resolvedUser
}

func (u *natsUser) admitted() bool { return u.refusal == "" }

// resolveNatsUsers admits the NatsUsers naming the cluster, oldest first, and
// resolves the passwords of those admitted. Call it after the spec's users
// are resolved: their names win.
func (r *NatsClusterReconciler) resolveNatsUsers(ctx context.Context, rq *request) error {
	nc := rq.cluster
	list, err := r.natsUsersOf(ctx, nc.Namespace, nc.Name)
	if err != nil {
		return err
	}
	claimed := map[string]string{}
	certificateUsers := false
	for _, u := range nc.Spec.Auth.Users {
		claimed[u.Name] = "a user of the NatsCluster's spec.auth.users"
		certificateUsers = certificateUsers || u.TLSIdentity != ""
	}
	if resources.SystemAccountEnabled(nc) {
		claimed[resources.SystemUserName] = "the system account's user"
	}
	accounts := map[string]bool{}
	for _, a := range nc.Spec.Accounts {
		accounts[a.Name] = true
	}
	admits := r.namespaceAdmission(ctx, nc)
	rq.natsUsers = make([]*natsUser, 0, len(list))
	for _, nu := range list {
		u := &natsUser{obj: nu}
		username := nu.Username()
		switch {
		case certificateUsers:
			u.refusal = v1alpha1.NatsUserCertificateUsersOnly
			u.refusalMessage = fmt.Sprintf("NatsCluster %s/%s has certificate users (tlsIdentity), with which password users cannot be mixed", nc.Namespace, nc.Name)
		case nu.Namespace != nc.Namespace && !admits(nu.Namespace):
			u.refusal = v1alpha1.NatsUserNamespaceNotAllowed
			u.refusalMessage = fmt.Sprintf("NatsCluster %s/%s does not admit NatsUsers of namespace %s (spec.auth.allowedUserNamespaces)", nc.Namespace, nc.Name, nu.Namespace)
		case nu.Spec.Account != "" && !accounts[nu.Spec.Account]:
			u.refusal = v1alpha1.NatsUserAccountNotFound
			u.refusalMessage = fmt.Sprintf("NatsCluster %s/%s has no account %s (spec.accounts)", nc.Namespace, nc.Name, nu.Spec.Account)
		case claimed[username] != "":
			u.refusal = v1alpha1.NatsUserNameConflict
			u.refusalMessage = fmt.Sprintf("username %s is already taken in NatsCluster %s/%s by %s", username, nc.Namespace, nc.Name, claimed[username])
		default:
			claimed[username] = fmt.Sprintf("NatsUser %s/%s, which is older", nu.Namespace, nu.Name)
		}
		rq.natsUsers = append(rq.natsUsers, u)
	}
	if err := r.resolveNatsUserPasswords(ctx, rq); err != nil {
		return err
	}
	for _, u := range rq.natsUsers {
		if u.admitted() {
			rq.users = append(rq.users, u.user)
		}
	}
	return nil
}

// natsUsersOf lists the NatsUsers naming the cluster namespace/name, oldest
// first (creationTimestamp, then namespace/name), leaving out those being
// deleted: deleting a NatsUser revokes it at once. The manager's cache
// indexes them by clusterRef (SetupWithManager); a client without that index
// (a direct client, as the timing tests use) lists them all, and they are
// filtered here.
func (r *NatsClusterReconciler) natsUsersOf(ctx context.Context, namespace, name string) ([]*v1alpha1.NatsUser, error) {
	var list v1alpha1.NatsUserList
	err := errors.New("not indexed")
	if r.natsUsersIndexed {
		err = r.Client.List(ctx, &list, client.MatchingFields{clusterRefIndex: clusterRefKey(namespace, name)})
	}
	if err != nil {
		if err := r.Client.List(ctx, &list); err != nil {
			return nil, fmt.Errorf("list NatsUsers: %w", err)
		}
	}
	users := make([]*v1alpha1.NatsUser, 0, len(list.Items))
	for i := range list.Items {
		nu := &list.Items[i]
		if ns, n := nu.ClusterKey(); ns != namespace || n != name || !nu.DeletionTimestamp.IsZero() {
			continue
		}
		users = append(users, nu)
	}
	slices.SortFunc(users, olderFirst)
	return users, nil
}

// errNotControlled: a Secret of the generated Secret's name exists and the
// NatsUser does not control it.
var errNotControlled = errors.New("not controlled by the NatsUser")

// olderFirst orders NatsUsers by creationTimestamp, then namespace/name:
// among NatsUsers claiming one username, the first wins.
func olderFirst(a, b *v1alpha1.NatsUser) int {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		if a.CreationTimestamp.Before(&b.CreationTimestamp) {
			return -1
		}
		return 1
	}
	return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
}

// namespaceAdmission tells which other namespaces' NatsUsers the cluster
// admits: those whose labels spec.auth.allowedUserNamespaces selects; none
// when it is absent. Namespaces are read once per reconcile, by metadata.
func (r *NatsClusterReconciler) namespaceAdmission(ctx context.Context, nc *v1alpha1.NatsCluster) func(string) bool {
	sel := nc.Spec.Auth.AllowedUserNamespaces
	if sel == nil {
		return func(string) bool { return false }
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil { // the API validates label selectors; an invalid one admits nobody
		return func(string) bool { return false }
	}
	seen := map[string]bool{}
	return func(ns string) bool {
		if ok, done := seen[ns]; done {
			return ok
		}
		meta := &metav1.PartialObjectMetadata{}
		meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
		err := r.Client.Get(ctx, client.ObjectKey{Name: ns}, meta)
		ok := err == nil && meta.DeletionTimestamp.IsZero() && selector.Matches(labels.Set(meta.Labels))
		seen[ns] = ok
		return ok
	}
}

// resolveNatsUserPasswords reads the password of every admitted NatsUser:
// from the Secret its passwordSecretRef names, or from its generated Secret,
// created (or brought up to date: url, ca.crt) when needed. Generated Secrets
// are listed once per namespace, referenced ones read one by one, in
// parallel, straight from the API server.
func (r *NatsClusterReconciler) resolveNatsUserPasswords(ctx context.Context, rq *request) error {
	generated := map[string]map[string]*corev1.Secret{} // namespace -> name -> Secret
	var referenced []client.ObjectKey
	for _, u := range rq.natsUsers {
		if !u.admitted() {
			continue
		}
		name, _ := resources.NatsUserPasswordSecret(u.obj)
		if u.obj.Spec.PasswordSecretRef == nil {
			generated[u.obj.Namespace] = nil
			continue
		}
		key := client.ObjectKey{Namespace: u.obj.Namespace, Name: name}
		if !slices.Contains(referenced, key) {
			referenced = append(referenced, key)
		}
	}
	for ns := range generated {
		secrets, err := r.listNatsUserSecrets(ctx, ns)
		if err != nil {
			return err
		}
		generated[ns] = secrets
	}
	secrets, err := r.readSecrets(ctx, referenced)
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(secretReads)
	for _, u := range rq.natsUsers {
		if !u.admitted() {
			continue
		}
		nu := u.obj
		name, key := resources.NatsUserPasswordSecret(nu)
		spec := &v1alpha1.User{Name: nu.Username(), PasswordSecretRef: nu.Spec.PasswordSecretRef, Permissions: nu.Spec.Permissions, Account: nu.Spec.Account}
		u.user = resolvedUser{name: spec.Name, spec: spec, secretName: name, key: key, natsUser: nu}
		if nu.Spec.PasswordSecretRef != nil {
			c := readPassword(secrets[client.ObjectKey{Namespace: nu.Namespace, Name: name}], name, key)
			u.user.password, u.user.reason, u.user.message, u.user.warning = c.password, c.reason, c.message, c.warning
			continue
		}
		existing := generated[nu.Namespace][name]
		g.Go(func() error {
			pw, err := r.ensureNatsUserSecret(gctx, rq, nu, existing) // each goroutine writes its own u only
			switch {
			case errors.Is(err, errNotControlled):
				u.user.reason = v1alpha1.UserSecretMissing
				u.user.message = fmt.Sprintf("Secret %s exists and is not controlled by this NatsUser: the operator will not take it over", name)
			case err != nil:
				return err
			default:
				u.user.password, u.user.reason = pw, v1alpha1.UserGenerated
				u.user.message = fmt.Sprintf("password generated into Secret %s", name)
			}
			return nil
		})
	}
	return g.Wait()
}

// listNatsUserSecrets lists, straight from the API server and page by page,
// the generated NatsUser Secrets of one namespace, by name: one request per
// page rather than one per user.
func (r *NatsClusterReconciler) listNatsUserSecrets(ctx context.Context, namespace string) (map[string]*corev1.Secret, error) {
	out := map[string]*corev1.Secret{}
	opts := []client.ListOption{client.InNamespace(namespace), client.MatchingLabels(resources.NatsUserSecretLabels()), client.Limit(500)}
	for cont := ""; ; {
		var list corev1.SecretList
		if err := r.APIReader.List(ctx, &list, append(opts, client.Continue(cont))...); err != nil {
			return nil, fmt.Errorf("list NatsUser Secrets in %s: %w", namespace, err)
		}
		for i := range list.Items {
			out[list.Items[i].Name] = &list.Items[i]
		}
		if cont = list.Continue; cont == "" {
			return out, nil
		}
	}
}

// readSecrets reads the Secrets keys, in parallel and straight from the API
// server. A missing Secret maps to nil.
func (r *NatsClusterReconciler) readSecrets(ctx context.Context, keys []client.ObjectKey) (map[client.ObjectKey]*corev1.Secret, error) {
	found := make([]*corev1.Secret, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(secretReads)
	for i, key := range keys {
		g.Go(func() error {
			s := &corev1.Secret{}
			err := r.APIReader.Get(gctx, key, s)
			switch {
			case apierrors.IsNotFound(err):
				return nil
			case err != nil:
				return fmt.Errorf("get Secret %s/%s: %w", key.Namespace, key.Name, err)
			}
			found[i] = s
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[client.ObjectKey]*corev1.Secret, len(keys))
	for i, key := range keys {
		out[key] = found[i]
	}
	return out, nil
}

// ensureNatsUserSecret returns the password in the NatsUser's generated
// Secret, creating the Secret (with a new password) when it is missing and
// writing it when its url or ca.crt are out of date. A Secret of that name
// the NatsUser does not control is never taken over (errNotControlled).
func (r *NatsClusterReconciler) ensureNatsUserSecret(ctx context.Context, rq *request, nu *v1alpha1.NatsUser, existing *corev1.Secret) ([]byte, error) {
	name := resources.NatsUserSecretName(nu)
	if existing != nil && !metav1.IsControlledBy(existing, nu) {
		return nil, errNotControlled
	}
	caPEM := rq.tls.caPEM
	password := ""
	if existing != nil {
		password = string(existing.Data[resources.PasswordKey])
		if caPEM == nil && rq.tls.enabled { // mode Secrets with its Secret missing: keep the last ca.crt
			caPEM = existing.Data[resources.CACertKey]
		}
	}
	if password == "" || len(password) > bcryptMaxPassword {
		password = rand.Text()
	}
	desired := resources.NatsUserSecret(nu, rq.cluster, password, caPEM)
	switch {
	case existing == nil:
		err := r.Client.Create(ctx, desired)
		if apierrors.IsAlreadyExists(err) {
			// Not in the labelled list, yet there: someone else's Secret
			// (or one created since the list, which the next reconcile reads).
			return nil, errNotControlled
		}
		if err != nil {
			return nil, fmt.Errorf("create Secret %s/%s: %w", nu.Namespace, name, err)
		}
	case !secretUpToDate(existing, desired):
		if err := r.writeOwnedSecret(ctx, existing, desired); err != nil {
			return nil, err
		}
	}
	return []byte(password), nil
}
