//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/controllers/resources"
)

// TestOperatorIsHeldToItsAdmissionPolicies: the chart's
// ValidatingAdmissionPolicies, as the e2e's helm install put them in the
// cluster, are live for the operator's own ServiceAccount (impersonated): it
// may not change a foreign pod's image, a broker pod's image, delete a
// foreign Secret or edit a user's password Secret; it may still bump its
// annotation on a broker pod and update its config Secret (dry runs, which
// admission checks all the same). Every other e2e test runs the operator
// under these policies; this one shows they are there to run under.
func TestOperatorIsHeldToItsAdmissionPolicies(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	ctx := context.Background()
	nc := newNatsCluster(t, c, ns, "vap", 1)
	waitReady(t, c, nc, 5*time.Minute)
	broker := brokerPods(t, c, nc)[0]

	var deploy appsv1.DeploymentList
	if err := c.List(ctx, &deploy, client.InNamespace(operatorNamespace)); err != nil || len(deploy.Items) != 1 {
		t.Fatalf("the operator's Deployment in %s: %v (%d found)", operatorNamespace, err, len(deploy.Items))
	}
	sa := deploy.Items[0].Spec.Template.Spec.ServiceAccountName
	cfg := rest.CopyConfig(restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: fmt.Sprintf("system:serviceaccount:%s:%s", operatorNamespace, sa),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace, "system:authenticated"},
	}
	operator, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}

	podSC, ctrSC := nonRoot()
	foreign, err := kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "foreign"},
		Spec: corev1.PodSpec{SecurityContext: podSC, Containers: []corev1.Container{{
			Name: "echo", Image: toolImage("echo"), Args: []string{"serve"}, SecurityContext: ctrSC,
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "foreign"}, StringData: map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	image := func(container string) []byte {
		return fmt.Appendf(nil, `{"spec":{"containers":[{"name":%q,"image":"localhost:5001/evil:1"}]}}`, container)
	}
	annotation := []byte(`{"metadata":{"annotations":{"natsforge.io/config-hash":"e2e"}}}`)
	dryRun := []string{metav1.DryRunAll}
	denied := func(what, policy string, err error) {
		t.Helper()
		want := "ValidatingAdmissionPolicy '" + policy + "'"
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want Forbidden by %s", what, err, want)
			return
		}
		t.Logf("%s: refused: %v", what, err)
	}
	allowed := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v, want it allowed", what, err)
		}
	}

	_, err = operator.CoreV1().Pods(ns).Patch(ctx, foreign.Name, types.StrategicMergePatchType, image("echo"), metav1.PatchOptions{})
	denied("the operator changes a foreign pod's image", "natsforge-pods", err)
	_, err = operator.CoreV1().Pods(ns).Patch(ctx, broker.Name, types.StrategicMergePatchType, image(resources.BrokerContainerName), metav1.PatchOptions{})
	denied("the operator changes a broker pod's image", "natsforge-pods", err)
	_, err = operator.CoreV1().Pods(ns).Patch(ctx, foreign.Name, types.StrategicMergePatchType, annotation, metav1.PatchOptions{})
	denied("the operator annotates a foreign pod", "natsforge-pods", err)
	err = operator.CoreV1().Secrets(ns).Delete(ctx, "foreign", metav1.DeleteOptions{})
	denied("the operator deletes a foreign Secret", "natsforge-owned-objects", err)
	userSecret, err := kube.CoreV1().Secrets(ns).Get(ctx, nc.Name+"-myname", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	userSecret.Data["password"] = []byte("chosen-by-the-operator")
	_, err = operator.CoreV1().Secrets(ns).Update(ctx, userSecret, metav1.UpdateOptions{})
	denied("the operator edits a user's password Secret", "natsforge-owned-objects", err)

	_, err = operator.CoreV1().Pods(ns).Patch(ctx, broker.Name, types.StrategicMergePatchType, annotation, metav1.PatchOptions{DryRun: dryRun})
	allowed("the operator bumps its annotation on a broker pod", err)
	config, err := kube.CoreV1().Secrets(ns).Get(ctx, resources.ConfigSecretName(nc), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = operator.CoreV1().Secrets(ns).Update(ctx, config, metav1.UpdateOptions{DryRun: dryRun})
	allowed("the operator updates its config Secret", err)
}
