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
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

func TestUsersResolvedNamesTheSecretNeverTheValue(t *testing.T) {
	us := []resolvedUser{
		{name: "alice", password: []byte("hunter2"), reason: v1alpha1.UserResolved},
		{name: "carol", secretName: "carol-pw", reason: v1alpha1.UserSecretMissing, message: "Secret carol-pw not found"},
		{name: "dave", secretName: "dave-pw", reason: v1alpha1.UserKeyMissing, message: `Secret dave-pw has no key "password"`},
	}
	c := usersResolvedCondition(us, nil)
	if c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonSecretMissing {
		t.Errorf("condition %+v", c)
	}
	if !strings.Contains(c.Message, "carol-pw") || !strings.Contains(c.Message, "dave-pw") || strings.Contains(c.Message, "hunter2") {
		t.Errorf("message %q", c.Message)
	}
	if c := usersResolvedCondition(us[:1], nil); c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonAllUsersResolved {
		t.Errorf("all resolved: %+v", c)
	}
}

func TestConfigPropagatedCondition(t *testing.T) {
	tests := []struct {
		name   string
		p      propagation
		status metav1.ConditionStatus
		reason string
		text   string
	}{
		{"no pods with an address", propagation{observed: true}, metav1.ConditionUnknown, v1alpha1.ReasonNoPodAddresses, "no pod addresses"},
		{"all current", propagation{observed: true, asked: 3, current: 3}, metav1.ConditionTrue, v1alpha1.ReasonConfigCurrent, "3/3"},
		{"one stale", propagation{observed: true, asked: 3, current: 2, stale: []string{"c-2: serves an older config"}},
			metav1.ConditionFalse, v1alpha1.ReasonConfigPending, "c-2"},
		{"one unreachable", propagation{observed: true, asked: 3, current: 2, stale: []string{"c-2: unreachable: refused"},
			unreachable: []string{"c-2"}}, metav1.ConditionUnknown, v1alpha1.ReasonProbeFailed, "1 of 3 ready pods could not be reached, so the config they serve is not known: c-2"},
	}
	for _, tt := range tests {
		c := configPropagatedCondition(tt.p)
		if c.Status != tt.status || c.Reason != tt.reason || !strings.Contains(c.Message, tt.text) {
			t.Errorf("%s: %+v", tt.name, c)
		}
		if tt.p.pending() != (tt.status == metav1.ConditionFalse) {
			t.Errorf("%s: pending() = %v", tt.name, tt.p.pending())
		}
	}
}

type fakeDigests map[string]BrokerState

func (f fakeDigests) Varz(_ context.Context, pod *corev1.Pod, _ *BrokerTrust) (BrokerState, error) {
	d, ok := f[pod.Name]
	if !ok {
		return BrokerState{}, errors.New("connection refused")
	}
	return d, nil
}

func TestAskPodsComparesEachPodsDigestAndCountsItsRoutes(t *testing.T) {
	pods := []*corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "c-0"}}, {ObjectMeta: metav1.ObjectMeta{Name: "c-1"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "c-2"}}, {ObjectMeta: metav1.ObjectMeta{Name: "c-3"}}}
	r := &NatsClusterReconciler{Digests: fakeDigests{
		"c-0": {ConfigDigest: "abc", Routes: 3}, "c-1": {ConfigDigest: "sha256:abc", Routes: 1}, "c-2": {ConfigDigest: "old", Routes: 2}}}
	p := r.askPods(context.Background(), pods, "abc", nil, "")
	if p.asked != 4 || p.current != 2 || len(p.stale) != 2 ||
		!strings.HasPrefix(p.stale[0], "c-2: serves an older") || !strings.HasPrefix(p.stale[1], "c-3: unreachable") {
		t.Errorf("propagation %+v", p)
	}
	// A pod serving an older config still reports its routes; one that did
	// not answer has none to report.
	if !reflect.DeepEqual(p.routes, map[string]int{"c-0": 3, "c-1": 1, "c-2": 2}) || !reflect.DeepEqual(p.unreachable, []string{"c-3"}) {
		t.Errorf("routes %v, unreachable %v", p.routes, p.unreachable)
	}
}

