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
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/crypto/bcrypt"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// TestReconcileTimingOfFiftyUsers measures one reconcile of a 50-user cluster
// at the default bcrypt cost (11), against the envtest API server, when
// nothing changed and when one password changed. Its reconciler reads through
// a direct client (the namespace is not in the suite manager's cache), which
// is slower than the operator's cached reads of StatefulSets and Pods, so the
// figures are an upper bound. Run it with:
//
//	go test ./controllers -run TestReconcileTimingOfFiftyUsers -v
func TestReconcileTimingOfFiftyUsers(t *testing.T) {
	needAPIServer(t)
	if testing.Short() {
		t.Skip("hashes 50 passwords at bcrypt cost 11")
	}
	const ns, users, rounds = unwatchedNamespace, 50, 10
	ctx := context.Background()
	counted, calls := countingClient(t)
	r := &NatsClusterReconciler{Client: counted, APIReader: counted, DefaultImage: DefaultImage("test"), Digests: HTTPDigestProber{}}

	nc := &v1alpha1.NatsCluster{}
	nc.Namespace, nc.Name = ns, "fifty"
	nc.Spec.Auth.BcryptCost = 11
	for i := range users {
		name := fmt.Sprintf("user-%02d", i)
		createPasswordSecret(t, ns, name, "initial-"+name)
		nc.Spec.Auth.Users = append(nc.Spec.Auth.Users, userRef(name, name))
	}
	if err := k8s.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(ctx, nc) })
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}

	var lastCalls map[string]int
	run := func() time.Duration {
		t.Helper()
		calls.reset()
		start := time.Now()
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		lastCalls = calls.snapshot()
		return d
	}

	ops := testutil.ToFloat64(bcryptOperations)
	first := run()
	t.Logf("first reconcile (creates everything, %v bcrypt operations): %v", testutil.ToFloat64(bcryptOperations)-ops, first)
	run() // the status write of the first reconcile settles

	ops = testutil.ToFloat64(bcryptOperations)
	var unchanged []time.Duration
	for range rounds {
		unchanged = append(unchanged, run())
	}
	if d := testutil.ToFloat64(bcryptOperations) - ops; d != 0 {
		t.Errorf("unchanged reconciles cost %v bcrypt operations", d)
	}
	unchangedCalls := lastCalls
	for verb, n := range unchangedCalls {
		if verb != "GET" {
			t.Errorf("an unchanged reconcile sent %d %s requests", n, verb)
		}
	}

	var oneChanged []time.Duration
	var changedCalls map[string]int
	for i := range rounds {
		name := fmt.Sprintf("user-%02d", i)
		setPassword(t, ns, name, "rotated-"+name)
		ops = testutil.ToFloat64(bcryptOperations)
		oneChanged = append(oneChanged, run())
		changedCalls = lastCalls
		if d := testutil.ToFloat64(bcryptOperations) - ops; d != 1 {
			t.Errorf("one changed password cost %v bcrypt operations", d)
		}
		run() // settle the status write (lastRotationTime)
	}
	t.Logf("50 users, nothing changed: median %v, min %v, max %v over %d reconciles; API requests %v, 0 bcrypt",
		median(unchanged), slices.Min(unchanged), slices.Max(unchanged), rounds, unchangedCalls)
	t.Logf("50 users, one password changed: median %v, min %v, max %v over %d reconciles; API requests %v, 1 bcrypt",
		median(oneChanged), slices.Min(oneChanged), slices.Max(oneChanged), rounds, changedCalls)

	start := time.Now()
	if _, err := bcrypt.GenerateFromPassword([]byte("x"), 11); err != nil {
		t.Fatal(err)
	}
	t.Logf("for scale, one bcrypt hash at cost 11 on this machine now: %v", time.Since(start))
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// callCounter counts API requests by HTTP method.
type callCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *callCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n = map[string]int{}
}

func (c *callCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

type countingTransport struct {
	next  http.RoundTripper
	calls *callCounter
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.calls.mu.Lock()
	if t.calls.n != nil {
		t.calls.n[req.Method]++
	}
	t.calls.mu.Unlock()
	return t.next.RoundTrip(req)
}

// countingClient is a direct client whose API requests are counted.
func countingClient(t *testing.T) (client.Client, *callCounter) {
	t.Helper()
	calls := &callCounter{}
	cfg := rest.CopyConfig(restConfig)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt, calls: calls} }
	c, err := client.New(cfg, client.Options{Scheme: testScheme})
	if err != nil {
		t.Fatal(err)
	}
	return c, calls
}
