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
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/controllers/resources"
)

// Keep last good, invalid passwords and the rotation grace window, through
// the API only: Secrets are created, changed and deleted, and what counts is
// read back from the config Secret, the NatsCluster's status and its Events.

// waitForWarning waits for a Warning Event on nc with reason whose note
// contains every one of parts.
func waitForWarning(t *testing.T, nc *v1alpha1.NatsCluster, reason string, parts ...string) {
	t.Helper()
	eventually(t, timeout, func() error {
		var events eventsv1.EventList
		if err := k8s.List(context.Background(), &events, client.InNamespace(nc.Namespace)); err != nil {
			return err
		}
	next:
		for _, e := range events.Items {
			if e.Type != corev1.EventTypeWarning || e.Reason != reason || e.Regarding.Name != nc.Name {
				continue
			}
			for _, p := range parts {
				if !strings.Contains(e.Note, p) {
					continue next
				}
			}
			return nil
		}
		return fmt.Errorf("no Warning %s Event on %s containing %q among %d events", reason, nc.Name, parts, len(events.Items))
	})
}

// noEventContains fails if an Event in ns contains any of secrets.
func noEventContains(t *testing.T, ns string, secrets ...string) {
	t.Helper()
	var events eventsv1.EventList
	if err := k8s.List(context.Background(), &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		for _, s := range secrets {
			if strings.Contains(e.Note, s) {
				t.Errorf("Event %s quotes a password: %q", e.Reason, e.Note)
			}
		}
	}
}

func userStatus(nc *v1alpha1.NatsCluster, name string) v1alpha1.UserStatus {
	for _, s := range nc.Status.Users {
		if s.Name == name {
			return s
		}
	}
	return v1alpha1.UserStatus{}
}

// waitForUserStatus waits until user's status satisfies check.
func waitForUserStatus(t *testing.T, nc *v1alpha1.NatsCluster, user string, check func(v1alpha1.UserStatus) error) *v1alpha1.NatsCluster {
	t.Helper()
	var got *v1alpha1.NatsCluster
	eventually(t, timeout, func() error {
		got = getCluster(t, nc)
		return check(userStatus(got, user))
	})
	return got
}

func TestADeletedSecretLeavesItsUserOnTheLastGoodPasswordUntilItIsRecreated(t *testing.T) {
	needAPIServer(t)
	const ns = "lastgood"
	alice := createPasswordSecret(t, ns, "alice-pw", "alice-1")
	createPasswordSecret(t, ns, "bob-pw", "bob-1")
	nc := createCluster(t, ns, "k1", userRef("alice", "alice-pw"), userRef("bob", "bob-pw"))
	before, _ := waitForConfig(t, nc, map[string]string{"alice": "alice-1", "bob": "bob-1"})
	waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionTrue, v1alpha1.ReasonAllUsersResolved)

	// External Secrets or helm upgrade --force delete the Secret for a moment.
	if err := k8s.Delete(context.Background(), alice); err != nil {
		t.Fatal(err)
	}
	got := waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionFalse, v1alpha1.ReasonSecretMissing)
	if msg := condition(got, v1alpha1.ConditionUsersResolved).Message; !strings.Contains(msg, "user alice") || !strings.Contains(msg, "alice-pw") ||
		!strings.Contains(msg, "keeps its last good password") {
		t.Errorf("UsersResolved message %q should name alice, her Secret and that she keeps her password", msg)
	}
	waitForWarning(t, nc, string(v1alpha1.UserSecretMissing), "user alice keeps its last good password", "alice-pw")
	got = waitForUserStatus(t, nc, "alice", func(s v1alpha1.UserStatus) error {
		if s.Resolved || s.Reason != v1alpha1.UserSecretMissing || s.ServingLastGoodSince == nil {
			return fmt.Errorf("alice's status %+v, want SecretMissing serving her last good password since a time", s)
		}
		return nil
	})
	since := userStatus(got, "alice").ServingLastGoodSince

	// Her hash is still served, bob's is untouched, and nothing else moved.
	after, _ := waitForConfig(t, nc, map[string]string{"alice": "alice-1", "bob": "bob-1"})
	if userHashes(after)["alice"] != userHashes(before)["alice"] || userHashes(after)["bob"] != userHashes(before)["bob"] {
		t.Error("a hash changed while alice's Secret was missing")
	}
	if s := userStatus(got, "bob"); !s.Resolved || s.ServingLastGoodSince != nil {
		t.Errorf("bob's status %+v", s)
	}
	// A later reconcile (bob's Secret edited) keeps "since" where it was.
	setPassword(t, ns, "bob-pw", "bob-2")
	waitForConfig(t, nc, map[string]string{"alice": "alice-1", "bob": "bob-2"})
	if s := userStatus(getCluster(t, nc), "alice"); s.ServingLastGoodSince == nil || !s.ServingLastGoodSince.Equal(since) {
		t.Errorf("servingLastGoodSince moved from %v to %v", since, s.ServingLastGoodSince)
	}

	// The Secret comes back with a new password: that one is served.
	createPasswordSecret(t, ns, "alice-pw", "alice-2")
	waitForConfig(t, nc, map[string]string{"alice": "alice-2", "bob": "bob-2"})
	waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionTrue, v1alpha1.ReasonAllUsersResolved)
	waitForUserStatus(t, nc, "alice", func(s v1alpha1.UserStatus) error {
		if !s.Resolved || s.ServingLastGoodSince != nil {
			return fmt.Errorf("alice's status %+v after her Secret came back", s)
		}
		return nil
	})
	noEventContains(t, ns, "alice-1", "alice-2", "bob-1", "bob-2")

	// Removing her from the spec revokes her at once.
	updateCluster(t, nc, func(nc *v1alpha1.NatsCluster) { nc.Spec.Auth.Users = nc.Spec.Auth.Users[1:] })
	waitForConfig(t, nc, map[string]string{"bob": "bob-2"})
}

