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

// Package resources builds the objects a NatsCluster owns. Every builder is a pure
// function of the NatsCluster and of inputs the controller has already resolved
// (password hashes, generated credentials, the image): it never touches a client,
// so it is tested with plain table and golden tests.
package resources

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// Ports, as nats-server's.
const (
	ClientPort  = 4222
	ClusterPort = 6222
	MonitorPort = 8222

	ClientPortName  = "client"
	ClusterPortName = "cluster"
	MonitorPortName = "monitor"
)

// Keys and paths.
const (
	// ConfigKey is the config Secret's key holding the broker config file.
	ConfigKey = "nats.conf"
	// PreviousPasswordsKey is the config Secret's key holding the
	// previous-passwords file (broker/conf previous.go): the hashes still
	// accepted during a rotation grace window, read only by natsforge-broker.
	PreviousPasswordsKey = "previous_passwords.conf"
	// FingerprintsKey is the config Secret's key holding, per user, the keyed
	// fingerprint of the password each hash in ConfigKey was made from. It is not
	// mounted into the pods.
	FingerprintsKey = "fingerprints.json"
	// ConfigHistoryKey is the config Secret's key holding the hashes of the
	// last configs written, oldest first, one a line: a broker pod serving
	// any of them serves every password that config and the later ones
	// carry. It is not mounted into the pods.
	ConfigHistoryKey = "history"
	// FingerprintKeyKey is the fingerprint-key Secret's key holding the HMAC key.
	FingerprintKeyKey = "key"

	// Credential Secrets (routes and generated users) carry these keys.
	UsernameKey = "username"
	PasswordKey = "password"
	URLKey      = "url"

	// RouteUser is the user name routes authenticate as.
	RouteUser = "route"

	ConfigDir             = "/etc/nats"
	ConfigPath            = ConfigDir + "/" + ConfigKey
	PreviousPasswordsPath = ConfigDir + "/" + PreviousPasswordsKey
)

// Labels and annotations the operator sets.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelPartOf    = "app.kubernetes.io/part-of"

	// AnnotationUser names the user a generated credential Secret belongs to.
	AnnotationUser = "natsforge.io/user"

	// ComponentUserCredentials is the LabelComponent of generated credential
	// Secrets.
	ComponentUserCredentials = "user-credentials"

	// AnnotationConfigHash on a broker pod records the config it was last told
	// to load; bumping it makes the kubelet refresh the mounted Secret at once.
	AnnotationConfigHash = "natsforge.io/config-hash"

	// AnnotationConfigNudges on a broker pod counts the times the operator
	// bumped it because the pod went on serving an older config after it was
	// told about the current one; each bump makes the kubelet refresh the
	// mounted Secrets again.
	AnnotationConfigNudges = "natsforge.io/config-nudges"

	// AppName is the value of LabelName on everything the operator creates.
	AppName = "natsforge"
	// ManagedBy is the value of LabelManagedBy on everything the operator creates.
	ManagedBy = "natsforge-operator"
)

// Object names.
func StatefulSetName(nc *v1alpha1.NatsCluster) string   { return nc.Name }
func ClientServiceName(nc *v1alpha1.NatsCluster) string { return nc.Name }
func RoutesServiceName(nc *v1alpha1.NatsCluster) string { return nc.Name + "-routes" }
func PDBName(nc *v1alpha1.NatsCluster) string           { return nc.Name }
func NetworkPolicyName(nc *v1alpha1.NatsCluster) string { return nc.Name }
func ConfigSecretName(nc *v1alpha1.NatsCluster) string  { return nc.Name + "-config" }
func RoutesSecretName(nc *v1alpha1.NatsCluster) string  { return nc.Name + "-route-credentials" }

// FingerprintKeySecretName names the Secret holding the per-cluster HMAC key
// that password fingerprints are computed with.
func FingerprintKeySecretName(nc *v1alpha1.NatsCluster) string { return nc.Name + "-fingerprint-key" }

var dnsLabelUnsafe = regexp.MustCompile(`[^a-z0-9-]+`)

// GeneratedUserSecretName names the Secret holding the generated password of a
// user without passwordSecretRef: "<cluster>-user-<name>". User names may hold
// characters a Secret name may not (upper case, "_", "."): such a name is
// lower-cased, cleaned and given a short hash of the original, so two users
// never share a Secret.
func GeneratedUserSecretName(nc *v1alpha1.NatsCluster, user string) string {
	clean := strings.Trim(dnsLabelUnsafe.ReplaceAllString(strings.ToLower(user), "-"), "-")
	if clean != user {
		sum := sha256.Sum256([]byte(user))
		clean = strings.TrimPrefix(clean+"-"+hex.EncodeToString(sum[:4]), "-")
	}
	return nc.Name + "-user-" + clean
}

// UserSecretName is the Secret a user's password is read from.
func UserSecretName(nc *v1alpha1.NatsCluster, u *v1alpha1.User) string {
	if u.PasswordSecretRef != nil {
		return u.PasswordSecretRef.Name
	}
	return GeneratedUserSecretName(nc, u.Name)
}

// UserSecretKey is the key of UserSecretName holding the password.
func UserSecretKey(u *v1alpha1.User) string {
	if u.PasswordSecretRef != nil {
		if u.PasswordSecretRef.Key != "" {
			return u.PasswordSecretRef.Key
		}
		return PasswordKey
	}
	return PasswordKey
}

// SelectorLabels select the broker pods of nc.
func SelectorLabels(nc *v1alpha1.NatsCluster) map[string]string {
	return map[string]string{
		LabelName:     AppName,
		LabelInstance: nc.Name,
	}
}

// Labels go on every object the operator creates for nc.
func Labels(nc *v1alpha1.NatsCluster) map[string]string {
	l := SelectorLabels(nc)
	l[LabelManagedBy] = ManagedBy
	l[LabelPartOf] = AppName
	return l
}

func componentLabels(nc *v1alpha1.NatsCluster, component string) map[string]string {
	l := Labels(nc)
	l[LabelComponent] = component
	return l
}

// objectMeta is the metadata of an object nc controls.
func objectMeta(nc *v1alpha1.NatsCluster, name, component string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       nc.Namespace,
		Labels:          componentLabels(nc, component),
		OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(nc, v1alpha1.GroupVersion.WithKind("NatsCluster"))},
	}
}

// Replicas is spec.replicas with the API's default applied.
func Replicas(nc *v1alpha1.NatsCluster) int32 {
	if nc.Spec.Replicas == nil {
		return 3
	}
	return *nc.Spec.Replicas
}

// Image is spec.image, or defaultImage when it is empty.
func Image(nc *v1alpha1.NatsCluster, defaultImage string) string {
	if nc.Spec.Image != "" {
		return nc.Spec.Image
	}
	return defaultImage
}

// PodName is the name of the broker pod with ordinal i.
func PodName(nc *v1alpha1.NatsCluster, i int32) string {
	return fmt.Sprintf("%s-%d", StatefulSetName(nc), i)
}
