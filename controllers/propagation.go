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

// DigestProber asks one broker pod for the digest of the config it has loaded.
type DigestProber interface {
	ConfigDigest(ctx context.Context, pod *corev1.Pod) (string, error)
}

// HTTPDigestProber reads config_digest from a pod's http://<podIP>:8222/varz.
type HTTPDigestProber struct {
	// Client makes the requests; nil means a client with a 2s timeout.
	Client *http.Client
	// Port is the monitoring port; 0 means 8222.
	Port int
}

// ConfigDigest implements DigestProber.
func (p HTTPDigestProber) ConfigDigest(ctx context.Context, pod *corev1.Pod) (string, error) {
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
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("/varz answered %s", resp.Status)
	}
	var varz struct {
		ConfigDigest string `json:"config_digest"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&varz); err != nil {
		return "", fmt.Errorf("decode /varz: %w", err)
	}
	return varz.ConfigDigest, nil
}

// propagation is what the ready broker pods said about the config they serve.
type propagation struct {
	observed bool     // the phase ran
	asked    int      // ready pods with an address
	current  int      // of those, the ones serving the current config
	stale    []string // "<pod>: <why>", sorted
}

func (p propagation) pending() bool { return p.observed && p.current < p.asked }

// propagateConfig makes the kubelet refresh the mounted config at once, by
// bumping an annotation on every broker pod that has not yet been told about
// the current config, then asks each ready pod which config it serves.
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
		"readyPods", rq.propagation.asked, "current", rq.propagation.current, "stale", rq.propagation.stale)
	return nil
}

// askPods asks every pod, in parallel, for its config digest.
func (r *NatsClusterReconciler) askPods(ctx context.Context, pods []*corev1.Pod, want string) propagation {
	p := propagation{observed: true, asked: len(pods)}
	if r.Digests == nil || len(pods) == 0 {
		return p
	}
	results := make([]string, len(pods)) // "" = current, else why not
	var g errgroup.Group
	g.SetLimit(8)
	for i, pod := range pods {
		g.Go(func() error {
			got, err := r.Digests.ConfigDigest(ctx, pod)
			switch {
			case err != nil:
				results[i] = "unreachable: " + err.Error()
			case strings.TrimPrefix(got, "sha256:") != want:
				results[i] = "serves an older config"
			}
			return nil
		})
	}
	_ = g.Wait()
	for i, why := range results {
		if why == "" {
			p.current++
		} else {
			p.stale = append(p.stale, pods[i].Name+": "+why)
		}
	}
	sort.Strings(p.stale)
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
