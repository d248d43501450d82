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
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// backoffNamespace is not watched by the suite's manager: the back-off test
// drives its own reconciler, with its own cache, at times of its choosing.
const backoffNamespace = "backoff"

func TestProbeBackoffDoublesFromTwoSecondsToFiveMinutes(t *testing.T) {
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second,
		64 * time.Second, 128 * time.Second, 256 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, w := range want {
		if got := probeBackoff(i + 1); got != w {
			t.Errorf("after %d failed probes: %v, want %v", i+1, got, w)
		}
	}
	if got := probeBackoff(1000); got != probeBackoffMax {
		t.Errorf("after 1000 failed probes: %v", got)
	}
}

func TestANewConfigRestartsTheBackoff(t *testing.T) {
	m := newProbeMemos()
	key := types.NamespacedName{Namespace: "ns", Name: "c"}
	failing := &request{configHash: "a", propagation: propagation{observed: true, asked: 1, unreachable: []string{"c-0"}}}
	for i := 1; i <= 3; i++ {
		if got := m.record(key, "in", failing); got != i {
			t.Fatalf("failure %d counted as %d", i, got)
		}
	}
	if _, ok := m.probeOnly(key, "in", time.Now()); !ok {
		t.Error("unchanged inputs in back-off: not probe-only")
	}
	if _, ok := m.probeOnly(key, "changed", time.Now()); ok {
		t.Error("changed inputs: probe-only")
	}
	failing.configHash = "b"
	if got := m.record(key, "in", failing); got != 1 {
		t.Errorf("a new config: failure counted as %d, want 1", got)
	}
	answered := &request{configHash: "b", propagation: propagation{observed: true, asked: 1, current: 1}}
	if got := m.record(key, "in", answered); got != 0 {
		t.Errorf("every pod answered: %d failures", got)
	}
	if _, ok := m.probeOnly(key, "in", time.Now()); ok {
		t.Error("out of back-off: probe-only")
	}
	failing.tls.next = time.Now().Add(time.Hour)
	m.record(key, "in", failing)
	if _, ok := m.probeOnly(key, "in", time.Now().Add(time.Hour)); ok {
		t.Error("a certificate renewal is due: probe-only")
	}
}

// switchProber stands in for the pods' /varz: unreachable until up is set,
// then serving digest with full routes.
type switchProber struct {
	up     atomic.Bool
	digest atomic.Value
	asked  atomic.Int64
}

func (p *switchProber) Varz(context.Context, *corev1.Pod, *BrokerTrust) (BrokerState, error) {
	p.asked.Add(1)
	if !p.up.Load() {
		return BrokerState{}, errors.New("dial tcp 127.0.0.1:8222: connect: connection refused")
	}
	return BrokerState{ConfigDigest: p.digest.Load().(string), Routes: 2}, nil
}

// secretGets counts the API requests that read a Secret.
type secretGets struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (s secretGets) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/secrets") {
		s.n.Add(1)
	}
	return s.next.RoundTrip(req)
}

