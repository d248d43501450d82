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
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// createNatsUser creates a NatsUser and deletes it when the test ends.
func createNatsUser(t *testing.T, ns, name string, spec v1alpha1.NatsUserSpec) *v1alpha1.NatsUser {
	t.Helper()
	nu := &v1alpha1.NatsUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if err := k8s.Create(context.Background(), nu); err != nil {
		t.Fatalf("create NatsUser: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nu) })
	return nu
}

// waitForNatsUser waits until the NatsUser's Ready condition has reason, at
// its current generation, and returns it.
func waitForNatsUser(t *testing.T, nu *v1alpha1.NatsUser, reason string) *v1alpha1.NatsUser {
	t.Helper()
	got := &v1alpha1.NatsUser{}
	eventually(t, timeout, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(nu), got); err != nil {
			return err
		}
		c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Reason != reason || got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("NatsUser %s/%s Ready is %+v, want reason %s (status %+v)", nu.Namespace, nu.Name, c, reason, got.Status)
		}
		return nil
	})
	return got
}

func labelNamespace(t *testing.T, ns string, labels map[string]string) {
	t.Helper()
	eventually(t, timeout, func() error {
		n := &corev1.Namespace{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Name: ns}, n); err != nil {
			return err
		}
		n.Labels = labels
		return k8s.Update(context.Background(), n)
	})
}

func TestNatsUsersOfTheClustersNamespaceAndOfAllowedNamespacesAreServedOthersRefused(t *testing.T) {
	needAPIServer(t)
	const ns, allowed, refused = "natsusers", "nu-allowed", "nu-refused"
	labelNamespace(t, allowed, map[string]string{"nats-tenant": "yes"})
	t.Cleanup(func() { labelNamespace(t, allowed, nil) })
	createPasswordSecret(t, ns, "inline-pw", "inline-1")
	nc := createCluster(t, ns, "nu1", userRef("inline", "inline-pw"))
	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) {
		nc.Spec.Auth.AllowedUserNamespaces = &metav1.LabelSelector{MatchLabels: map[string]string{"nats-tenant": "yes"}}
	})

	// Same namespace, a password of its own, and permissions.
	createPasswordSecret(t, ns, "local-pw", "local-1")
	local := createNatsUser(t, ns, "local", v1alpha1.NatsUserSpec{
		ClusterRef:        v1alpha1.ClusterReference{Name: "nu1"},
		PasswordSecretRef: &v1alpha1.SecretKeyReference{Name: "local-pw", Key: "password"},
		Permissions:       &v1alpha1.Permissions{Publish: &v1alpha1.SubjectPermission{Allow: []v1alpha1.Subject{"local.>"}}},
	})
	// Another namespace the cluster admits by label, with a generated password.
	tenant := createNatsUser(t, allowed, "tenant", v1alpha1.NatsUserSpec{
		ClusterRef: v1alpha1.ClusterReference{Name: "nu1", Namespace: ns},
		Username:   "tenant-app",
	})
	// A namespace it does not admit.
	stranger := createNatsUser(t, refused, "stranger", v1alpha1.NatsUserSpec{
		ClusterRef: v1alpha1.ClusterReference{Name: "nu1", Namespace: ns},
	})

	got := waitForNatsUser(t, stranger, v1alpha1.NatsUserNamespaceNotAllowed)
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "does not admit NatsUsers of namespace nu-refused") {
		t.Errorf("refusal message %q", c.Message)
	}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: refused, Name: "stranger-user-credentials"}, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("a refused NatsUser got a generated Secret: %v", err)
	}

	// The generated Secret is in the NatsUser's namespace, owned by it, with
	// what an application needs to connect.
	creds := &corev1.Secret{}
	eventually(t, timeout, func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: allowed, Name: "tenant-user-credentials"}, creds)
	})
	pw := string(creds.Data["password"])
	tenantNow := &v1alpha1.NatsUser{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(tenant), tenantNow); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(creds, tenantNow) {
		t.Errorf("generated Secret owners %+v, want the NatsUser as controller", creds.OwnerReferences)
	}
	if string(creds.Data["username"]) != "tenant-app" || len(pw) < 20 {
		t.Errorf("generated Secret username %q, password of %d characters", creds.Data["username"], len(pw))
	}
	if want := "tls://tenant-app:" + pw + "@nu1.natsusers.svc:4222"; string(creds.Data["url"]) != want {
		t.Errorf("url %q, want %q", creds.Data["url"], want)
	}
	ca := &corev1.Secret{}
	eventually(t, timeout, func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "nu1-ca"}, ca)
	})
	if len(creds.Data["ca.crt"]) == 0 || !bytes.Equal(creds.Data["ca.crt"], ca.Data["tls.crt"]) {
		t.Error("generated Secret ca.crt is not the cluster CA's certificate")
	}

	o, secret := waitForConfig(t, nc, map[string]string{"inline": "inline-1", "local": "local-1", "tenant-app": pw})
	for _, u := range o.Authorization.Users {
		if u.Name == "local" && (u.Permissions == nil || u.Permissions.Publish == nil || u.Permissions.Publish.Allow[0] != "local.>") {
			t.Errorf("local's permissions in the config: %+v", u.Permissions)
		}
	}
	got = waitForNatsUser(t, tenant, v1alpha1.NatsUserConfigPending) // no broker pod runs under envtest
	hash := string(secret.Data["history"])
	if got.Status.ConfigHash == "" || !strings.Contains(hash, got.Status.ConfigHash) || got.Status.Username != "tenant-app" ||
		got.Status.SecretName != "tenant-user-credentials" || got.Status.ReadyPods != 0 || got.Status.LastRotationTime == nil {
		t.Errorf("tenant status %+v", got.Status)
	}
	waitForNatsUser(t, local, v1alpha1.NatsUserConfigPending)
	if c := getCluster(t, nc); c.Status.ResolvedUsers != 3 || len(c.Status.Users) != 1 {
		t.Errorf("cluster status: resolvedUsers %d, users %+v; want 3 and only the inline user listed", c.Status.ResolvedUsers, c.Status.Users)
	}

	// The namespace loses its label: its NatsUser is revoked at once.
	labelNamespace(t, allowed, nil)
	waitForConfig(t, nc, map[string]string{"inline": "inline-1", "local": "local-1"})
	waitForNatsUser(t, tenant, v1alpha1.NatsUserNamespaceNotAllowed)
	// And the other namespace gains one: its NatsUser is admitted.
	labelNamespace(t, refused, map[string]string{"nats-tenant": "yes"})
	t.Cleanup(func() { labelNamespace(t, refused, nil) })
	strangerCreds := &corev1.Secret{}
	eventually(t, timeout, func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: refused, Name: "stranger-user-credentials"}, strangerCreds)
	})
	waitForConfig(t, nc, map[string]string{"inline": "inline-1", "local": "local-1", "stranger": string(strangerCreds.Data["password"])})

	// What the watches map to the cluster, through the manager's cache and
	// its indexes: a NatsUser's password Secret, a NatsUser's generated
	// Secret (by its owner) and a namespace of NatsUsers. (The reconciles
	// below would also pass on a reconcile that happened to be queued.)
	want := []reconcile.Request{{NamespacedName: client.ObjectKeyFromObject(nc)}}
	eventually(t, timeout, func() error {
		for what, got := range map[string][]reconcile.Request{
			"the password Secret of a NatsUser": reconciler.clustersNamingSecret(context.Background(),
				&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "local-pw"}}),
			"a NatsUser's generated Secret": reconciler.clustersNamingSecret(context.Background(), strangerCreds),
			"a namespace of NatsUsers": reconciler.clustersOfNamespaceUsers(context.Background(),
				&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: refused}}),
		} {
			if !slices.Equal(got, want) {
				return fmt.Errorf("%s maps to %v, want %v", what, got, want)
			}
		}
		return nil
	})

	// Editing the NatsUser's password Secret rotates it.
	setPassword(t, ns, "local-pw", "local-2")
	waitForConfig(t, nc, map[string]string{"inline": "inline-1", "local": "local-2", "stranger": string(strangerCreds.Data["password"])})

	// Deleting a NatsUser revokes it.
	if err := k8s.Delete(context.Background(), local); err != nil {
		t.Fatal(err)
	}
	_, secret = waitForConfig(t, nc, map[string]string{"inline": "inline-1", "stranger": string(strangerCreds.Data["password"])})
	if strings.Contains(string(secret.Data["fingerprints.json"]), `"local"`) {
		t.Error("a deleted NatsUser's fingerprint outlived it")
	}
}

