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
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/controllers/resources"
)

// testCost keeps the tests fast; it is the lowest cost the API allows.
const testCost = 6

const timeout = 30 * time.Second

func userRef(name, secret string) v1alpha1.User {
	return v1alpha1.User{Name: name, PasswordSecretRef: &v1alpha1.SecretKeyReference{Name: secret, Key: "password"}}
}

// createCluster creates a NatsCluster and deletes it when the test ends, so
// that it stops being reconciled (envtest runs no garbage collector).
func createCluster(t *testing.T, ns, name string, users ...v1alpha1.User) *v1alpha1.NatsCluster {
	t.Helper()
	nc := &v1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.NatsClusterSpec{
			Auth: v1alpha1.AuthSpec{Users: users, BcryptCost: testCost},
		},
	}
	if err := k8s.Create(context.Background(), nc); err != nil {
		t.Fatalf("create NatsCluster: %v", err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })
	return nc
}

func createPasswordSecret(t *testing.T, ns, name, password string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Data:       map[string][]byte{"password": []byte(password)},
	}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatalf("create Secret: %v", err)
	}
	return s
}

func setPassword(t *testing.T, ns, name, password string) {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	s.Data["password"] = []byte(password)
	if err := k8s.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func getCluster(t *testing.T, nc *v1alpha1.NatsCluster) *v1alpha1.NatsCluster {
	t.Helper()
	got := &v1alpha1.NatsCluster{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(nc), got); err != nil {
		t.Fatal(err)
	}
	return got
}

func updateCluster(t *testing.T, nc *v1alpha1.NatsCluster, change func(*v1alpha1.NatsCluster)) {
	t.Helper()
	eventually(t, timeout, func() error {
		cur := getCluster(t, nc)
		change(cur)
		return k8s.Update(context.Background(), cur)
	})
}

// brokerConfig reads and parses the config Secret.
func brokerConfig(nc *v1alpha1.NatsCluster) (*conf.Options, *corev1.Secret, error) {
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: nc.Namespace, Name: nc.Name + "-config"}, s); err != nil {
		return nil, nil, err
	}
	o, _, err := conf.Parse(s.Data["nats.conf"], "nats.conf")
	if err != nil {
		return nil, nil, fmt.Errorf("config Secret does not parse: %w", err)
	}
	return o, s, nil
}

// userHashes maps each user in the config to its password hash.
func userHashes(o *conf.Options) map[string]string {
	m := map[string]string{}
	if o.Authorization != nil {
		for _, u := range o.Authorization.Users {
			m[u.Name] = u.Password
		}
	}
	return m
}

