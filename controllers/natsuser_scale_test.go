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
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/controllers/resources"
)

// scaleNamespace is not watched by the suite's manager: the test drives its
// own reconciler, so that nothing else reconciles the cluster while it
// counts.
const scaleNamespace = "nu-scale"

// TestTenThousandNatsUsersResyncWithoutBcryptOrWrites creates 10,000
// NatsUsers with generated passwords for one cluster, reconciles it cold,
// then again: the resync must cost no bcrypt and send no write. The config
// no longer fits one Secret, so it also goes through the parts. Run it with
//
//	go test ./controllers -run TestTenThousandNatsUsers -v
//
// NATSFORGE_TEST_NATSUSERS=300 runs it with fewer users (to check quickly
// that it fails when what it checks is broken).
func TestTenThousandNatsUsersResyncWithoutBcryptOrWrites(t *testing.T) {
	needAPIServer(t)
	if testing.Short() {
		t.Skip("creates 10,000 NatsUsers")
	}
	users := 10000
	if n, err := strconv.Atoi(os.Getenv("NATSFORGE_TEST_NATSUSERS")); err == nil && n > 0 {
		users = n
	}
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: scaleNamespace}}); err != nil {
		t.Fatal(err)
	}
	counted, calls := countingClient(t)
	r := &NatsClusterReconciler{Client: counted, APIReader: counted, DefaultImage: DefaultImage("test"), Digests: HTTPDigestProber{}}

	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: scaleNamespace, Name: "ten-k"}}
	nc.Spec.Auth.BcryptCost = testCost
	if err := k8s.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range users {
		g.Go(func() error {
			return k8s.Create(gctx, &v1alpha1.NatsUser{
				ObjectMeta: metav1.ObjectMeta{Namespace: scaleNamespace, Name: fmt.Sprintf("user-%05d", i)},
				Spec:       v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: nc.Name}},
			})
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("created %d NatsUsers in %v", users, time.Since(start))
	t.Cleanup(func() {
		_ = k8s.DeleteAllOf(ctx, &v1alpha1.NatsUser{}, client.InNamespace(scaleNamespace))
		_ = k8s.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(scaleNamespace))
		_ = k8s.Delete(ctx, nc)
	})
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}
	run := func() (time.Duration, float64, map[string]int) {
		t.Helper()
		calls.reset()
		ops := testutil.ToFloat64(bcryptOperations)
		start := time.Now()
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
		return time.Since(start), testutil.ToFloat64(bcryptOperations) - ops, calls.snapshot()
	}

	d, ops, c := run()
	t.Logf("cold reconcile of %d NatsUsers: %v, %v bcrypt operations (cost %d), API requests %v", users, d, ops, testCost, c)
	// One more for the system account's user (spec.systemAccount, on by default).
	if ops != float64(users+1) {
		t.Errorf("cold reconcile cost %v bcrypt operations, want %d (the users and the system user)", ops, users+1)
	}
	run() // settles what the first one observed (the cluster's status)

	for range 2 {
		d, ops, c = run()
		t.Logf("resync of %d NatsUsers: %v, %v bcrypt operations, API requests %v", users, d, ops, c)
		if ops != 0 {
			t.Errorf("a resync of %d unchanged NatsUsers cost %v bcrypt operations", users, ops)
		}
		for verb, n := range c {
			if verb != "GET" {
				t.Errorf("a resync of %d unchanged NatsUsers sent %d %s requests", users, n, verb)
			}
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	t.Logf("test process after the resyncs: heap in use %d MiB, %s", m.HeapInuse>>20, vmRSS())

	// The config the brokers would load: the parts joined, every user in it.
	config := joinedConfig(t, nc)
	o, _, err := conf.Load(config, "nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(o.Authorization.Users); n != users {
		t.Errorf("the joined config has %d users, want %d", n, users)
	}
	if got := getCluster(t, nc); got.Status.ConfigHash != resources.ConfigDigest(config) || got.Status.ResolvedUsers != int32(users) {
		t.Errorf("cluster status configHash %s resolvedUsers %d; the joined config's digest is %s", got.Status.ConfigHash, got.Status.ResolvedUsers, resources.ConfigDigest(config))
	}

	// One password changed among 10,000: edit to config Secret written.
	s := &corev1.Secret{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: scaleNamespace, Name: fmt.Sprintf("user-%05d-user-credentials", users/2)}, s); err != nil {
		t.Fatal(err)
	}
	s.Data["password"] = []byte("rotated-4242")
	if err := k8s.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	d, ops, c = run()
	t.Logf("one password changed among %d NatsUsers: reconcile (Secret edit to config Secret written) %v, %v bcrypt operations, API requests %v", users, d, ops, c)
	if ops != 1 {
		t.Errorf("one changed password cost %v bcrypt operations", ops)
	}
}

// vmRSS is this process's resident set size, from /proc.
func vmRSS() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "VmRSS unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			return strings.Join(strings.Fields(line), " ")
		}
	}
	return "VmRSS unknown"
}

// joinedConfig lays the config Secret and its parts out as the pods'
// projected volume does and reads it as the broker does.
func joinedConfig(t *testing.T, nc *v1alpha1.NatsCluster) []byte {
	t.Helper()
	dir := t.TempDir()
	main := &corev1.Secret{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: nc.Namespace, Name: resources.ConfigSecretName(nc)}, main); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{resources.ConfigKey: main.Data[resources.ConfigKey]}
	for i := 1; i <= resources.MaxConfigParts; i++ {
		part := &corev1.Secret{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: nc.Namespace, Name: resources.ConfigPartSecretName(nc, i)}, part); err != nil {
			break
		}
		if b, ok := part.Data[resources.ConfigPartKey(i)]; ok {
			files[resources.ConfigPartKey(i)] = b
		}
	}
	t.Logf("config Secret and %d part files", len(files)-1)
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	config, err := conf.ReadConfig(filepath.Join(dir, resources.ConfigKey))
	if err != nil {
		t.Fatal(err)
	}
	return config
}
