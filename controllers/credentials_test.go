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
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

func TestReadPasswordNamesEachProblemAndNeverTheValue(t *testing.T) {
	secret := func(v string) *corev1.Secret {
		return &corev1.Secret{Data: map[string][]byte{"password": []byte(v)}}
	}
	for _, tc := range []struct {
		name    string
		s       *corev1.Secret
		reason  v1alpha1.UserReason
		message string
		warning string
	}{
		{"no Secret", nil, v1alpha1.UserSecretMissing, "Secret pw not found", ""},
		{"no key", &corev1.Secret{Data: map[string][]byte{"other": []byte("x")}}, v1alpha1.UserKeyMissing, `Secret pw has no key "password"`, ""},
		{"empty", secret(""), v1alpha1.UserInvalidPassword, `the password in Secret pw key "password" is empty`, ""},
		{"not UTF-8", secret("s3cr\xffet"), v1alpha1.UserInvalidPassword, "is not valid UTF-8", ""},
		{"73 bytes", secret(strings.Repeat("s", 73)), v1alpha1.UserInvalidPassword, "is 73 bytes, longer than bcrypt's 72", ""},
		{"72 bytes", secret(strings.Repeat("s", 72)), v1alpha1.UserResolved, `password read from Secret pw key "password"`, ""},
		{"a final newline", secret("s3cret\n"), v1alpha1.UserResolved, "ends in a newline", "--from-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := readPassword(tc.s, "pw", "password")
			if c.reason != tc.reason || !strings.Contains(c.message, tc.message) || !strings.Contains(c.warning, tc.warning) || (tc.warning == "") != (c.warning == "") {
				t.Fatalf("got %s %q (warning %q), want %s %q (warning %q)", c.reason, c.message, c.warning, tc.reason, tc.message, tc.warning)
			}
			if (c.password != nil) != (tc.reason == v1alpha1.UserResolved) {
				t.Fatalf("password %v with reason %s", c.password != nil, c.reason)
			}
			if tc.s != nil {
				if v := string(tc.s.Data["password"]); v != "" && (strings.Contains(c.message, v) || strings.Contains(c.warning, v)) {
					t.Fatalf("the message quotes the password: %q %q", c.message, c.warning)
				}
			}
		})
	}
	if got := readPassword(secret("s3cret\n"), "pw", "password").password; string(got) != "s3cret\n" {
		t.Fatalf("a password ending in a newline is used as %q, want it as it is", got)
	}
}

func unreadable(name string, reason v1alpha1.UserReason) resolvedUser {
	return resolvedUser{name: name, spec: &v1alpha1.User{}, reason: reason}
}

