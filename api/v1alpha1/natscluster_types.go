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
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NatsClusterSpec is the desired state of a cluster of natsforge brokers.
// +kubebuilder:validation:XValidation:rule="!has(self.accounts) || self.accounts.all(a, !has(a.imports) || a.imports.all(i, self.accounts.exists(b, b.name == i.account)))",message="an import names an account that is not in spec.accounts"
// +kubebuilder:validation:XValidation:rule="!has(self.accounts) || self.accounts.all(a, !has(a.exports) || a.exports.all(x, !has(x.accounts) || x.accounts.all(n, self.accounts.exists(b, b.name == n))))",message="an export's accounts name an account that is not in spec.accounts"
// +kubebuilder:validation:XValidation:rule="!has(self.auth.users) || self.auth.users.all(u, !has(u.account) || (has(self.accounts) && self.accounts.exists(a, a.name == u.account)))",message="a user's account is not in spec.accounts"
// +kubebuilder:validation:XValidation:rule="!has(self.auth.users) || self.auth.users.all(u, u.name != '_sys')",message="the user name _sys is reserved for the system account's user"
// +kubebuilder:validation:XValidation:rule="!has(self.tls) || !has(self.tls.mode) || self.tls.mode != 'Disabled' || !has(self.auth.users) || self.auth.users.all(u, !has(u.tlsIdentity))",message="users with a tlsIdentity need TLS: not allowed with tls.mode Disabled"
type NatsClusterSpec struct {
	// replicas is the number of broker pods. Every pod routes to every other pod
	// (a full mesh on port 6222), and a PodDisruptionBudget keeps a majority of
	// them running during voluntary disruptions.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32
	Replicas *int32 `json:"replicas,omitempty"`

	// image is the broker container image. When empty, the operator runs the
	// natsforge/broker image of its own version. Changing it rolls the pods one
	// at a time; each pod hands its clients over in lame-duck mode.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// imagePullPolicy is the broker container's image pull policy. When empty,
	// Kubernetes chooses (Always for a :latest tag, IfNotPresent otherwise).
	// +optional
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// resources are the broker container's compute resource requests and limits.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// auth lists the users allowed to connect and where their passwords live.
	// +required
	Auth AuthSpec `json:"auth"`

	// config holds the broker limits that may be tuned. Everything else in the
	// broker's configuration file is managed by the operator.
	// +optional
	// +kubebuilder:default={}
	Config BrokerConfig `json:"config,omitempty"`

	// pod holds scheduling and metadata settings for the broker pods.
	// +optional
	Pod PodSpec `json:"pod,omitempty"`

	// service configures the client Service "<name>" on port 4222.
	// +optional
	Service ServiceSpec `json:"service,omitempty"`

	// networkPolicy restricts who may reach the broker pods' ports: clients
	// reach 4222, only the cluster's own pods reach the routes on 6222, and
	// only the operator's namespace (plus monitoringNamespaceSelector) reaches
	// the monitoring port 8222, whose /connz and /subsz list users, client
	// addresses and subscriptions. On by default. It takes effect only where
	// the cluster's network plugin enforces NetworkPolicies.
	// +optional
	// +kubebuilder:default={enabled: true}
	NetworkPolicy NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// tls secures the client port, the routes between brokers and the
	// monitoring port. It is on by default, with certificates the operator
	// issues from a CA of the cluster's own; set mode to Secrets to bring
	// certificates (for example from cert-manager), or to Disabled for plain
	// TCP.
	// +optional
	// +kubebuilder:default={mode: "Operator"}
	TLS TLSSpec `json:"tls,omitempty"`

	// paused stops the operator from changing anything that belongs to this
	// cluster (config, pods, Services) until it is set back to false. Status is
	// still reported.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// monitoring makes the brokers' /metrics known to Prometheus.
	// +optional
	Monitoring MonitoringSpec `json:"monitoring,omitempty"`

	// accounts are tenants isolated on this cluster, as NATS accounts: each
	// has a subject space of its own and shares only what it exports and
	// another account imports. A user joins one with auth.users[].account;
	// users without one share the global account. The brokers refuse an
	// import of something its account does not export to the importer
	// (condition Ready=False names it).
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=32
	Accounts []Account `json:"accounts,omitempty"`

	// systemAccount runs the NATS system account (SYS), whose user the
	// operator generates into the Secret "<cluster>-system-user" (keys
	// username, password, url, ca.crt with TLS, and nats-context.json, a
	// nats CLI context), for `nats --context ... server list` and the other
	// server commands. On by default; not available with certificate users.
	// +optional
	// +kubebuilder:default={enabled: true}
	SystemAccount SystemAccountSpec `json:"systemAccount,omitempty"`
}

// SystemAccountSpec turns the system account on or off.
type SystemAccountSpec struct {
	// enabled runs the system account and keeps its user's Secret.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`
}