// waitForConfig waits until the config's users verify exactly the passwords
// given, and returns the config and its Secret.
func waitForConfig(t *testing.T, nc *v1alpha1.NatsCluster, passwords map[string]string) (*conf.Options, *corev1.Secret) {
	t.Helper()
	var o *conf.Options
	var s *corev1.Secret
	eventually(t, timeout, func() error {
		var err error
		if o, s, err = brokerConfig(nc); err != nil {
			return err
		}
		hashes := userHashes(o)
		if len(hashes) != len(passwords) {
			return fmt.Errorf("config has users %v, want %d", keys(hashes), len(passwords))
		}
		for user, pw := range passwords {
			h, ok := hashes[user]
			if !ok {
				return fmt.Errorf("config has users %v, no %s", keys(hashes), user)
			}
			if err := bcrypt.CompareHashAndPassword([]byte(h), []byte(pw)); err != nil {
				return fmt.Errorf("user %s: hash does not verify the password: %v", user, err)
			}
		}
		return nil
	})
	return o, s
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func condition(nc *v1alpha1.NatsCluster, typ string) *metav1.Condition {
	return meta.FindStatusCondition(nc.Status.Conditions, typ)
}

func waitForCondition(t *testing.T, nc *v1alpha1.NatsCluster, typ string, status metav1.ConditionStatus, reason string) *v1alpha1.NatsCluster {
	t.Helper()
	var got *v1alpha1.NatsCluster
	eventually(t, timeout, func() error {
		got = getCluster(t, nc)
		c := condition(got, typ)
		if c == nil || c.Status != status || c.Reason != reason || c.ObservedGeneration != got.Generation {
			return fmt.Errorf("condition %s is %+v, want %s/%s at generation %d; all conditions: %+v", typ, c, status, reason, got.Generation, got.Status.Conditions)
		}
		return nil
	})
	return got
}

func TestCRDInstallsWithDefaultsAndPrinterColumns(t *testing.T) {
	needAPIServer(t)
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: "natsclusters.natsforge.io"}, crd); err != nil {
		t.Fatalf("CRD not installed: %v", err)
	}
	established := false
	for _, cond := range crd.Status.Conditions {
		established = established || (cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue)
	}
	if !established || !slices.Contains(crd.Spec.Names.ShortNames, "nc") {
		t.Errorf("CRD established %v, short names %v", established, crd.Spec.Names.ShortNames)
	}
	var columns []string
	for _, col := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		columns = append(columns, col.Name)
	}
	if !slices.Equal(columns, []string{"Replicas", "Ready", "Users", "TLS", "Status", "Age"}) {
		t.Errorf("printer columns %v", columns)
	}

	// The API server applies the defaults.
	nc := &v1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "crd", Name: "defaults"},
		Spec:       v1alpha1.NatsClusterSpec{Auth: v1alpha1.AuthSpec{Users: []v1alpha1.User{{Name: "a", PasswordSecretRef: &v1alpha1.SecretKeyReference{Name: "a"}}}}},
	}
	if err := k8s.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })
	got := getCluster(t, nc)
	if ptr.Deref(got.Spec.Replicas, 0) != 3 || got.Spec.Auth.BcryptCost != 11 ||
		got.Spec.Auth.Users[0].PasswordSecretRef.Key != "password" ||
		got.Spec.Config.LameDuckDuration == nil || got.Spec.Config.LameDuckDuration.Duration != 30*time.Second ||
		got.Spec.TLS.Mode != v1alpha1.TLSModeOperator {
		t.Errorf("defaults not applied: %+v", got.Spec)
	}
}