func TestAUserWhosePasswordCannotBeReadKeepsItsLastGoodHashAndANewUserStaysOut(t *testing.T) {
	first, _, err := hashPasswords(testKey, nil, users("pw-a", "pw-b"), 4, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, reason := range []v1alpha1.UserReason{v1alpha1.UserSecretMissing, v1alpha1.UserKeyMissing, v1alpha1.UserInvalidPassword} {
		us := []resolvedUser{unreadable("a", reason), users("pw-a", "pw-b")[1], unreadable("c", reason)}
		ops := testutil.ToFloat64(bcryptOperations)
		next, rotated, err := hashPasswords(testKey, first, us, 4, testNow, 0)
		if err != nil {
			t.Fatal(err)
		}
		if next["a"] != first["a"] || len(rotated) != 0 || testutil.ToFloat64(bcryptOperations) != ops {
			t.Errorf("%s: a's record %+v, rotated %v; want its last good record, kept without bcrypt", reason, next["a"], rotated)
		}
		if _, ok := next["c"]; ok {
			t.Errorf("%s: c never had a password and got a record", reason)
		}
		if !us[0].servingLastGood(next) || us[2].servingLastGood(next) || us[1].servingLastGood(next) {
			t.Errorf("%s: servingLastGood wrong", reason)
		}
	}
	// A user that is gone from the spec is gone: that is how to revoke.
	next, _, _ := hashPasswords(testKey, first, users("pw-a"), 4, testNow, 0)
	if _, ok := next["b"]; ok {
		t.Error("a removed user kept its record")
	}
}

func TestAChangedPasswordKeepsThePreviousHashForTheGracePeriodOnly(t *testing.T) {
	const grace = 30 * time.Second
	first, _, _ := hashPasswords(testKey, nil, users("pw-a", "pw-b"), 4, testNow, grace)
	if first["a"].PreviousHash != "" {
		t.Fatal("a first password has a previous one")
	}
	next, _, _ := hashPasswords(testKey, first, users("pw-a2", "pw-b"), 4, testNow, grace)
	want := metav1.NewTime(testNow.Add(grace))
	if next["a"].PreviousHash != first["a"].Hash || next["a"].PreviousValidUntil == nil || !next["a"].PreviousValidUntil.Equal(&want) {
		t.Fatalf("after a change: %+v, want the previous hash until %v", next["a"], want)
	}
	if next["b"].PreviousHash != "" {
		t.Error("an unchanged password got a previous one")
	}
	if got := nextPreviousExpiry(next); !got.Equal(want.Time) {
		t.Errorf("next expiry %v, want %v", got, want)
	}

	// Within the window a resync keeps it; at its end it is dropped.
	during, _, _ := hashPasswords(testKey, next, users("pw-a2", "pw-b"), 4, metav1.NewTime(testNow.Add(grace-time.Second)), grace)
	if during["a"].PreviousHash == "" {
		t.Error("the previous hash was dropped inside its window")
	}
	after, _, _ := hashPasswords(testKey, next, users("pw-a2", "pw-b"), 4, want, grace)
	if after["a"].PreviousHash != "" || after["a"].PreviousValidUntil != nil || !nextPreviousExpiry(after).IsZero() {
		t.Errorf("at the window's end the record still has %+v", after["a"])
	}
	// Also for a user kept on its last good password meanwhile.
	kept, _, _ := hashPasswords(testKey, next, []resolvedUser{unreadable("a", v1alpha1.UserSecretMissing)}, 4, want, grace)
	if kept["a"].Hash != next["a"].Hash || kept["a"].PreviousHash != "" {
		t.Errorf("a user on its last good password: %+v", kept["a"])
	}

	// Without a grace period a change is the hard cut.
	hard, _, _ := hashPasswords(testKey, first, users("pw-a2", "pw-b"), 4, testNow, 0)
	if hard["a"].PreviousHash != "" {
		t.Error("with no grace period the previous hash was kept")
	}
	// A new cost re-hashes the same password: no window opens.
	recost, _, _ := hashPasswords(testKey, first, users("pw-a", "pw-b"), 5, testNow, grace)
	if recost["a"].PreviousHash != "" {
		t.Error("re-hashing at a new cost opened a grace window")
	}
}

func TestAMassRotationBeyondTheBudgetGivesTheLastWindowsTheHardCut(t *testing.T) {
	until := metav1.NewTime(testNow.Add(time.Minute))
	records := fingerprints{}
	for i := range 10 {
		rotated := testNow
		if i >= 6 { // opened a second later: these go first
			rotated = metav1.NewTime(testNow.Add(time.Second))
		}
		records[fmt.Sprintf("u%d", i)] = fingerprintRecord{Hash: "h", RotatedAt: rotated, PreviousHash: "p", PreviousValidUntil: &until}
	}
	records["steady"] = fingerprintRecord{Hash: "h"}
	budget := 7 * previousEntrySize("u0")
	dropped := fitGraceWindows(records, budget)
	if want := []string{"u7", "u8", "u9"}; !slices.Equal(dropped, want) {
		t.Fatalf("dropped %v, want %v (the windows opened last)", dropped, want)
	}
	for name, rec := range records {
		open := rec.PreviousHash != "" && rec.PreviousValidUntil != nil
		if open == slices.Contains(dropped, name) && name != "steady" {
			t.Errorf("%s: window open %v", name, open)
		}
	}
	if again := fitGraceWindows(records, budget); again != nil {
		t.Errorf("a second pass dropped %v: what fits stays", again)
	}
	if got := fitGraceWindows(records, previousPasswordsBudget); got != nil {
		t.Errorf("under the real budget dropped %v", got)
	}
}
