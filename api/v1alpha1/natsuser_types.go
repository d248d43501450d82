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

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NatsUserSpec is one user of a NatsCluster, kept in an object of its own so
// that the team owning an application can own its user.
type NatsUserSpec struct {
	// clusterRef names the NatsCluster this user belongs to. The cluster
	// admits NatsUsers of its own namespace, and of other namespaces only
	// when its spec.auth.allowedUserNamespaces selects them. It cannot be
	// changed: delete the NatsUser and create another.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="clusterRef is immutable: delete the NatsUser and create another"
	ClusterRef ClusterReference `json:"clusterRef"`

	// username is the name clients present in CONNECT (or in a
	// nats://name:password@host URL). It defaults to metadata.name. A name
	// can be claimed only once in a cluster: a user of the NatsCluster's
	// spec.auth.users wins over a NatsUser, and among NatsUsers the oldest
	// (by creationTimestamp, then namespace/name) wins; the others are
	// refused with Ready=False, reason NameConflict.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`
	Username string `json:"username,omitempty"`

	// passwordSecretRef points at the key of a Secret in the NatsUser's own
	// namespace that holds the password. Editing that Secret rotates the
	// password on the running brokers without restarting them. When absent,
	// the operator generates a password into the Secret
	// "<metadata.name>-user-credentials" in the NatsUser's namespace, owned
	// by the NatsUser, with the keys username, password, url and, when the
	// cluster serves TLS, ca.crt (the CA to trust).
	// +optional
	PasswordSecretRef *SecretKeyReference `json:"passwordSecretRef,omitempty"`

	// permissions restrict what this user may publish and subscribe to. When
	// absent, the cluster's spec.auth.defaultPermissions apply.
	// +optional
	Permissions *Permissions `json:"permissions,omitempty"`

	// account places the user in one of the cluster's spec.accounts; absent,
	// the user is in the global account. A NatsUser naming an account the
	// cluster does not have is refused (Ready=False, AccountNotFound).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Account string `json:"account,omitempty"`
}

// ClusterReference names a NatsCluster.
type ClusterReference struct {
	// name is the NatsCluster's name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=52
	Name string `json:"name"`

	// namespace is the NatsCluster's namespace; the NatsUser's own when
	// absent.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// NatsUserStatus is the observed state of a NatsUser, written by the
// operator when it reconciles the NatsCluster the user names.
type NatsUserStatus struct {
	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// username is the name the user connects with.
	// +optional
	Username string `json:"username,omitempty"`

	// configHash is the SHA-256 (hex) of the first broker configuration
	// that carried this user's current password. Each broker pod reports the
	// digest of the configuration it serves on /varz.
	// +optional
	ConfigHash string `json:"configHash,omitempty"`

	// servingPods is how many ready broker pods serve a configuration that
	// carries this user's current password: configHash, or a later one.
	// +optional
	ServingPods int32 `json:"servingPods"`

	// readyPods is how many broker pods are ready. The user is applied on
	// every pod when servingPods equals readyPods.
	// +optional
	ReadyPods int32 `json:"readyPods"`

	PasswordStatus `json:",inline"`

	// conditions has Ready: True when the user is in the configuration and
	// every ready broker pod serves it (reason Served); False with the
	// reason why not (ConfigPending, ClusterNotFound, NamespaceNotAllowed,
	// NameConflict, CertificateUsersOnly, SecretMissing, KeyMissing,
	// InvalidPassword).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// NatsUser reasons (its Ready condition).
const (
	// NatsUserServed (Ready=True): the user is in the configuration and every
	// ready broker pod serves it.
	NatsUserServed = "Served"
	// NatsUserConfigPending (Ready=False): the user is in the configuration
	// the operator wrote; not every ready broker pod serves it yet (or no pod
	// is ready).
	NatsUserConfigPending = "ConfigPending"
	// NatsUserClusterNotFound (Ready=False): spec.clusterRef names no
	// NatsCluster.
	NatsUserClusterNotFound = "ClusterNotFound"
	// NatsUserNamespaceNotAllowed (Ready=False): the NatsCluster is in
	// another namespace and its spec.auth.allowedUserNamespaces does not
	// select this one.
	NatsUserNamespaceNotAllowed = "NamespaceNotAllowed"
	// NatsUserCertificateUsersOnly (Ready=False): the NatsCluster's users
	// are certificate users (tlsIdentity), with which password users cannot
	// be mixed.
	NatsUserCertificateUsersOnly = "CertificateUsersOnly"
	// NatsUserNameConflict (Ready=False): another user of the cluster claims
	// the same username and wins (see spec.username).
	NatsUserNameConflict = "NameConflict"
	// NatsUserAccountNotFound (Ready=False): spec.account names no account
	// of the NatsCluster's spec.accounts.
	NatsUserAccountNotFound = "AccountNotFound"
	// NatsUserSecretMissing, NatsUserKeyMissing and NatsUserInvalidPassword
	// (Ready=False): as for the NatsCluster's users; a user that had a
	// working password keeps its last good one on the brokers.
	NatsUserSecretMissing   = ReasonSecretMissing
	NatsUserKeyMissing      = ReasonKeyMissing
	NatsUserInvalidPassword = ReasonInvalidPassword
)

// NatsUser is a user of a NatsCluster, in an object of its own: a team can
// own its user in its own namespace, where the operator writes the
// generated credentials. The cluster admits it from its own namespace, and
// from others only through spec.auth.allowedUserNamespaces. Deleting the
// NatsUser revokes it: it is gone from the brokers' configuration at once.
//
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 236",message="metadata.name must be at most 236 characters: the generated Secret is <name>-user-credentials"
// +kubebuilder:validation:XValidation:rule="has(self.spec.username) || self.metadata.name.matches('^[A-Za-z0-9_][A-Za-z0-9_.-]*$') && self.metadata.name.size() <= 63",message="spec.username defaults to metadata.name, which must then be a valid user name of at most 63 characters; set spec.username"
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=nu,categories=natsforge
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.clusterRef.name`
// +kubebuilder:printcolumn:name="Username",type=string,JSONPath=`.status.username`
// +kubebuilder:printcolumn:name="Serving",type=integer,JSONPath=`.status.servingPods`
// +kubebuilder:printcolumn:name="Pods",type=integer,JSONPath=`.status.readyPods`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NatsUser struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired user.
	// +required
	Spec NatsUserSpec `json:"spec"`

	// status is the user as last observed by the operator.
	// +optional
	Status NatsUserStatus `json:"status,omitempty"`
}

// NatsUserList is a list of NatsUser.
//
// +kubebuilder:object:root=true
type NatsUserList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the NatsUsers.
	Items []NatsUser `json:"items"`
}

// Username is spec.username, or metadata.name when it is empty.
func (u *NatsUser) Username() string {
	if u.Spec.Username != "" {
		return u.Spec.Username
	}
	return u.Name
}

// ClusterKey is the namespace and name of the NatsCluster u names.
func (u *NatsUser) ClusterKey() (namespace, name string) {
	namespace = u.Spec.ClusterRef.Namespace
	if namespace == "" {
		namespace = u.Namespace
	}
	return namespace, u.Spec.ClusterRef.Name
}
