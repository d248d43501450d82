package install

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// The policies' refusals, as the chart and config/admission word them.
const (
	refusedForeignPod    = "may change only pods labelled app.kubernetes.io/managed-by=natsforge-operator"
	refusedPodChange     = "may change nothing on a pod but its annotations"
	refusedForeignObject = "may update or delete only objects a NatsCluster controls"
	refusedNewObject     = "may create or keep only objects a NatsCluster controls"
)

// TestTheOperatorMayWriteOnlyWhatItManages installs the operator's RBAC and
// admission policies for real, as the Helm chart and as config/default render
// them, and acts as the operator's ServiceAccount (impersonated): the API
// server's ValidatingAdmissionPolicy plugin and RBAC decide.
func TestTheOperatorMayWriteOnlyWhatItManages(t *testing.T) {
	for _, tc := range []struct {
		name, namespace string
		render          func(t *testing.T) []byte
	}{
		{"helm chart", "admission-helm", func(t *testing.T) []byte {
			return run(t, tool(t, "HELM"), "template", "nf", "charts/natsforge", "--namespace", "natsforge-system")
		}},
		{"kustomize", "admission-kustomize", func(t *testing.T) []byte {
			return run(t, tool(t, "KUBECTL"), "kustomize", "config/default")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			operator := installOperatorAccess(t, decodeObjects(t, tc.render(t)))
			checkOperatorWrites(t, tc.namespace, operator)
		})
	}
}