func TestMeshOf(t *testing.T) {
	tests := []struct {
		name     string
		p        propagation
		replicas int32
		checked  bool
		complete bool
		routed   int
		text     []string // in message(), when checked
	}{
		{name: "complete", replicas: 3, checked: true, complete: true, routed: 3,
			p: propagation{observed: true, asked: 3, current: 3, routes: map[string]int{"c-0": 2, "c-1": 2, "c-2": 2}}},
		{name: "one broker short of a route", replicas: 3, checked: true, routed: 2,
			p:    propagation{observed: true, asked: 3, current: 3, routes: map[string]int{"c-0": 2, "c-1": 1, "c-2": 2}},
			text: []string{"2 of 3 brokers have routes to all peers", "c-1: routes to 1 of 2 peers"}},
		{name: "no routes yet", replicas: 3, checked: true, routed: 0,
			p:    propagation{observed: true, asked: 3, routes: map[string]int{"c-0": 0, "c-1": 0, "c-2": 0}},
			text: []string{"0 of 3 brokers", "c-0: routes to 0 of 2", "c-2: routes to 0 of 2"}},
		{name: "unreachable pod", replicas: 3, checked: true, routed: 2,
			p: propagation{observed: true, asked: 3, current: 2, routes: map[string]int{"c-0": 2, "c-1": 2},
				unreachable: []string{"c-2"}},
			text: []string{"2 of 3", "c-2: /varz unreachable"}},
		{name: "a ready pod not seen yet", replicas: 3, checked: true, routed: 2,
			p:    propagation{observed: true, asked: 2, current: 2, routes: map[string]int{"c-0": 2, "c-1": 2}},
			text: []string{"2 of 3", "1 not asked yet"}},
		{name: "scaling down: extra routes to leaving pods", replicas: 2, checked: true, complete: true, routed: 2,
			p: propagation{observed: true, asked: 2, current: 2, routes: map[string]int{"c-0": 2, "c-1": 2}}},
		{name: "single replica is trivially complete", replicas: 1, checked: true, complete: true, routed: 1,
			p: propagation{observed: true, asked: 1, current: 1, routes: map[string]int{"c-0": 0}}},
		{name: "no pod addresses", replicas: 3, complete: true,
			p: propagation{observed: true}},
		{name: "no prober", replicas: 3, complete: true,
			p: propagation{observed: true, asked: 3}},
		{name: "not observed", replicas: 3, complete: true},
	}
	for _, tt := range tests {
		m := meshOf(tt.p, tt.replicas)
		if m.checked != tt.checked || m.complete() != tt.complete || m.routed != tt.routed {
			t.Errorf("%s: checked %v complete %v routed %d, want %v %v %d", tt.name, m.checked, m.complete(), m.routed,
				tt.checked, tt.complete, tt.routed)
		}
		for _, want := range tt.text {
			if !strings.Contains(m.message(), want) {
				t.Errorf("%s: message %q lacks %q", tt.name, m.message(), want)
			}
		}
	}
}

func TestReadyNeedsTheRouteMesh(t *testing.T) {
	readySTS := func(n int32) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{Status: appsv1.StatefulSetStatus{Replicas: n, ReadyReplicas: n, UpdatedReplicas: n}}
	}
	routes := func(counts ...int) propagation {
		p := propagation{observed: true, asked: len(counts), current: len(counts), routes: map[string]int{}}
		for i, n := range counts {
			p.routes[fmt.Sprintf("c-%d", i)] = n
		}
		return p
	}
	tests := []struct {
		name     string
		replicas int32
		sts      *appsv1.StatefulSet
		p        propagation
		status   metav1.ConditionStatus
		reason   string
		text     string
	}{
		{"mesh complete", 3, readySTS(3), routes(2, 2, 2), metav1.ConditionTrue, v1alpha1.ReasonAvailable, "every broker has routes to all peers"},
		{"mesh incomplete", 3, readySTS(3), routes(2, 1, 1), metav1.ConditionFalse, v1alpha1.ReasonMeshIncomplete, "1 of 3 brokers have routes to all peers"},
		{"single replica", 1, readySTS(1), routes(0), metav1.ConditionTrue, v1alpha1.ReasonAvailable, "1/1 pods ready"},
		{"no pod addresses", 3, readySTS(3), propagation{observed: true}, metav1.ConditionTrue, v1alpha1.ReasonAvailable, "3/3 pods ready"},
		{"pods not ready come first", 3, &appsv1.StatefulSet{Status: appsv1.StatefulSetStatus{Replicas: 3, ReadyReplicas: 2, UpdatedReplicas: 3}},
			routes(1, 1), metav1.ConditionFalse, v1alpha1.ReasonPodsNotReady, "2/3 pods ready"},
	}
	for _, tt := range tests {
		rq := &request{
			cluster:     &v1alpha1.NatsCluster{Spec: v1alpha1.NatsClusterSpec{Replicas: &tt.replicas}},
			statefulSet: tt.sts,
			propagation: tt.p,
		}
		c := readyCondition(rq)
		if c.Status != tt.status || c.Reason != tt.reason || !strings.Contains(c.Message, tt.text) {
			t.Errorf("%s: %+v", tt.name, c)
		}
	}
}

func TestHTTPDigestProberReadsVarz(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/varz" {
			http.NotFound(w, r)
			return
		}
		_, _ = fmt.Fprint(w, `{"server_id":"x","routes":2,"config_digest":"d1g35t"}`)
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	p, _ := strconv.Atoi(port)
	pod := &corev1.Pod{Status: corev1.PodStatus{PodIP: host}}
	got, err := HTTPDigestProber{Port: p}.Varz(context.Background(), pod, nil)
	if err != nil || got != (BrokerState{ConfigDigest: "d1g35t", Routes: 2}) {
		t.Errorf("varz %+v, %v", got, err)
	}
}