// TestUnreachablePodsAreProbedWithABackoffThatReadsNoSecret drives a
// reconciler wired as the operator's (reads of StatefulSets, Services and
// Pods from an informer cache, Secrets and the NatsCluster from the API
// server, every request counted) through 20 minutes of an injected clock
// while its three ready pods' /varz cannot be reached.
func TestUnreachablePodsAreProbedWithABackoffThatReadsNoSecret(t *testing.T) {
	needAPIServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ns, users = backoffNamespace, 20

	informers, err := cache.New(restConfig, cache.Options{Scheme: testScheme, DefaultNamespaces: map[string]cache.Config{ns: {}}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = informers.Start(ctx) }()
	calls := &callCounter{}
	var secretReads atomic.Int64
	cfg := rest.CopyConfig(restConfig)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return countingTransport{next: secretGets{next: rt, n: &secretReads}, calls: calls}
	}
	direct, err := client.New(cfg, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	cached, err := client.New(cfg, client.Options{Scheme: testScheme, Cache: &client.CacheOptions{Reader: informers, DisableFor: []client.Object{&corev1.Secret{}}}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	prober := &switchProber{}
	r := &NatsClusterReconciler{Client: cached, APIReader: direct, Cache: informers, Digests: prober,
		DefaultImage: DefaultImage("test"), Now: func() time.Time { return now }, probes: newProbeMemos()}

	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "far"}}
	nc.Spec.Replicas = ptr.To[int32](3)
	nc.Spec.TLS.Mode = v1alpha1.TLSModeDisabled
	nc.Spec.Auth.BcryptCost = testCost
	for i := range users {
		name := fmt.Sprintf("user-%02d", i)
		createPasswordSecret(t, ns, name, "pw-"+name)
		nc.Spec.Auth.Users = append(nc.Spec.Auth.Users, userRef(name, name))
	}
	if err := k8s.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}
	reconcileNow := func() time.Duration {
		t.Helper()
		res, err := r.Reconcile(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res.RequeueAfter
	}

	reconcileNow() // creates everything; no pod yet
	for i := range int32(3) {
		makeReady(t, brokerPod(t, nc, i))
	}
	// The informers see the ready pods and everything the first reconcile
	// wrote; a second reconcile then finds nothing to write.
	eventually(t, timeout, func() error {
		var pods corev1.PodList
		if err := informers.List(ctx, &pods, client.InNamespace(ns)); err != nil {
			return err
		}
		if ready := len(pods.Items); ready != 3 || pods.Items[2].Status.PodIP == "" {
			return fmt.Errorf("the cache holds %d pods", ready)
		}
		return nil
	})

	// A full reconcile reads every user's Secret: the cost of each poll
	// before the back-off. It is repeated (each time a full one) until the
	// informers had seen everything before it began, as they would have in
	// the operator by the time a requeue comes.
	var first time.Duration
	var fullGets int
	var fullSecretReads int64
	eventually(t, timeout, func() error {
		calls.reset()
		secretReads.Store(0)
		first = reconcileNow()
		fullGets, fullSecretReads = calls.snapshot()["GET"], secretReads.Load()
		if fullSecretReads < users {
			t.Fatalf("a full reconcile read %d Secrets, want at least the %d users'", fullSecretReads, users)
		}
		if r.inputsVersion(ctx, getCluster(t, nc)) != r.probes.m[req.NamespacedName].inputs {
			return errors.New("the informers were behind when the full reconcile began")
		}
		return nil
	})
	got := getCluster(t, nc)
	c := condition(got, v1alpha1.ConditionConfigPropagated)
	if c == nil || c.Status != metav1.ConditionUnknown || c.Reason != v1alpha1.ReasonProbeFailed ||
		!strings.Contains(c.Message, "far-0, far-1, far-2") {
		t.Fatalf("ConfigPropagated %+v, want Unknown/ProbeFailed naming far-0, far-1, far-2", c)
	}

	// The back-off: each requeue twice the last, capped at 5 minutes; the
	// reconciles in it read no Secret.
	var intervals []time.Duration
	wait := first
	start := now
	calls.reset()
	secretReads.Store(0)
	asked := prober.asked.Load()
	probes := 0
	for now.Sub(start) < 20*time.Minute {
		intervals = append(intervals, wait)
		now = now.Add(wait)
		wait = reconcileNow()
		probes++
	}
	backoffCalls := calls.snapshot()
	for i := 1; i < len(intervals); i++ {
		want := min(2*intervals[i-1], probeBackoffMax)
		if intervals[i] != want {
			t.Errorf("requeue intervals %v: #%d is %v, want %v", intervals, i, intervals[i], want)
			break
		}
	}
	if intervals[len(intervals)-1] != probeBackoffMax {
		t.Errorf("requeue intervals %v never reach %v", intervals, probeBackoffMax)
	}
	if n := secretReads.Load(); n != 0 {
		t.Errorf("%d probe-only reconciles read %d Secrets, want 0", probes, n)
	}
	if n := prober.asked.Load() - asked; n != int64(3*probes) {
		t.Errorf("%d reconciles asked /varz %d times, want every pod each time", probes, n)
	}
	elapsed := now.Sub(start)
	t.Logf("full reconcile (20 users, 3 pods): %d GETs, %d of them Secrets; every %v before, i.e. %.1f GETs/s",
		fullGets, fullSecretReads, propagationPoll, float64(fullGets)/propagationPoll.Seconds())
	t.Logf("back-off over %v of clock: %d reconciles, requeues %v, API requests %v: %.3f GETs/s",
		elapsed, probes, intervals, backoffCalls, float64(backoffCalls["GET"])/elapsed.Seconds())
	if perProbe := float64(backoffCalls["GET"]) / float64(probes); perProbe > 1 {
		t.Errorf("%.1f GETs per probe-only reconcile, want only the NatsCluster's", perProbe)
	}

	// A password rotated during the back-off is a change: the next reconcile
	// is a full one and writes the new config.
	hash := getCluster(t, nc).Status.ConfigHash
	setPassword(t, ns, "user-00", "rotated")
	rotatedSecret := getSecret(t, ns, "user-00")
	eventually(t, timeout, func() error {
		seen := &metav1.PartialObjectMetadata{}
		seen.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
		if err := informers.Get(ctx, client.ObjectKeyFromObject(rotatedSecret), seen); err != nil {
			return err
		}
		if seen.ResourceVersion != rotatedSecret.ResourceVersion {
			return errors.New("the informer has not seen the rotation yet")
		}
		return nil
	})
	secretReads.Store(0)
	if wait = reconcileNow(); wait != probeBackoffMin {
		t.Errorf("after a new config: requeue after %v, want the back-off to start over at %v", wait, probeBackoffMin)
	}
	if secretReads.Load() < users {
		t.Errorf("the reconcile after a rotation read %d Secrets: it was not a full one", secretReads.Load())
	}
	rotated := getCluster(t, nc).Status.ConfigHash
	if rotated == hash {
		t.Fatal("the rotation did not reach the config")
	}

	// The pods answer again: ConfigPropagated is True, the back-off ends.
	prober.digest.Store(rotated)
	prober.up.Store(true)
	now = now.Add(wait)
	if wait = reconcileNow(); wait != 0 {
		t.Errorf("every pod answered: requeue after %v, want none", wait)
	}
	got = getCluster(t, nc)
	if c := condition(got, v1alpha1.ConditionConfigPropagated); c.Status != metav1.ConditionTrue {
		t.Errorf("ConfigPropagated %+v after the pods answered", c)
	}
	if _, ok := r.probes.m[req.NamespacedName]; ok {
		t.Error("the cluster is still remembered as in back-off")
	}
}
