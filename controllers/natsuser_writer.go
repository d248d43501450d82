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
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// natsUserStatusUpdate is one NatsUser's new status, computed by a reconcile
// from base, the NatsUser as the cache had it.
type natsUserStatusUpdate struct {
	base   *v1alpha1.NatsUser
	status v1alpha1.NatsUserStatus
	// recompute is the status of the NatsUser as read afresh: its
	// conditions' transition times and servingLastGoodSince carry over from
	// the status it had.
	recompute func(*v1alpha1.NatsUser) v1alpha1.NatsUserStatus
}

// natsUserStatusWriter writes NatsUser statuses in the background, per
// cluster one batch at a time, and only the newest: a reconcile's batch
// replaces the one waiting, and cuts short the one being written (what is
// left of it is in the new batch, computed against the same cache). Each
// write is a merge patch with the base's resourceVersion: a base older than
// the object (the cache not yet showing the last write) conflicts, and the
// NatsUser is read afresh and its status computed again, so that a patch
// never leaves a field from a status it did not know.
type natsUserStatusWriter struct {
	ctx context.Context // the manager's: the writes stop with it
	log logr.Logger
	// write patches one NatsUser's status from base, with base's
	// resourceVersion; read reads one afresh.
	write func(ctx context.Context, base *v1alpha1.NatsUser, status v1alpha1.NatsUserStatus) error
	read  func(ctx context.Context, key client.ObjectKey, into *v1alpha1.NatsUser) error

	mu      sync.Mutex
	waiting map[types.NamespacedName][]natsUserStatusUpdate
	busy    map[types.NamespacedName]bool
}

func newNatsUserStatusWriter(ctx context.Context, log logr.Logger, r *NatsClusterReconciler) *natsUserStatusWriter {
	return &natsUserStatusWriter{
		ctx: ctx, log: log,
		write: func(ctx context.Context, base *v1alpha1.NatsUser, status v1alpha1.NatsUserStatus) error {
			return r.patchNatsUserStatus(ctx, base, status, client.MergeFromWithOptimisticLock{})
		},
		read: func(ctx context.Context, key client.ObjectKey, into *v1alpha1.NatsUser) error {
			return r.APIReader.Get(ctx, key, into)
		},
		waiting: map[types.NamespacedName][]natsUserStatusUpdate{},
		busy:    map[types.NamespacedName]bool{},
	}
}

func (w *natsUserStatusWriter) writeFunc() func(context.Context, *v1alpha1.NatsUser, v1alpha1.NatsUserStatus) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.write
}

// submit hands over a reconcile's batch for the cluster: the NatsUsers whose
// status differs from the cache's. While a batch is being written, the new
// one replaces it even when empty (a status that went back to what the cache
// holds must not be overwritten by the older batch).
func (w *natsUserStatusWriter) submit(cluster types.NamespacedName, updates []natsUserStatusUpdate) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.busy[cluster]:
		if updates == nil {
			updates = []natsUserStatusUpdate{}
		}
		w.waiting[cluster] = updates
	case len(updates) > 0:
		w.waiting[cluster] = updates
		w.busy[cluster] = true
		go w.run(cluster)
	}
}

// forget stops the writes for a cluster that is gone or going: the batch
// being written stops at its next NatsUser (the reconcile then writes what a
// missing cluster's NatsUsers say).
func (w *natsUserStatusWriter) forget(cluster types.NamespacedName) {
	if w != nil {
		w.submit(cluster, nil)
	}
}

// run writes the cluster's batches until none is waiting.
func (w *natsUserStatusWriter) run(cluster types.NamespacedName) {
	for {
		w.mu.Lock()
		batch, ok := w.waiting[cluster]
		delete(w.waiting, cluster)
		if !ok {
			delete(w.busy, cluster)
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		w.writeBatch(cluster, batch)
	}
}

// superseded tells whether a newer batch for the cluster is waiting.
func (w *natsUserStatusWriter) superseded(cluster types.NamespacedName) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.waiting[cluster]
	return ok
}

func (w *natsUserStatusWriter) writeBatch(cluster types.NamespacedName, batch []natsUserStatusUpdate) {
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(natsUserStatusWrites)
	for _, up := range batch {
		if w.ctx.Err() != nil || w.superseded(cluster) {
			break
		}
		g.Go(func() error {
			if err := w.writeOne(cluster, up); err != nil {
				w.log.Error(err, "write NatsUser status", "natsUser", client.ObjectKeyFromObject(up.base).String())
			}
			return nil
		})
	}
	_ = g.Wait()
	w.log.V(1).Info("NatsUser statuses written", "cluster", cluster.String(), "batch", len(batch), "took", time.Since(start).String())
}

// writeOne writes one status, reading the NatsUser afresh and computing its
// status again when the base was stale, a few times at most.
func (w *natsUserStatusWriter) writeOne(cluster types.NamespacedName, up natsUserStatusUpdate) error {
	base, status := up.base, up.status
	for attempt := 0; ; attempt++ {
		if w.superseded(cluster) {
			return nil
		}
		err := w.writeFunc()(w.ctx, base, status)
		switch {
		case err == nil: // written, or the NatsUser is gone
			return nil
		case !apierrors.IsConflict(err) || attempt == 3:
			return err
		}
		fresh := &v1alpha1.NatsUser{}
		if err := w.read(w.ctx, client.ObjectKeyFromObject(base), fresh); err != nil {
			return client.IgnoreNotFound(err)
		}
		base, status = fresh, up.recompute(fresh)
		if equality.Semantic.DeepEqual(base.Status, status) {
			return nil
		}
	}
}