func TestANameClaimedTwiceGoesToTheInlineUserThenTheOldestNatsUser(t *testing.T) {
	needAPIServer(t)
	const ns = "nu-conflict"
	createPasswordSecret(t, ns, "inline-pw", "inline-1")
	nc := createCluster(t, ns, "nu2", userRef("shared", "inline-pw"))
	createPasswordSecret(t, ns, "a-pw", "a-1")
	createPasswordSecret(t, ns, "b-pw", "b-1")
	ref := func(secret string) *v1alpha1.SecretKeyReference {
		return &v1alpha1.SecretKeyReference{Name: secret, Key: "password"}
	}
	// Claims the inline user's name: refused.
	shadow := createNatsUser(t, ns, "shadow", v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: "nu2"},
		Username: "shared", PasswordSecretRef: ref("a-pw")})
	// Two NatsUsers claim "app"; the older one wins. creationTimestamp has a
	// resolution of one second: make sure they differ.
	older := createNatsUser(t, ns, "older", v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: "nu2"},
		Username: "app", PasswordSecretRef: ref("a-pw")})
	time.Sleep(1100 * time.Millisecond) // creationTimestamp granularity, not a wait for a condition
	newer := createNatsUser(t, ns, "newer", v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: "nu2"},
		Username: "app", PasswordSecretRef: ref("b-pw")})

	waitForConfig(t, nc, map[string]string{"shared": "inline-1", "app": "a-1"})
	got := waitForNatsUser(t, shadow, v1alpha1.NatsUserNameConflict)
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "spec.auth.users") {
		t.Errorf("conflict message %q does not name the inline user", c.Message)
	}
	got = waitForNatsUser(t, newer, v1alpha1.NatsUserNameConflict)
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "NatsUser nu-conflict/older") {
		t.Errorf("conflict message %q does not name the older NatsUser", c.Message)
	}
	waitForNatsUser(t, older, v1alpha1.NatsUserConfigPending)

	// The winner goes: the next in line takes the name.
	if err := k8s.Delete(context.Background(), older); err != nil {
		t.Fatal(err)
	}
	waitForConfig(t, nc, map[string]string{"shared": "inline-1", "app": "b-1"})
	waitForNatsUser(t, newer, v1alpha1.NatsUserConfigPending)
}

