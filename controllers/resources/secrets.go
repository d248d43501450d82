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
	"encoding/json"
	"net/url"

	corev1 "k8s.io/api/core/v1"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// ConfigSecret holds the broker config file (bcrypt hashes of user passwords,
// and the generated route password), the previous-passwords file (the hashes
// of a rotation grace window), the fingerprints the hashes were made from and
// the config history. ConfigKey and PreviousPasswordsKey are mounted into the
// pods; one Secret holds both so that the kubelet swaps them in together.
func ConfigSecret(nc *v1alpha1.NatsCluster, config, previousPasswords, fingerprints, history []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(nc, ConfigSecretName(nc), "config"),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			ConfigKey:            config,
			PreviousPasswordsKey: previousPasswords,
			FingerprintsKey:      fingerprints,
			ConfigHistoryKey:     history,
		},
	}
}

// RoutesSecret holds the generated credentials broker pods route to each other
// with.
func RoutesSecret(nc *v1alpha1.NatsCluster, password string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(nc, RoutesSecretName(nc), "routes"),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			UsernameKey: []byte(RouteUser),
			PasswordKey: []byte(password),
		},
	}
}

// FingerprintKeySecret holds the per-cluster HMAC key that password
// fingerprints are computed with. It never leaves the operator.
func FingerprintKeySecret(nc *v1alpha1.NatsCluster, key []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(nc, FingerprintKeySecretName(nc), "fingerprint-key"),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{FingerprintKeyKey: key},
	}
}

// GeneratedUserSecret holds the generated password of a user without
// passwordSecretRef, ready for an application to mount: username, password, a
// url to connect with and, with TLS, the CA to trust (ca.crt).
func GeneratedUserSecret(nc *v1alpha1.NatsCluster, user, password string, caPEM []byte) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: objectMeta(nc, GeneratedUserSecretName(nc, user), ComponentUserCredentials),
		Type:       corev1.SecretTypeOpaque,
		Data: map[string][]byte{
			UsernameKey: []byte(user),
			PasswordKey: []byte(password),
			URLKey:      []byte(ClientURL(nc, user, password)),
		},
	}
	if len(caPEM) > 0 {
		s.Data[CACertKey] = caPEM
	}
	s.Annotations = map[string]string{AnnotationUser: user}
	return s
}

// IsGeneratedUserSecret tells the generated credential Secrets apart from the
// operator's other Secrets, by their component label.
func IsGeneratedUserSecret(labels map[string]string) bool {
	return labels[LabelComponent] == ComponentUserCredentials
}

// NatsContextKey is the key of the system user's Secret that holds a nats
// CLI context (`nats context import`, or a file in ~/.config/nats/context).
const NatsContextKey = "nats-context.json"

// SystemUserSecretName is the system user's Secret, "<cluster>-system-user".
func SystemUserSecretName(nc *v1alpha1.NatsCluster) string { return nc.Name + "-system-user" }

// SystemUserSecret is GeneratedUserSecret for the system account's user,
// under its own name, with a nats CLI context: the url (credentials apart,
// as the CLI keeps them), user, password and, with TLS, "ca": "ca.crt",
// the Secret's own key, for the CLI run where the Secret is mounted.
func SystemUserSecret(nc *v1alpha1.NatsCluster, password string, caPEM []byte) *corev1.Secret {
	s := GeneratedUserSecret(nc, SystemUserName, password, caPEM)
	s.Name = SystemUserSecretName(nc)
	u, _ := url.Parse(ClientURL(nc, SystemUserName, password))
	u.User = nil
	ctx := natsContext{Description: "system account of NatsCluster " + nc.Namespace + "/" + nc.Name,
		URL: u.String(), User: SystemUserName, Password: password}
	if len(caPEM) > 0 {
		ctx.CA = CACertKey
	}
	s.Data[NatsContextKey], _ = json.Marshal(ctx)
	return s
}

// natsContext is the nats CLI's context file (natscli's natscontext).
type natsContext struct {
	Description string `json:"description"`
	URL         string `json:"url"`
	User        string `json:"user"`
	Password    string `json:"password"`
	CA          string `json:"ca,omitempty"`
}