// installOperatorAccess creates the ServiceAccount, its RBAC and the
// admission policies from objs, and returns a client acting as that
// ServiceAccount.
func installOperatorAccess(t *testing.T, objs []*unstructured.Unstructured) client.Client {
	t.Helper()
	ctx := context.Background()
	var user string
	for _, obj := range objs {
		switch obj.GetKind() {
		case "ServiceAccount":
			user = fmt.Sprintf("system:serviceaccount:%s:%s", obj.GetNamespace(), obj.GetName())
		case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
		default:
			continue
		}
		if ns := obj.GetNamespace(); ns != "" {
			ensureNamespace(t, ns)
		}
		if err := k8sClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner("admission-test"), client.ForceOwnership); err != nil {
			t.Fatalf("installing %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
	if user == "" {
		t.Fatal("no ServiceAccount rendered")
	}
	ns := strings.Split(user, ":")[2]
	cfg := rest.CopyConfig(restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkOperatorWrites(t *testing.T, ns string, operator client.Client) {
	ctx := context.Background()
	ensureNamespace(t, ns)
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	admin, err := client.New(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	// What a cluster looks like to the operator: a NatsCluster, its broker pod
	// (as the StatefulSet builds it), its config Secret, and the user's own
	// password Secret; beside them a pod natsforge does not manage.
	nc := &v1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "demo"},
		Spec: v1alpha1.NatsClusterSpec{Auth: v1alpha1.AuthSpec{Users: []v1alpha1.User{
			{Name: "alice", PasswordSecretRef: &v1alpha1.SecretKeyReference{Name: "alice-pw"}}}}},
	}
	create(t, admin, nc)
	template := resources.StatefulSet(nc, "natsforge/broker:test").Spec.Template
	broker := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: resources.PodName(nc, 0), Labels: template.Labels},
		Spec: template.Spec}
	broker.Spec.AutomountServiceAccountToken = ptr.To(false)
	create(t, admin, broker)
	foreign := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "user-app", Labels: map[string]string{"app": "user-app"}},
		Spec: corev1.PodSpec{AutomountServiceAccountToken: ptr.To(false),
			Containers: []corev1.Container{{Name: "app", Image: "user/app:1"}}}}
	create(t, admin, foreign)
	userSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "alice-pw"},
		Data: map[string][]byte{"password": []byte("alice-plaintext")}}
	create(t, admin, userSecret)
	configSecret := resources.ConfigSecret(nc, []byte("port: 4222\n"), nil, []byte("{}"), nil)
	create(t, admin, configSecret)
	// A workload and a NetworkPolicy of someone else's beside the cluster's own.
	sts := resources.StatefulSet(nc, "natsforge/broker:test")
	create(t, admin, sts)
	userSTS := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "user-db"},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "user-db"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "user-db"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "db", Image: "user/db:1"}}}}}}
	create(t, admin, userSTS)
	userPolicy := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "user-deny-all"},
		Spec: networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}}}
	create(t, admin, userPolicy)

	annotate := func(pod *corev1.Pod, key, value string) func() error {
		return func() error {
			return patchPod(operator, pod, func(p *corev1.Pod) { metav1.SetMetaDataAnnotation(&p.ObjectMeta, key, value) })
		}
	}
	editUserSecret := func() error {
		return updateSecret(operator, userSecret, func(s *corev1.Secret) { s.Data["password"] = []byte("taken-over") })
	}

	// The policies take effect a moment after they are created: wait for the
	// first refusal of each, then check everything else once.
	waitRefused(t, "annotating a pod natsforge does not manage", annotate(foreign, resources.AnnotationConfigHash, "x"), refusedForeignPod)
	waitRefused(t, "writing a user's password Secret back unchanged", func() error {
		return updateSecret(operator, userSecret, func(*corev1.Secret) {})
	}, refusedForeignObject)

	// The operator's own work.
	allowed(t, "bumping the config annotation on a broker pod", annotate(broker, resources.AnnotationConfigHash, "sha256:1"))
	allowed(t, "bumping the TLS annotation on a broker pod", annotate(broker, resources.AnnotationTLSHash, "sha256:2"))
	allowed(t, "updating the cluster's config Secret", func() error {
		return updateSecret(operator, configSecret, func(s *corev1.Secret) { s.Data[resources.ConfigKey] = []byte("port: 4223\n") })
	})
	generated := resources.GeneratedUserSecret(nc, "bob", "bob-generated", nil)
	allowed(t, "creating a generated user's Secret", func() error { return operator.Create(ctx, generated) })
	allowed(t, "deleting a generated user's Secret", func() error { return operator.Delete(ctx, generated) })

	allowed(t, "updating the cluster's StatefulSet", func() error {
		return updateObject(operator, sts, func(o client.Object) {
			o.(*appsv1.StatefulSet).Spec.Template.Spec.Containers[0].Image = "natsforge/broker:next"
		})
	})

	// Anything else.
	refused(t, "changing the image of someone else's StatefulSet", func() error {
		return updateObject(operator, userSTS, func(o client.Object) {
			o.(*appsv1.StatefulSet).Spec.Template.Spec.Containers[0].Image = "attacker/image:1"
		})
	}, refusedForeignObject)
	refused(t, "deleting someone else's NetworkPolicy", func() error { return operator.Delete(ctx, userPolicy) }, refusedForeignObject)
	// PodMonitors (spec.monitoring.podMonitor): the cluster's own, not a user's.
	installPodMonitorCRD(t, admin)
	podMonitor := resources.PodMonitor(nc)
	allowed(t, "creating the cluster's PodMonitor", func() error { return operator.Create(ctx, podMonitor) })
	allowed(t, "updating the cluster's PodMonitor", func() error {
		return updateObject(operator, podMonitor, func(o client.Object) {
			o.(*unstructured.Unstructured).Object["spec"].(map[string]any)["podMetricsEndpoints"] = []any{map[string]any{"port": "monitor"}}
		})
	})
	allowed(t, "deleting the cluster's PodMonitor", func() error { return operator.Delete(ctx, podMonitor) })
	userMonitor := resources.PodMonitor(nc)
	userMonitor.SetName("user-monitor")
	userMonitor.SetOwnerReferences(nil)
	create(t, admin, userMonitor)
	refused(t, "creating a PodMonitor no NatsCluster controls", func() error {
		planted := resources.PodMonitor(nc)
		planted.SetName("planted")
		planted.SetOwnerReferences(nil)
		return operator.Create(ctx, planted)
	}, refusedNewObject)
	refused(t, "deleting someone else's PodMonitor", func() error { return operator.Delete(ctx, userMonitor) }, refusedForeignObject)
	refused(t, "changing a broker pod's image", func() error {
		return patchPod(operator, broker, func(p *corev1.Pod) { p.Spec.Containers[0].Image = "attacker/image:1" })
	}, refusedPodChange)
	refused(t, "changing a broker pod's label", func() error {
		return patchPod(operator, broker, func(p *corev1.Pod) { p.Labels["app.kubernetes.io/instance"] = "other" })
	}, refusedPodChange)
	refused(t, "setting another annotation on a broker pod", annotate(broker, "example.com/other", "x"), refusedPodChange)
	refused(t, "annotating a pod natsforge does not manage", annotate(foreign, resources.AnnotationTLSHash, "x"), refusedForeignPod)
	refused(t, "editing a user's password Secret", editUserSecret, refusedForeignObject)
	refused(t, "deleting a user's password Secret", func() error { return operator.Delete(ctx, userSecret) }, refusedForeignObject)
	refused(t, "creating a Secret no NatsCluster controls", func() error {
		return operator.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "planted"}})
	}, refusedNewObject)
	refused(t, "taking a Secret away from its NatsCluster", func() error {
		return updateSecret(operator, configSecret, func(s *corev1.Secret) { s.OwnerReferences = nil })
	}, refusedNewObject)
	// A NatsUser's generated Secret, in the NatsUser's namespace, controlled
	// by it; a NatsUser controls Secrets only.
	nu := &v1alpha1.NatsUser{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "team-app"},
		Spec: v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: nc.Name}}}
	create(t, admin, nu)
	natsUserSecret := resources.NatsUserSecret(nu, nc, "team-app-generated", nil)
	allowed(t, "creating a NatsUser's generated Secret", func() error { return operator.Create(ctx, natsUserSecret) })
	allowed(t, "updating a NatsUser's generated Secret", func() error {
		return updateSecret(operator, natsUserSecret, func(s *corev1.Secret) { s.Data["url"] = []byte("tls://x") })
	})
	refused(t, "creating a Service a NatsUser controls", func() error {
		return operator.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "planted-by-natsuser", OwnerReferences: natsUserSecret.OwnerReferences},
			Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 4222}}}})
	}, refusedNewObject)
	allowed(t, "deleting a NatsUser's generated Secret", func() error { return operator.Delete(ctx, natsUserSecret) })
	// RBAC: verbs the operator has no use for.
	for what, call := range map[string]func() error{
		"deleting a broker pod": func() error { return operator.Delete(ctx, broker) },
		"creating a pod": func() error {
			return operator.Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "x"}, Spec: foreign.Spec})
		},
		"deleting the StatefulSet": func() error { return operator.Delete(ctx, resources.StatefulSet(nc, "img")) },
	} {
		if err := call(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want Forbidden by RBAC", what, err)
		}
	}

	// Nothing refused was written.
	got := &corev1.Pod{}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(broker), got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Containers[0].Image != "natsforge/broker:test" || got.Annotations[resources.AnnotationConfigHash] != "sha256:1" {
		t.Errorf("broker pod image %s, annotations %v", got.Spec.Containers[0].Image, got.Annotations)
	}
	s := &corev1.Secret{}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(userSecret), s); err != nil || string(s.Data["password"]) != "alice-plaintext" {
		t.Errorf("the user's password Secret changed: %v %q", err, s.Data["password"])
	}
}