func TestCELAndSchemaRefuseInvalidSpecs(t *testing.T) {
	needAPIServer(t)
	tests := []struct {
		name   string
		change func(*v1alpha1.NatsCluster)
		want   string
	}{
		{"duplicate user names", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Auth.Users = append(nc.Spec.Auth.Users, userRef("alice", "other"))
		}, "user names must be unique"},
		// No inline user is fine (NatsUsers may be all there is); more than
		// 256 are for NatsUsers.
		{"more than 256 inline users", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Auth.Users = nil
			for i := range 257 {
				nc.Spec.Auth.Users = append(nc.Spec.Auth.Users, v1alpha1.User{Name: fmt.Sprintf("u%d", i)})
			}
		}, "spec.auth.users: Too many"},
		{"bcrypt cost too low", func(nc *v1alpha1.NatsCluster) { nc.Spec.Auth.BcryptCost = 4 }, "bcryptCost"},
		{"lame duck below nats-server's minimum", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Config.LameDuckDuration = &metav1.Duration{Duration: 10 * time.Second}
		}, "lameDuckDuration must be between 30s and 30m"},
		{"subject with a space", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Auth.Users[0].Permissions = &v1alpha1.Permissions{Publish: &v1alpha1.SubjectPermission{Allow: []v1alpha1.Subject{"a b"}}}
		}, "allow"},
		{"full wildcard before the last token", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Auth.DefaultPermissions = &v1alpha1.Permissions{Subscribe: &v1alpha1.SubjectPermission{Deny: []v1alpha1.Subject{"a.>.b"}}}
		}, "it may only be the last token"},
		{"user name with a colon", func(nc *v1alpha1.NatsCluster) { nc.Spec.Auth.Users[0].Name = "a:b" }, "name"},
		{"zero replicas", func(nc *v1alpha1.NatsCluster) { nc.Spec.Replicas = ptr.To[int32](0) }, "replicas"},
		{"a user with both a password and a tlsIdentity", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Auth.Users[0].TLSIdentity = "CN=alice,O=acme"
		}, "a user has exactly one of passwordSecretRef, a generated password (neither field set) or tlsIdentity"},
		{"a tlsIdentity that is neither a subject nor an email", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Auth.Users = append(nc.Spec.Auth.Users, v1alpha1.User{Name: "bob", TLSIdentity: "bob"})
		}, "tlsIdentity is an RFC 2253 subject"},
		{"two users with one tlsIdentity", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Auth.Users = append(nc.Spec.Auth.Users,
				v1alpha1.User{Name: "bob", TLSIdentity: "CN=bob"}, v1alpha1.User{Name: "bob2", TLSIdentity: "CN=bob"})
		}, "tlsIdentity values must be unique"},
		{"mode Secrets without a client Secret", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.TLS.Mode = v1alpha1.TLSModeSecrets
		}, "tls.mode Secrets needs tls.client.secretName"},
		{"a client Secret outside mode Secrets", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.TLS.Client = &v1alpha1.TLSSecretReference{SecretName: "server-tls"}
		}, "tls.client and tls.routes name Secrets only in tls.mode Secrets"},
		{"verifyClients without TLS", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.TLS = v1alpha1.TLSSpec{Mode: v1alpha1.TLSModeDisabled, VerifyClients: true}
		}, "tls.verifyClients needs TLS"},
		{"a certificate user without TLS", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.TLS.Mode = v1alpha1.TLSModeDisabled
			nc.Spec.Auth.Users = append(nc.Spec.Auth.Users, v1alpha1.User{Name: "bob", TLSIdentity: "CN=bob"})
		}, "users with a tlsIdentity need TLS"},
		{"an import from an account that does not exist", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Accounts = []v1alpha1.Account{{Name: "A", Imports: []v1alpha1.AccountImport{{Account: "Z", Stream: "x.>"}}}}
		}, "an import names an account that is not in spec.accounts"},
		{"a user in an account that does not exist", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Auth.Users[0].Account = "Z"
		}, "a user's account is not in spec.accounts"},
		{"an export to an account that does not exist", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Accounts = []v1alpha1.Account{{Name: "A", Exports: []v1alpha1.AccountExport{{Stream: "x.>", Accounts: []string{"Z"}}}}}
		}, "an export's accounts name an account that is not in spec.accounts"},
		{"two accounts of one name", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Accounts = []v1alpha1.Account{{Name: "A"}, {Name: "A"}}
		}, "Duplicate value"},
		{"a user named as the system user", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Auth.Users[0].Name = "_sys"
		}, "the user name _sys is reserved"},
		{"an account named SYS", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Accounts = []v1alpha1.Account{{Name: "SYS"}}
		}, "SYS is the system account's name"},
		{"an export of both a stream and a service", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Accounts = []v1alpha1.Account{{Name: "A", Exports: []v1alpha1.AccountExport{{Stream: "x", Service: "y"}}}}
		}, "an export is exactly one of stream or service"},
		{"a prefix on a service import", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.Accounts = []v1alpha1.Account{{Name: "A", Exports: []v1alpha1.AccountExport{{Service: "y"}}},
				{Name: "B", Imports: []v1alpha1.AccountImport{{Account: "A", Service: "y", Prefix: "p"}}}}
		}, "prefix applies to a stream import"},
		{"a certificate lifetime below the minimum", func(nc *v1alpha1.NatsCluster) {
			nc.Spec.TLS.CertificateDuration = &metav1.Duration{Duration: 30 * time.Minute}
		}, "certificateDuration must be between 1h and 87600h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := &v1alpha1.NatsCluster{
				ObjectMeta: metav1.ObjectMeta{Namespace: "validation", Name: "invalid"},
				Spec:       v1alpha1.NatsClusterSpec{Auth: v1alpha1.AuthSpec{Users: []v1alpha1.User{userRef("alice", "alice")}}},
			}
			tt.change(nc)
			err := k8s.Create(context.Background(), nc)
			if err == nil {
				_ = k8s.Delete(context.Background(), nc)
				t.Fatal("the API server accepted it")
			}
			if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want Invalid mentioning %q", err, tt.want)
			}
		})
	}
}