// Account is one tenant: a subject space of its own, its exports and imports.
// +kubebuilder:validation:XValidation:rule="!has(self.imports) || self.imports.all(i, i.account != self.name)",message="an account cannot import from itself"
type Account struct {
	// name is the account's name. "SYS" (the system account) and "$G" (the
	// global account) are reserved.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_][A-Za-z0-9_-]*$`
	// +kubebuilder:validation:XValidation:rule="self != 'SYS'",message="SYS is the system account's name (spec.systemAccount)"
	Name string `json:"name"`

	// exports are the streams and services other accounts may import.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Exports []AccountExport `json:"exports,omitempty"`

	// imports take streams and services other accounts export.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Imports []AccountImport `json:"imports,omitempty"`
}

// AccountExport offers a stream (messages published in the account) or a
// service (requests answered in it) to other accounts.
// +kubebuilder:validation:XValidation:rule="has(self.stream) != has(self.service)",message="an export is exactly one of stream or service"
type AccountExport struct {
	// stream is the subject (pattern) of messages other accounts may receive.
	// +optional
	Stream Subject `json:"stream,omitempty"`

	// service is the subject (pattern) other accounts may send requests to.
	// +optional
	Service Subject `json:"service,omitempty"`

	// accounts restricts the export to these accounts; absent, every account
	// may import it.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=63
	Accounts []string `json:"accounts,omitempty"`
}

