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
	"maps"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// BrokerContainerName is the name of the broker container in every pod.
const BrokerContainerName = "nats"

// BrokerUID is the non-root user and group the broker runs as.
const BrokerUID = 1000

// terminationMargin is added to the lame-duck time so the kubelet does not kill
// a broker that is just finishing its hand-over.
const terminationMarginSeconds = 5

// StatefulSet runs nc's broker pods. The pod template carries nothing derived
// from the config file or the certificates: a password or certificate
// rotation reaches the pods through the mounted Secrets and never rolls them. Changes that do change the template
// (image, resources, placement) roll one pod at a time; each stopping pod
// hands its clients over in lame-duck mode on SIGTERM.
func StatefulSet(nc *v1alpha1.NatsCluster, image string) *appsv1.StatefulSet {
	podLabels := maps.Clone(nc.Spec.Pod.Labels)
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	maps.Copy(podLabels, componentLabels(nc, "broker"))

	sts := &appsv1.StatefulSet{
		ObjectMeta: objectMeta(nc, StatefulSetName(nc), "broker"),
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To(Replicas(nc)),
			ServiceName:         RoutesServiceName(nc),
			Selector:            &metav1.LabelSelector{MatchLabels: SelectorLabels(nc)},
			PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
				Type: appsv1.RollingUpdateStatefulSetStrategyType,
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      podLabels,
					Annotations: maps.Clone(nc.Spec.Pod.Annotations),
				},
				Spec: podSpec(nc, image),
			},
		},
	}
	return sts
}

func podSpec(nc *v1alpha1.NatsCluster, image string) corev1.PodSpec {
	p := nc.Spec.Pod
	affinity := p.Affinity
	if affinity == nil {
		affinity = defaultAffinity(nc)
	}
	grace := int64(LameDuckDuration(nc).Seconds()) + int64(LameDuckGracePeriod.Seconds()) + terminationMarginSeconds
	return corev1.PodSpec{
		Containers:                    []corev1.Container{brokerContainer(nc, image)},
		Volumes:                       append([]corev1.Volume{configVolume(nc)}, tlsVolumes(nc)...),
		TerminationGracePeriodSeconds: ptr.To(grace),
		AutomountServiceAccountToken:  ptr.To(false),
		EnableServiceLinks:            ptr.To(false),
		NodeSelector:                  maps.Clone(p.NodeSelector),
		Tolerations:                   p.Tolerations,
		Affinity:                      affinity,
		TopologySpreadConstraints:     p.TopologySpreadConstraints,
		PriorityClassName:             p.PriorityClassName,
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To[int64](BrokerUID),
			RunAsGroup:     ptr.To[int64](BrokerUID),
			FSGroup:        ptr.To[int64](BrokerUID),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

func brokerContainer(nc *v1alpha1.NatsCluster, image string) corev1.Container {
	// The kubelet does not verify the certificate of an HTTPS probe: it needs
	// no CA, and a certificate rotation does not disturb it.
	scheme := corev1.URISchemeHTTP
	if TLSEnabled(nc) {
		scheme = corev1.URISchemeHTTPS
	}
	probe := func(period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path:   "/healthz",
				Port:   intstr.FromString(MonitorPortName),
				Scheme: scheme,
			}},
			PeriodSeconds:    period,
			TimeoutSeconds:   2,
			SuccessThreshold: 1,
			FailureThreshold: failures,
		}
	}
	return corev1.Container{
		Name:            BrokerContainerName,
		Image:           image,
		ImagePullPolicy: nc.Spec.ImagePullPolicy,
		Args:            []string{"-c", ConfigPath, "--previous_passwords", PreviousPasswordsPath},
		Ports: []corev1.ContainerPort{
			{Name: ClientPortName, ContainerPort: ClientPort, Protocol: corev1.ProtocolTCP},
			{Name: ClusterPortName, ContainerPort: ClusterPort, Protocol: corev1.ProtocolTCP},
			{Name: MonitorPortName, ContainerPort: MonitorPort, Protocol: corev1.ProtocolTCP},
		},
		Resources: nc.Spec.Resources,
		// The broker's /healthz fails until its client and route listeners
		// are up and again in lame duck mode (as nats-server's), so readiness
		// drops a pod from the Service while it hands its clients over. The
		// startup probe holds liveness off for up to a minute of start-up;
		// the kubelet stops liveness probes once a pod is being deleted, so
		// lame duck never gets the container killed.
		StartupProbe:   probe(1, 60),
		LivenessProbe:  probe(10, 3),
		ReadinessProbe: probe(5, 2),
		VolumeMounts: append([]corev1.VolumeMount{{
			Name:      "config",
			MountPath: ConfigDir,
			ReadOnly:  true,
		}}, tlsMounts(nc)...),
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             ptr.To(true),
			AllowPrivilegeEscalation: ptr.To(false),
			ReadOnlyRootFilesystem:   ptr.To(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// defaultAffinity prefers to put each broker pod on a different node.
func defaultAffinity(nc *v1alpha1.NatsCluster) *corev1.Affinity {
	return &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 100,
			PodAffinityTerm: corev1.PodAffinityTerm{
				TopologyKey:   corev1.LabelHostname,
				LabelSelector: &metav1.LabelSelector{MatchLabels: SelectorLabels(nc)},
			},
		}},
	}}
}
