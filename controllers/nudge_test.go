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

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

func TestStalePodsAreNudgedWithABackOffAndForgottenOnceCurrent(t *testing.T) {
	n := newKubeletNudges()
	cluster := types.NamespacedName{Namespace: "ns", Name: "c"}
	a := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "c-0", UID: "a"}}
	b := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "c-1", UID: "b"}}
	pods := []*corev1.Pod{a, b}
	t0 := time.Unix(1000, 0)
	names := func(due []*corev1.Pod) []string {
		var out []string
		for _, p := range due {
			out = append(out, p.Name)
		}
		return out
	}
	step := func(at time.Duration, stale map[string]bool, want string, expect ...string) {
		t.Helper()
		got := names(n.due(cluster, pods, stale, want, t0.Add(at)))
		if fmt.Sprint(got) != fmt.Sprint(expect) {
			t.Errorf("at %v: nudged %v, want %v", at, got, expect)
		}
	}
	onlyA := map[string]bool{"c-0": true}
	step(0, onlyA, "h1")                           // first seen stale: its wait starts
	step(4*time.Second, onlyA, "h1")               // not yet
	step(5*time.Second, onlyA, "h1", "c-0")        // nudgeAfter
	step(14*time.Second, onlyA, "h1")              // the next waits twice as long
	step(15*time.Second, onlyA, "h1", "c-0")       // 10 s after the first nudge
	step(35*time.Second, onlyA, "h1", "c-0")       // then 20 s
	step(75*time.Second, onlyA, "h1", "c-0")       // then 40 s
	step(135*time.Second, onlyA, "h1", "c-0")      // then nudgeMax, not 80 s
	step(195*time.Second, onlyA, "h1", "c-0")      // and nudgeMax again
	step(196*time.Second, onlyA, "h2")             // a new config starts the wait afresh
	step(201*time.Second, onlyA, "h2", "c-0")      //
	step(202*time.Second, map[string]bool{}, "h2") // current: forgotten
	step(203*time.Second, onlyA, "h2")             // stale again: a fresh wait
	step(208*time.Second, map[string]bool{"c-0": true, "c-1": true}, "h2", "c-0")
	step(213*time.Second, map[string]bool{"c-0": true, "c-1": true}, "h2", "c-1")
	n.forget(cluster)
	if len(n.pods) != 0 {
		t.Errorf("forget left %v", n.pods)
	}
	var none *kubeletNudges
	if got := none.due(cluster, pods, onlyA, "h", t0); got != nil {
		t.Errorf("a nil kubeletNudges nudged %v", names(got))
	}
}

// TestAPodThatGoesOnServingAnOlderConfigIsNudged: a ready pod that was told
// about the current config but still serves an older one, as when the
// kubelet refreshed its volume before it had the new Secret, gets
// AnnotationConfigNudges bumped (which makes the kubelet refresh again), and
// no more once it serves the current config.
func TestAPodThatGoesOnServingAnOlderConfigIsNudged(t *testing.T) {
	needAPIServer(t)
	const ns = "nudge"
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	nc := &v1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "nu"},
		Spec: v1alpha1.NatsClusterSpec{
			Replicas: ptr.To[int32](1),
			Auth:     v1alpha1.AuthSpec{Users: []v1alpha1.User{userRef("alice", "alice-pw")}, BcryptCost: testCost},
		},
	}
	if err := k8s.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })
	_, secret := waitForConfig(t, nc, map[string]string{"alice": "alice-1"})
	current := resources.ConfigDigest(secret.Data[resources.ConfigKey])
	waitForConfigHash(t, nc, current)
	fakeDigest.Store("sha256:0000")
	t.Cleanup(func() { fakeDigest.Store("") })
	pod := brokerPod(t, nc, 0)
	makeReady(t, pod)

	nudges := func() (hash, count string) {
		t.Helper()
		cur := &corev1.Pod{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), cur); err != nil {
			t.Fatal(err)
		}
		return cur.Annotations[resources.AnnotationConfigHash], cur.Annotations[resources.AnnotationConfigNudges]
	}
	start := time.Now()
	eventually(t, timeout, func() error {
		if hash, n := nudges(); hash != current || n != "1" {
			return fmt.Errorf("pod annotated with config %q and nudged %q times, want %q and 1", hash, n, current)
		}
		return nil
	})
	if waited := time.Since(start); waited < nudgeAfter-time.Second {
		t.Errorf("nudged %v after the pod was ready, before nudgeAfter (%v)", waited, nudgeAfter)
	}
	t.Logf("nudged %v after the pod became ready serving an older config", time.Since(start).Round(time.Millisecond))

	fakeDigest.Store("sha256:" + current)
	waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)
	if _, n := nudges(); n != "1" {
		t.Errorf("nudged %s times once it served the current config, want 1", n)
	}
}
