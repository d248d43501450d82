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
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// PodDisruptionBudget keeps a majority of the broker pods running through
// voluntary disruptions (drains, evictions). A cluster of one or two pods may
// lose one: a majority of them would be every pod, and block every node drain
// forever.
func PodDisruptionBudget(nc *v1alpha1.NatsCluster) *policyv1.PodDisruptionBudget {
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: objectMeta(nc, PDBName(nc), "broker"),
		Spec: policyv1.PodDisruptionBudgetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: SelectorLabels(nc)},
		},
	}
	if n := Replicas(nc); n > 2 {
		pdb.Spec.MinAvailable = new(intstr.FromInt32(n/2 + 1))
	} else {
		pdb.Spec.MaxUnavailable = new(intstr.FromInt32(1))
	}
	return pdb
}