func create(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

// patchPod merge-patches the pod's current state with change, as the
// operator patches its annotations.
func patchPod(c client.Client, pod *corev1.Pod, change func(*corev1.Pod)) error {
	cur := &corev1.Pod{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(pod), cur); err != nil {
		return err
	}
	patch := client.MergeFrom(cur.DeepCopy())
	change(cur)
	return c.Patch(context.Background(), cur, patch)
}

// updateObject updates obj's current state with change.
func updateObject(c client.Client, obj client.Object, change func(client.Object)) error {
	cur := obj.DeepCopyObject().(client.Object)
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), cur); err != nil {
		return err
	}
	change(cur)
	return c.Update(context.Background(), cur)
}

func updateSecret(c client.Client, s *corev1.Secret, change func(*corev1.Secret)) error {
	cur := &corev1.Secret{}
	if err := k8sClient.Get(context.Background(), client.ObjectKeyFromObject(s), cur); err != nil {
		return err
	}
	change(cur)
	return c.Update(context.Background(), cur)
}

func allowed(t *testing.T, what string, call func() error) {
	t.Helper()
	if err := call(); err != nil {
		t.Errorf("%s was refused: %v", what, err)
	}
}

func refused(t *testing.T, what string, call func() error, why string) {
	t.Helper()
	err := call()
	if err == nil {
		t.Errorf("%s was allowed", what)
		return
	}
	if !strings.Contains(err.Error(), why) {
		t.Errorf("%s: %v, want a refusal saying %q", what, err, why)
	}
}

func waitRefused(t *testing.T, what string, call func() error, why string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := call()
		if err != nil && strings.Contains(err.Error(), why) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after 30s still %v, want a refusal saying %q", what, err, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// installPodMonitorCRD serves monitoring.coreos.com/v1 PodMonitors, with the
// least of the Prometheus Operator's CRD: its kind and a schema that keeps
// every field.
func installPodMonitorCRD(t *testing.T, admin client.Client) {
	t.Helper()
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "podmonitors.monitoring.coreos.com"},
		"spec": map[string]any{
			"group": "monitoring.coreos.com", "scope": "Namespaced",
			"names": map[string]any{"plural": "podmonitors", "singular": "podmonitor", "kind": "PodMonitor", "listKind": "PodMonitorList"},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	if err := admin.Create(context.Background(), crd); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(resources.PodMonitorGVK.GroupVersion().WithKind("PodMonitorList"))
		err := admin.List(context.Background(), list)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("PodMonitors are not served: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