func TestConfigSecretHoldsHashesThatVerifyAndNoPlaintext(t *testing.T) {
	needAPIServer(t)
	const ns = "hashing"
	createPasswordSecret(t, ns, "alice-pw", "alice-plaintext-1")
	createPasswordSecret(t, ns, "bob-pw", "bob-plaintext-1")
	nc := createCluster(t, ns, "c1", userRef("alice", "alice-pw"), userRef("bob", "bob-pw"))

	_, secret := waitForConfig(t, nc, map[string]string{"alice": "alice-plaintext-1", "bob": "bob-plaintext-1"})
	got := waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionTrue, v1alpha1.ReasonAllUsersResolved)

	// No password in the config Secret (any key), the status, the other
	// objects the operator wrote, or its Events.
	var texts []string
	for k, v := range secret.Data {
		texts = append(texts, "config Secret key "+k+": "+string(v))
	}
	status, _ := json.Marshal(got.Status)
	texts = append(texts, "status: "+string(status))
	for _, obj := range []client.Object{&appsv1.StatefulSet{}, &corev1.Service{}} {
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "c1"}, obj); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(obj)
		texts = append(texts, fmt.Sprintf("%T: %s", obj, b))
	}
	var events eventsv1.EventList
	if err := k8s.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		texts = append(texts, "event: "+e.Note)
	}
	for _, text := range texts {
		for _, pw := range []string{"alice-plaintext-1", "bob-plaintext-1"} {
			if strings.Contains(text, pw) {
				t.Errorf("plaintext password in %.60s...", text)
			}
		}
	}
	if got.Status.ConfigHash != resources.ConfigDigest(secret.Data["nats.conf"]) {
		t.Errorf("status.configHash %q is not the digest of the config file", got.Status.ConfigHash)
	}
	if got.Status.ResolvedUsers != 2 || len(got.Status.Users) != 2 || !got.Status.Users[0].Resolved || got.Status.Users[0].SecretName != "alice-pw" {
		t.Errorf("status users %+v", got.Status.Users)
	}
}

func TestWorkloadIsAsSpecified(t *testing.T) {
	needAPIServer(t)
	const ns = "workload"
	createPasswordSecret(t, ns, "alice-pw", "pw")
	nc := createCluster(t, ns, "w1", userRef("alice", "alice-pw"))
	ctx := context.Background()

	sts := &appsv1.StatefulSet{}
	eventually(t, timeout, func() error { return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "w1"}, sts) })
	pod := sts.Spec.Template.Spec
	c := pod.Containers[0]
	if *sts.Spec.Replicas != 3 || sts.Spec.ServiceName != "w1-routes" || c.Image != "natsforge/broker:test" ||
		!slices.Equal(c.Args, []string{"-c", "/etc/nats/nats.conf", "--previous_passwords", "/etc/nats/previous_passwords.conf"}) {
		t.Errorf("StatefulSet replicas %d serviceName %q image %q args %v", *sts.Spec.Replicas, sts.Spec.ServiceName, c.Image, c.Args)
	}
	if !ptr.Deref(c.SecurityContext.ReadOnlyRootFilesystem, false) || !ptr.Deref(pod.SecurityContext.RunAsNonRoot, false) ||
		ptr.Deref(pod.TerminationGracePeriodSeconds, 0) != 45 {
		t.Errorf("pod not hardened or grace period %d != 30s lame duck + 10s + 5s", ptr.Deref(pod.TerminationGracePeriodSeconds, 0))
	}
	for k := range sts.Spec.Template.Annotations {
		if strings.Contains(k, "config") {
			t.Errorf("pod template carries %s: a config change would roll the pods", k)
		}
	}

	routes, client1 := &corev1.Service{}, &corev1.Service{}
	eventually(t, timeout, func() error { return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "w1-routes"}, routes) })
	eventually(t, timeout, func() error { return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "w1"}, client1) })
	if routes.Spec.ClusterIP != "None" || !routes.Spec.PublishNotReadyAddresses || routes.Spec.Ports[0].Port != 6222 {
		t.Errorf("routes Service %+v", routes.Spec)
	}
	if client1.Spec.Type != corev1.ServiceTypeClusterIP || client1.Spec.Ports[0].Port != 4222 {
		t.Errorf("client Service %+v", client1.Spec)
	}
	pdb := &policyv1.PodDisruptionBudget{}
	eventually(t, timeout, func() error { return k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "w1"}, pdb) })
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 2 {
		t.Errorf("PDB %+v, want minAvailable 2 of 3", pdb.Spec)
	}
	for _, obj := range []client.Object{sts, routes, client1, pdb} {
		if !metav1.IsControlledBy(obj, getCluster(t, nc)) {
			t.Errorf("%T %s is not controlled by the NatsCluster", obj, obj.GetName())
		}
	}

	// No pods run under envtest: the condition says so instead of failing.
	got := waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionUnknown, v1alpha1.ReasonNoPodAddresses)
	if msg := condition(got, v1alpha1.ConditionConfigPropagated).Message; !strings.Contains(msg, "no pod addresses") {
		t.Errorf("ConfigPropagated message %q", msg)
	}
	if c := condition(got, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonPodsNotReady {
		t.Errorf("Ready %+v, want False/PodsNotReady", c)
	}
	if got.Status.ObservedGeneration != got.Generation {
		t.Errorf("observedGeneration %d, generation %d", got.Status.ObservedGeneration, got.Generation)
	}
}

