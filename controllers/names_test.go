package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

func TestANatsClusterNameIsADNSLabelShortEnoughForEveryChild(t *testing.T) {
	needAPIServer(t)
	const ns = "validation"
	ctx := context.Background()
	longest := "l" + strings.Repeat("x", v1alpha1.MaxNameLength-1)

	createPasswordSecret(t, ns, "names-pw", "names-plaintext")
	nc := createCluster(t, ns, longest, userRef("alice", "names-pw"))
	// Its children exist under their derived names.
	eventually(t, timeout, func() error {
		for _, obj := range []struct {
			name string
			obj  client.Object
		}{
			{resources.StatefulSetName(nc), &appsv1.StatefulSet{}},
			{resources.ClientServiceName(nc), &corev1.Service{}},
			{resources.RoutesServiceName(nc), &corev1.Service{}},
			{resources.ConfigSecretName(nc), &corev1.Secret{}},
			{resources.FingerprintKeySecretName(nc), &corev1.Secret{}},
			{resources.RoutesSecretName(nc), &corev1.Secret{}},
		} {
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: obj.name}, obj.obj); err != nil {
				return fmt.Errorf("%T %s: %w", obj.obj, obj.name, err)
			}
		}
		return nil
	})

	for _, tt := range []struct{ name, want string }{
		{longest + "x", fmt.Sprintf("metadata.name must be at most %d characters", v1alpha1.MaxNameLength)},
		{"a.b", "metadata.name must be a DNS label"},
		{"1abc", "metadata.name must be a DNS label"},
		{"abc-", "metadata.name must be a DNS label"},
	} {
		bad := &v1alpha1.NatsCluster{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tt.name},
			Spec:       v1alpha1.NatsClusterSpec{Auth: v1alpha1.AuthSpec{Users: []v1alpha1.User{userRef("alice", "names-pw")}}},
		}
		err := k8s.Create(ctx, bad)
		if err == nil {
			_ = k8s.Delete(ctx, bad)
			t.Errorf("%q (%d characters) was admitted", tt.name, len(tt.name))
			continue
		}
		if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want Invalid saying %q", tt.name, err, tt.want)
		}
	}
}
