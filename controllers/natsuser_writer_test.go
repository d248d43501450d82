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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// TestAPasswordChangeDoesNotWaitForNatsUserStatusWrites: NatsUser statuses
// are written beside the reconciles. With every status write of the
// namespace held, a password change still reaches the config; once the
// writes go through, the statuses catch up with the newest config.
func TestAPasswordChangeDoesNotWaitForNatsUserStatusWrites(t *testing.T) {
	needAPIServer(t)
	const ns = "nu-status"
	createPasswordSecret(t, ns, "a-pw", "a-1")
	createPasswordSecret(t, ns, "b-pw", "b-1")
	nc := createCluster(t, ns, "st")
	a := createNatsUser(t, ns, "a", v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: "st"},
		PasswordSecretRef: &v1alpha1.SecretKeyReference{Name: "a-pw", Key: "password"}})
	b := createNatsUser(t, ns, "b", v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: "st"},
		PasswordSecretRef: &v1alpha1.SecretKeyReference{Name: "b-pw", Key: "password"}})
	waitForConfig(t, nc, map[string]string{"a": "a-1", "b": "b-1"})
	waitForNatsUser(t, a, v1alpha1.NatsUserConfigPending)
	waitForNatsUser(t, b, v1alpha1.NatsUserConfigPending)

	// Hold every status write of this namespace.
	w := reconciler.userStatuses
	release := make(chan struct{})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	var held atomic.Int32
	w.mu.Lock()
	write := w.write
	w.write = func(ctx context.Context, base *v1alpha1.NatsUser, status v1alpha1.NatsUserStatus) error {
		if base.Namespace == ns {
			held.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return write(ctx, base, status)
	}
	w.mu.Unlock()
	t.Cleanup(func() {
		open()
		w.mu.Lock()
		w.write = write
		w.mu.Unlock()
	})

	setPassword(t, ns, "a-pw", "a-2")
	eventually(t, timeout, func() error {
		if held.Load() == 0 {
			return fmt.Errorf("no status write of %s started after a's password changed", ns)
		}
		return nil
	})
	// a's status write is held; b's change must not wait for it.
	setPassword(t, ns, "b-pw", "b-2")
	waitForConfig(t, nc, map[string]string{"a": "a-2", "b": "b-2"})
	select {
	case <-release:
		t.Fatal("the status writes were let go early")
	default:
	}

	open()
	eventually(t, timeout, func() error {
		cluster := getCluster(t, nc)
		for _, nu := range []*v1alpha1.NatsUser{a, b} {
			got := &v1alpha1.NatsUser{}
			if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(nu), got); err != nil {
				return err
			}
			if got.Status.LastRotationTime == nil {
				return fmt.Errorf("NatsUser %s has no lastRotationTime yet", nu.Name)
			}
			if nu.Name == "b" && got.Status.ConfigHash != cluster.Status.ConfigHash {
				return fmt.Errorf("NatsUser b status.configHash %q, want the cluster's %q", got.Status.ConfigHash, cluster.Status.ConfigHash)
			}
		}
		return nil
	})
}

// TestTheStatusWriterWritesTheNewestBatchAndRecomputesOnAConflict drives the
// writer with write and read functions of its own.
func TestTheStatusWriterWritesTheNewestBatchAndRecomputesOnAConflict(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cluster := types.NamespacedName{Namespace: "ns", Name: "c"}
	gate := make(chan struct{})
	var entered atomic.Int32
	var mu sync.Mutex
	var written []string // name=status.username, in the order written
	conflicts := map[string]int{}
	w := &natsUserStatusWriter{ctx: ctx, log: logr.Discard(),
		waiting: map[types.NamespacedName][]natsUserStatusUpdate{}, busy: map[types.NamespacedName]bool{}}
	w.write = func(ctx context.Context, base *v1alpha1.NatsUser, status v1alpha1.NatsUserStatus) error {
		entered.Add(1)
		<-gate
		mu.Lock()
		defer mu.Unlock()
		if conflicts[base.Name] > 0 && base.ResourceVersion == "1" {
			conflicts[base.Name]--
			return apierrors.NewConflict(schema.GroupResource{Resource: "natsusers"}, base.Name, errors.New("stale"))
		}
		written = append(written, base.Name+"="+status.Username)
		return nil
	}
	w.read = func(ctx context.Context, key client.ObjectKey, into *v1alpha1.NatsUser) error {
		into.Name, into.ResourceVersion = key.Name, "2"
		return nil
	}
	batch := func(tag string, names ...string) []natsUserStatusUpdate {
		var out []natsUserStatusUpdate
		for _, n := range names {
			out = append(out, natsUserStatusUpdate{
				base:   &v1alpha1.NatsUser{ObjectMeta: metav1.ObjectMeta{Name: n, ResourceVersion: "1"}},
				status: v1alpha1.NatsUserStatus{Username: tag},
				recompute: func(fresh *v1alpha1.NatsUser) v1alpha1.NatsUserStatus {
					return v1alpha1.NatsUserStatus{Username: tag + "-again"}
				},
			})
		}
		return out
	}
	idle := func() {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			w.mu.Lock()
			defer w.mu.Unlock()
			if w.busy[cluster] {
				return errors.New("the writer is still busy")
			}
			return nil
		})
	}

	// A batch of 20: the first natsUserStatusWrites start and wait at the
	// gate; a newer batch replaces the rest of it.
	var first []string
	for i := range 20 {
		first = append(first, fmt.Sprintf("u%02d", i))
	}
	w.submit(cluster, batch("old", first...))
	eventually(t, 10*time.Second, func() error {
		if n := entered.Load(); n != natsUserStatusWrites {
			return fmt.Errorf("%d writes started, want %d", n, natsUserStatusWrites)
		}
		return nil
	})
	w.submit(cluster, batch("new", "u15", "x"))
	close(gate)
	idle()
	mu.Lock()
	old, fresh := 0, map[string]bool{}
	for _, s := range written {
		if strings.HasSuffix(s, "=old") {
			old++
		} else {
			fresh[s] = true
		}
	}
	mu.Unlock()
	if old > natsUserStatusWrites || !fresh["u15=new"] || !fresh["x=new"] || len(fresh) != 2 {
		t.Errorf("written %v: want at most %d of the old batch (those already started), then u15 and x of the new", written, natsUserStatusWrites)
	}

	// A conflict: read afresh, computed again, written on the fresh base.
	mu.Lock()
	written, conflicts["c"] = nil, 1
	mu.Unlock()
	w.submit(cluster, batch("v", "c"))
	idle()
	if fmt.Sprint(written) != "[c=v-again]" {
		t.Errorf("after a conflict, written %v, want [c=v-again]", written)
	}

	// An empty batch writes nothing and starts nothing; forget on an idle
	// writer leaves nothing waiting.
	w.submit(cluster, nil)
	w.forget(cluster)
	if len(w.waiting) != 0 || len(w.busy) != 0 {
		t.Errorf("waiting %v, busy %v", w.waiting, w.busy)
	}
}