func TestEachInvalidPasswordIsNamedAndTheLastGoodOneIsKept(t *testing.T) {
	needAPIServer(t)
	const ns = "invalid"
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	nc := createCluster(t, ns, "v1", userRef("alice", "alice-pw"))
	waitForConfig(t, nc, map[string]string{"alice": "alice-1"})

	for _, tc := range []struct {
		name, value, reason, says string
	}{
		{"empty", "", v1alpha1.ReasonInvalidPassword, "is empty"},
		{"not UTF-8", "alice-\xff\xfe", v1alpha1.ReasonInvalidPassword, "not valid UTF-8"},
		{"longer than 72 bytes", strings.Repeat("a", 73), v1alpha1.ReasonInvalidPassword, "73 bytes, longer than bcrypt's 72"},
		{"the key gone", "-", v1alpha1.ReasonKeyMissing, `has no key "password"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := getSecret(t, ns, "alice-pw")
			if tc.value == "-" {
				s.Data = map[string][]byte{"other": []byte("x")}
			} else {
				s.Data["password"] = []byte(tc.value)
			}
			if err := k8s.Update(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			got := waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionFalse, tc.reason)
			msg := condition(got, v1alpha1.ConditionUsersResolved).Message
			if !strings.Contains(msg, tc.says) || !strings.Contains(msg, "alice-pw") || !strings.Contains(msg, "keeps its last good password") {
				t.Errorf("UsersResolved message %q, want it to say %q about alice-pw and that alice keeps her password", msg, tc.says)
			}
			if tc.value != "" && tc.value != "-" && strings.Contains(msg, tc.value) {
				t.Errorf("the message quotes the password: %q", msg)
			}
			waitForWarning(t, nc, tc.reason, "user alice keeps its last good password", tc.says)
			waitForConfig(t, nc, map[string]string{"alice": "alice-1"})

			// Fixed again, for the next case.
			s = getSecret(t, ns, "alice-pw")
			s.Data = map[string][]byte{"password": []byte("alice-1")}
			if err := k8s.Update(context.Background(), s); err != nil {
				t.Fatal(err)
			}
			waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionTrue, v1alpha1.ReasonAllUsersResolved)
		})
	}

	t.Run("a final newline is used as it is, with a warning", func(t *testing.T) {
		setPassword(t, ns, "alice-pw", "alice-2\n")
		waitForConfig(t, nc, map[string]string{"alice": "alice-2\n"})
		o, _, _ := brokerConfig(nc)
		if bcrypt.CompareHashAndPassword([]byte(userHashes(o)["alice"]), []byte("alice-2")) == nil {
			t.Error("the newline was trimmed")
		}
		waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionTrue, v1alpha1.ReasonAllUsersResolved)
		waitForWarning(t, nc, "PasswordEndsInNewline", "user alice", "alice-pw", "ends in a newline")
	})
	noEventContains(t, ns, "alice-1", "alice-2")
}

func TestANeverResolvedUserWithAnInvalidPasswordStaysOut(t *testing.T) {
	needAPIServer(t)
	const ns = "invalid"
	createPasswordSecret(t, ns, "carol-pw", "")
	createPasswordSecret(t, ns, "dave-pw", "dave-1")
	nc := createCluster(t, ns, "v2", userRef("carol", "carol-pw"), userRef("dave", "dave-pw"))
	waitForConfig(t, nc, map[string]string{"dave": "dave-1"})
	got := waitForCondition(t, nc, v1alpha1.ConditionUsersResolved, metav1.ConditionFalse, v1alpha1.ReasonInvalidPassword)
	if msg := condition(got, v1alpha1.ConditionUsersResolved).Message; !strings.Contains(msg, "user carol") || !strings.Contains(msg, "left out of the config") {
		t.Errorf("message %q", msg)
	}
	if s := userStatus(got, "carol"); s.ServingLastGoodSince != nil {
		t.Errorf("carol never had a password and is serving one since %v", s.ServingLastGoodSince)
	}
	waitForWarning(t, nc, v1alpha1.ReasonInvalidPassword, "user carol left out of the config", "is empty")
}

// previousPasswords reads the previous-passwords file of nc's config Secret.
func previousPasswords(t *testing.T, nc *v1alpha1.NatsCluster) []conf.PreviousPassword {
	t.Helper()
	s := getSecret(t, nc.Namespace, resources.ConfigSecretName(nc))
	pp, err := conf.ParsePreviousPasswords(s.Data[resources.PreviousPasswordsKey], resources.PreviousPasswordsKey)
	if err != nil {
		t.Fatalf("the previous-passwords file does not parse: %v", err)
	}
	return pp
}

// reconcileOnce reconciles nc with r and returns the requeue it asks for.
func reconcileOnce(t *testing.T, r *NatsClusterReconciler, nc *v1alpha1.NatsCluster) time.Duration {
	t.Helper()
	res, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)})
	if err != nil {
		t.Fatal(err)
	}
	return res.RequeueAfter
}

// windowClosed checks a reconcile at the end of a grace window: it asks for
// no requeue (no window open), and the previous hash is gone from the
// previous-passwords file and from every key of the config Secret.
func windowClosed(t *testing.T, nc *v1alpha1.NatsCluster, requeue time.Duration, oldHash string) {
	t.Helper()
	if requeue != 0 {
		t.Errorf("requeued after %v with no window open", requeue)
	}
	if pp := previousPasswords(t, nc); len(pp) != 0 {
		t.Fatalf("after the window: %+v", pp)
	}
	for k, v := range getSecret(t, nc.Namespace, resources.ConfigSecretName(nc)).Data {
		if strings.Contains(string(v), oldHash) {
			t.Errorf("the previous hash outlived its window in key %s", k)
		}
	}
}

// TestTheGraceWindowServesBothHashesThenOnlyTheNewOne drives a reconciler of
// its own (in a namespace the suite's manager does not watch) with an
// injected clock through a rotation with a 30s grace period.
func TestTheGraceWindowServesBothHashesThenOnlyTheNewOne(t *testing.T) {
	needAPIServer(t)
	ns := manualNamespace
	now := time.Now().Truncate(time.Second)
	r, calls := manualReconciler(t, func() time.Time { return now })
	createPasswordSecret(t, ns, "grace-alice-pw", "alice-1")
	createPasswordSecret(t, ns, "grace-bob-pw", "bob-1")
	nc := createManualCluster(t, "grace", func(nc *v1alpha1.NatsCluster) {
		nc.Spec.TLS.Mode = v1alpha1.TLSModeDisabled
		nc.Spec.Auth.Users = []v1alpha1.User{userRef("alice", "grace-alice-pw"), userRef("bob", "grace-bob-pw")}
		nc.Spec.Auth.RotationGracePeriod = &metav1.Duration{Duration: 30 * time.Second}
	})
	reconcileNow := func() time.Duration { t.Helper(); return reconcileOnce(t, r, nc) }

	reconcileNow()
	o, _, err := brokerConfig(nc)
	if err != nil {
		t.Fatal(err)
	}
	oldHash := userHashes(o)["alice"]
	if pp := previousPasswords(t, nc); len(pp) != 0 {
		t.Fatalf("a first password has a previous one: %+v", pp)
	}

	setPassword(t, ns, "grace-alice-pw", "alice-2")
	now = now.Add(5 * time.Second)
	rotatedAt := now
	if requeue := reconcileNow(); requeue != 30*time.Second {
		t.Errorf("requeued after %v, want the window's 30s", requeue)
	}
	// Both hashes: the new one in nats.conf, the old one in the
	// previous-passwords file until the window ends.
	waitForConfig(t, nc, map[string]string{"alice": "alice-2", "bob": "bob-1"})
	pp := previousPasswords(t, nc)
	until := rotatedAt.Add(30 * time.Second)
	if len(pp) != 1 || pp[0].User != "alice" || pp[0].Password != oldHash || !pp[0].ValidUntil.Equal(until) {
		t.Fatalf("previous passwords %+v, want alice's old hash until %v", pp, until)
	}
	if bcrypt.CompareHashAndPassword([]byte(pp[0].Password), []byte("alice-1")) != nil {
		t.Fatal("the previous hash does not verify the previous password")
	}
	got := getCluster(t, nc)
	if s := userStatus(got, "alice"); s.PreviousPasswordValidUntil == nil || !s.PreviousPasswordValidUntil.Time.Equal(until) {
		t.Errorf("alice's previousPasswordValidUntil %v, want %v", s.PreviousPasswordValidUntil, until)
	}
	if s := userStatus(got, "bob"); s.PreviousPasswordValidUntil != nil {
		t.Errorf("bob has a previous password until %v", s.PreviousPasswordValidUntil)
	}

	// Inside the window a resync keeps both, and costs no bcrypt and no
	// write.
	now = until.Add(-time.Second)
	reconcileNow() // status catches up with the clock
	calls.reset()
	ops := testutil.ToFloat64(bcryptOperations)
	if requeue := reconcileNow(); requeue != time.Second {
		t.Errorf("a second before the window ends, requeued after %v, want 1s", requeue)
	}
	if w, d := writes(calls.snapshot()), testutil.ToFloat64(bcryptOperations)-ops; w != 0 || d != 0 {
		t.Errorf("a resync inside the window made %d writes and %v bcrypt operations, want 0 and 0", w, d)
	}
	if pp := previousPasswords(t, nc); len(pp) != 1 {
		t.Fatalf("the previous hash left before the window ended: %+v", pp)
	}

	// At its end only the new hash remains, in the Secret and in status.
	now = until
	windowClosed(t, nc, reconcileNow(), oldHash)
	waitForConfig(t, nc, map[string]string{"alice": "alice-2", "bob": "bob-1"})
	if s := userStatus(getCluster(t, nc), "alice"); s.PreviousPasswordValidUntil != nil {
		t.Errorf("alice's previousPasswordValidUntil %v after the window", s.PreviousPasswordValidUntil)
	}
}

func TestWithoutAGracePeriodARotationKeepsNoPreviousHash(t *testing.T) {
	needAPIServer(t)
	ns := manualNamespace
	now := time.Now().Truncate(time.Second)
	r, _ := manualReconciler(t, func() time.Time { return now })
	createPasswordSecret(t, ns, "hardcut-alice-pw", "alice-1")
	nc := createManualCluster(t, "hardcut", func(nc *v1alpha1.NatsCluster) {
		nc.Spec.TLS.Mode = v1alpha1.TLSModeDisabled
		nc.Spec.Auth.Users = []v1alpha1.User{userRef("alice", "hardcut-alice-pw")}
	})
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	setPassword(t, ns, "hardcut-alice-pw", "alice-2")
	now = now.Add(time.Second)
	if _, err := r.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	waitForConfig(t, nc, map[string]string{"alice": "alice-2"})
	if pp := previousPasswords(t, nc); len(pp) != 0 {
		t.Fatalf("rotationGracePeriod unset, and the previous hash is kept: %+v", pp)
	}
	if s := userStatus(getCluster(t, nc), "alice"); s.PreviousPasswordValidUntil != nil {
		t.Errorf("previousPasswordValidUntil %v without a grace period", s.PreviousPasswordValidUntil)
	}
}

// A NatsUser's rotation gets the same window as an inline user's: both
// hashes served, the previous one's end in the NatsUser's own status, then
// only the new one once the injected clock passes the window's end.
func TestANatsUsersGraceWindowServesBothHashesThenOnlyTheNewOne(t *testing.T) {
	needAPIServer(t)
	ns := manualNamespace
	now := time.Now().Truncate(time.Second)
	r, _ := manualReconciler(t, func() time.Time { return now })
	createPasswordSecret(t, ns, "nugrace-bob-pw", "bob-1")
	createPasswordSecret(t, ns, "nugrace-team-pw", "team-1")
	nc := createManualCluster(t, "nugrace", func(nc *v1alpha1.NatsCluster) {
		nc.Spec.TLS.Mode = v1alpha1.TLSModeDisabled
		nc.Spec.Auth.Users = []v1alpha1.User{userRef("bob", "nugrace-bob-pw")}
		nc.Spec.Auth.RotationGracePeriod = &metav1.Duration{Duration: 30 * time.Second}
	})
	nu := createNatsUser(t, ns, "nugrace-team", v1alpha1.NatsUserSpec{
		ClusterRef:        v1alpha1.ClusterReference{Name: nc.Name},
		PasswordSecretRef: &v1alpha1.SecretKeyReference{Name: "nugrace-team-pw", Key: "password"},
	})
	reconcileNow := func() time.Duration { t.Helper(); return reconcileOnce(t, r, nc) }
	natsUser := func() *v1alpha1.NatsUser {
		t.Helper()
		got := &v1alpha1.NatsUser{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(nu), got); err != nil {
			t.Fatal(err)
		}
		return got
	}

	reconcileNow()
	o, _ := waitForConfig(t, nc, map[string]string{"bob": "bob-1", "nugrace-team": "team-1"})
	oldHash := userHashes(o)["nugrace-team"]
	if got := natsUser().Status.PreviousPasswordValidUntil; got != nil {
		t.Fatalf("a first password has a previous one until %v", got)
	}

	setPassword(t, ns, "nugrace-team-pw", "team-2")
	now = now.Add(5 * time.Second)
	until := now.Add(30 * time.Second)
	if requeue := reconcileNow(); requeue != 30*time.Second {
		t.Errorf("requeued after %v, want the window's 30s", requeue)
	}
	waitForConfig(t, nc, map[string]string{"bob": "bob-1", "nugrace-team": "team-2"})
	pp := previousPasswords(t, nc)
	if len(pp) != 1 || pp[0].User != "nugrace-team" || pp[0].Password != oldHash || !pp[0].ValidUntil.Equal(until) {
		t.Fatalf("previous passwords %+v, want nugrace-team's old hash until %v", pp, until)
	}
	if bcrypt.CompareHashAndPassword([]byte(pp[0].Password), []byte("team-1")) != nil {
		t.Fatal("the previous hash does not verify the previous password")
	}
	if got := natsUser().Status.PreviousPasswordValidUntil; got == nil || !got.Time.Equal(until) {
		t.Errorf("the NatsUser's previousPasswordValidUntil is %v, want %v", got, until)
	}
	if s := userStatus(getCluster(t, nc), "bob"); s.PreviousPasswordValidUntil != nil {
		t.Errorf("bob has a previous password until %v", s.PreviousPasswordValidUntil)
	}

	// A second before the end both are still served.
	now = until.Add(-time.Second)
	if requeue := reconcileNow(); requeue != time.Second {
		t.Errorf("a second before the window ends, requeued after %v, want 1s", requeue)
	}
	if pp := previousPasswords(t, nc); len(pp) != 1 {
		t.Fatalf("the previous hash left before the window ended: %+v", pp)
	}

	now = until
	windowClosed(t, nc, reconcileNow(), oldHash)
	waitForConfig(t, nc, map[string]string{"bob": "bob-1", "nugrace-team": "team-2"})
	if got := natsUser().Status.PreviousPasswordValidUntil; got != nil {
		t.Errorf("the NatsUser's previousPasswordValidUntil is %v after the window", got)
	}
}

// A NatsUser's password goes through the same resolution: its Secret
// deleted, it keeps its last good password and says so in its own status;
// deleting the NatsUser revokes it.
func TestANatsUserWhoseSecretIsDeletedKeepsItsLastGoodPasswordUntilTheNatsUserIsDeleted(t *testing.T) {
	needAPIServer(t)
	const ns = "lastgood"
	createPasswordSecret(t, ns, "k2-inline-pw", "inline-1")
	team := createPasswordSecret(t, ns, "team-pw", "team-1")
	nc := createCluster(t, ns, "k2", userRef("inline", "k2-inline-pw"))
	nu := createNatsUser(t, ns, "team", v1alpha1.NatsUserSpec{
		ClusterRef:        v1alpha1.ClusterReference{Name: "k2"},
		PasswordSecretRef: &v1alpha1.SecretKeyReference{Name: "team-pw", Key: "password"},
	})
	waitForConfig(t, nc, map[string]string{"inline": "inline-1", "team": "team-1"})

	if err := k8s.Delete(context.Background(), team); err != nil {
		t.Fatal(err)
	}
	got := waitForNatsUser(t, nu, v1alpha1.NatsUserSecretMissing)
	if c := natsUserReadyMessage(got); !strings.Contains(c, "team-pw") || !strings.Contains(c, "keep its last good password") || got.Status.ServingLastGoodSince == nil {
		t.Errorf("NatsUser Ready message %q, servingLastGoodSince %v", c, got.Status.ServingLastGoodSince)
	}
	waitForConfig(t, nc, map[string]string{"inline": "inline-1", "team": "team-1"})

	// Recreated, with the final newline --from-file leaves: used as it is,
	// with a Warning Event on the NatsUser.
	createPasswordSecret(t, ns, "team-pw", "team-2\n")
	waitForConfig(t, nc, map[string]string{"inline": "inline-1", "team": "team-2\n"})
	waitForEvent(t, ns, "team", corev1.EventTypeWarning, "PasswordEndsInNewline", "Secret team-pw")

	if err := k8s.Delete(context.Background(), nu); err != nil {
		t.Fatal(err)
	}
	waitForConfig(t, nc, map[string]string{"inline": "inline-1"})
}

// natsUserReadyMessage is the message of a NatsUser's Ready condition.
func natsUserReadyMessage(nu *v1alpha1.NatsUser) string {
	for _, c := range nu.Status.Conditions {
		if c.Type == v1alpha1.ConditionReady {
			return c.Message
		}
	}
	return ""
}

// The last good hash lives in the config Secret's records, so an operator
// that starts afresh (a new reconciler, nothing in memory) after the user's
// Secret went missing still serves it.
func TestTheLastGoodPasswordSurvivesAnOperatorRestart(t *testing.T) {
	needAPIServer(t)
	ns := manualNamespace
	alice := createPasswordSecret(t, ns, "restart-alice-pw", "alice-1")
	nc := createManualCluster(t, "restart", func(nc *v1alpha1.NatsCluster) {
		nc.Spec.TLS.Mode = v1alpha1.TLSModeDisabled
		nc.Spec.Auth.Users = []v1alpha1.User{userRef("alice", "restart-alice-pw")}
	})
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}
	before, _ := manualReconciler(t, nil)
	if _, err := before.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	o, _ := waitForConfig(t, nc, map[string]string{"alice": "alice-1"})
	hash := userHashes(o)["alice"]

	if err := k8s.Delete(context.Background(), alice); err != nil {
		t.Fatal(err)
	}
	after, _ := manualReconciler(t, nil) // the operator restarted
	if _, err := after.Reconcile(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	o, _ = waitForConfig(t, nc, map[string]string{"alice": "alice-1"})
	if userHashes(o)["alice"] != hash {
		t.Error("alice's hash changed across the restart")
	}
	got := getCluster(t, nc)
	if s := userStatus(got, "alice"); s.Reason != v1alpha1.UserSecretMissing || s.ServingLastGoodSince == nil {
		t.Errorf("alice's status %+v", s)
	}
}
