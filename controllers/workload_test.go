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
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

func unitCluster() *v1alpha1.NatsCluster {
	return &v1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"},
		Spec:       v1alpha1.NatsClusterSpec{Replicas: ptr.To[int32](3)},
	}
}

func TestStatefulSetIsLeftAloneWhenOnlyTheAPIServerDefaultedIt(t *testing.T) {
	desired := resources.StatefulSet(unitCluster(), "img")
	desired.Annotations = map[string]string{annotationSpecHash: specHash(desired.Spec)}
	existing := desired.DeepCopy()
	// What the API server fills in.
	existing.Spec.RevisionHistoryLimit = ptr.To[int32](10)
	c := &existing.Spec.Template.Spec.Containers[0]
	c.ImagePullPolicy = corev1.PullIfNotPresent
	c.TerminationMessagePath = "/dev/termination-log"
	existing.Spec.Template.Spec.DNSPolicy = corev1.DNSClusterFirst
	existing.Spec.Template.Spec.SchedulerName = "default-scheduler"
	if updateStatefulSet(existing, desired) {
		t.Error("an update for defaulted fields only")
	}

	scaled := unitCluster()
	scaled.Spec.Replicas = ptr.To[int32](5)
	desired = resources.StatefulSet(scaled, "img")
	desired.Annotations = map[string]string{annotationSpecHash: specHash(desired.Spec)}
	if !updateStatefulSet(existing, desired) || *existing.Spec.Replicas != 5 {
		t.Error("scaling not applied")
	}
}

func TestStatefulSetDriftIsRepaired(t *testing.T) {
	desired := resources.StatefulSet(unitCluster(), "img")
	desired.Annotations = map[string]string{annotationSpecHash: specHash(desired.Spec)}
	existing := desired.DeepCopy()
	existing.Spec.Template.Spec.Containers[0].Image = "someone-elses"
	if !updateStatefulSet(existing, desired) || existing.Spec.Template.Spec.Containers[0].Image != "img" {
		t.Error("a hand-edited image was not put back")
	}
}

func TestServiceUpdateKeepsAllocatedNodePorts(t *testing.T) {
	nc := unitCluster()
	nc.Spec.Service.Type = corev1.ServiceTypeNodePort
	desired := resources.ClientService(nc)
	existing := desired.DeepCopy()
	existing.Spec.Ports[0].NodePort = 30222
	existing.Spec.ClusterIP = "10.0.0.7"
	if updateService(existing, desired) {
		t.Error("an update although only the API server's allocations differ")
	}
	nc.Spec.Service.Type = corev1.ServiceTypeClusterIP
	if !updateService(existing, resources.ClientService(nc)) || existing.Spec.Ports[0].NodePort != 0 {
		t.Errorf("back to ClusterIP: ports %+v", existing.Spec.Ports)
	}
}

func TestBrokerPodChangesThatMatter(t *testing.T) {
	base := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: resources.SelectorLabels(unitCluster())}}
	tests := []struct {
		name   string
		change func(*corev1.Pod)
		want   bool
	}{
		{"nothing that matters", func(p *corev1.Pod) { p.Labels["x"] = "y" }, false},
		{"got an address", func(p *corev1.Pod) { p.Status.PodIP = "10.0.0.1" }, true},
		{"turned ready", func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
		}, true},
		{"lost the config annotation", func(p *corev1.Pod) { p.Annotations = map[string]string{resources.AnnotationConfigHash: "x"} }, true},
	}
	for _, tt := range tests {
		cur := base.DeepCopy()
		tt.change(cur)
		if got := brokerPodChanged.Update(event.UpdateEvent{ObjectOld: base, ObjectNew: cur}); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	reqs := clusterOfPod(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Labels: base.Labels}})
	if len(reqs) != 1 || reqs[0].Name != "c" || reqs[0].Namespace != "ns" {
		t.Errorf("pod maps to %v", reqs)
	}
	if reqs := clusterOfPod(context.Background(), &corev1.Pod{}); len(reqs) != 0 {
		t.Errorf("unlabelled pod maps to %v", reqs)
	}
}

func TestBcryptCounterIsOnTheOperatorsMetrics(t *testing.T) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "natsforge_bcrypt_operations_total" {
			return
		}
	}
	t.Error("natsforge_bcrypt_operations_total is not on controller-runtime's metrics registry")
}
