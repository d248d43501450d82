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

// Package controllers holds the NatsCluster reconciler: it turns a NatsCluster
// and the Secrets its users name into a config Secret of bcrypt hashes and a
// running StatefulSet of brokers, and reports what it observed in status.
//
// One reconcile runs these phases in order (see phases), then writes status
// once (status.go):
//
//  1. ensure operator secrets: the per-cluster HMAC key and the route
//     credentials (users.go)
//  2. apply services: the routes and client Services, first because the
//     server certificate names the client Service's cluster IP (workload.go)
//  3. apply network policy: the NetworkPolicy that admits clients to 4222,
//     only the cluster's pods to 6222 and only the operator's (and the
//     monitoring) namespaces to 8222, or its deletion when disabled
//     (networkpolicy.go)
//  4. ensure certificates: in tls.mode Operator keep the cluster CA and issue
//     or renew (at 2/3 of their lifetime) the server and route certificates;
//     in mode Secrets read and check the named Secrets (tls.go, pki/)
//  5. resolve users: read each passwordSecretRef straight from the API server,
//     generate "<cluster>-user-<name>", or issue a certificate user's client
//     certificate into it (users.go); then admit the NatsUsers naming the
//     cluster (namespace, name conflicts) and read or generate their
//     passwords in their own namespaces (natsusers.go)
//  6. write config: bcrypt only the passwords whose keyed fingerprint changed,
//     keep the last good hash of a user whose password cannot be read and,
//     during a rotation grace window, the previous hash, render with
//     broker/conf, parse back, write "<cluster>-config" only when its bytes
//     differ (config.go, hashing.go, credentials.go)
//  7. apply workload: StatefulSet, PDB through one write path
//     (workload.go)
//  8. apply pod monitor: the Prometheus Operator PodMonitor that
//     spec.monitoring.podMonitor asks for, as unstructured, or the condition
//     that its CRD is not installed (podmonitor.go)
//  9. propagate config: annotate pods with the new config and certificate
//     hashes so the kubelet refreshes the mounted Secrets, and ask ready pods'
//     /varz (over HTTPS, trusting the cluster CA, when TLS is on) which config
//     and certificate they serve and how many peers they have routes to
//     (propagation.go)
//
// Ready is True only once every pod is ready and, where the pods could be
// asked, every broker has routes to all the others (Ready=False with reason
// MeshIncomplete meanwhile, polled every propagationPoll); ConfigPropagated
// says whether every ready pod serves the current config. A ready pod whose
// /varz cannot be reached is asked again with an exponential back-off, and
// while nothing changes those reconciles only ask the pods (backoff.go).
//
// Caching: Secrets are cached by metadata only and read directly; pods are
// cached only when labelled as managed by the operator (options.go). A Secret
// maps to the clusters naming it through a field index (index.go), and so
// does a NatsUser, its Secret, and a namespace whose labels changed.
//
// After the cluster's status, each NatsUser's status is written, only when it
// changed (natsuser_status.go).
package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// The operator's permissions: exactly what the phases below use.
//
// +kubebuilder:rbac:groups=natsforge.io,resources=natsclusters,verbs=get;list;watch
// +kubebuilder:rbac:groups=natsforge.io,resources=natsclusters/status,verbs=patch
// +kubebuilder:rbac:groups=natsforge.io,resources=natsclusters/finalizers,verbs=update
// +kubebuilder:rbac:groups=natsforge.io,resources=natsusers,verbs=get;list;watch
// +kubebuilder:rbac:groups=natsforge.io,resources=natsusers/status,verbs=patch
// +kubebuilder:rbac:groups=natsforge.io,resources=natsusers/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups="",resources=pods,verbs=list;watch;patch
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// propagationPoll is how soon a cluster whose pods still serve an older config,
// or whose ready pods have not all routed to one another yet, is looked at
// again: routes forming change no Kubernetes object, so only polling sees them.
const propagationPoll = 2 * time.Second