func TestSecretUpdateChangesOnlyThatUsersHash(t *testing.T) {
	needAPIServer(t)
	const ns = "rotation"
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	createPasswordSecret(t, ns, "bob-pw", "bob-1")
	nc := createCluster(t, ns, "r1", userRef("alice", "alice-pw"), userRef("bob", "bob-pw"))
	before, _ := waitForConfig(t, nc, map[string]string{"alice": "alice-1", "bob": "bob-1"})
	waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionTrue, v1alpha1.ReasonAllUsersResolved)
	ops := testutil.ToFloat64(bcryptOperations)

	setPassword(t, ns, "alice-pw", "alice-2")
	after, _ := waitForConfig(t, nc, map[string]string{"alice": "alice-2", "bob": "bob-1"})

	if userHashes(after)["bob"] != userHashes(before)["bob"] {
		t.Error("bob's hash changed although his password did not")
	}
	if userHashes(after)["alice"] == userHashes(before)["alice"] {
		t.Error("alice's hash did not change")
	}
	if d := testutil.ToFloat64(bcryptOperations) - ops; d != 1 {
		t.Errorf("%v bcrypt operations for one changed password, want 1", d)
	}
	eventually(t, timeout, func() error {
		got := getCluster(t, nc)
		for _, u := range got.Status.Users {
			if u.Name == "alice" && u.LastRotationTime == nil {
				return fmt.Errorf("alice has no lastRotationTime")
			}
		}
		return nil
	})
}