func TestANatsUserOfAMissingClusterSaysSo(t *testing.T) {
	needAPIServer(t)
	nu := createNatsUser(t, "natsusers", "orphan", v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: "no-such-cluster"}})
	waitForNatsUser(t, nu, v1alpha1.NatsUserClusterNotFound)
}

func TestNatsUserCRDHasItsShortNameColumnsAndRules(t *testing.T) {
	needAPIServer(t)
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: "natsusers.natsforge.io"}, crd); err != nil {
		t.Fatalf("CRD not installed: %v", err)
	}
	if !slices.Contains(crd.Spec.Names.ShortNames, "nu") || crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
		t.Errorf("short names %v, scope %s", crd.Spec.Names.ShortNames, crd.Spec.Scope)
	}
	var columns []string
	for _, col := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		columns = append(columns, col.Name)
	}
	if !slices.Equal(columns, []string{"Cluster", "Username", "Serving", "Pods", "Status", "Age"}) {
		t.Errorf("printer columns %v", columns)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		nu   *v1alpha1.NatsUser
		want string
	}{
		{"a name that is no username, without spec.username", &v1alpha1.NatsUser{
			ObjectMeta: metav1.ObjectMeta{Namespace: "crd", Name: strings.Repeat("a", 64)},
			Spec:       v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: "c"}}}, "set spec.username"},
		{"a username with a space", &v1alpha1.NatsUser{
			ObjectMeta: metav1.ObjectMeta{Namespace: "crd", Name: "spaced"},
			Spec:       v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: "c"}, Username: "a b"}}, "spec.username"},
	} {
		if err := k8s.Create(ctx, tc.nu, client.DryRunAll); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	// clusterRef is immutable. A merge patch without a resourceVersion, so
	// that the operator's own writes to the object (finalizer, status) cannot
	// turn the answer into a conflict.
	nu := createNatsUser(t, "crd", "pinned", v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: "c"}})
	patch := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"clusterRef":{"name":"other"}}}`))
	if err := k8s.Patch(ctx, nu, patch); err == nil || !strings.Contains(err.Error(), "clusterRef is immutable") {
		t.Errorf("changing clusterRef: %v", err)
	}
}

func TestADeletedGeneratedSecretIsMadeAgainAndAForeignOneIsNotTakenOver(t *testing.T) {
	needAPIServer(t)
	const ns = "natsusers"
	nc := createCluster(t, ns, "nu3")
	nu := createNatsUser(t, ns, "regen", v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: "nu3"}})
	first := &corev1.Secret{}
	eventually(t, timeout, func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "regen-user-credentials"}, first)
	})
	waitForConfig(t, nc, map[string]string{"regen": string(first.Data["password"])})
	waitForNatsUser(t, nu, v1alpha1.NatsUserConfigPending) // the reconcile that admitted it has ended
	// The NatsUser's own Secret deleted: the watch on it brings a new one,
	// and its password into the config.
	if err := k8s.Delete(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	second := &corev1.Secret{}
	eventually(t, timeout, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "regen-user-credentials"}, second); err != nil {
			return err
		}
		if second.UID == first.UID {
			return fmt.Errorf("still the first Secret")
		}
		return nil
	})
	waitForConfig(t, nc, map[string]string{"regen": string(second.Data["password"])})
	waitForNatsUser(t, nu, v1alpha1.NatsUserConfigPending)

	// A Secret of the generated name that someone else made is left alone.
	foreign := createPasswordSecret(t, ns, "squatter-user-credentials", "not-the-operators")
	squatter := createNatsUser(t, ns, "squatter", v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: "nu3"}})
	got := waitForNatsUser(t, squatter, v1alpha1.NatsUserSecretMissing)
	if c := meta.FindStatusCondition(got.Status.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, "not controlled by this NatsUser") {
		t.Errorf("message %q", c.Message)
	}
	still := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(foreign), still); err != nil || string(still.Data["password"]) != "not-the-operators" || len(still.OwnerReferences) != 0 {
		t.Errorf("the foreign Secret was changed: %v %+v", err, still.OwnerReferences)
	}
	waitForConfig(t, nc, map[string]string{"regen": string(second.Data["password"])})
}