// AccountImport takes a stream or a service another account exports.
// +kubebuilder:validation:XValidation:rule="has(self.stream) != has(self.service)",message="an import is exactly one of stream or service"
// +kubebuilder:validation:XValidation:rule="!has(self.prefix) || has(self.stream)",message="prefix applies to a stream import"
// +kubebuilder:validation:XValidation:rule="!has(self.to) || has(self.service)",message="to applies to a service import"
type AccountImport struct {
	// account is the exporting account.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Account string `json:"account"`

	// stream is the subject (pattern) of the exported stream to receive.
	// +optional
	Stream Subject `json:"stream,omitempty"`

	// service is the subject (pattern) of the exported service to call.
	// +optional
	Service Subject `json:"service,omitempty"`

	// prefix puts a token in front of the stream's subjects as this
	// account's subscribers see them ("prefix.orders.new").
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[^\s.*>]+$`
	Prefix string `json:"prefix,omitempty"`

	// to is the subject this account's clients send the service's requests
	// to; absent, the exported subject itself.
	// +optional
	To Subject `json:"to,omitempty"`
}

// MonitoringSpec describes the Prometheus Operator objects kept for a cluster.
type MonitoringSpec struct {
	// podMonitor keeps a Prometheus Operator PodMonitor (monitoring.coreos.com/v1)
	// named after the cluster, which scrapes every broker's /metrics on the
	// monitoring port: over HTTPS, verified against the ca.crt of the
	// client certificate's Secret and the client Service's name, unless
	// tls.mode is Disabled. When the PodMonitor CRD is not installed, the
	// condition PodMonitor says so and nothing else is affected. Prometheus
	// must also be let through the NetworkPolicy to port 8222: see
	// networkPolicy.monitoringNamespaceSelector.
	// +optional
	PodMonitor bool `json:"podMonitor,omitempty"`

	// podMonitorLabels are added to the PodMonitor's labels, for a
	// Prometheus whose podMonitorSelector selects by label (for example
	// kube-prometheus-stack's release label).
	// +optional
	PodMonitorLabels map[string]string `json:"podMonitorLabels,omitempty"`
}

// AuthSpec describes the users of a cluster.
type AuthSpec struct {
	// users are the accounts clients connect with. Each user's password is read
	// from a Secret (passwordSecretRef) or, when that is absent, generated by the
	// operator into a Secret "<cluster>-user-<name>" with the keys username,
	// password, url and, with TLS, ca.crt. Only bcrypt hashes of the passwords
	// reach the broker. Alternatively every user is a certificate user
	// (tlsIdentity): the two kinds cannot be mixed, because the broker then
	// maps every client to a user by its certificate, as nats-server does.
	// User names are unique. Users may also live in NatsUser objects (see
	// allowedUserNamespaces), which is the way to have many: this list holds
	// at most 256.
	//
	// Removing a user from this list (or deleting its NatsUser) revokes it at
	// once: the brokers drop it and close its connections. That is the way to
	// revoke a user. A Secret that goes missing, loses its key or holds an
	// invalid password does not revoke anyone: a user that had a working
	// password keeps its last good one on the brokers
	// (status.users[].servingLastGoodSince, condition UsersResolved=False)
	// until the Secret is fixed or the user is removed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:XValidation:rule="self.all(u, self.exists_one(v, v.name == u.name))",message="user names must be unique"
	// +kubebuilder:validation:XValidation:rule="self.all(u, !has(u.tlsIdentity) || self.exists_one(v, has(v.tlsIdentity) && v.tlsIdentity == u.tlsIdentity))",message="tlsIdentity values must be unique"
	// +kubebuilder:validation:XValidation:rule="self.all(u, has(u.tlsIdentity)) || self.all(u, !has(u.tlsIdentity))",message="certificate users (tlsIdentity) and password users cannot be mixed in one cluster: once one user has a tlsIdentity, the broker maps every client to a user by its certificate (nats-server's verify_and_map)"
	Users []User `json:"users,omitempty"`

	// defaultPermissions apply to every user that has no permissions of its own.
	// When absent, such users may publish and subscribe to everything.
	// +optional
	DefaultPermissions *Permissions `json:"defaultPermissions,omitempty"`

	// allowedUserNamespaces selects the namespaces, besides the cluster's
	// own, whose NatsUsers this cluster admits, by their labels (as Gateway
	// API's allowedRoutes selects namespaces). When absent, only NatsUsers
	// in the cluster's own namespace are admitted; an empty selector ({})
	// admits every namespace. A NatsUser of a namespace not selected is
	// refused with Ready=False, reason NamespaceNotAllowed; a namespace
	// that loses the label has its NatsUsers revoked at once. An operator
	// installed for some namespaces only (--watch-namespaces) sees the
	// NatsUsers of those namespaces only.
	// +optional
	AllowedUserNamespaces *metav1.LabelSelector `json:"allowedUserNamespaces,omitempty"`

	// bcryptCost is the bcrypt work factor used to hash passwords. Higher is
	// slower to brute-force and slower to check on every client connect.
	// Changing it re-hashes every password once.
	// +optional
	// +kubebuilder:default=11
	// +kubebuilder:validation:Minimum=6
	// +kubebuilder:validation:Maximum=15
	BcryptCost int32 `json:"bcryptCost,omitempty"`

	// rotationGracePeriod is how long after a user's password changes the
	// brokers still accept the previous password for new connections, as a
	// duration such as "30s" or "10m", so that applications can roll out the
	// new one without being cut off. When it ends, the previous password
	// stops working and the connections that authenticated with it are
	// closed. Absent or "0s" is a hard cut, as in nats-server: the previous
	// password stops working as soon as the brokers load the new one. Only
	// the previous password's bcrypt hash is kept, and only for the window;
	// status.users[].previousPasswordValidUntil says until when. The window
	// is measured by the operator's clock and enforced by each broker's.
	// The previous hashes share the config Secret's 1 MiB: when more users
	// change their passwords at once than fit (several hundred), the ones
	// beyond get the hard cut, with a Warning Event GraceWindowSkipped.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('24h')",message="rotationGracePeriod must be at most 24h"
	RotationGracePeriod *metav1.Duration `json:"rotationGracePeriod,omitempty"`
}

// User is one account clients authenticate as: with a password from a Secret
// (passwordSecretRef), with a password the operator generates (neither
// passwordSecretRef nor tlsIdentity), or with a client certificate
// (tlsIdentity).
// +kubebuilder:validation:XValidation:rule="!(has(self.passwordSecretRef) && has(self.tlsIdentity))",message="a user has exactly one of passwordSecretRef, a generated password (neither field set) or tlsIdentity"
type User struct {
	// name is the user name clients present in CONNECT (or in a
	// nats://name:password@host URL).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`
	Name string `json:"name"`

	// passwordSecretRef points at the key of a Secret in the cluster's namespace
	// that holds this user's password. Editing that Secret rotates the password on
	// the running brokers without restarting them. When absent, the operator
	// generates a password and keeps it in a Secret "<cluster>-user-<name>".
	// +optional
	PasswordSecretRef *SecretKeyReference `json:"passwordSecretRef,omitempty"`

	// tlsIdentity makes this a certificate user: it connects with a client
	// certificate instead of a password, and the broker maps the certificate
	// to this user (nats-server's verify_and_map), trying the certificate's
	// email SANs, then its DNS SANs, then its subject. Write either an email
	// address ("alice@example.com", matched against an email SAN) or an RFC
	// 2253 subject as Go's crypto/x509 prints it, most specific attribute
	// first ("CN=alice,OU=dev,O=acme"). In tls.mode Operator the operator
	// issues such a certificate into the Secret "<cluster>-user-<name>" (keys
	// tls.crt, tls.key and ca.crt); in mode Secrets the user brings its own,
	// signed by the CA in the client Secret's ca.crt.
	// Needs TLS: not allowed with tls.mode Disabled.
	// +optional
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.contains('=') || self.matches('^[^@ ,]+@[^@ ,]+$')",message="tlsIdentity is an RFC 2253 subject such as CN=alice,O=acme or an email address"
	TLSIdentity string `json:"tlsIdentity,omitempty"`

	// permissions restrict what this user may publish and subscribe to. When
	// absent, auth.defaultPermissions apply.
	// +optional
	Permissions *Permissions `json:"permissions,omitempty"`

	// account places the user in one of spec.accounts; absent, the user is
	// in the global account with every other user that has none.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Account string `json:"account,omitempty"`
}