func TestResyncWritesNothingAndHashesNothing(t *testing.T) {
	needAPIServer(t)
	const ns = "resync"
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	nc := createCluster(t, ns, "s1", userRef("alice", "alice-pw"), v1alpha1.User{Name: "gen"})
	_, secret := waitForConfig(t, nc, map[string]string{"alice": "alice-1", "gen": generatedPassword(t, ns, "s1-user-gen")})
	waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionUnknown, v1alpha1.ReasonNoPodAddresses)

	versions := func() map[string]string {
		v := map[string]string{}
		for name, obj := range map[string]client.Object{
			"config Secret":      &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s1-config"}},
			"generated Secret":   &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s1-user-gen"}},
			"StatefulSet":        &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "s1"}},
			"client Service":     &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s1"}},
			"routes Service":     &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s1-routes"}},
			"PDB":                &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "s1"}},
			"NetworkPolicy":      &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: "s1"}},
			"NatsCluster status": &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Name: "s1"}},
		} {
			if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: obj.GetName()}, obj); err != nil {
				t.Fatal(err)
			}
			v[name] = obj.GetResourceVersion()
		}
		return v
	}
	before := versions()
	statusBefore := getCluster(t, nc)
	ops := testutil.ToFloat64(bcryptOperations)
	// The suite's reconciler, reading and writing through a client that
	// counts requests: the API server keeps the resourceVersion on a write
	// that changes nothing, so only the count shows a no-op write.
	counted, calls := countingClient(t)
	r := *reconciler
	r.Client, r.APIReader = counted, counted
	calls.reset()
	for range 3 {
		if _, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}); err != nil {
			t.Fatal(err)
		}
	}
	for method, n := range calls.snapshot() {
		if method != http.MethodGet && n > 0 {
			t.Errorf("a resync sent %d %s requests, want no writes at all", n, method)
		}
	}
	after := versions()
	for name, rv := range before {
		if after[name] != rv {
			t.Errorf("a resync wrote the %s (resourceVersion %s -> %s)", name, rv, after[name])
		}
	}
	if t.Failed() {
		b, _ := json.MarshalIndent(statusBefore.Status, "", " ")
		a, _ := json.MarshalIndent(getCluster(t, nc).Status, "", " ")
		t.Logf("status before:\n%s\nafter:\n%s", b, a)
	}
	if before["config Secret"] != secret.ResourceVersion {
		t.Errorf("config Secret written after it verified")
	}
	if d := testutil.ToFloat64(bcryptOperations) - ops; d != 0 {
		t.Errorf("a resync cost %v bcrypt operations, want 0", d)
	}
}

func generatedPassword(t *testing.T, ns, name string) string {
	t.Helper()
	s := &corev1.Secret{}
	eventually(t, timeout, func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, s)
	})
	return string(s.Data["password"])
}

func TestRemovingAUserRemovesIt(t *testing.T) {
	needAPIServer(t)
	const ns = "removal"
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	createPasswordSecret(t, ns, "bob-pw", "bob-1")
	nc := createCluster(t, ns, "d1", userRef("alice", "alice-pw"), userRef("bob", "bob-pw"), v1alpha1.User{Name: "gen"})
	waitForConfig(t, nc, map[string]string{"alice": "alice-1", "bob": "bob-1", "gen": generatedPassword(t, ns, "d1-user-gen")})

	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) { nc.Spec.Auth.Users = nc.Spec.Auth.Users[:1] })
	_, secret := waitForConfig(t, nc, map[string]string{"alice": "alice-1"})
	if strings.Contains(string(secret.Data["fingerprints.json"]), "bob") {
		t.Error("bob's fingerprint outlived him")
	}
	eventually(t, timeout, func() error {
		got := getCluster(t, nc)
		if len(got.Status.Users) != 1 || got.Status.Users[0].Name != "alice" {
			return fmt.Errorf("status users %+v", got.Status.Users)
		}
		err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "d1-user-gen"}, &corev1.Secret{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("generated Secret of a removed user: %v", err)
		}
		return nil
	})
}

func TestMissingSecretDropsOnlyThatUser(t *testing.T) {
	needAPIServer(t)
	const ns = "missing"
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	nc := createCluster(t, ns, "m1", userRef("alice", "alice-pw"), userRef("carol", "carol-pw"))

	waitForConfig(t, nc, map[string]string{"alice": "alice-1"})
	got := waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionFalse, v1alpha1.ReasonSecretMissing)
	if msg := condition(got, v1alpha1.ConditionUsersResolved).Message; !strings.Contains(msg, "carol-pw") || strings.Contains(msg, "alice-pw") {
		t.Errorf("UsersResolved message %q should name carol's Secret only", msg)
	}
	if got.Status.ResolvedUsers != 1 {
		t.Errorf("resolvedUsers %d", got.Status.ResolvedUsers)
	}
	eventually(t, timeout, func() error {
		var events eventsv1.EventList
		if err := k8s.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Reason == string(v1alpha1.UserSecretMissing) && e.Regarding.Name == "m1" && strings.Contains(e.Note, "carol-pw") {
				return nil
			}
		}
		return fmt.Errorf("no SecretMissing Event naming carol-pw among %d events", len(events.Items))
	})

	// A Secret without the key is reported as such.
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "carol-pw"}, Data: map[string][]byte{"other": []byte("x")}}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionFalse, v1alpha1.ReasonKeyMissing)

	// When the key appears, carol comes back without a resync.
	s.Data["password"] = []byte("carol-1")
	if err := k8s.Update(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	waitForConfig(t, nc, map[string]string{"alice": "alice-1", "carol": "carol-1"})
	waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionTrue, v1alpha1.ReasonAllUsersResolved)
}