// NatsClusterReconciler reconciles NatsCluster objects.
type NatsClusterReconciler struct {
	// Client reads NatsClusters, StatefulSets and Pods from the cache and writes
	// everything. Secret reads through it bypass the cache (see ClientOptions).
	Client client.Client
	// APIReader reads Secret data, and the NatsCluster being reconciled,
	// straight from the API server: the operator keeps no cache of Secret data.
	APIReader client.Reader
	// Recorder emits Events on the NatsCluster.
	Recorder events.EventRecorder
	// DefaultImage is the broker image used when spec.image is empty.
	DefaultImage string
	// Digests asks a broker pod which config it has loaded and how many peers
	// it has routes to.
	Digests DigestProber
	// OperatorNamespace is the namespace the operator runs in; each cluster's
	// NetworkPolicy admits it to the monitoring port so that it can ask the
	// brokers' /varz. Empty when unknown (the operator runs outside the
	// cluster): then no namespace is admitted for the operator's sake.
	OperatorNamespace string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Cache reads object metadata from the manager's informers without an
	// API request: during a probe back-off it tells whether anything a full
	// reconcile reads has changed (backoff.go). nil makes every reconcile a
	// full one.
	Cache client.Reader

	// probes are the clusters in probe back-off; SetupWithManager makes it.
	probes *probeMemos
	// rotations times config and certificate rotations for
	// natsforge_rotation_propagation_seconds (metrics.go).
	rotations *rotationClock
	// pacer spaces the config writes that carry changed passwords
	// (hashing.go); SetupWithManager makes it, nil paces nothing.
	pacer *hashPacer
	// nudges remembers the pods that go on serving an older config
	// (nudge.go); SetupWithManager makes it, nil nudges nothing.
	nudges *kubeletNudges
	// userStatuses writes NatsUser statuses beside the reconciles
	// (natsuser_writer.go); SetupWithManager makes it. nil: each reconcile
	// writes them before it returns.
	userStatuses *natsUserStatusWriter
	// natsUsersIndexed is set by SetupWithManager, which indexes the
	// manager's NatsUsers by clusterRef.
	natsUsersIndexed bool
}

// request is what one reconcile of one NatsCluster knows; the phases fill it in
// order.
type request struct {
	cluster  *v1alpha1.NatsCluster
	original *v1alpha1.NatsCluster
	now      time.Time

	fingerprintKey []byte
	routePassword  string

	tls tlsState

	users     []resolvedUser // spec order, then the admitted NatsUsers, oldest first
	natsUsers []*natsUser    // every NatsUser naming the cluster, oldest first

	config     []byte
	configHash string
	// renderedAt is when this reconcile had read every Secret and rendered
	// the config: a rotation is timed from there, not from the reconcile's
	// start, which may precede the Secret change it then reads.
	renderedAt    time.Time
	configWritten bool
	// hashesHeldFor is set when changed passwords were left out of this
	// config for the hash pacing (hashing.go): they go in after it.
	hashesHeldFor time.Duration
	// oldPodsRemain counts the pods of an earlier StatefulSet of the
	// cluster's name that keep applyWorkload from creating its own.
	oldPodsRemain int
	records       fingerprints  // as written to the config Secret
	history       configHistory // config hashes written, oldest first

	clientService *corev1.Service
	statefulSet   *appsv1.StatefulSet
	propagation   propagation
	podMonitor    podMonitorState

	failure error // the first phase error, wrapped with the phase's name
}

// phase is one named step of a reconcile.
type phase struct {
	name string
	run  func(context.Context, *request) error
}

// phases run in this order: read, then decide, then write, workload last.
func (r *NatsClusterReconciler) phases() []phase {
	return []phase{
		{"ensure operator secrets", r.ensureOperatorSecrets},
		{"apply services", r.applyServices},
		{"apply network policy", r.applyNetworkPolicy},
		{"ensure certificates", r.ensureCertificates},
		{"resolve users", r.resolveUsers},
		{"write config", r.writeConfig},
		{"apply workload", r.applyWorkload},
		{"apply pod monitor", r.applyPodMonitor},
		{"propagate config", r.propagateConfig},
	}
}

