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
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

var (
	testKey = bytes.Repeat([]byte{7}, fingerprintKeyBytes)
	testNow = metav1.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

func users(pw ...string) []resolvedUser {
	var out []resolvedUser
	for i, p := range pw {
		u := resolvedUser{name: string(rune('a' + i)), spec: &v1alpha1.User{}}
		if p != "" {
			u.password = []byte(p)
		}
		out = append(out, u)
	}
	return out
}

func TestUnchangedPasswordsKeepTheirHashesWithoutBcrypt(t *testing.T) {
	first, rotated, err := hashPasswords(testKey, nil, users("pw-a", "pw-b"), 4, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rotated) != 2 {
		t.Errorf("first hashing rotated %v, want both", rotated)
	}
	ops := testutil.ToFloat64(bcryptOperations)
	second, rotated, err := hashPasswords(testKey, parseFingerprints(first.marshal()), users("pw-a", "pw-b"), 4, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := testutil.ToFloat64(bcryptOperations) - ops; d != 0 || len(rotated) != 0 {
		t.Errorf("unchanged passwords cost %v bcrypt operations and rotated %v", d, rotated)
	}
	for _, u := range []string{"a", "b"} {
		if second[u].Hash != first[u].Hash || !second[u].RotatedAt.Time.Equal(first[u].RotatedAt.Time) {
			t.Errorf("unchanged password of %s got a new hash or rotation time", u)
		}
	}
}

func TestChangedPasswordIsRehashedAndOnlyIt(t *testing.T) {
	first, _, _ := hashPasswords(testKey, nil, users("pw-a", "pw-b"), 4, testNow, 0)
	ops := testutil.ToFloat64(bcryptOperations)
	next, rotated, err := hashPasswords(testKey, first, users("pw-a2", "pw-b"), 4, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if d := testutil.ToFloat64(bcryptOperations) - ops; d != 1 || !rotated["a"] || rotated["b"] {
		t.Errorf("%v bcrypt operations, rotated %v; want 1 and only a", d, rotated)
	}
	if bcrypt.CompareHashAndPassword([]byte(next["a"].Hash), []byte("pw-a2")) != nil {
		t.Error("a's new hash does not verify its new password")
	}
	if next["b"].Hash != first["b"].Hash {
		t.Error("b's hash changed")
	}
}

func TestCostChangeRehashesEveryPassword(t *testing.T) {
	first, _, _ := hashPasswords(testKey, nil, users("pw-a"), 4, testNow, 0)
	next, rotated, _ := hashPasswords(testKey, first, users("pw-a"), 5, testNow, 0)
	if c, _ := bcrypt.Cost([]byte(next["a"].Hash)); c != 5 || !rotated["a"] {
		t.Errorf("cost %d rotated %v after raising the cost to 5", c, rotated)
	}
}

func TestUnresolvedUsersAreLeftOut(t *testing.T) {
	got, _, _ := hashPasswords(testKey, nil, users("pw-a", ""), 4, testNow, 0)
	if _, ok := got["b"]; ok || len(got) != 1 {
		t.Errorf("records %v, want only a", got)
	}
}

func TestFingerprintDependsOnKeyUserAndPassword(t *testing.T) {
	base := fingerprint(testKey, "a", []byte("pw"))
	other := bytes.Repeat([]byte{8}, fingerprintKeyBytes)
	for name, fp := range map[string]string{
		"another key":      fingerprint(other, "a", []byte("pw")),
		"another user":     fingerprint(testKey, "b", []byte("pw")),
		"another password": fingerprint(testKey, "a", []byte("pw2")),
		"shifted boundary": fingerprint(testKey, "ap", []byte("w")),
	} {
		if fp == base {
			t.Errorf("%s gives the same fingerprint", name)
		}
	}
	if bytes.Contains([]byte(base), []byte("pw")) {
		t.Error("fingerprint contains the password")
	}
}

func TestDamagedFingerprintsOnlyCostARehash(t *testing.T) {
	if f := parseFingerprints([]byte("{not json")); len(f) != 0 {
		t.Errorf("parsed %v", f)
	}
}

func TestHeldHashingKeepsChangedPasswordsOnTheirRecordsAndHashesNewUsers(t *testing.T) {
	first, _, _ := hashPasswords(testKey, nil, users("pw-a", "pw-b"), 4, testNow, 0)
	ops := testutil.ToFloat64(bcryptOperations)
	// a's password changed, b's did not, c is new.
	next, rotated, held, err := hashPasswordsPaced(testKey, first, users("pw-a2", "pw-b", "pw-c"), 4, testNow, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if d := testutil.ToFloat64(bcryptOperations) - ops; d != 1 || held != 1 || !rotated["c"] || len(rotated) != 1 {
		t.Errorf("%v bcrypt operations, %d held, rotated %v; want 1 (the new user c), a held", d, held, rotated)
	}
	if next["a"] != first["a"] || next["b"] != first["b"] {
		t.Error("while held, a and b must keep their records")
	}
	// A cost change is not held: every hash is redone.
	recost, rotated, held, _ := hashPasswordsPaced(testKey, first, users("pw-a2", "pw-b"), 5, testNow, 0, true)
	if c, _ := bcrypt.Cost([]byte(recost["a"].Hash)); c != 5 || held != 0 || len(rotated) != 2 {
		t.Errorf("cost %d, %d held, rotated %v after raising the cost while held", c, held, rotated)
	}
}

func TestHashPacingLetsTheFirstChangeThroughAndHoldsTheNextForTheRestOfTheInterval(t *testing.T) {
	p := newHashPacer()
	key := types.NamespacedName{Namespace: "ns", Name: "c"}
	if w := p.wait(key); w != 0 {
		t.Fatalf("a cluster never hashed waits %v", w)
	}
	p.rehashed(key)
	if w := p.wait(key); w <= 0 || w > hashPacing {
		t.Errorf("right after a re-hash the wait is %v, want in (0, %v]", w, hashPacing)
	}
	if w := p.wait(types.NamespacedName{Namespace: "ns", Name: "other"}); w != 0 {
		t.Errorf("another cluster waits %v", w)
	}
	p.forget(key)
	if w := p.wait(key); w != 0 {
		t.Errorf("a forgotten cluster waits %v", w)
	}
}