func TestGeneratedCredentialsAppearAndConnectDetailsAreRight(t *testing.T) {
	needAPIServer(t)
	const ns = "generated"
	nc := createCluster(t, ns, "g1", v1alpha1.User{Name: "app"}, v1alpha1.User{Name: "Worker_1"})

	app := &corev1.Secret{}
	eventually(t, timeout, func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "g1-user-app"}, app)
	})
	pw := string(app.Data["password"])
	if string(app.Data["username"]) != "app" || len(pw) < 20 {
		t.Errorf("generated Secret username %q, password of %d characters", app.Data["username"], len(pw))
	}
	if want := "tls://app:" + pw + "@g1.generated.svc:4222"; string(app.Data["url"]) != want {
		t.Errorf("url %q, want %q", app.Data["url"], want)
	}
	// With TLS (the default) the Secret carries the CA to trust: the
	// cluster CA's certificate, and never its key.
	ca := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "g1-ca"}, ca); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(app.Data["ca.crt"], ca.Data["tls.crt"]) {
		t.Errorf("generated Secret ca.crt is not the cluster CA")
	}
	if !metav1.IsControlledBy(app, getCluster(t, nc)) {
		t.Error("generated Secret not controlled by the NatsCluster")
	}
	worker := resources.GeneratedUserSecretName(nc, "Worker_1")
	waitForConfig(t, nc, map[string]string{"app": pw, "Worker_1": generatedPassword(t, ns, worker)})

	// Routes have their own generated credentials, and the config dials with them.
	routes := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "g1-route-credentials"}, routes); err != nil {
		t.Fatal(err)
	}
	o, _, err := brokerConfig(nc)
	if err != nil {
		t.Fatal(err)
	}
	if o.Cluster == nil || o.Cluster.Authorization.Password != string(routes.Data["password"]) ||
		!strings.HasPrefix(o.Cluster.Routes[0], "nats://route:"+string(routes.Data["password"])+"@g1-0.g1-routes.generated.svc:6222") {
		t.Errorf("route credentials not used by the config: %+v", o.Cluster)
	}

	// A user that gets a Secret of its own loses the generated one.
	createPasswordSecret(t, ns, "app-own", "app-own-1")
	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) { nc.Spec.Auth.Users[0] = userRef("app", "app-own") })
	waitForConfig(t, nc, map[string]string{"app": "app-own-1", "Worker_1": generatedPassword(t, ns, worker)})
	eventually(t, timeout, func() error {
		err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "g1-user-app"}, &corev1.Secret{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("generated Secret still there: %v", err)
		}
		return nil
	})
}

