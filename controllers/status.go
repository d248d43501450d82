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
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/pki"
	"github.com/natsforge/natsforge/controllers/resources"
)

// writeStatus computes the status from what this reconcile observed and writes
// it once, only when it changed.
func (r *NatsClusterReconciler) writeStatus(ctx context.Context, rq *request) error {
	status := computeStatus(rq)
	if equality.Semantic.DeepEqual(rq.original.Status, status) {
		return nil
	}
	nc := rq.original.DeepCopy()
	nc.Status = status
	return r.Client.Status().Patch(ctx, nc, client.MergeFrom(rq.original))
}

// computeStatus is the new status: what this reconcile observed, and for what
// it did not get to observe (a failed or paused reconcile), the old status.
func computeStatus(rq *request) v1alpha1.NatsClusterStatus {
	prev := rq.original.Status
	st := *prev.DeepCopy()
	st.ObservedGeneration = rq.cluster.Generation
	now := metav1.NewTime(rq.now.Truncate(time.Second))

	if sts := rq.statefulSet; sts != nil {
		st.Replicas, st.ReadyReplicas = sts.Status.Replicas, sts.Status.ReadyReplicas
	}
	if rq.configHash != "" {
		st.ConfigHash = rq.configHash
	}
	if rq.users != nil {
		st.Users = userStatuses(prev.Users, rq.users, rq.records, now)
		st.ResolvedUsers = 0
		for _, u := range rq.users { // NatsUsers included
			if u.resolved() && !u.system {
				st.ResolvedUsers++
			}
		}
		st.Accounts = accountStatuses(rq.cluster, rq.users, rq.records)
	}

	set := func(c metav1.Condition) {
		c.ObservedGeneration = rq.cluster.Generation
		c.LastTransitionTime = now
		meta.SetStatusCondition(&st.Conditions, c)
	}
	set(readyCondition(rq))
	if rq.users != nil {
		set(usersResolvedCondition(rq.users, rq.records))
	}
	if rq.propagation.observed {
		set(configPropagatedCondition(rq.propagation))
	}
	if pm := rq.podMonitor; pm.observed {
		if pm.wanted {
			set(podMonitorCondition(pm))
		} else {
			meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionPodMonitor)
		}
	}
	if rq.tls.observed {
		set(secureCondition(rq.cluster, rq.tls))
		st.TLS = tlsStatus(prev.TLS, rq.tls)
	}
	return st
}

// secureCondition: True with the mode when TLS is served from usable
// certificates; False when TLS is off (PlaintextExposed when the client
// Service leaves the Kubernetes cluster) or the named Secrets cannot be used.
func secureCondition(nc *v1alpha1.NatsCluster, s tlsState) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionSecure, Status: metav1.ConditionFalse}
	switch {
	case !s.enabled && exposed(nc):
		c.Reason = v1alpha1.ReasonPlaintextExposed
		c.Message = fmt.Sprintf("tls.mode is Disabled and the client Service is of type %s: passwords and messages cross the network in cleartext", nc.Spec.Service.Type)
	case !s.enabled:
		c.Reason, c.Message = v1alpha1.ReasonTLSDisabled, "tls.mode is Disabled: clients and routes use plain TCP inside the Kubernetes cluster"
	case s.problem != "":
		c.Reason, c.Message = s.problem, s.message
	case s.mode == v1alpha1.TLSModeSecrets:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonTLSSecrets
		c.Message = fmt.Sprintf("clients, routes and monitoring use TLS with the certificates of Secrets %s (routes: %s)",
			resources.ClientTLSSecretName(nc), resources.RouteTLSSecretName(nc))
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonTLSOperator
		c.Message = fmt.Sprintf("clients, routes and monitoring use TLS with certificates the operator issues from the CA in Secret %s",
			resources.CASecretName(nc))
	}
	return c
}

// exposed tells whether the client Service is reachable from outside the
// Kubernetes cluster.
func exposed(nc *v1alpha1.NatsCluster) bool {
	t := nc.Spec.Service.Type
	return t == corev1.ServiceTypeLoadBalancer || t == corev1.ServiceTypeNodePort
}

// tlsStatus reports the served certificate; when it is not known (a missing
// Secret), the previous status stands, as the brokers keep serving it.
func tlsStatus(prev *v1alpha1.TLSStatus, s tlsState) *v1alpha1.TLSStatus {
	if !s.enabled {
		return &v1alpha1.TLSStatus{Mode: s.mode}
	}
	if s.serving == nil {
		if prev == nil {
			return &v1alpha1.TLSStatus{Mode: s.mode}
		}
		st := prev.DeepCopy()
		st.Mode = s.mode
		return st
	}
	st := &v1alpha1.TLSStatus{
		Mode:              s.mode,
		NotAfter:          ptr.To(metav1.NewTime(s.serving.NotAfter.UTC())),
		CertificateSHA256: pki.Fingerprint(s.serving),
	}
	if s.mode == v1alpha1.TLSModeOperator {
		st.RenewalTime = ptr.To(metav1.NewTime(pki.RenewalTime(s.serving).UTC()))
	}
	return st
}

