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
	"fmt"
	"net"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/conf"
)

// TLS Secret keys, as kubernetes.io/tls Secrets and cert-manager have them.
const (
	TLSCertKey = corev1.TLSCertKey       // tls.crt
	TLSKeyKey  = corev1.TLSPrivateKeyKey // tls.key
	CACertKey  = "ca.crt"
)

// Where the brokers find their certificates. Each Secret is mounted as a
// directory (not subPath) so that the kubelet swaps the files in place and the
// broker, which watches them, reloads without a restart. They are not nested
// in ConfigDir: a mount inside another Secret volume conflicts with the
// kubelet's in-place updates of that volume.
const (
	TLSDir       = "/etc/nats-tls/client"
	RoutesTLSDir = "/etc/nats-tls/routes"

	tlsVolume       = "tls"
	routesTLSVolume = "routes-tls"
)

// AnnotationTLSHash on a broker pod records the certificates it was last told
// to serve; bumping it makes the kubelet refresh the mounted Secrets at once.
const AnnotationTLSHash = "natsforge.io/tls-hash"

// The Secrets of mode Operator.
func CASecretName(nc *v1alpha1.NatsCluster) string        { return nc.Name + "-ca" }
func ServerTLSSecretName(nc *v1alpha1.NatsCluster) string { return nc.Name + "-tls" }
func RoutesTLSSecretName(nc *v1alpha1.NatsCluster) string { return nc.Name + "-routes-tls" }

// TLSMode is spec.tls.mode with the API's default (Operator) applied.
func TLSMode(nc *v1alpha1.NatsCluster) v1alpha1.TLSMode {
	if nc.Spec.TLS.Mode == "" {
		return v1alpha1.TLSModeOperator
	}
	return nc.Spec.TLS.Mode
}

// TLSEnabled tells whether nc serves TLS.
func TLSEnabled(nc *v1alpha1.NatsCluster) bool { return TLSMode(nc) != v1alpha1.TLSModeDisabled }

// CertificateDuration is spec.tls.certificateDuration with its default.
func CertificateDuration(nc *v1alpha1.NatsCluster) time.Duration {
	if d := nc.Spec.TLS.CertificateDuration; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return v1alpha1.DefaultCertificateDuration
}

// ClientTLSSecretName is the Secret whose certificate the brokers serve to
// clients and on the monitoring port; "" without TLS.
func ClientTLSSecretName(nc *v1alpha1.NatsCluster) string {
	switch TLSMode(nc) {
	case v1alpha1.TLSModeOperator:
		return ServerTLSSecretName(nc)
	case v1alpha1.TLSModeSecrets:
		if c := nc.Spec.TLS.Client; c != nil {
			return c.SecretName
		}
	}
	return ""
}

// RouteTLSSecretName is the Secret whose certificate the brokers present to
// each other; "" without TLS. In mode Secrets without tls.routes it is the
// client Secret.
func RouteTLSSecretName(nc *v1alpha1.NatsCluster) string {
	switch TLSMode(nc) {
	case v1alpha1.TLSModeOperator:
		return RoutesTLSSecretName(nc)
	case v1alpha1.TLSModeSecrets:
		if r := nc.Spec.TLS.Routes; r != nil {
			return r.SecretName
		}
		return ClientTLSSecretName(nc)
	}
	return ""
}

// RouteDNSNames are the stable names of every broker pod, which peers dial
// (RouteURLs) and verify the route certificate against.
func RouteDNSNames(nc *v1alpha1.NatsCluster) []string {
	var names []string
	for i := range Replicas(nc) {
		host := fmt.Sprintf("%s.%s.%s.svc", PodName(nc, i), RoutesServiceName(nc), nc.Namespace)
		names = append(names, host, host+".cluster.local")
	}
	return names
}

