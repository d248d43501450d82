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
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

func TestUsersResolvedNamesTheSecretNeverTheValue(t *testing.T) {
	us := []resolvedUser{
		{name: "alice", password: []byte("hunter2"), reason: v1alpha1.UserResolved},
		{name: "carol", secretName: "carol-pw", reason: v1alpha1.UserSecretNotFound, message: "Secret carol-pw not found"},
		{name: "dave", secretName: "dave-pw", reason: v1alpha1.UserSecretKeyNotFound, message: `Secret dave-pw has no key "password", or it is empty`},
	}
	c := usersResolvedCondition(us)
	if c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonSecretNotFound {
		t.Errorf("condition %+v", c)
	}
	if !strings.Contains(c.Message, "carol-pw") || !strings.Contains(c.Message, "dave-pw") || strings.Contains(c.Message, "hunter2") {
		t.Errorf("message %q", c.Message)
	}
	if c := usersResolvedCondition(us[:1]); c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonAllUsersResolved {
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

type fakeDigests map[string]string

func (f fakeDigests) ConfigDigest(_ context.Context, pod *corev1.Pod) (string, error) {
	d, ok := f[pod.Name]
	if !ok {
		return "", errors.New("connection refused")
	}
	return d, nil
}

func TestAskPodsComparesEachPodsDigest(t *testing.T) {
	pods := []*corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: "c-0"}}, {ObjectMeta: metav1.ObjectMeta{Name: "c-1"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "c-2"}}, {ObjectMeta: metav1.ObjectMeta{Name: "c-3"}}}
	r := &NatsClusterReconciler{Digests: fakeDigests{"c-0": "abc", "c-1": "sha256:abc", "c-2": "old"}}
	p := r.askPods(context.Background(), pods, "abc")
	if p.asked != 4 || p.current != 2 || len(p.stale) != 2 ||
		!strings.HasPrefix(p.stale[0], "c-2: serves an older") || !strings.HasPrefix(p.stale[1], "c-3: unreachable") {
		t.Errorf("propagation %+v", p)
	}
}

func TestHTTPDigestProberReadsVarz(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/varz" {
			http.NotFound(w, r)
			return
		}
		_, _ = fmt.Fprint(w, `{"server_id":"x","config_digest":"d1g35t"}`)
	}))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	p, _ := strconv.Atoi(port)
	pod := &corev1.Pod{Status: corev1.PodStatus{PodIP: host}}
	got, err := HTTPDigestProber{Port: p}.ConfigDigest(context.Background(), pod)
	if err != nil || got != "d1g35t" {
		t.Errorf("digest %q, %v", got, err)
	}
}
