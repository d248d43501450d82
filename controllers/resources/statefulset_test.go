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

package resources

import (
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

func TestStatefulSetMatchesGoldenFile(t *testing.T) {
	goldenYAML(t, "statefulset.yaml", StatefulSet(sampleCluster(), "natsforge/broker:test"))
}

func TestBrokerPodIsHardened(t *testing.T) {
	sts := StatefulSet(sampleCluster(), "natsforge/broker:test")
	pod := sts.Spec.Template.Spec
	c := pod.Containers[0]

	if !slices.Equal(c.Args, []string{"-c", "/etc/nats/nats.conf", "--previous_passwords", "/etc/nats/previous_passwords.conf"}) {
		t.Errorf("args %v", c.Args)
	}
	var ports []int32
	for _, p := range c.Ports {
		ports = append(ports, p.ContainerPort)
	}
	if !slices.Equal(ports, []int32{4222, 6222, 8222}) {
		t.Errorf("ports %v, want 4222 6222 8222", ports)
	}
	for name, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" || p.HTTPGet.Port.StrVal != MonitorPortName {
			t.Errorf("%s probe %+v, want GET /healthz on the monitor port", name, p)
		}
	}
	// A slow start (a pod waiting for its routes' names to resolve) gets a
	// minute before liveness may kill it.
	if sp := c.StartupProbe; sp != nil && sp.PeriodSeconds*sp.FailureThreshold < 60 {
		t.Errorf("startup probe allows %ds to start, want at least 60", sp.PeriodSeconds*sp.FailureThreshold)
	}
	sc := c.SecurityContext
	if !ptr.Deref(sc.RunAsNonRoot, false) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) ||
		ptr.Deref(sc.AllowPrivilegeEscalation, true) || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("container security context %+v is not hardened", sc)
	}
	if !ptr.Deref(pod.SecurityContext.RunAsNonRoot, false) || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v is not hardened", pod.SecurityContext)
	}
	// lameDuckDuration 45s + grace 10s + margin 5s.
	if got := ptr.Deref(pod.TerminationGracePeriodSeconds, 0); got != 60 {
		t.Errorf("terminationGracePeriodSeconds %d, want 60 (lame duck 45s + grace 10s + 5s)", got)
	}
	// One projected volume: nats.conf and previous_passwords.conf of
	// demo-config and the optional parts, which the kubelet swaps at once.
	vol := pod.Volumes[0].Projected
	if vol == nil || len(vol.Sources) != MaxConfigParts+1 {
		t.Fatalf("config volume %+v, want one projected volume of the config and its parts", pod.Volumes[0])
	}
	if s := vol.Sources[0].Secret; s == nil || len(s.Items) != 2 || s.Items[1].Key != PreviousPasswordsKey || s.Items[1].Path != PreviousPasswordsKey {
		t.Errorf("config volume source 0: %+v, want nats.conf and previous_passwords.conf of demo-config (not the fingerprints)", s)
	}
	for i, src := range vol.Sources[1:] {
		i++
		name, key, optional := fmt.Sprintf("demo-config-%d", i), fmt.Sprintf("nats.conf.%d", i), true
		s := src.Secret
		if s == nil || s.Name != name || len(s.Items) != 1 || s.Items[0].Key != key || s.Items[0].Path != key || ptr.Deref(s.Optional, false) != optional {
			t.Errorf("config volume source %d: %+v, want only %s of %s (optional %v)", i, s, key, name, optional)
		}
	}
	if c.VolumeMounts[0].SubPath != "" {
		t.Errorf("config mounted with subPath: the kubelet would never refresh it")
	}
}

func TestPodTemplateCarriesNothingFromTheConfig(t *testing.T) {
	nc := sampleCluster()
	before := StatefulSet(nc, "img")
	// Users and passwords change the config, never the pod template.
	nc.Spec.Auth.Users = nc.Spec.Auth.Users[:1]
	nc.Spec.Auth.BcryptCost = 12
	after := StatefulSet(nc, "img")
	if !equalYAML(t, before.Spec.Template, after.Spec.Template) {
		t.Error("pod template changed with the users: a rotation would roll the pods")
	}
}

func TestPodPlacementFollowsTheSpec(t *testing.T) {
	nc := sampleCluster()
	pod := StatefulSet(nc, "img").Spec.Template.Spec
	terms := pod.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
	if len(terms) != 1 || terms[0].PodAffinityTerm.TopologyKey != corev1.LabelHostname {
		t.Errorf("default affinity %+v, want to prefer one pod per node", pod.Affinity)
	}

	nc.Spec.Pod.Affinity = &corev1.Affinity{}
	nc.Spec.Pod.NodeSelector = map[string]string{"disk": "ssd"}
	nc.Spec.Pod.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpExists}}
	nc.Spec.Pod.PriorityClassName = "high"
	nc.Spec.Pod.Labels = map[string]string{"team": "x", LabelInstance: "hijack"}
	nc.Spec.Pod.Annotations = map[string]string{"note": "y"}
	nc.Spec.Pod.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.ScheduleAnyway}}
	sts := StatefulSet(nc, "img")
	pod = sts.Spec.Template.Spec
	if pod.Affinity.PodAntiAffinity != nil || pod.NodeSelector["disk"] != "ssd" || len(pod.Tolerations) != 1 ||
		pod.PriorityClassName != "high" || len(pod.TopologySpreadConstraints) != 1 {
		t.Errorf("placement not taken from spec.pod: %+v", pod)
	}
	meta := sts.Spec.Template.ObjectMeta
	if meta.Labels["team"] != "x" || meta.Labels[LabelInstance] != "demo" || meta.Annotations["note"] != "y" {
		t.Errorf("pod metadata %+v: want spec.pod labels and annotations, selector labels winning", meta)
	}
}

func equalYAML(t *testing.T, a, b any) bool {
	t.Helper()
	x, err1 := marshal(a)
	y, err2 := marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return x == y
}

func marshal(v any) (string, error) {
	b, err := yaml.Marshal(v)
	return string(b), err
}
