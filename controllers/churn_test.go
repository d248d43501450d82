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
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// reconciled is how many NatsCluster reconciles the operator has finished.
func reconciled() float64 {
	return testutil.ToFloat64(reconciles.WithLabelValues("success")) + testutil.ToFloat64(reconciles.WithLabelValues("error"))
}

// configRecords reads the fingerprint records of nc's config Secret (a
// config small enough to have no parts).
func configRecords(t *testing.T, nc *v1alpha1.NatsCluster) fingerprints {
	t.Helper()
	return parseFingerprints(resources.JoinFingerprints(getSecret(t, nc.Namespace, resources.ConfigSecretName(nc)), nil))
}

// Fifty edits of one password Secret in 10 s, at the chaos test's pace (5 a
// second). Each bcrypt the operator makes is the edited user's, at most one
// a reconcile (each hashes the value it read, the newest then; the edits
// that arrive meanwhile coalesce into the next) and at most one per
// hashPacing (the first edit at once, the others held to the interval's
// end): the other user and the system user keep the hashes they had, and
// the last password is served.
// The counters are the operator's, for every cluster: reconciles of other
// clusters (whose passwords do not change here, so they hash nothing) would
// only loosen the bound; a test run in parallel that hashes would break it.
func TestFiftyEditsOfOnePasswordHashOnlyThatUserAtMostOnceAReconcile(t *testing.T) {
	needAPIServer(t)
	const ns = "churn"
	// The API's default cost, as in the chaos test on the cluster
	// (test/e2e TestChaosFiftyEditsOfOnePassword): what a reconcile costs
	// decides how many edits it coalesces.
	const cost = defaultBcryptCost
	createPasswordSecret(t, ns, "edited-pw", "edit-00")
	createPasswordSecret(t, ns, "steady-pw", "steady")
	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "churn"}}
	nc.Spec.Auth = v1alpha1.AuthSpec{BcryptCost: cost, Users: []v1alpha1.User{userRef("edited", "edited-pw"), userRef("steady", "steady-pw")}}
	if err := k8s.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })
	waitForConfig(t, nc, map[string]string{"edited": "edit-00", "steady": "steady"})
	before := configRecords(t, nc)
	if _, ok := before[resources.SystemUserName]; !ok {
		t.Fatalf("no system user among the records")
	}

	ops, recs := testutil.ToFloat64(bcryptOperations), reconciled()
	start := time.Now()
	final := ""
	for i := 1; i <= 50; i++ {
		final = fmt.Sprintf("edit-%02d", i)
		setPassword(t, ns, "edited-pw", final)
		time.Sleep(time.Until(start.Add(time.Duration(i) * 200 * time.Millisecond)))
	}
	editing := time.Since(start)
	waitForConfig(t, nc, map[string]string{"edited": final, "steady": "steady"})
	hashed, ran := testutil.ToFloat64(bcryptOperations)-ops, reconciled()-recs
	t.Logf("50 edits in %v at cost %d: %v bcrypt operations in %v reconciles", time.Since(start).Round(time.Millisecond), cost, hashed, ran)

	after := configRecords(t, nc)
	for _, user := range []string{"steady", resources.SystemUserName} {
		if after[user].Hash != before[user].Hash {
			t.Errorf("user %s, whose password did not change, was hashed again", user)
		}
	}
	if hashed < 1 || hashed > ran {
		t.Errorf("%v bcrypt operations in %v reconciles, want between 1 and one a reconcile", hashed, ran)
	}
	// One per pacing interval over the edits, the first at once, and the
	// last edits' after the final interval.
	if limit := float64(editing/hashPacing) + 2; hashed > limit {
		t.Errorf("%v bcrypt operations for 50 edits, want at most %v: one per %v", hashed, limit, hashPacing)
	}
}
