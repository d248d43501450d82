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

func TestPodsAreToldAboutANewConfigAndReportServingIt(t *testing.T) {
	needAPIServer(t)
	const ns = "propagation"
	createPasswordSecret(t, ns, "alice-pw", "alice-1")
	nc := &v1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pr"},
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
	first := resources.ConfigDigest(secret.Data[resources.ConfigKey])
	waitForConfigHash(t, nc, first)
	pod := brokerPod(t, nc, 0)

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