// ServerSANs are the names the server certificate is valid for: the client
// Service in each form a client may use, every pod's route name,
// spec.tls.extraSANs (DNS names, or IP addresses) and serviceIPs, the client
// Service's cluster IPs once it has them (a client on the node network, which
// cannot resolve Service names, dials those).
func ServerSANs(nc *v1alpha1.NatsCluster, serviceIPs ...string) (dnsNames []string, ips []net.IP) {
	svc := ClientServiceName(nc)
	dnsNames = []string{
		svc,
		svc + "." + nc.Namespace,
		svc + "." + nc.Namespace + ".svc",
		svc + "." + nc.Namespace + ".svc.cluster.local",
	}
	dnsNames = append(dnsNames, RouteDNSNames(nc)...)
	for _, san := range serviceIPs {
		if ip := net.ParseIP(san); ip != nil {
			ips = append(ips, ip)
		}
	}
	for _, san := range nc.Spec.TLS.ExtraSANs {
		if ip := net.ParseIP(san); ip != nil {
			ips = append(ips, ip)
		} else {
			dnsNames = append(dnsNames, san)
		}
	}
	return dnsNames, ips
}

// ClientTLS is the client (and monitoring) tls {} block: the mounted client
// certificate; verify when clients must present certificates, verify_and_map
// when some users are certificate users.
func ClientTLS(nc *v1alpha1.NatsCluster, certificateUsers bool) *conf.TLS {
	return &conf.TLS{
		CertFile:     TLSDir + "/" + TLSCertKey,
		KeyFile:      TLSDir + "/" + TLSKeyKey,
		CAFile:       TLSDir + "/" + CACertKey,
		Verify:       nc.Spec.TLS.VerifyClients && !certificateUsers,
		VerifyAndMap: certificateUsers,
	}
}

// RouteTLS is the cluster.tls block: mutual TLS with the route certificate,
// verified against its CA on both sides.
func RouteTLS() *conf.TLS {
	return &conf.TLS{
		CertFile: RoutesTLSDir + "/" + TLSCertKey,
		KeyFile:  RoutesTLSDir + "/" + TLSKeyKey,
		CAFile:   RoutesTLSDir + "/" + CACertKey,
		Verify:   true,
	}
}

// CASecret holds the cluster CA of mode Operator. Its key never leaves this
// Secret: it is not mounted into any pod, and only the operator reads it.
func CASecret(nc *v1alpha1.NatsCluster, certPEM, keyPEM []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(nc, CASecretName(nc), "ca"),
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{TLSCertKey: certPEM, TLSKeyKey: keyPEM},
	}
}

// CertificateSecret holds a certificate the operator issued, its key and the
// CA that signed it (the server, route or a certificate user's certificate).
func CertificateSecret(nc *v1alpha1.NatsCluster, name, component string, certPEM, keyPEM, caPEM []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: objectMeta(nc, name, component),
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{TLSCertKey: certPEM, TLSKeyKey: keyPEM, CACertKey: caPEM},
	}
}

// CertificateUserSecret holds a certificate user's client certificate, ready
// for an application to mount: tls.crt, tls.key and ca.crt.
func CertificateUserSecret(nc *v1alpha1.NatsCluster, user string, certPEM, keyPEM, caPEM []byte) *corev1.Secret {
	s := CertificateSecret(nc, GeneratedUserSecretName(nc, user), ComponentUserCredentials, certPEM, keyPEM, caPEM)
	s.Annotations = map[string]string{AnnotationUser: user}
	return s
}

// tlsVolumes mount the client and route certificates.
func tlsVolumes(nc *v1alpha1.NatsCluster) []corev1.Volume {
	if !TLSEnabled(nc) {
		return nil
	}
	volume := func(name, secret string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: secret,
			Items: []corev1.KeyToPath{
				{Key: TLSCertKey, Path: TLSCertKey},
				{Key: TLSKeyKey, Path: TLSKeyKey},
				{Key: CACertKey, Path: CACertKey},
			},
			DefaultMode: ptr.To[int32](0o440),
		}}}
	}
	return []corev1.Volume{volume(tlsVolume, ClientTLSSecretName(nc)), volume(routesTLSVolume, RouteTLSSecretName(nc))}
}

func tlsMounts(nc *v1alpha1.NatsCluster) []corev1.VolumeMount {
	if !TLSEnabled(nc) {
		return nil
	}
	return []corev1.VolumeMount{
		{Name: tlsVolume, MountPath: TLSDir, ReadOnly: true},
		{Name: routesTLSVolume, MountPath: RoutesTLSDir, ReadOnly: true},
	}
}