// Reconcile brings one NatsCluster's children in line with its spec, then
// records what it observed in status, written once.
func (r *NatsClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)

	// Read from the API server, not the cache: status is written only when it
	// differs from what this read returns, and a cache that has not yet seen
	// the previous reconcile's status write would make that comparison wrong.
	nc := &v1alpha1.NatsCluster{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, nc); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		r.forget(req.NamespacedName)
		return ctrl.Result{}, r.natsUsersOfMissingCluster(ctx, req.NamespacedName)
	}
	if !nc.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName)
		// Owner references let the garbage collector clean up.
		return ctrl.Result{}, r.natsUsersOfMissingCluster(ctx, req.NamespacedName)
	}

	rq := &request{cluster: nc, original: nc.DeepCopy(), now: r.now()}
	// Summed up before anything is read, so that whatever changes from here
	// on makes the next reconcile a full one.
	inputs := r.inputsVersion(ctx, nc)
	memo, probeOnly := r.probes.probeOnly(req.NamespacedName, inputs, rq.now)
	phases := r.phases()
	switch {
	case nc.Spec.Paused:
		phases = []phase{{"observe statefulset", r.observeStatefulSet}}
	case probeOnly:
		// In probe back-off and nothing changed: ask the pods again with
		// what the last full reconcile found, and read no Secret.
		rq.configHash, rq.tls = memo.configHash, memo.tls
		phases = []phase{{"observe statefulset", r.observeStatefulSet}, {"propagate config", r.propagateConfig}}
	}
	for _, p := range phases {
		if err := p.run(ctx, rq); err != nil {
			rq.failure = fmt.Errorf("%s: %w", p.name, err)
			break
		}
	}

	if err := r.writeStatus(ctx, rq); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		if rq.failure == nil {
			return ctrl.Result{}, fmt.Errorf("write status: %w", err)
		}
		log.Error(err, "write status")
	}
	if err := r.writeNatsUserStatuses(ctx, rq); err != nil && rq.failure == nil {
		rq.failure = fmt.Errorf("write NatsUser statuses: %w", err)
	}
	failures := r.probes.record(req.NamespacedName, inputs, rq)
	r.recordMetrics(req.NamespacedName, rq)
	if rq.failure != nil {
		return ctrl.Result{}, rq.failure
	}
	var requeue time.Duration
	switch {
	case failures > 0:
		requeue = probeBackoff(failures)
		log.Info("cannot reach the /varz of some ready pods; asking again later", "pods", rq.propagation.stale,
			"failedProbesInARow", failures, "retryIn", requeue.String())
	case rq.propagation.pending() || readyCondition(rq).Reason == v1alpha1.ReasonMeshIncomplete || rq.oldPodsRemain > 0:
		requeue = propagationPoll
	}
	if held := rq.hashesHeldFor; held > 0 && (requeue == 0 || held < requeue) {
		requeue = held
	}
	for _, next := range []time.Time{rq.tls.next, nextPreviousExpiry(rq.records)} {
		// A certificate renewal or an expiry warning is due then, or a
		// rotation grace window ends (its previous hash leaves the config
		// Secret and the user's status); nothing else would wake the
		// reconciler for it.
		if next.IsZero() {
			continue
		}
		if due := max(next.Sub(rq.now), time.Second); requeue == 0 || due < requeue {
			requeue = due
		}
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// forget drops what the reconciler remembers of a cluster that is gone or
// going.
func (r *NatsClusterReconciler) forget(cluster types.NamespacedName) {
	r.probes.forget(cluster)
	r.pacer.forget(cluster)
	r.nudges.forget(cluster)
	r.userStatuses.forget(cluster)
	r.forgetMetrics(cluster)
}

func (r *NatsClusterReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// SetupWithManager registers the reconciler, the index that maps a Secret to
// the clusters naming it, and the watches. Secrets are watched by metadata
// only: the cache holds no Secret data. Broker pods are watched (the cache
// holds only pods labelled as managed by the operator) so that a pod that
// appears or becomes ready is told about the current config and asked which
// one it serves.
func (r *NatsClusterReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.probes == nil {
		r.probes = newProbeMemos()
	}
	if r.rotations == nil {
		r.rotations = newRotationClock()
	}
	if r.pacer == nil {
		r.pacer = newHashPacer()
	}
	if r.nudges == nil {
		r.nudges = newKubeletNudges()
	}
	if r.userStatuses == nil {
		r.userStatuses = newNatsUserStatusWriter(ctx, mgr.GetLogger().WithName("natsuser-status"), r)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.NatsCluster{}, secretNameIndex, indexedSecretNames); err != nil {
		return fmt.Errorf("index %s: %w", secretNameIndex, err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.NatsUser{}, clusterRefIndex, indexClusterRef); err != nil {
		return fmt.Errorf("index %s: %w", clusterRefIndex, err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.NatsUser{}, natsUserSecretIndex, indexNatsUserSecret); err != nil {
		return fmt.Errorf("index %s: %w", natsUserSecretIndex, err)
	}
	r.natsUsersIndexed = true
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.NatsCluster{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&appsv1.StatefulSet{}).
		Owns(&corev1.Service{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&corev1.Secret{}, builder.OnlyMetadata).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.clustersNamingSecret), builder.OnlyMetadata).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(clusterOfPod), builder.WithPredicates(brokerPodChanged)).
		// The operator writes NatsUser statuses itself: only spec changes,
		// creations and deletions matter.
		Watches(&v1alpha1.NatsUser{}, handler.EnqueueRequestsFromMapFunc(clusterOfNatsUser), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.clustersOfNamespaceUsers), builder.OnlyMetadata, builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Complete(r)
}
