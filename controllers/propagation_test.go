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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// brokerPod stands in for the pod the StatefulSet controller would create
// (envtest runs no controllers and no kubelet).
func brokerPod(t *testing.T, nc *v1alpha1.NatsCluster, i int32) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: nc.Namespace, Name: "default"}}
	_ = k8s.Create(ctx, sa)
	sts := resources.StatefulSet(nc, "img")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: nc.Namespace, Name: resources.PodName(nc, i), Labels: sts.Spec.Template.Labels},
		Spec:       sts.Spec.Template.Spec,
	}
	pod.Spec.AutomountServiceAccountToken = ptr.To(false)
	if err := k8s.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// makeReady gives a pod the address of the fake /varz and a Ready condition.
func makeReady(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	eventually(t, timeout, func() error {
		cur := &corev1.Pod{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), cur); err != nil {
			return err
		}
		cur.Status.PodIP = "127.0.0.1"
		cur.Status.PodIPs = []corev1.PodIP{{IP: "127.0.0.1"}}
		cur.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		return k8s.Status().Update(context.Background(), cur)
	})
}

// TestPodsAreToldAboutANewConfigAndReportServingIt also checks that Ready
// waits for the brokers' routes to one another: both pods answer from the same
// fake /varz, so its routes count is each pod's.
func TestPodsAreToldAboutANewConfigAndReportServingIt(t *testing.T) {
	needAPIServer(t)
	const ns = "propagation"
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	nc := &v1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pr"},
		Spec: v1alpha1.NatsClusterSpec{
			Replicas: ptr.To[int32](2),
			Auth:     v1alpha1.AuthSpec{Users: []v1alpha1.User{userRef("alice", "alice-pw")}, BcryptCost: testCost},
		},
	}
	if err := k8s.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })
	_, secret := waitForConfig(t, nc, map[string]string{"alice": "alice-1"})
	first := resources.ConfigDigest(secret.Data[resources.ConfigKey])
	waitForConfigHash(t, nc, first)
	fakeRoutes.Store(0)
	pod, pod1 := brokerPod(t, nc, 0), brokerPod(t, nc, 1)

	// The new pod is annotated with the config it should load (which makes
	// the kubelet refresh the mounted Secret at once); its template is not.
	podAnnotated := func(want string) {
		t.Helper()
		eventually(t, timeout, func() error {
			cur := &corev1.Pod{}
			if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(pod), cur); err != nil {
				return err
			}
			if got := cur.Annotations[resources.AnnotationConfigHash]; got != want {
				return fmt.Errorf("pod annotation %q, want %q", got, want)
			}
			return nil
		})
	}
	podAnnotated(first)

	// A ready pod that serves an older config keeps the condition False...
	fakeDigest.Store("sha256:0000")
	makeReady(t, pod)
	makeReady(t, pod1)
	waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionFalse, v1alpha1.ReasonConfigPending)
	// ...until it reports the current digest (the reconciler polls meanwhile).
	fakeDigest.Store(first)
	waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)

	// A rotation bumps the annotation and waits for the pods again.
	setPassword(t, ns, "alice-pw", "alice-2")
	_, secret = waitForConfig(t, nc, map[string]string{"alice": "alice-2"})
	second := resources.ConfigDigest(secret.Data[resources.ConfigKey])
	waitForConfigHash(t, nc, second)
	podAnnotated(second)
	waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionFalse, v1alpha1.ReasonConfigPending)
	fakeDigest.Store("sha256:" + second)
	waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)

	// Every pod ready (envtest runs no StatefulSet controller: say so in its
	// status) is not enough for Ready while the brokers have no routes to
	// each other: a message published on one would not reach the other...
	eventually(t, timeout, func() error {
		sts := &appsv1.StatefulSet{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(nc), sts); err != nil {
			return err
		}
		sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: 2, ReadyReplicas: 2,
			UpdatedReplicas: 2, CurrentReplicas: 2, AvailableReplicas: 2}
		return k8s.Status().Update(context.Background(), sts)
	})
	got := waitForCondition(t, nc, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonMeshIncomplete)
	if msg := condition(got, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "0 of 2 brokers have routes to all peers") ||
		!strings.Contains(msg, resources.PodName(nc, 1)+": routes to 0 of 1 peers") {
		t.Errorf("Ready message %q", msg)
	}
	// ...and ConfigPropagated keeps its meaning.
	if c := condition(got, v1alpha1.ConditionConfigPropagated); c.Status != metav1.ConditionTrue {
		t.Errorf("ConfigPropagated %+v", c)
	}
	// Routes forming change no Kubernetes object: the reconciler polls and
	// sees them.
	fakeRoutes.Store(1)
	got = waitForCondition(t, nc, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonAvailable)
	if msg := condition(got, v1alpha1.ConditionReady).Message; !strings.Contains(msg, "every broker has routes to all peers") {
		t.Errorf("Ready message %q", msg)
	}
}

func waitForConfigHash(t *testing.T, nc *v1alpha1.NatsCluster, want string) {
	t.Helper()
	eventually(t, timeout, func() error {
		if got := getCluster(t, nc).Status.ConfigHash; got != want {
			return fmt.Errorf("status.configHash %q, want %q", got, want)
		}
		return nil
	})
}
