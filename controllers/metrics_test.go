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

	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// gathered is one series of the operator's registry, as the metrics
// endpoint would serve it: the value of a gauge or counter, a histogram's
// count and sum.
func gathered(t *testing.T, name string, labels map[string]string) (value float64, count uint64, sum float64, found bool) {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				return 0, m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum(), true
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue(), 0, 0, true
			default:
				return m.GetGauge().GetValue(), 0, 0, true
			}
		}
	}
	return 0, 0, 0, false
}

func TestOperatorMetricsTimeARotationUntilEveryReadyPodServesIt(t *testing.T) {
	needAPIServer(t)
	const ns = "propagation"
	createPasswordSecret(t, ns, "carol-pw", "carol-1")
	nc := &v1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rot"},
		Spec: v1alpha1.NatsClusterSpec{
			Replicas: ptr.To[int32](2),
			Auth: v1alpha1.AuthSpec{Users: []v1alpha1.User{userRef("carol", "carol-pw"), userRef("dave", "no-such-secret")},
				BcryptCost: testCost},
		},
	}
	if err := k8s.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })
	_, secret := waitForConfig(t, nc, map[string]string{"carol": "carol-1"})
	first := resources.ConfigDigest(secret.Data[resources.ConfigKey])
	waitForConfigHash(t, nc, first)
	fakeRoutes.Store(1)
	fakeDigest.Store(first)
	makeReady(t, brokerPod(t, nc, 0))
	makeReady(t, brokerPod(t, nc, 1))
	waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)

	// Users by state, labelled by cluster, never by user.
	cluster := map[string]string{"namespace": ns, "natscluster": nc.Name}
	eventually(t, timeout, func() error {
		for state, want := range map[string]float64{"Resolved": 1, "SecretMissing": 1} {
			labels := map[string]string{"namespace": ns, "natscluster": nc.Name, "state": state}
			if got, _, _, _ := gathered(t, "natsforge_users", labels); got != want {
				return fmt.Errorf("natsforge_users%v = %v, want %v", labels, got, want)
			}
		}
		return nil
	})
	// The certificate the brokers serve, and the CA (TLS is on by default,
	// in mode Operator).
	got := getCluster(t, nc)
	for _, cert := range []string{"server", "ca"} {
		labels := map[string]string{"namespace": ns, "natscluster": nc.Name, "certificate": cert}
		v, _, _, found := gathered(t, "natsforge_certificate_expiry_timestamp_seconds", labels)
		if !found || v < float64(time.Now().Unix()) {
			t.Errorf("natsforge_certificate_expiry_timestamp_seconds%v = %v (found %v)", labels, v, found)
		}
		if cert == "server" && got.Status.TLS != nil && int64(v) != got.Status.TLS.NotAfter.Unix() {
			t.Errorf("server certificate expiry %v, status.tls.notAfter %v", v, got.Status.TLS.NotAfter)
		}
	}
	if s, _, _, _ := gathered(t, "natsforge_reconciles_total", map[string]string{"result": "success"}); s == 0 {
		t.Error("natsforge_reconciles_total{result=success} is 0")
	}

	// Creating the cluster was no rotation.
	_, before, sumBefore, _ := gathered(t, "natsforge_rotation_propagation_seconds", nil)

	// A rotation the brokers take a while to load: the pods keep reporting
	// the old digest for held, then the new one.
	const held = 1500 * time.Millisecond
	start := time.Now()
	setPassword(t, ns, "carol-pw", "carol-2")
	_, secret = waitForConfig(t, nc, map[string]string{"carol": "carol-2"})
	second := resources.ConfigDigest(secret.Data[resources.ConfigKey])
	waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionFalse, v1alpha1.ReasonConfigPending)
	if _, n, _, _ := gathered(t, "natsforge_rotation_propagation_seconds", nil); n != before {
		t.Fatalf("a rotation was observed before any pod served it (%d -> %d)", before, n)
	}
	time.Sleep(held) // the stimulus: how long the brokers take, not a wait for a condition
	fakeDigest.Store("sha256:" + second)
	waitForCondition(t, nc, v1alpha1.ConditionConfigPropagated, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent)
	var after uint64
	var sum float64
	eventually(t, timeout, func() error {
		_, after, sum, _ = gathered(t, "natsforge_rotation_propagation_seconds", nil)
		if after != before+1 {
			return fmt.Errorf("rotations observed %d, want %d", after, before+1)
		}
		return nil
	})
	took := time.Duration((sum - sumBefore) * float64(time.Second))
	if took < held || took > time.Since(start) {
		t.Errorf("the rotation took %v by the histogram; the pods held the old config %v and the test ran %v", took, held, time.Since(start))
	}

	// Deleting the cluster drops its series.
	if err := k8s.Delete(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	eventually(t, timeout, func() error {
		if _, _, _, found := gathered(t, "natsforge_users", cluster); found {
			return fmt.Errorf("natsforge_users of a deleted cluster are still served")
		}
		return nil
	})
}
