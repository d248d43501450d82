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
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// ComponentNatsUserCredentials is the LabelComponent of the Secrets generated
// for NatsUsers, in the NatsUsers' own namespaces.
const ComponentNatsUserCredentials = "natsuser-credentials"

// NatsUserSecretName names the Secret holding a NatsUser's generated
// password, in the NatsUser's namespace.
func NatsUserSecretName(nu *v1alpha1.NatsUser) string { return nu.Name + "-user-credentials" }

// NatsUserPasswordSecret is the Secret a NatsUser's password is read from:
// its passwordSecretRef, or the generated one.
func NatsUserPasswordSecret(nu *v1alpha1.NatsUser) (name, key string) {
	if ref := nu.Spec.PasswordSecretRef; ref != nil {
		key = ref.Key
		if key == "" {
			key = PasswordKey
		}
		return ref.Name, key
	}
	return NatsUserSecretName(nu), PasswordKey
}

// NatsUserSecretLabels select the generated NatsUser Secrets of one
// namespace.
func NatsUserSecretLabels() map[string]string {
	return map[string]string{
		LabelName:      AppName,
		LabelManagedBy: ManagedBy,
		LabelPartOf:    AppName,
		LabelComponent: ComponentNatsUserCredentials,
	}
}

// NatsUserSecret holds the generated password of a NatsUser without
// passwordSecretRef, in the NatsUser's namespace and controlled by it (so it
// goes when the NatsUser goes), ready for an application to mount: username,
// password, a url to connect to the cluster with and, with TLS, the CA to
// trust (ca.crt).
func NatsUserSecret(nu *v1alpha1.NatsUser, nc *v1alpha1.NatsCluster, password string, caPEM []byte) *corev1.Secret {
	user := nu.Username()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:            NatsUserSecretName(nu),
			Namespace:       nu.Namespace,
			Labels:          NatsUserSecretLabels(),
			Annotations:     map[string]string{AnnotationUser: user},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(nu, v1alpha1.GroupVersion.WithKind("NatsUser"))},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			UsernameKey: []byte(user),
			PasswordKey: []byte(password),
			URLKey:      []byte(ClientURL(nc, user, password)),
		},
	}
	if len(caPEM) > 0 {
		s.Data[CACertKey] = caPEM
	}
	return s
}
