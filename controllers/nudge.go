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
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/natsforge/natsforge/controllers/resources"
)

// The kubelet refreshes a mounted Secret when the pod changes (which is why
// propagateConfig annotates the pods with the config hash) and otherwise only
// in its periodic sync, a minute or more apart. A refresh can come too early:
// the pod's update may reach the kubelet before its watch of the config Secret
// delivers the new version (a Secret near 1 MiB takes longer), or, for a
// config cut into parts, before the watch of one of the parts does, and the
// broker refuses a set whose digest does not match. The pod then serves the
// old config until the periodic sync: 78 s, in one of five rotations among
// 10,000 NatsUsers in make bench-cluster. So a ready pod that still serves an
// older config nudgeAfter after it was told about the current one is nudged:
// AnnotationConfigNudges is bumped, which makes the kubelet refresh again.
// Each further nudge waits twice as long as the one before, up to nudgeMax:
// a pod that cannot load the config for some other reason (its log says
// why) costs one pod write per minute, not one per poll.
const (
	nudgeAfter = 5 * time.Second
	nudgeMax   = time.Minute
)

// podNudge is what the operator remembers of one stale pod.
type podNudge struct {
	want   string    // the config and certificate the pod was told to serve
	told   time.Time // when it was told (annotated or last nudged)
	nudges int       // nudges since then for want
}

// kubeletNudges holds, per cluster, its pods that serve an older config.
// It lives in memory: a new leader starts each pod's wait afresh.
type kubeletNudges struct {
	mu   sync.Mutex
	pods map[types.NamespacedName]map[types.UID]podNudge
}

func newKubeletNudges() *kubeletNudges {
	return &kubeletNudges{pods: map[types.NamespacedName]map[types.UID]podNudge{}}
}

// due returns the stale pods (of those asked) whose wait has run out, and
// records them as nudged at now. Pods not stale any more, or gone, are
// forgotten. want names what the pods should serve.
func (n *kubeletNudges) due(cluster types.NamespacedName, asked []*corev1.Pod, stale map[string]bool, want string, now time.Time) []*corev1.Pod {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	before := n.pods[cluster]
	after := map[types.UID]podNudge{}
	var due []*corev1.Pod
	for _, pod := range asked {
		if !stale[pod.Name] {
			continue
		}
		s, ok := before[pod.UID]
		switch {
		case !ok || s.want != want:
			s = podNudge{want: want, told: now}
		case now.Sub(s.told) >= min(nudgeAfter<<s.nudges, nudgeMax):
			s.told, s.nudges = now, s.nudges+1
			due = append(due, pod)
		}
		after[pod.UID] = s
	}
	if len(after) == 0 {
		delete(n.pods, cluster)
	} else {
		n.pods[cluster] = after
	}
	return due
}

func (n *kubeletNudges) forget(cluster types.NamespacedName) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.pods, cluster)
}

// nudgeStalePods bumps AnnotationConfigNudges on each ready pod that has
// served an older config for too long (see kubeletNudges).
func (r *NatsClusterReconciler) nudgeStalePods(ctx context.Context, rq *request, asked []*corev1.Pod) error {
	want := rq.configHash + "/" + rq.tls.hash
	for _, pod := range r.nudges.due(client.ObjectKeyFromObject(rq.cluster), asked, rq.propagation.behind, want, rq.now) {
		n, _ := strconv.Atoi(pod.Annotations[resources.AnnotationConfigNudges])
		patch := client.MergeFrom(pod.DeepCopy())
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		pod.Annotations[resources.AnnotationConfigNudges] = strconv.Itoa(n + 1)
		if err := r.Client.Patch(ctx, pod, patch); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("nudge pod %s: %w", pod.Name, err)
		}
		logf.FromContext(ctx).Info("pod still serves an older config; nudged the kubelet to refresh its mounted Secrets",
			"pod", pod.Name, "configHash", rq.configHash, "nudges", n+1)
	}
	return nil
}