func readyCondition(rq *request) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionReady}
	sts := rq.statefulSet
	want := resources.Replicas(rq.cluster)
	switch {
	case rq.failure != nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonReconcileFailed, rq.failure.Error()
	case rq.cluster.Spec.Paused:
		c.Status, c.Reason, c.Message = metav1.ConditionUnknown, v1alpha1.ReasonPaused, "spec.paused is set: the operator changes nothing"
	case sts == nil:
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonPodsNotReady, "the StatefulSet does not exist yet"
	case sts.Status.ObservedGeneration < sts.Generation || sts.Status.ReadyReplicas < want ||
		sts.Status.UpdatedReplicas < want || sts.Status.Replicas != want:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonPodsNotReady
		c.Message = fmt.Sprintf("%d/%d pods ready, %d/%d up to date", sts.Status.ReadyReplicas, want, sts.Status.UpdatedReplicas, want)
	default:
		// Every pod is ready; a message reaches every pod only once each
		// broker has routes to all the others.
		m := meshOf(rq.propagation, want)
		switch {
		case !m.checked:
			c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonAvailable
			c.Message = fmt.Sprintf("%d/%d pods ready", sts.Status.ReadyReplicas, want)
		case m.complete():
			c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonAvailable
			c.Message = fmt.Sprintf("%d/%d pods ready, every broker has routes to all peers", sts.Status.ReadyReplicas, want)
		default:
			c.Status, c.Reason, c.Message = metav1.ConditionFalse, v1alpha1.ReasonMeshIncomplete, m.message()
		}
	}
	return c
}

// mesh is what the ready pods said about their routes: a message published on
// one broker reaches subscribers on every broker only when each of the
// replicas brokers has a route to each of the other replicas-1.
type mesh struct {
	// checked is false when there was nothing to ask: no ready pod has an
	// address (as under envtest), or the reconciler has no prober.
	checked bool
	want    int      // brokers that need full routes: spec replicas
	routed  int      // brokers with routes to all replicas-1 peers
	missing []string // "<pod>: why not", sorted
}

// meshOf decides, from the route counts the ready pods reported, how many
// brokers are fully routed. It reads nothing but its arguments.
func meshOf(p propagation, replicas int32) mesh {
	m := mesh{want: int(replicas)}
	if !p.observed || p.asked == 0 || p.routes == nil {
		return m
	}
	m.checked = true
	peers := max(int(replicas)-1, 0)
	for pod, n := range p.routes {
		if n >= peers {
			m.routed++
		} else {
			m.missing = append(m.missing, fmt.Sprintf("%s: routes to %d of %d peers", pod, n, peers))
		}
	}
	for _, pod := range p.unreachable {
		m.missing = append(m.missing, pod+": /varz unreachable, routes unknown")
	}
	sort.Strings(m.missing)
	if unasked := m.want - p.asked; unasked > 0 {
		m.missing = append(m.missing, fmt.Sprintf("%d not asked yet (no ready pod with an address)", unasked))
	}
	return m
}

func (m mesh) complete() bool { return !m.checked || m.routed >= m.want }

func (m mesh) message() string {
	s := fmt.Sprintf("%d of %d brokers have routes to all peers", min(m.routed, m.want), m.want)
	if len(m.missing) > 0 {
		s += "; " + strings.Join(m.missing, "; ")
	}
	return s
}

// usersResolvedCondition names each unresolved user and its Secret (never a
// value), and whether it keeps its last good password (in records) or is left
// out; its reason is the first unresolved user's.
func usersResolvedCondition(users []resolvedUser, records fingerprints) metav1.Condition {
	var problems []string
	reason := ""
	inline := 0
	for _, u := range users {
		if u.natsUser != nil || u.system { // reported in its own status; the system user in accounts
			continue
		}
		inline++
		if u.resolved() {
			continue
		}
		if reason == "" {
			reason = conditionReason(u.reason)
		}
		fate := "left out of the config"
		if u.servingLastGood(records) {
			fate = "keeps its last good password"
		}
		problems = append(problems, fmt.Sprintf("user %s: %s (%s)", u.name, u.message, fate))
	}
	if len(problems) == 0 {
		return metav1.Condition{Type: v1alpha1.ConditionUsersResolved, Status: metav1.ConditionTrue,
			Reason: v1alpha1.ReasonAllUsersResolved, Message: fmt.Sprintf("all %d users resolved", inline)}
	}
	return metav1.Condition{Type: v1alpha1.ConditionUsersResolved, Status: metav1.ConditionFalse, Reason: reason,
		Message: fmt.Sprintf("%d of %d users' passwords cannot be read: %s", len(problems), inline, strings.Join(problems, "; "))}
}

