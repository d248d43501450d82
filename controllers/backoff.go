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
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// When a ready pod's /varz cannot be reached (a NetworkPolicy in the way,
// the operator outside the cluster network), asking again every
// propagationPoll would cost a full reconcile every 2 s, forever: a GET of
// every Secret the cluster reads (about 10 GETs/s at 20 users). Instead the
// probe backs off, doubling from probeBackoffMin up to probeBackoffMax, and a
// reconcile during the back-off only probes when nothing it would read has
// changed: that is decided from the manager's informers (the Secrets'
// metadata, the owned objects), without an API request, so the Secrets are
// not read at all. Anything that changed makes it a full reconcile again.
const (
	probeBackoffMin = propagationPoll
	probeBackoffMax = 5 * time.Minute
)

// probeBackoff is how long to wait before probing again after failures
// reconciles in a row found a ready pod whose /varz could not be reached.
func probeBackoff(failures int) time.Duration {
	d := probeBackoffMin
	for i := 1; i < failures && d < probeBackoffMax; i++ {
		d *= 2
	}
	return min(d, probeBackoffMax)
}

// probeMemo is what the last full reconcile of a cluster in back-off left for
// the probe-only reconciles after it. It holds no Secret data: the CA's
// private key is dropped.
type probeMemo struct {
	// inputs is inputsVersion as the full reconcile began.
	inputs     string
	configHash string
	tls        tlsState
	// failures counts the reconciles in a row that could not reach a ready
	// pod's /varz.
	failures int
}

// probeMemos are the clusters in probe back-off. A nil *probeMemos keeps
// nothing: every reconcile is a full one and a failed probe is retried after
// probeBackoffMin.
type probeMemos struct {
	mu sync.Mutex
	m  map[types.NamespacedName]probeMemo
}

func newProbeMemos() *probeMemos {
	return &probeMemos{m: map[types.NamespacedName]probeMemo{}}
}

// probeOnly returns the memo when the reconcile of key may only probe: the
// cluster is in back-off, nothing it reads changed since the full reconcile
// (inputs), and no certificate renewal (or end of a grace window) is due.
func (m *probeMemos) probeOnly(key types.NamespacedName, inputs string, now time.Time) (probeMemo, bool) {
	if m == nil || inputs == "" {
		return probeMemo{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	memo, ok := m.m[key]
	if !ok || memo.failures == 0 || memo.inputs != inputs || (!memo.tls.next.IsZero() && !now.Before(memo.tls.next)) {
		return probeMemo{}, false
	}
	return memo, true
}

// record notes how the reconcile of key went and returns the failed probes
// in a row: 0 when every ready pod answered (or the reconcile did not get to
// ask), which ends the back-off.
func (m *probeMemos) record(key types.NamespacedName, inputs string, rq *request) int {
	unreachable := rq.failure == nil && rq.propagation.observed && len(rq.propagation.unreachable) > 0
	if m == nil {
		if unreachable {
			return 1
		}
		return 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !unreachable {
		delete(m.m, key)
		return 0
	}
	prev, ok := m.m[key]
	failures := 1
	if ok && prev.configHash == rq.configHash {
		failures = prev.failures + 1 // a new config starts over: its pods are asked soon
	}
	tls := rq.tls
	tls.ca = nil
	if end := nextPreviousExpiry(rq.records); !end.IsZero() {
		// The end of a rotation grace window needs a full reconcile, as a
		// certificate renewal does: the probe-only ones stop at either.
		tls.due(end)
	}
	m.m[key] = probeMemo{inputs: inputs, configHash: rq.configHash, tls: tls, failures: failures}
	return failures
}

func (m *probeMemos) forget(key types.NamespacedName) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, key)
}

// inputsVersion sums up, from the manager's informers and without an API
// request, everything a full reconcile of nc reads or writes: nc's generation,
// the resourceVersions of the Secrets it names or derives ("<name>-...") or
// owns, and of its StatefulSet, Services, PDB and NetworkPolicy. "" when it
// cannot be known (no cache, or a cache error): then the reconcile is a full
// one.
func (r *NatsClusterReconciler) inputsVersion(ctx context.Context, nc *v1alpha1.NatsCluster) string {
	if r.Cache == nil {
		return ""
	}
	h := sha256.New()
	_, _ = fmt.Fprintf(h, "NatsCluster %s %d\n", nc.UID, nc.Generation)

	secrets := &metav1.PartialObjectMetadataList{}
	secrets.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	if err := r.Cache.List(ctx, secrets, client.InNamespace(nc.Namespace)); err != nil {
		return ""
	}
	named := indexedSecretNames(nc)
	slices.SortFunc(secrets.Items, func(a, b metav1.PartialObjectMetadata) int { return strings.Compare(a.Name, b.Name) })
	for i := range secrets.Items {
		s := &secrets.Items[i]
		owned := slices.ContainsFunc(s.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == nc.UID })
		if owned || slices.Contains(named, s.Name) || strings.HasPrefix(s.Name, nc.Name+"-") {
			_, _ = fmt.Fprintf(h, "Secret %s %s\n", s.Name, s.ResourceVersion)
		}
	}

	for _, o := range []struct {
		name string
		obj  client.Object
	}{
		{resources.StatefulSetName(nc), &appsv1.StatefulSet{}},
		{resources.ClientServiceName(nc), &corev1.Service{}},
		{resources.RoutesServiceName(nc), &corev1.Service{}},
		{resources.PDBName(nc), &policyv1.PodDisruptionBudget{}},
		{resources.NetworkPolicyName(nc), &networkingv1.NetworkPolicy{}},
	} {
		err := r.Cache.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: o.name}, o.obj)
		switch {
		case apierrors.IsNotFound(err):
			_, _ = fmt.Fprintf(h, "%T %s absent\n", o.obj, o.name)
		case err != nil:
			return ""
		default:
			_, _ = fmt.Fprintf(h, "%T %s %s\n", o.obj, o.name, o.obj.GetResourceVersion())
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
