package resources

import (
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// maxReplicas is spec.replicas' maximum (the API's +kubebuilder:validation:Maximum):
// the longest pod name has the ordinal maxReplicas-1.
const maxReplicas = 32

// revisionHashLength is the longest hash the StatefulSet controller appends
// to the StatefulSet's name for a ControllerRevision (the decimal digits of a
// 32-bit FNV hash, at most 10, in k8s.io/kubernetes pkg/controller/history);
// every pod carries the result as its controller-revision-hash label.
const revisionHashLength = 10

// childNameProblems lists every name the operator derives from a NatsCluster
// called name that Kubernetes would refuse, with why.
func childNameProblems(name string) []string {
	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: strings.Repeat("n", 63)}}
	nc.Spec.Replicas = ptr.To[int32](maxReplicas)
	longestUser := strings.Repeat("U", 63) // the API's longest user name, one that needs cleaning and a hash
	var problems []string
	check := func(what, value string, errs []string) {
		for _, e := range errs {
			problems = append(problems, fmt.Sprintf("%s %q: %s", what, value, e))
		}
	}
	for what, n := range map[string]string{
		"client Service": ClientServiceName(nc), "routes Service": RoutesServiceName(nc),
	} {
		check(what, n, validation.IsDNS1035Label(n))
	}
	for what, n := range map[string]string{
		"StatefulSet": StatefulSetName(nc), "PodDisruptionBudget": PDBName(nc), "NetworkPolicy": NetworkPolicyName(nc),
		"config Secret": ConfigSecretName(nc), "route credentials Secret": RoutesSecretName(nc),
		"fingerprint key Secret": FingerprintKeySecretName(nc), "generated user Secret": GeneratedUserSecretName(nc, longestUser),
		"CA Secret": CASecretName(nc), "server TLS Secret": ServerTLSSecretName(nc), "routes TLS Secret": RoutesTLSSecretName(nc),
	} {
		check(what, n, validation.IsDNS1123Subdomain(n))
	}
	lastPod := PodName(nc, maxReplicas-1)
	check("pod (its hostname)", lastPod, validation.IsDNS1123Label(lastPod))
	check("pod label statefulset.kubernetes.io/pod-name", lastPod, validation.IsValidLabelValue(lastPod))
	revision := StatefulSetName(nc) + "-" + strings.Repeat("9", revisionHashLength)
	check("pod label controller-revision-hash", revision, validation.IsValidLabelValue(revision))
	for k, v := range Labels(nc) {
		check("label "+k, v, validation.IsValidLabelValue(v))
	}
	for _, n := range RouteDNSNames(nc) {
		check("route DNS name", n, validation.IsDNS1123Subdomain(n))
	}
	return problems
}

func TestMaxNameLengthIsTheLongestNameEveryChildNameFits(t *testing.T) {
	name := func(n int) string { return "c" + strings.Repeat("x", n-1) }
	if p := childNameProblems(name(v1alpha1.MaxNameLength)); len(p) > 0 {
		t.Errorf("a NatsCluster name of %d characters (MaxNameLength) is too long for: %v", v1alpha1.MaxNameLength, p)
	}
	p := childNameProblems(name(v1alpha1.MaxNameLength + 1))
	if len(p) == 0 {
		t.Errorf("every child name fits a NatsCluster name of %d characters: MaxNameLength can grow", v1alpha1.MaxNameLength+1)
	}
	t.Logf("one more character breaks: %v", p)
}
