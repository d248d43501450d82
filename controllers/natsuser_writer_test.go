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
	"sync"
	"sync/atomic"
	"testing"

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
