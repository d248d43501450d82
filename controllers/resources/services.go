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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// RoutesService is the headless Service that gives each broker pod the stable
// name <pod>.<name>-routes.<ns>.svc its peers route to. It publishes pods
// before they are ready: a broker becomes ready only once it can reach its
// peers, so peers must be able to find it first.
func RoutesService(nc *v1alpha1.NatsCluster) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: objectMeta(nc, RoutesServiceName(nc), "routes"),
		Spec: corev1.ServiceSpec{
			Type:                     corev1.ServiceTypeClusterIP,
			ClusterIP:                corev1.ClusterIPNone,
			PublishNotReadyAddresses: true,
			Selector:                 SelectorLabels(nc),
			Ports: []corev1.ServicePort{{
				Name:       ClusterPortName,
				Port:       ClusterPort,
				TargetPort: intstr.FromString(ClusterPortName),
				Protocol:   corev1.ProtocolTCP,
			}},
		},
	}
}

// ClientService is the one address clients connect to, on port 4222. It sends
// them only to ready pods.
func ClientService(nc *v1alpha1.NatsCluster) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: objectMeta(nc, ClientServiceName(nc), "client"),
		Spec: corev1.ServiceSpec{
			Type:     nc.Spec.Service.Type,
			Selector: SelectorLabels(nc),
			Ports: []corev1.ServicePort{{
				Name:       ClientPortName,
				Port:       ClientPort,
				TargetPort: intstr.FromString(ClientPortName),
				Protocol:   corev1.ProtocolTCP,
			}},
		},
	}
	if svc.Spec.Type == "" {
		svc.Spec.Type = corev1.ServiceTypeClusterIP
	}
	if len(nc.Spec.Service.Annotations) > 0 {
		svc.Annotations = maps.Clone(nc.Spec.Service.Annotations)
	}
	return svc
}
