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
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/natsforge/natsforge/controllers/resources"
)

// BrokerState is what one broker pod's /varz says about it.
type BrokerState struct {
	// ConfigDigest is config_digest: the digest of the config file it has
	// loaded.
	ConfigDigest string
	// Routes is routes: how many other brokers it has a registered route to
	// (one per peer server, duplicates not counted).
	Routes int
}

// DigestProber asks one broker pod which config it has loaded and how many
// peers it has routes to.
type DigestProber interface {
	Varz(ctx context.Context, pod *corev1.Pod) (BrokerState, error)
}

// HTTPDigestProber reads config_digest and routes from a pod's
// http://<podIP>:8222/varz.
type HTTPDigestProber struct {
	// Client makes the requests; nil means a client with a 2s timeout.
	Client *http.Client
	// Port is the monitoring port; 0 means 8222.
	Port int
}

// Varz implements DigestProber.
func (p HTTPDigestProber) Varz(ctx context.Context, pod *corev1.Pod) (BrokerState, error) {
	hc := p.Client
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Second}
	}
	port := p.Port
	if port == 0 {
		port = resources.MonitorPort
	}
	u := "http://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)) + "/varz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return BrokerState{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return BrokerState{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return BrokerState{}, fmt.Errorf("/varz answered %s", resp.Status)
	}
	var varz struct {
		ConfigDigest string `json:"config_digest"`
		Routes       int    `json:"routes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&varz); err != nil {
		return BrokerState{}, fmt.Errorf("decode /varz: %w", err)
	}
	return BrokerState{ConfigDigest: varz.ConfigDigest, Routes: varz.Routes}, nil
}

// propagation is what the ready broker pods said about the config they serve
// and their routes.
type propagation struct {
	observed bool     // the phase ran
	asked    int      // ready pods with an address
	current  int      // of those, the ones serving the current config
	stale    []string // "<pod>: <why>", sorted
	// routes is, for each asked pod that answered, how many peers it has
	// routes to; unreachable names the asked pods that did not answer.
	routes      map[string]int
	unreachable []string // sorted
}

func (p propagation) pending() bool { return p.observed && p.current < p.asked }

// propagateConfig makes the kubelet refresh the mounted config at once, by
// bumping an annotation on every broker pod that has not yet been told about
// the current config, then asks each ready pod which config it serves and how
// many peers it has routes to.
func (r *NatsClusterReconciler) propagateConfig(ctx context.Context, rq *request) error {
	nc := rq.cluster
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(nc.Namespace), client.MatchingLabels(resources.SelectorLabels(nc))); err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	var ready []*corev1.Pod
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !pod.DeletionTimestamp.IsZero() {
			continue
		}
		if pod.Annotations[resources.AnnotationConfigHash] != rq.configHash {
			patch := client.MergeFrom(pod.DeepCopy())
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[resources.AnnotationConfigHash] = rq.configHash
			if err := r.Client.Patch(ctx, pod, patch); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("annotate pod %s: %w", pod.Name, err)
			}
		}
		if pod.Status.PodIP != "" && podReady(pod) {
			ready = append(ready, pod)
		}
	}
	rq.propagation = r.askPods(ctx, ready, rq.configHash)
	logf.FromContext(ctx).V(1).Info("config propagation", "configHash", rq.configHash,
		"readyPods", rq.propagation.asked, "current", rq.propagation.current, "stale", rq.propagation.stale,
		"routes", rq.propagation.routes, "unreachable", rq.propagation.unreachable)
	return nil
}

// askPods asks every pod, in parallel, for its config digest and route count.
func (r *NatsClusterReconciler) askPods(ctx context.Context, pods []*corev1.Pod, want string) propagation {
	p := propagation{observed: true, asked: len(pods)}
	if r.Digests == nil || len(pods) == 0 {
		return p
	}
	states := make([]BrokerState, len(pods))
	errs := make([]error, len(pods))
	var g errgroup.Group
	g.SetLimit(8)
	for i, pod := range pods {
		g.Go(func() error {
			states[i], errs[i] = r.Digests.Varz(ctx, pod)
			return nil
		})
	}
	_ = g.Wait()
	p.routes = make(map[string]int, len(pods))
	for i, pod := range pods {
		switch {
		case errs[i] != nil:
			p.stale = append(p.stale, pod.Name+": unreachable: "+errs[i].Error())
			p.unreachable = append(p.unreachable, pod.Name)
			continue
		case strings.TrimPrefix(states[i].ConfigDigest, "sha256:") != want:
			p.stale = append(p.stale, pod.Name+": serves an older config")
		default:
			p.current++
		}
		p.routes[pod.Name] = states[i].Routes
	}
	sort.Strings(p.stale)
	sort.Strings(p.unreachable)
	return p
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
