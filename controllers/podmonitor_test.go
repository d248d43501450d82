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

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// podMonitorCRD is the least of the Prometheus Operator's PodMonitor CRD the
// operator needs: the kind served at monitoring.coreos.com/v1.
func podMonitorCRD() *apiextensionsv1.CustomResourceDefinition {
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "podmonitors.monitoring.coreos.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "monitoring.coreos.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "podmonitors", Singular: "podmonitor", Kind: "PodMonitor", ListKind: "PodMonitorList"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr.To(true),
				}},
			}},
		},
	}
}

// withPodMonitorCRD installs the CRD for the test and removes it after.
func withPodMonitorCRD(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	crd := podMonitorCRD()
	if err := k8s.Create(ctx, crd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { withoutPodMonitorCRD(t) })
	eventually(t, timeout, func() error {
		got := &apiextensionsv1.CustomResourceDefinition{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(crd), got); err != nil {
			return err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("CRD not established")
	})
}

// withoutPodMonitorCRD makes sure the API server serves no PodMonitors.
func withoutPodMonitorCRD(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	crd := podMonitorCRD()
	if err := k8s.Delete(ctx, crd); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	eventually(t, timeout, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(crd), crd); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the PodMonitor CRD is still there: %v", err)
		}
		return nil
	})
}

func monitoredCluster(t *testing.T, name string) *v1alpha1.NatsCluster {
	t.Helper()
	createPasswordSecret(t, "monitoring", name+"-pw", "pw")
	nc := &v1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: "monitoring", Name: name},
		Spec: v1alpha1.NatsClusterSpec{
			Replicas:   ptr.To[int32](1),
			Auth:       v1alpha1.AuthSpec{Users: []v1alpha1.User{userRef("alice", name+"-pw")}, BcryptCost: testCost},
			Monitoring: v1alpha1.MonitoringSpec{PodMonitor: true, PodMonitorLabels: map[string]string{"release": "kube-prometheus"}},
		},
	}
	if err := k8s.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })
	return nc
}

func TestAPodMonitorWithoutItsCRDIsAConditionAndNothingElse(t *testing.T) {
	needAPIServer(t)
	withoutPodMonitorCRD(t)
	nc := monitoredCluster(t, "no-crd")
	got := waitForCondition(t, nc, v1alpha1.ConditionPodMonitor, metav1.ConditionFalse, v1alpha1.ReasonPodMonitorCRDNotInstalled)
	if c := condition(got, v1alpha1.ConditionReady); c != nil && c.Reason == "ReconcileFailed" {
		t.Errorf("a missing PodMonitor CRD failed the reconcile: %+v", c)
	}
	// The rest of the cluster is there: the config, and its hash in status.
	waitForConfig(t, nc, map[string]string{"alice": "pw"})
	eventually(t, timeout, func() error {
		if getCluster(t, nc).Status.ConfigHash == "" {
			return fmt.Errorf("no config hash in status")
		}
		return nil
	})
}

func TestAPodMonitorScrapesEveryBrokerOverTLSWhenItsCRDIsInstalled(t *testing.T) {
	needAPIServer(t)
	withPodMonitorCRD(t)
	nc := monitoredCluster(t, "with-crd")
	got := waitForCondition(t, nc, v1alpha1.ConditionPodMonitor, metav1.ConditionTrue, v1alpha1.ReasonPodMonitorApplied)

	pm := &unstructured.Unstructured{}
	pm.SetGroupVersionKind(resources.PodMonitorGVK)
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: nc.Namespace, Name: nc.Name}, pm); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(pm, got) {
		t.Errorf("the PodMonitor is not controlled by the cluster: %v", pm.GetOwnerReferences())
	}
	if pm.GetLabels()["release"] != "kube-prometheus" || pm.GetLabels()[resources.LabelInstance] != nc.Name {
		t.Errorf("PodMonitor labels %v", pm.GetLabels())
	}
	sel, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
	if fmt.Sprint(sel) != fmt.Sprint(resources.SelectorLabels(nc)) {
		t.Errorf("selector %v, the pods' labels %v", sel, resources.SelectorLabels(nc))
	}
	eps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
	if len(eps) != 1 {
		t.Fatalf("endpoints %v", eps)
	}
	ep := eps[0].(map[string]any)
	caSecret, _, _ := unstructured.NestedString(ep, "tlsConfig", "ca", "secret", "name")
	serverName, _, _ := unstructured.NestedString(ep, "tlsConfig", "serverName")
	if ep["port"] != resources.MonitorPortName || ep["path"] != "/metrics" || ep["scheme"] != "https" ||
		caSecret != resources.ServerTLSSecretName(nc) || serverName != nc.Name+".monitoring.svc" {
		t.Errorf("endpoint %v", ep)
	}

	// Drift is put back by the next reconcile (the PodMonitor itself is
	// not watched: its kind may not exist); a spec change brings one.
	want := pm.Object["spec"]
	pm.Object["spec"] = map[string]any{"podMetricsEndpoints": []any{map[string]any{"port": "client"}}}
	if err := k8s.Update(context.Background(), pm); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, func() error {
		cur := getCluster(t, nc)
		cur.Spec.Monitoring.PodMonitorLabels["team"] = "messaging"
		return k8s.Update(context.Background(), cur)
	})
	eventually(t, timeout, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(pm), pm); err != nil {
			return err
		}
		if fmt.Sprint(pm.Object["spec"]) != fmt.Sprint(want) || pm.GetLabels()["team"] != "messaging" {
			return fmt.Errorf("PodMonitor spec %v, labels %v", pm.Object["spec"], pm.GetLabels())
		}
		return nil
	})

	// Turned off: the PodMonitor goes, and so does the condition.
	eventually(t, timeout, func() error {
		cur := getCluster(t, nc)
		cur.Spec.Monitoring.PodMonitor = false
		return k8s.Update(context.Background(), cur)
	})
	eventually(t, timeout, func() error {
		err := k8s.Get(context.Background(), client.ObjectKey{Namespace: nc.Namespace, Name: nc.Name}, pm)
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("PodMonitor still there: %v", err)
		}
		if c := condition(getCluster(t, nc), v1alpha1.ConditionPodMonitor); c != nil {
			return fmt.Errorf("condition still there: %+v", c)
		}
		return nil
	})
}
