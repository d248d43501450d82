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
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// natsUserStatusWrites is how many NatsUser statuses are written at once.
const natsUserStatusWrites = 8

// writeNatsUserStatuses writes the status of every NatsUser naming the
// cluster, each only when it changed: a resync writes none. A reconcile that
// failed before the config was written leaves them as they were.
//
// With the operator's writer (SetupWithManager makes one) the writes happen
// beside the reconciles, not in them: a change that touches every NatsUser's
// status (the first time 10,000 of them are served, or a pod that restarts:
// each status counts the pods serving it) is 10,000 writes, about a minute on
// two cores, and a password change must not wait behind them (make
// bench-cluster saw a rotation among 10,000 NatsUsers held 70 s). Without a
// writer (a reconciler called directly, as the benchmarks do) they are
// written here, before Reconcile returns.
func (r *NatsClusterReconciler) writeNatsUserStatuses(ctx context.Context, rq *request) error {
	if rq.failure != nil || rq.configHash == "" || rq.natsUsers == nil {
		return nil
	}
	in := natsUserStatusInputs{cluster: client.ObjectKeyFromObject(rq.cluster), records: rq.records,
		asked: rq.propagation.asked, digests: rq.propagation.digests, history: rq.history,
		now: metav1.NewTime(rq.now.Truncate(time.Second))}
	var updates []natsUserStatusUpdate
	for _, u := range rq.natsUsers {
		status := natsUserStatus(&in, u)
		if equality.Semantic.DeepEqual(u.obj.Status, status) {
			continue
		}
		r.recordNatsUserRefusal(u, status)
		// Again from a fresh read, when the base was stale. The closure
		// keeps this user's record, not the request's 10,000.
		u, one := *u, in
		one.records = fingerprints{}
		if rec, ok := in.records[u.user.name]; ok {
			one.records[u.user.name] = rec
		}
		updates = append(updates, natsUserStatusUpdate{base: u.obj, status: status,
			recompute: func(fresh *v1alpha1.NatsUser) v1alpha1.NatsUserStatus {
				u.obj = fresh
				return natsUserStatus(&one, &u)
			}})
	}
	if r.userStatuses != nil {
		r.userStatuses.submit(client.ObjectKeyFromObject(rq.cluster), updates)
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(natsUserStatusWrites)
	for _, up := range updates {
		g.Go(func() error {
			return r.patchNatsUserStatus(gctx, up.base, up.status)
		})
	}
	return g.Wait()
}

// natsUserStatus is the status of one NatsUser, computed from what this
// reconcile observed.
// natsUserStatusInputs is what NatsUser statuses are computed from: what one
// reconcile observed, without the rest of its request.
type natsUserStatusInputs struct {
	cluster types.NamespacedName
	records fingerprints
	asked   int               // ready pods asked
	digests map[string]string // the config each answering pod serves
	history configHistory
	now     metav1.Time
}

func natsUserStatus(in *natsUserStatusInputs, u *natsUser) v1alpha1.NatsUserStatus {
	now := in.now
	st := *u.obj.Status.DeepCopy()
	st.ObservedGeneration = u.obj.Generation
	st.Username = u.obj.Username()
	st.SecretName, st.ConfigHash, st.ServingPods, st.ReadyPods = "", "", 0, 0
	lastGoodSince := st.ServingLastGoodSince
	st.ServingLastGoodSince, st.PreviousPasswordValidUntil = nil, nil
	c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: u.obj.Generation, LastTransitionTime: now}
	switch {
	case !u.admitted():
		c.Reason, c.Message = u.refusal, u.refusalMessage
	case !u.user.resolved():
		st.SecretName = u.user.secretName
		c.Reason, c.Message = conditionReason(u.user.reason), u.user.message
		if u.user.servingLastGood(in.records) {
			// Kept on its last good password (credentials.go), as an
			// inline user is.
			st.ServingLastGoodSince = lastGoodSince
			if st.ServingLastGoodSince == nil {
				st.ServingLastGoodSince = now.DeepCopy()
			}
			c.Message += "; the brokers keep its last good password"
		}
		st.PreviousPasswordValidUntil = in.records[u.user.name].PreviousValidUntil.DeepCopy()
	default:
		st.SecretName = u.user.secretName
		rec := in.records[u.user.name]
		st.PreviousPasswordValidUntil = rec.PreviousValidUntil.DeepCopy()
		st.ConfigHash = rec.ConfigHash
		if !rec.RotatedAt.IsZero() {
			st.LastRotationTime = rec.RotatedAt.DeepCopy()
		}
		st.ReadyPods = int32(in.asked)
		for _, served := range in.digests {
			if in.history.serves(served, rec.ConfigHash) {
				st.ServingPods++
			}
		}
		if st.ReadyPods > 0 && st.ServingPods == st.ReadyPods {
			c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.NatsUserServed
			c.Message = fmt.Sprintf("in the config of NatsCluster %s/%s, served by all %d ready broker pods; %s", in.cluster.Namespace, in.cluster.Name, st.ReadyPods, u.user.message)
		} else {
			c.Reason = v1alpha1.NatsUserConfigPending
			c.Message = fmt.Sprintf("in the config of NatsCluster %s/%s, served by %d of %d ready broker pods; %s", in.cluster.Namespace, in.cluster.Name, st.ServingPods, st.ReadyPods, u.user.message)
		}
	}
	meta.SetStatusCondition(&st.Conditions, c)
	return st
}