func TestScalingUpdatesTheStatefulSetAndTheRoutes(t *testing.T) {
	needAPIServer(t)
	const ns = "scaling"
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	nc := createCluster(t, ns, "x1", userRef("alice", "alice-pw"))
	waitForConfig(t, nc, map[string]string{"alice": "alice-1"})
	waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionTrue, v1alpha1.ReasonAllUsersResolved)
	ops := testutil.ToFloat64(bcryptOperations)

	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) { nc.Spec.Replicas = ptr.To[int32](5) })
	eventually(t, timeout, func() error {
		sts := &appsv1.StatefulSet{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "x1"}, sts); err != nil {
			return err
		}
		if *sts.Spec.Replicas != 5 {
			return fmt.Errorf("StatefulSet replicas %d", *sts.Spec.Replicas)
		}
		o, _, err := brokerConfig(nc)
		if err != nil {
			return err
		}
		if len(o.Cluster.Routes) != 5 || !strings.Contains(o.Cluster.Routes[4], "@x1-4.x1-routes.scaling.svc:6222") {
			return fmt.Errorf("routes %d", len(o.Cluster.Routes))
		}
		pdb := &policyv1.PodDisruptionBudget{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "x1"}, pdb); err != nil {
			return err
		}
		if pdb.Spec.MinAvailable.IntValue() != 3 {
			return fmt.Errorf("PDB minAvailable %v", pdb.Spec.MinAvailable)
		}
		return nil
	})
	if d := testutil.ToFloat64(bcryptOperations) - ops; d != 0 {
		t.Errorf("scaling cost %v bcrypt operations, want 0", d)
	}
}

func TestPausedClusterIsLeftAlone(t *testing.T) {
	needAPIServer(t)
	const ns = "paused"
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	nc := createCluster(t, ns, "p1", userRef("alice", "alice-pw"))
	waitForConfig(t, nc, map[string]string{"alice": "alice-1"})

	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) { nc.Spec.Paused = true })
	waitForCondition(t, nc, v1alpha1.ConditionReady, metav1.ConditionUnknown, v1alpha1.ReasonPaused)
	setPassword(t, ns, "alice-pw", "alice-2")
	if _, err := reconciler.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}); err != nil {
		t.Fatal(err)
	}
	waitForConfig(t, nc, map[string]string{"alice": "alice-1"})

	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) { nc.Spec.Paused = false })
	waitForConfig(t, nc, map[string]string{"alice": "alice-2"})
}

func TestForeignObjectsAreNotTakenOver(t *testing.T) {
	needAPIServer(t)
	const ns = "takeover"
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "t1-config"},
		Data:       map[string][]byte{"nats.conf": []byte("# someone else's")},
	}
	if err := k8s.Create(context.Background(), foreign); err != nil {
		t.Fatal(err)
	}
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	nc := createCluster(t, ns, "t1", userRef("alice", "alice-pw"))
	got := waitForCondition(t, nc, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonReconcileFailed)
	if msg := condition(got, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "refusing to take over Secret t1-config") {
		t.Errorf("Ready message %q", msg)
	}
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(foreign), s); err != nil {
		t.Fatal(err)
	}
	if string(s.Data["nats.conf"]) != "# someone else's" || len(s.OwnerReferences) != 0 {
		t.Error("the operator wrote a Secret it does not control")
	}
}

func TestScaleSubresourceScalesTheCluster(t *testing.T) {
	needAPIServer(t)
	const ns = "scaling"
	createPasswordSecret(t, ns, "bob-pw", "bob-1")
	nc := createCluster(t, ns, "x2", userRef("bob", "bob-pw"))
	waitForConfig(t, nc, map[string]string{"bob": "bob-1"})

	// As kubectl scale does: read the Scale, write it back (again on a
	// conflict with a status write).
	eventually(t, timeout, func() error {
		scale := &autoscalingv1.Scale{}
		if err := k8s.SubResource("scale").Get(context.Background(), nc, scale); err != nil {
			return err
		}
		if scale.Spec.Replicas != 3 && scale.Spec.Replicas != 1 {
			t.Fatalf("scale.spec.replicas %d, want 3", scale.Spec.Replicas)
		}
		scale.Spec.Replicas = 1
		return k8s.SubResource("scale").Update(context.Background(), nc, client.WithSubResourceBody(scale))
	})
	eventually(t, timeout, func() error {
		sts := &appsv1.StatefulSet{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "x2"}, sts); err != nil {
			return err
		}
		if *sts.Spec.Replicas != 1 {
			return fmt.Errorf("StatefulSet replicas %d", *sts.Spec.Replicas)
		}
		return nil
	})
}