func conditionReason(r v1alpha1.UserReason) string {
	switch r {
	case v1alpha1.UserSecretMissing:
		return v1alpha1.ReasonSecretMissing
	case v1alpha1.UserKeyMissing:
		return v1alpha1.ReasonKeyMissing
	case v1alpha1.UserInvalidTLSIdentity:
		return v1alpha1.ReasonInvalidTLSIdentity
	default:
		return v1alpha1.ReasonInvalidPassword
	}
}

func configPropagatedCondition(p propagation) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionConfigPropagated}
	switch {
	case p.asked == 0:
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonNoPodAddresses
		c.Message = "no pod addresses: no ready broker pod has an IP to ask for its config digest yet"
	case len(p.unreachable) > 0:
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonProbeFailed
		c.Message = fmt.Sprintf("the /varz of %d of %d ready pods could not be reached, so the config they serve is not known: %s; asking again with a back-off of up to %v",
			len(p.unreachable), p.asked, strings.Join(p.unreachable, ", "), probeBackoffMax)
	case p.current == p.asked:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent
		c.Message = fmt.Sprintf("%d/%d ready pods serve the current config", p.current, p.asked)
	default:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonConfigPending
		c.Message = fmt.Sprintf("%d/%d ready pods serve the current config; %s", p.current, p.asked, strings.Join(p.stale, "; "))
	}
	return c
}

// userStatuses reports every spec user. lastRotationTime and
// previousPasswordValidUntil come from the fingerprint record of the user's
// hash (for a user left out of the config, the previous status keeps the
// former). A user kept on its last good password has servingLastGoodSince:
// from the previous status while it stays so, else now.
func userStatuses(prev []v1alpha1.UserStatus, users []resolvedUser, records fingerprints, now metav1.Time) []v1alpha1.UserStatus {
	before := map[string]*metav1.Time{}
	lastGoodSince := map[string]*metav1.Time{}
	for _, s := range prev {
		before[s.Name] = s.LastRotationTime
		lastGoodSince[s.Name] = s.ServingLastGoodSince
	}
	out := make([]v1alpha1.UserStatus, 0, len(users))
	for _, u := range users {
		if u.natsUser != nil || u.system { // reported in its own status; the system user in accounts
			continue
		}
		s := v1alpha1.UserStatus{
			Name:     u.name,
			Resolved: u.resolved(),
			Reason:   u.reason,
			Message:  u.message,
			PasswordStatus: v1alpha1.PasswordStatus{
				SecretName:       u.secretName,
				LastRotationTime: before[u.name],
			},
		}
		if rec, ok := records[u.name]; ok && !rec.RotatedAt.IsZero() {
			s.LastRotationTime = rec.RotatedAt.DeepCopy()
		}
		if rec, ok := records[u.name]; ok && rec.PreviousValidUntil != nil {
			s.PreviousPasswordValidUntil = rec.PreviousValidUntil.DeepCopy()
		}
		if u.servingLastGood(records) {
			s.ServingLastGoodSince = lastGoodSince[u.name]
			if s.ServingLastGoodSince == nil {
				s.ServingLastGoodSince = now.DeepCopy()
			}
		}
		out = append(out, s)
	}
	return out
}

// accountStatuses counts, for each account of spec.accounts and the system
// account, its users that are on the brokers: resolved, or kept on their
// last good password.
func accountStatuses(nc *v1alpha1.NatsCluster, users []resolvedUser, records fingerprints) []v1alpha1.AccountStatus {
	var out []v1alpha1.AccountStatus
	index := map[string]int{}
	for _, a := range nc.Spec.Accounts {
		index[a.Name] = len(out)
		out = append(out, v1alpha1.AccountStatus{Name: a.Name})
	}
	for _, u := range users {
		if u.spec == nil || u.spec.Account == "" || !u.resolved() && !u.servingLastGood(records) {
			continue
		}
		i, ok := index[u.spec.Account]
		if !ok {
			i, index[u.spec.Account] = len(out), len(out)
			out = append(out, v1alpha1.AccountStatus{Name: u.spec.Account})
		}
		out[i].Users++
	}
	return out
}