// SecretKeyReference names one key of a Secret in the NatsCluster's namespace.
type SecretKeyReference struct {
	// name is the name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// key is the key within the Secret whose value is the password.
	// +optional
	// +kubebuilder:default=password
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// Permissions restrict the subjects a user may publish and subscribe to.
type Permissions struct {
	// publish limits the subjects this user may publish to.
	// +optional
	Publish *SubjectPermission `json:"publish,omitempty"`

	// subscribe limits the subjects this user may subscribe to.
	// +optional
	Subscribe *SubjectPermission `json:"subscribe,omitempty"`

	// allowResponses lets the user publish to the reply subject of a request it
	// received, even where publish would deny it.
	// +optional
	AllowResponses bool `json:"allowResponses,omitempty"`
}

// SubjectPermission is checked allow first (an empty allow list allows every
// subject), then deny. Subjects may use the wildcards "*" (one token) and ">"
// (one or more trailing tokens).
type SubjectPermission struct {
	// allow lists the subjects permitted. Empty means every subject.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=128
	Allow []Subject `json:"allow,omitempty"`

	// deny lists the subjects refused, even when allow matches them.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=128
	Deny []Subject `json:"deny,omitempty"`
}

// Subject is a NATS subject or subject pattern: tokens separated by ".", with
// "*" matching one token and ">" matching the rest.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=255
// +kubebuilder:validation:Pattern=`^[^\s.]+(\.[^\s.]+)*$`
// +kubebuilder:validation:XValidation:rule="!self.startsWith('>.') && !self.contains('.>.')",message="'>' matches the rest of a subject: it may only be the last token"
type Subject string

// BrokerConfig holds the broker settings a user may tune.
type BrokerConfig struct {
	// maxPayload is the largest message payload, in bytes, a client may publish.
	// The broker's default is 1048576 (1 MiB).
	// +optional
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=67108864
	MaxPayload *int32 `json:"maxPayload,omitempty"`

	// maxConnections is the most client connections one broker pod accepts.
	// Unlimited when absent.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxConnections *int32 `json:"maxConnections,omitempty"`

	// pingInterval is how often the broker pings an idle client to check it is
	// still there, as a duration such as "2m". The broker's default is 2m.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('1h')",message="pingInterval must be between 1s and 1h"
	PingInterval *metav1.Duration `json:"pingInterval,omitempty"`

	// writeDeadline is how long a write to a client may stall before the client
	// is disconnected as a slow consumer, as a duration such as "10s". The
	// broker's default is 10s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('100ms') && duration(self) <= duration('5m')",message="writeDeadline must be between 100ms and 5m"
	WriteDeadline *metav1.Duration `json:"writeDeadline,omitempty"`

	// lameDuckDuration is how long a stopping broker pod spends handing its
	// clients over to the other pods before it exits (at least 30s, as
	// nats-server requires). The pods' termination grace period is derived from
	// it.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('30s') && duration(self) <= duration('30m')",message="lameDuckDuration must be between 30s and 30m"
	LameDuckDuration *metav1.Duration `json:"lameDuckDuration,omitempty"`

	// debug turns on the broker's debug logging.
	// +optional
	Debug bool `json:"debug,omitempty"`

	// trace logs every protocol message. Very verbose; message payloads appear in
	// the logs.
	// +optional
	Trace bool `json:"trace,omitempty"`
}

// PodSpec holds the broker pods' scheduling settings and extra metadata.
type PodSpec struct {
	// labels are added to the broker pods. The operator's own selector labels
	// (app.kubernetes.io/name and app.kubernetes.io/instance) take precedence.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`

	// annotations are added to the broker pods.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`

	// nodeSelector restricts the nodes the broker pods may run on.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// tolerations let the broker pods run on tainted nodes.
	// +optional
	// +listType=atomic
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// affinity replaces the default affinity, which prefers to put each broker
	// pod on a different node.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// topologySpreadConstraints spread the broker pods across zones or nodes.
	// +optional
	// +listType=atomic
	TopologySpreadConstraints []corev1.TopologySpreadConstraint `json:"topologySpreadConstraints,omitempty"`

	// priorityClassName is the broker pods' PriorityClass.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	PriorityClassName string `json:"priorityClassName,omitempty"`
}

// ServiceSpec configures the client Service.
type ServiceSpec struct {
	// type is the client Service's type.
	// +optional
	// +kubebuilder:default=ClusterIP
	// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
	Type corev1.ServiceType `json:"type,omitempty"`

	// annotations are added to the client Service, for example to configure a
	// cloud load balancer.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// NetworkPolicySpec configures the NetworkPolicy "<name>" the operator keeps
// for the broker pods. It governs ingress only: the brokers may still open
// connections anywhere.
type NetworkPolicySpec struct {
	// enabled makes the operator keep the NetworkPolicy; set it to false to
	// have the operator delete it (for example where another tool manages the
	// network). Defaults to true.
	// +optional
	// +kubebuilder:default=true
	Enabled *bool `json:"enabled,omitempty"`

	// clientNamespaceSelector, when set, lets only pods in the namespaces it
	// selects reach the client port 4222 (an empty selector selects every
	// namespace, but no address outside the Kubernetes cluster). When absent,
	// anyone may reach 4222, from inside the Kubernetes cluster or, through a
	// LoadBalancer or NodePort Service, from outside it: clients still need a
	// password or a certificate.
	// +optional
	ClientNamespaceSelector *metav1.LabelSelector `json:"clientNamespaceSelector,omitempty"`

	// monitoringNamespaceSelector lets pods in the namespaces it selects (for
	// example the one Prometheus runs in) reach the monitoring port 8222, in
	// addition to the operator's own namespace. When absent, only the
	// operator's namespace may.
	// +optional
	MonitoringNamespaceSelector *metav1.LabelSelector `json:"monitoringNamespaceSelector,omitempty"`
}

// TLSMode says where a cluster's certificates come from.
// +kubebuilder:validation:Enum=Operator;Secrets;Disabled
type TLSMode string

// TLS modes.
const (
	// TLSModeOperator: the operator keeps a per-cluster CA and issues and
	// renews every certificate itself.
	TLSModeOperator TLSMode = "Operator"
	// TLSModeSecrets: certificates come from Secrets the user provides, in
	// the shape cert-manager writes (tls.crt, tls.key, ca.crt).
	TLSModeSecrets TLSMode = "Secrets"
	// TLSModeDisabled: plain TCP everywhere.
	TLSModeDisabled TLSMode = "Disabled"
)

// DefaultCertificateDuration is spec.tls.certificateDuration's default.
const DefaultCertificateDuration = 90 * 24 * time.Hour

// TLSSpec configures TLS on the client port, the routes and monitoring.
// +kubebuilder:validation:XValidation:rule="self.mode != 'Secrets' || has(self.client)",message="tls.mode Secrets needs tls.client.secretName"
// +kubebuilder:validation:XValidation:rule="self.mode == 'Secrets' || (!has(self.client) && !has(self.routes))",message="tls.client and tls.routes name Secrets only in tls.mode Secrets"
// +kubebuilder:validation:XValidation:rule="self.mode != 'Disabled' || !has(self.verifyClients) || !self.verifyClients",message="tls.verifyClients needs TLS: not allowed with tls.mode Disabled"
type TLSSpec struct {
	// mode says where certificates come from. Operator (the default): the
	// operator keeps a per-cluster CA in the Secret "<name>-ca" (ECDSA P-256,
	// valid 10 years) and issues from it the server certificate "<name>-tls",
	// the route certificate "<name>-routes-tls" and certificate users'
	// client certificates, renewing each at 2/3 of its lifetime. Secrets: the
	// Secrets named by client and routes hold the certificates (tls.crt,
	// tls.key, ca.crt, as cert-manager writes them). Disabled: plain TCP;
	// client passwords and messages cross the network in cleartext. In every
	// mode with TLS, a changed certificate is served by the running brokers
	// within seconds, without restarting a pod. In mode Operator, deleting
	// the Secret "<name>-tls" (or "<name>-routes-tls") forces a renewal: the
	// operator issues a new certificate at once.
	// +optional
	// +kubebuilder:default=Operator
	Mode TLSMode `json:"mode,omitempty"`

	// verifyClients makes every client present a certificate signed by the
	// cluster's CA (the broker's verify), on top of its password. Certificate
	// users (tlsIdentity) need no such setting: their certificate is always
	// checked. In mode Operator the operator issues the certificates: a
	// user with a generated password finds one (CN=<user>) in its Secret as
	// tls.crt and tls.key; a user with passwordSecretRef needs one signed by
	// the cluster's CA from elsewhere. In mode Secrets the CA of the client
	// Secret's ca.crt signs the clients' certificates.
	// +optional
	VerifyClients bool `json:"verifyClients,omitempty"`

	// certificateDuration is how long the certificates the operator issues
	// are valid, as a duration such as "2160h" (90 days, the default). They
	// are renewed at 2/3 of it. Used in mode Operator only.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h') && duration(self) <= duration('87600h')",message="certificateDuration must be between 1h and 87600h (10 years, the CA's lifetime)"
	CertificateDuration *metav1.Duration `json:"certificateDuration,omitempty"`

	// extraSANs are further DNS names or IP addresses the server certificate
	// is valid for, such as a load balancer's external name. Used in mode
	// Operator only (in mode Secrets the certificate is the user's).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$`
	ExtraSANs []string `json:"extraSANs,omitempty"`

	// client names the Secret holding the certificate served to clients and
	// on the monitoring port (mode Secrets, where it is required).
	// +optional
	Client *TLSSecretReference `json:"client,omitempty"`

	// routes names the Secret holding the certificate brokers present to each
	// other on their routes (mode Secrets). Routes are mutual TLS: the
	// certificate must be valid for both server and client authentication
	// and carry the names <name>-<i>.<name>-routes.<namespace>.svc. When
	// absent, the client certificate is used for routes too.
	// +optional
	Routes *TLSSecretReference `json:"routes,omitempty"`
}

// TLSSecretReference names a Secret, in the NatsCluster's namespace, of type
// kubernetes.io/tls or of the same shape: tls.crt (the certificate chain),
// tls.key (its private key) and ca.crt (the CA that signs the cluster's
// certificates).
type TLSSecretReference struct {
	// secretName is the name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SecretName string `json:"secretName"`
}

// NatsClusterStatus is the observed state of a NatsCluster.
type NatsClusterStatus struct {
	// observedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// replicas is the number of broker pods the StatefulSet runs.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// readyReplicas is the number of broker pods that pass their readiness probe.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// resolvedUsers is the number of users whose password was found and who can
	// connect: users of spec.auth.users and admitted NatsUsers.
	// +optional
	ResolvedUsers int32 `json:"resolvedUsers,omitempty"`

	// configHash is the SHA-256 (hex) of the broker configuration file the
	// operator last wrote. A broker reports the same digest of the file it has
	// loaded as config_digest on /varz.
	// +optional
	ConfigHash string `json:"configHash,omitempty"`

	// conditions are Ready (every broker pod is ready and has routes to all
	// its peers), UsersResolved (every password could be read) and
	// ConfigPropagated (every ready pod serves the current configuration).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// users reports, for each user of spec.auth.users, where its password comes
	// from and whether it could be read.
	// +optional
	// +listType=map
	// +listMapKey=name
	Users []UserStatus `json:"users,omitempty"`

	// tls reports the certificate the brokers serve to clients.
	// +optional
	TLS *TLSStatus `json:"tls,omitempty"`

	// accounts reports each account of spec.accounts (and the system
	// account, SYS) with how many of its users are configured on the
	// brokers.
	// +optional
	// +listType=map
	// +listMapKey=name
	Accounts []AccountStatus `json:"accounts,omitempty"`
}

// AccountStatus is the observed state of one account.
type AccountStatus struct {
	// name is the account's name.
	// +required
	Name string `json:"name"`

	// users is the number of the account's users on the brokers.
	// +optional
	Users int32 `json:"users"`
}

// TLSStatus is the observed state of the cluster's TLS.
type TLSStatus struct {
	// mode is the spec.tls.mode this status describes.
	// +optional
	Mode TLSMode `json:"mode,omitempty"`

	// notAfter is when the certificate served to clients expires.
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`

	// renewalTime is when the operator will renew that certificate (mode
	// Operator only).
	// +optional
	RenewalTime *metav1.Time `json:"renewalTime,omitempty"`

	// certificateSHA256 is the SHA-256 (hex) of the DER of the certificate
	// served to clients. Each broker reports the same fingerprint of the
	// certificate it serves as tls_cert_sha256 on /varz.
	// +optional
	CertificateSHA256 string `json:"certificateSHA256,omitempty"`
}

// UserStatus is the observed state of one user.
type UserStatus struct {
	// name is the user's name.
	// +required
	Name string `json:"name"`

	// resolved is true when the password was read and the user can connect
	// with it. A user that is not resolved may still connect with its last
	// good password (servingLastGoodSince).
	// +required
	Resolved bool `json:"resolved"`

	// reason says why the user is or is not resolved, in CamelCase.
	// +optional
	Reason UserReason `json:"reason,omitempty"`

	// message explains reason for humans. It never contains a password.
	// +optional
	Message string `json:"message,omitempty"`

	PasswordStatus `json:",inline"`
}

// PasswordStatus is what the status of a NatsCluster's user and of a
// NatsUser say of the user's password.
type PasswordStatus struct {
	// secretName is the Secret that holds the user's password: the one named
	// by passwordSecretRef, or the generated one ("<cluster>-user-<name>" for a
	// NatsCluster's user, "<metadata.name>-user-credentials" in its own
	// namespace for a NatsUser).
	// +optional
	SecretName string `json:"secretName,omitempty"`

	// lastRotationTime is when the user's password hash last changed in the
	// broker configuration.
	// +optional
	LastRotationTime *metav1.Time `json:"lastRotationTime,omitempty"`

	// servingLastGoodSince is set while the user's password cannot be read
	// (reason SecretMissing, KeyMissing or InvalidPassword) and the brokers
	// keep serving the last password that worked: since when they do.
	// Removing the user from spec.auth.users, or deleting its NatsUser,
	// revokes it.
	// +optional
	ServingLastGoodSince *metav1.Time `json:"servingLastGoodSince,omitempty"`

	// previousPasswordValidUntil is, during a rotation grace window
	// (spec.auth.rotationGracePeriod of the cluster), until when the brokers
	// still accept the user's previous password; connections made with it
	// are closed then.
	// +optional
	PreviousPasswordValidUntil *metav1.Time `json:"previousPasswordValidUntil,omitempty"`
}

// UserReason says why a user is or is not resolved.
// +kubebuilder:validation:Enum=Resolved;Generated;SecretMissing;KeyMissing;InvalidPassword;Certificate;InvalidTLSIdentity
type UserReason string

// User reasons.
const (
	// UserResolved: the password was read from the referenced Secret.
	UserResolved UserReason = "Resolved"
	// UserGenerated: the password was generated by the operator.
	UserGenerated UserReason = "Generated"
	// UserSecretMissing: the referenced Secret does not exist.
	UserSecretMissing UserReason = "SecretMissing"
	// UserKeyMissing: the referenced Secret lacks the key.
	UserKeyMissing UserReason = "KeyMissing"
	// UserInvalidPassword: the password is empty, is not valid UTF-8 (a
	// client's JSON CONNECT cannot carry it) or is longer than bcrypt's 72
	// bytes.
	UserInvalidPassword UserReason = "InvalidPassword"
	// UserCertificate: the user authenticates with a client certificate
	// (tlsIdentity); in tls.mode Operator, one was issued into its Secret.
	UserCertificate UserReason = "Certificate"
	// UserInvalidTLSIdentity: the tlsIdentity uses an attribute type the
	// operator cannot issue a certificate for.
	UserInvalidTLSIdentity UserReason = "InvalidTLSIdentity"
)

// Condition types.
const (
	// ConditionReady is True when every broker pod runs the current pod
	// template and is ready, and every broker has a route to each of the
	// others, so that a message published on any pod reaches subscribers on
	// every pod. Where the operator cannot reach the pods (no pod has an
	// address, as under envtest), the route mesh is not checked.
	ConditionReady = "Ready"
	// ConditionUsersResolved is True when every user's password could be read.
	ConditionUsersResolved = "UsersResolved"
	// ConditionConfigPropagated is True when every ready pod reports the
	// configuration digest the operator last wrote.
	ConditionConfigPropagated = "ConfigPropagated"
	// ConditionSecure is True when clients, routes and monitoring are served
	// over TLS (reason: the mode), and False when they are not, or when the
	// certificates named in mode Secrets cannot be used.
	ConditionSecure = "Secure"
	// ConditionPodMonitor is True when the PodMonitor that monitoring.podMonitor
	// asks for is in place, and False when it cannot be (the Prometheus
	// Operator's CRD is not installed). Absent when monitoring.podMonitor is
	// off.
	ConditionPodMonitor = "PodMonitor"
)

// Condition reasons.
const (
	// ReasonAvailable (Ready=True): every broker pod is ready and, where the
	// pods could be asked, has routes to all its peers.
	ReasonAvailable = "Available"
	// ReasonPodsNotReady (Ready=False): some broker pods are not ready yet.
	ReasonPodsNotReady = "PodsNotReady"
	// ReasonMeshIncomplete (Ready=False): every broker pod is ready, but some
	// have no route yet to every peer (or could not be asked how many they
	// have), so a message may not reach subscribers on every pod. Routes
	// usually form within seconds of the pods starting; the message says how
	// many brokers are fully routed and which are not.
	ReasonMeshIncomplete = "MeshIncomplete"
	// ReasonPaused (Ready=Unknown): spec.paused is set; nothing is changed.
	ReasonPaused = "Paused"
	// ReasonReconcileFailed (Ready=False): the operator could not apply the spec;
	// the message says which step failed.
	ReasonReconcileFailed = "ReconcileFailed"

	// ReasonAllUsersResolved (UsersResolved=True): every password was read.
	ReasonAllUsersResolved = "AllUsersResolved"
	// ReasonSecretMissing (UsersResolved=False): a referenced Secret is
	// missing. Its users keep their last good password on the brokers; a
	// user that never had one is left out of the configuration.
	ReasonSecretMissing = "SecretMissing"
	// ReasonKeyMissing (UsersResolved=False): a referenced Secret lacks the
	// key. Its users keep their last good password, or are left out.
	ReasonKeyMissing = "KeyMissing"
	// ReasonInvalidPassword (UsersResolved=False): a referenced password is
	// empty, not valid UTF-8 or longer than bcrypt's 72 bytes. Its user keeps
	// its last good password, or is left out.
	ReasonInvalidPassword = "InvalidPassword"
	// ReasonInvalidTLSIdentity (UsersResolved=False): a tlsIdentity uses an
	// attribute type the operator cannot issue a certificate for; its user is
	// left out.
	ReasonInvalidTLSIdentity = "InvalidTLSIdentity"

	// ReasonConfigCurrent (ConfigPropagated=True): every ready pod serves the
	// current configuration.
	ReasonConfigCurrent = "ConfigCurrent"
	// ReasonConfigPending (ConfigPropagated=False): some ready pods still serve an
	// older configuration.
	ReasonConfigPending = "ConfigPending"
	// ReasonProbeFailed (ConfigPropagated=Unknown): the monitoring endpoint
	// (/varz) of some ready pods could not be reached, so the configuration
	// they serve is not known; the message names them. The operator asks
	// again with an exponential back-off, from 2s up to 5m.
	ReasonProbeFailed = "ProbeFailed"
	// ReasonPodMonitorApplied (PodMonitor=True): the PodMonitor exists as
	// desired.
	ReasonPodMonitorApplied = "Applied"
	// ReasonPodMonitorCRDNotInstalled (PodMonitor=False): the API server does
	// not serve monitoring.coreos.com/v1 PodMonitors; install the Prometheus
	// Operator's CRDs and the PodMonitor follows within a resync.
	ReasonPodMonitorCRDNotInstalled = "CRDNotInstalled"
	// ReasonNoPodAddresses (ConfigPropagated=Unknown): no ready pod has an
	// address to ask yet.
	ReasonNoPodAddresses = "NoPodAddresses"

	// ReasonTLSOperator (Secure=True): TLS everywhere, with certificates the
	// operator issues from the cluster's CA.
	ReasonTLSOperator = "Operator"
	// ReasonTLSSecrets (Secure=True): TLS everywhere, with the certificates
	// of the Secrets named in spec.tls.
	ReasonTLSSecrets = "Secrets"
	// ReasonTLSDisabled (Secure=False): spec.tls.mode is Disabled; the client
	// Service is reachable only inside the Kubernetes cluster.
	ReasonTLSDisabled = "Disabled"
	// ReasonPlaintextExposed (Secure=False): spec.tls.mode is Disabled and the
	// client Service is of type LoadBalancer or NodePort, so passwords and
	// messages cross networks outside the Kubernetes cluster in cleartext.
	ReasonPlaintextExposed = "PlaintextExposed"
	// ReasonTLSSecretNotFound (Secure=False): a Secret named in spec.tls does
	// not exist. The brokers keep serving the last good certificate.
	ReasonTLSSecretNotFound = "TLSSecretNotFound"
	// ReasonTLSSecretInvalid (Secure=False): a Secret named in spec.tls lacks
	// tls.crt, tls.key or ca.crt, or they do not parse or do not match. The
	// brokers keep serving the last good certificate.
	ReasonTLSSecretInvalid = "TLSSecretInvalid"
	// ReasonCertificateExpired (Secure=False): the certificate of a Secret
	// named in spec.tls has expired.
	ReasonCertificateExpired = "CertificateExpired"
)

// MaxNameLength is the longest metadata.name a NatsCluster may have. Its
// StatefulSet takes the same name, and Kubernetes labels each of its pods
// controller-revision-hash=<statefulset name>-<hash of up to 10 characters>,
// a label value of at most 63 characters: 63-1-10 = 52. Every other name the
// operator derives (<name>-routes, <name>-route-credentials,
// <name>-fingerprint-key, pods <name>-<ordinal>, ...) fits a longer name;
// controllers/resources tests that this is exactly the limit. The CEL rule
// below carries the number.
const MaxNameLength = 52

// NatsCluster is a cluster of natsforge brokers (a NATS-protocol message broker)
// whose users authenticate with passwords kept in Kubernetes Secrets.
//
// Its name is a DNS label (RFC 1035, as a Service name must be) of at most
// 52 characters (MaxNameLength), checked when it is created rather than when the
// first child object is refused.
//
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label (lower-case letters, digits and '-', starting with a letter, ending with a letter or digit): the cluster's Services take its name"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 52",message="metadata.name must be at most 52 characters: the StatefulSet takes the name, and Kubernetes labels its pods controller-revision-hash=<name>-<hash of up to 10 characters>, at most 63 characters"
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas
// +kubebuilder:resource:shortName=nc,categories=natsforge
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.replicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Users",type=integer,JSONPath=`.status.resolvedUsers`
// +kubebuilder:printcolumn:name="TLS",type=string,JSONPath=`.spec.tls.mode`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NatsCluster struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired cluster.
	// +required
	Spec NatsClusterSpec `json:"spec"`

	// status is the cluster as last observed by the operator.
	// +optional
	Status NatsClusterStatus `json:"status,omitempty"`
}

// NatsClusterList is a list of NatsCluster.
//
// +kubebuilder:object:root=true
type NatsClusterList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the NatsClusters.
	Items []NatsCluster `json:"items"`
}