// natsUsersOfMissingCluster marks the NatsUsers naming a cluster that does not
// exist (or is being deleted).
func (r *NatsClusterReconciler) natsUsersOfMissingCluster(ctx context.Context, key client.ObjectKey) error {
	users, err := r.natsUsersOf(ctx, key.Namespace, key.Name)
	if err != nil {
		return err
	}
	now := metav1.NewTime(r.now().Truncate(time.Second))
	for _, nu := range users {
		st := *nu.Status.DeepCopy()
		st.ObservedGeneration = nu.Generation
		st.Username = nu.Username()
		st.SecretName, st.ConfigHash, st.ServingPods, st.ReadyPods = "", "", 0, 0
		st.ServingLastGoodSince, st.PreviousPasswordValidUntil = nil, nil
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
			ObservedGeneration: nu.Generation, LastTransitionTime: now, Reason: v1alpha1.NatsUserClusterNotFound,
			Message: fmt.Sprintf("NatsCluster %s/%s not found", key.Namespace, key.Name)})
		if equality.Semantic.DeepEqual(nu.Status, st) {
			continue
		}
		if err := r.patchNatsUserStatus(ctx, nu, st); err != nil {
			return err
		}
	}
	return nil
}

// patchNatsUserStatus patches nu's status to status with a merge patch from
// nu (opts: client.MergeFromWithOptimisticLock to carry nu's
// resourceVersion); a NatsUser that is gone is not an error.
func (r *NatsClusterReconciler) patchNatsUserStatus(ctx context.Context, nu *v1alpha1.NatsUser, status v1alpha1.NatsUserStatus, opts ...client.MergeFromOption) error {
	updated := nu.DeepCopy()
	updated.Status = status
	if err := r.Client.Status().Patch(ctx, updated, client.MergeFromWithOptions(nu, opts...)); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("write status of NatsUser %s/%s: %w", nu.Namespace, nu.Name, err)
	}
	return nil
}

// recordNatsUserRefusal emits a Warning Event on a NatsUser that has just been
// refused or left out (not on every reconcile), never naming a value.
func (r *NatsClusterReconciler) recordNatsUserRefusal(u *natsUser, status v1alpha1.NatsUserStatus) {
	if r.Recorder != nil && u.user.warning != "" {
		// A password used as it is but probably a mistake (credentials.go),
		// told once: when the status first says so.
		if before := meta.FindStatusCondition(u.obj.Status.Conditions, v1alpha1.ConditionReady); before == nil || !strings.Contains(before.Message, u.user.message) {
			r.Recorder.Eventf(u.obj, nil, corev1.EventTypeWarning, "PasswordEndsInNewline", "ResolveUser", "%s", u.user.warning)
		}
	}
	now := meta.FindStatusCondition(status.Conditions, v1alpha1.ConditionReady)
	if r.Recorder == nil || now == nil || now.Status == metav1.ConditionTrue || now.Reason == v1alpha1.NatsUserConfigPending {
		return
	}
	if before := meta.FindStatusCondition(u.obj.Status.Conditions, v1alpha1.ConditionReady); before != nil && before.Reason == now.Reason {
		return
	}
	r.Recorder.Eventf(u.obj, nil, corev1.EventTypeWarning, now.Reason, "AdmitUser", "%s", now.Message)
}
