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

package controllers

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/pki"
	"github.com/natsforge/natsforge/controllers/resources"
)

// expiryWarning is how long before a certificate the operator does not
// manage (mode Secrets) expires that it warns with an Event.
const expiryWarning = 14 * 24 * time.Hour

// expiryWarned remembers, by "<ns>/<cluster>/<fingerprint>", the certificates
// an expiry Warning was emitted for: once per certificate and operator
// process, not on every reconcile.
var expiryWarned sync.Map

// tlsState is what the certificates phase found and decided.
type tlsState struct {
	observed bool // the phase ran
	mode     v1alpha1.TLSMode
	enabled  bool
	// ca is the operator's CA (mode Operator only): it signs user certificates.
	ca *pki.KeyPair
	// caPEM is the CA bundle clients and the /varz probe trust (ca.crt); nil
	// when it is not known (mode Secrets with a missing Secret).
	caPEM []byte
	// serving is the certificate the brokers should serve to clients; nil
	// when it is not known.
	serving *x509.Certificate
	// hash names the certificates the pods should serve (client and routes):
	// the pods' AnnotationTLSHash.
	hash string
	// problem is Secure's reason when the named Secrets cannot be used, and
	// message says why; the brokers keep the last good certificate.
	problem, message string
	// next is when something is due: the earliest renewal, or an expiry
	// warning; zero when nothing is.
	next time.Time
}

// ensureCertificates makes sure the certificates the brokers are to serve
// exist and are current: in mode Operator it keeps the CA and issues (and
// renews) the server and route certificates; in mode Secrets it reads and
// checks the named Secrets.
func (r *NatsClusterReconciler) ensureCertificates(ctx context.Context, rq *request) error {
	nc := rq.cluster
	rq.tls = tlsState{mode: resources.TLSMode(nc), enabled: resources.TLSEnabled(nc)}
	if !rq.tls.enabled && exposed(nc) && !plaintextExposedBefore(rq.original) {
		r.event(nc, corev1.EventTypeWarning, v1alpha1.ReasonPlaintextExposed, "CheckTLS",
			"tls.mode is Disabled and the client Service is of type %s: passwords and messages cross the network in cleartext", nc.Spec.Service.Type)
	}
	var err error
	switch rq.tls.mode {
	case v1alpha1.TLSModeOperator:
		err = r.issueCertificates(ctx, rq)
	case v1alpha1.TLSModeSecrets:
		err = r.readCertificateSecrets(ctx, rq)
	}
	// Secure is reported only from what was decided: after a failure,
	// Ready says what failed and the old Secure stands.
	rq.tls.observed = err == nil
	return err
}

// issueCertificates is mode Operator: CA, then server and route certificates.
func (r *NatsClusterReconciler) issueCertificates(ctx context.Context, rq *request) error {
	nc := rq.cluster
	ca, err := r.ensureCA(ctx, rq)
	if err != nil {
		return err
	}
	rq.tls.ca, rq.tls.caPEM = ca, ca.CertPEM

	dnsNames, ips := resources.ServerSANs(nc, clientServiceIPs(rq)...)
	server, err := r.ensureCertificate(ctx, rq, resources.ServerTLSSecretName(nc), "server", pki.Request{
		Subject:  pkix.Name{CommonName: resources.ClientServiceName(nc) + "." + nc.Namespace + ".svc"},
		DNSNames: dnsNames, IPs: ips, Usages: pki.ServerUsage, Lifetime: resources.CertificateDuration(nc),
	})
	if err != nil {
		return err
	}
	// Routes are mutual TLS: each broker is the server of the routes it
	// accepts and the client of those it dials.
	routes, err := r.ensureCertificate(ctx, rq, resources.RoutesTLSSecretName(nc), "routes", pki.Request{
		Subject:  pkix.Name{CommonName: resources.RoutesServiceName(nc) + "." + nc.Namespace + ".svc"},
		DNSNames: resources.RouteDNSNames(nc), Usages: pki.ServerClientUsage, Lifetime: resources.CertificateDuration(nc),
	})
	if err != nil {
		return err
	}
	rq.tls.serving = server.Cert
	rq.tls.hash = tlsHash(server.Cert, routes.Cert)
	return nil
}

// clientServiceIPs are the client Service's cluster IPs (applied earlier in
// this reconcile).
func clientServiceIPs(rq *request) []string {
	if rq.clientService == nil {
		return nil
	}
	var ips []string
	for _, ip := range rq.clientService.Spec.ClusterIPs {
		if ip != corev1.ClusterIPNone && ip != "" {
			ips = append(ips, ip)
		}
	}
	return ips
}

// ensureCA reads the cluster CA, creating it when it is missing and replacing
// it only when it is unusable or expired (every certificate is then
// reissued). It is not renewed early: a new CA would make every client that
// trusts the old ca.crt refuse the brokers.
func (r *NatsClusterReconciler) ensureCA(ctx context.Context, rq *request) (*pki.KeyPair, error) {
	nc := rq.cluster
	name := resources.CASecretName(nc)
	existing, err := r.readOwnedSecret(ctx, nc, name)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		ca, err := pki.ParseKeyPair(existing.Data[resources.TLSCertKey], existing.Data[resources.TLSKeyKey])
		if err == nil && ca.Cert.IsCA && rq.now.Before(ca.Cert.NotAfter) {
			return ca, nil
		}
	}
	ca, err := pki.NewCA(nc.Name+"."+nc.Namespace+" natsforge CA", rq.now)
	if err != nil {
		return nil, fmt.Errorf("make CA: %w", err)
	}
	if err := r.writeOwnedSecret(ctx, existing, resources.CASecret(nc, ca.CertPEM, ca.KeyPEM)); err != nil {
		return nil, err
	}
	r.event(nc, corev1.EventTypeNormal, "CACreated", "IssueCertificate", "cluster CA created in Secret %s, valid until %s",
		name, ca.Cert.NotAfter.UTC().Format(time.RFC3339))
	return ca, nil
}

// ensureCertificate returns the certificate in the Secret name, issuing it
// from the cluster CA when it is missing, due for renewal, or no longer
// matches req. A current certificate is left alone: a resync writes nothing.
func (r *NatsClusterReconciler) ensureCertificate(ctx context.Context, rq *request, name, what string, req pki.Request) (*pki.KeyPair, error) {
	return r.ensureCertificateSecret(ctx, rq, name, what, req, func(kp *pki.KeyPair) *corev1.Secret {
		return resources.CertificateSecret(rq.cluster, name, what+"-tls", kp.CertPEM, kp.KeyPEM, rq.tls.caPEM)
	})
}

// ensureCertificateSecret is ensureCertificate with the Secret built by build.
func (r *NatsClusterReconciler) ensureCertificateSecret(ctx context.Context, rq *request, name, what string, req pki.Request,
	build func(*pki.KeyPair) *corev1.Secret) (*pki.KeyPair, error) {
	nc := rq.cluster
	existing, err := r.readOwnedSecret(ctx, nc, name)
	if err != nil {
		return nil, err
	}
	var current *pki.KeyPair
	if existing != nil {
		current, _ = pki.ParseKeyPair(existing.Data[resources.TLSCertKey], existing.Data[resources.TLSKeyKey])
	}
	why := pki.Reissue(current, rq.tls.ca, req, rq.now)
	if why == "" {
		desired := build(current)
		if secretUpToDate(existing, desired) {
			rq.tls.due(pki.RenewalTime(current.Cert))
			return current, nil
		}
		// Same certificate, but ca.crt, labels or type drifted.
		if err := r.writeOwnedSecret(ctx, existing, desired); err != nil {
			return nil, err
		}
		rq.tls.due(pki.RenewalTime(current.Cert))
		return current, nil
	}
	kp, err := pki.Issue(rq.tls.ca, req, rq.now)
	if err != nil {
		return nil, fmt.Errorf("issue %s certificate: %w", what, err)
	}
	if err := r.writeOwnedSecret(ctx, existing, build(kp)); err != nil {
		return nil, err
	}
	rq.tls.due(pki.RenewalTime(kp.Cert))
	verb := "issued"
	if current != nil {
		verb = "reissued (" + why + ")"
	}
	r.event(nc, corev1.EventTypeNormal, "CertificateIssued", "IssueCertificate", "%s certificate %s into Secret %s, serial %x, valid until %s",
		what, verb, name, kp.Cert.SerialNumber, kp.Cert.NotAfter.UTC().Format(time.RFC3339))
	return kp, nil
}

// readOwnedSecret reads a Secret nc controls straight from the API server;
// nil when it does not exist. It refuses a Secret nc does not control.
func (r *NatsClusterReconciler) readOwnedSecret(ctx context.Context, nc *v1alpha1.NatsCluster, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: name}, s)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("get Secret %s: %w", name, err)
	case !metav1.IsControlledBy(s, nc):
		return nil, fmt.Errorf("refusing to take over Secret %s: it exists and is not controlled by this NatsCluster", name)
	}
	return s, nil
}

// writeOwnedSecret creates desired, or updates existing to it.
func (r *NatsClusterReconciler) writeOwnedSecret(ctx context.Context, existing, desired *corev1.Secret) error {
	if existing == nil {
		if err := r.Client.Create(ctx, desired); err != nil {
			return fmt.Errorf("create Secret %s: %w", desired.Name, err)
		}
		return nil
	}
	if existing.Type != desired.Type {
		// A Secret's type is immutable: a user that turned from a password
		// user into a certificate user (or back) gets its Secret anew.
		if err := r.Client.Delete(ctx, existing); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete Secret %s to change its type: %w", desired.Name, err)
		}
		if err := r.Client.Create(ctx, desired); err != nil {
			return fmt.Errorf("create Secret %s: %w", desired.Name, err)
		}
		return nil
	}
	mergeSecret(existing, desired)
	if err := r.Client.Update(ctx, existing); err != nil {
		return fmt.Errorf("update Secret %s: %w", desired.Name, err)
	}
	return nil
}

// readCertificateSecrets is mode Secrets: the client (and routes) Secrets the
// user named must hold a certificate, its key and the CA. When one is missing
// or unusable, the config is left as it was and the brokers keep serving the
// last good certificate; Secure says why.
func (r *NatsClusterReconciler) readCertificateSecrets(ctx context.Context, rq *request) error {
	nc := rq.cluster
	clientName, routesName := resources.ClientTLSSecretName(nc), resources.RouteTLSSecretName(nc)
	clientKP, clientCA, err := r.readCertificateSecret(ctx, rq, clientName)
	if err != nil || clientKP == nil {
		return err
	}
	routesKP := clientKP
	if routesName != clientName {
		if routesKP, _, err = r.readCertificateSecret(ctx, rq, routesName); err != nil || routesKP == nil {
			return err
		}
	}
	rq.tls.caPEM, rq.tls.serving = clientCA, clientKP.Cert
	rq.tls.hash = tlsHash(clientKP.Cert, routesKP.Cert)
	for _, c := range []*x509.Certificate{clientKP.Cert, routesKP.Cert} {
		if warnAt := c.NotAfter.Add(-expiryWarning); rq.now.Before(warnAt) {
			rq.tls.due(warnAt)
		} else {
			rq.tls.due(c.NotAfter)
		}
	}
	r.warnOfExpiry(rq, clientName, clientKP.Cert)
	if routesName != clientName {
		r.warnOfExpiry(rq, routesName, routesKP.Cert)
	}
	return nil
}

// readCertificateSecret reads and checks one Secret of mode Secrets. A
// missing or unusable Secret is not an error of the reconcile: it sets
// rq.tls.problem and returns nil.
func (r *NatsClusterReconciler) readCertificateSecret(ctx context.Context, rq *request, name string) (*pki.KeyPair, []byte, error) {
	s := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: rq.cluster.Namespace, Name: name}, s)
	switch {
	case apierrors.IsNotFound(err):
		rq.tls.problem = v1alpha1.ReasonTLSSecretNotFound
		rq.tls.message = fmt.Sprintf("Secret %s not found; the brokers keep serving the last good certificate", name)
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("get Secret %s: %w", name, err)
	}
	invalid := func(why string) (*pki.KeyPair, []byte, error) {
		rq.tls.problem = v1alpha1.ReasonTLSSecretInvalid
		rq.tls.message = fmt.Sprintf("Secret %s: %s; the brokers keep serving the last good certificate", name, why)
		return nil, nil, nil
	}
	for _, k := range []string{resources.TLSCertKey, resources.TLSKeyKey, resources.CACertKey} {
		if len(s.Data[k]) == 0 {
			return invalid(fmt.Sprintf("no key %s, or it is empty", k))
		}
	}
	kp, err := pki.ParseKeyPair(s.Data[resources.TLSCertKey], s.Data[resources.TLSKeyKey])
	if err != nil {
		return invalid(err.Error())
	}
	cas, err := pki.ParseCertificates(s.Data[resources.CACertKey])
	if err != nil {
		return invalid("ca.crt: " + err.Error())
	}
	roots := x509.NewCertPool()
	for _, c := range cas {
		roots.AddCert(c)
	}
	// tls.crt may carry intermediates after the leaf, as cert-manager writes
	// a chain.
	intermediates := x509.NewCertPool()
	if chain, err := pki.ParseCertificates(s.Data[resources.TLSCertKey]); err == nil {
		for _, c := range chain[1:] {
			intermediates.AddCert(c)
		}
	}
	// Checked at the start of its validity: expiry is reported on its own.
	if _, err := kp.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, CurrentTime: kp.Cert.NotBefore.Add(time.Second),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return invalid("tls.crt is not signed by ca.crt")
	}
	if !rq.now.Before(kp.Cert.NotAfter) {
		rq.tls.problem = v1alpha1.ReasonCertificateExpired
		rq.tls.message = fmt.Sprintf("the certificate in Secret %s expired at %s", name, kp.Cert.NotAfter.UTC().Format(time.RFC3339))
		// Still served: an expired certificate is the user's to replace.
	}
	return kp, s.Data[resources.CACertKey], nil
}

// warnOfExpiry emits a Warning Event when a certificate the operator does not
// manage expires within expiryWarning.
func (r *NatsClusterReconciler) warnOfExpiry(rq *request, secret string, c *x509.Certificate) {
	left := c.NotAfter.Sub(rq.now)
	if left > expiryWarning {
		return
	}
	// Once per certificate (and operator process), not on every reconcile.
	key := rq.cluster.Namespace + "/" + rq.cluster.Name + "/" + pki.Fingerprint(c)
	if _, warned := expiryWarned.LoadOrStore(key, true); warned {
		return
	}
	r.event(rq.cluster, corev1.EventTypeWarning, "CertificateExpiring", "CheckCertificate",
		"the certificate in Secret %s expires at %s (in %s); it is not managed by the operator: renew it",
		secret, c.NotAfter.UTC().Format(time.RFC3339), left.Truncate(time.Minute))
}

// ensureUserCertificate issues (and renews) a certificate user's client
// certificate into "<cluster>-user-<name>" (mode Operator).
func (r *NatsClusterReconciler) ensureUserCertificate(ctx context.Context, rq *request, u *v1alpha1.User) error {
	nc := rq.cluster
	id, err := pki.ParseIdentity(u.TLSIdentity, u.Name)
	if err != nil {
		return err
	}
	name := resources.GeneratedUserSecretName(nc, u.Name)
	_, err = r.ensureCertificateSecret(ctx, rq, name, "user "+u.Name, pki.Request{
		Subject: id.Subject, Emails: id.Emails, Usages: pki.ClientUsage, Lifetime: resources.CertificateDuration(nc),
	}, func(kp *pki.KeyPair) *corev1.Secret {
		return resources.CertificateUserSecret(nc, u.Name, kp.CertPEM, kp.KeyPEM, rq.tls.caPEM)
	})
	return err
}

// plaintextExposedBefore tells whether the last status already said
// PlaintextExposed, so that its Warning Event is emitted once per exposure.
func plaintextExposedBefore(nc *v1alpha1.NatsCluster) bool {
	c := meta.FindStatusCondition(nc.Status.Conditions, v1alpha1.ConditionSecure)
	return c != nil && c.Reason == v1alpha1.ReasonPlaintextExposed
}

// due records that something is due at t.
func (s *tlsState) due(t time.Time) {
	if s.next.IsZero() || t.Before(s.next) {
		s.next = t
	}
}

// tlsHash names a pair of served certificates.
func tlsHash(certs ...*x509.Certificate) string {
	h := sha256.New()
	for _, c := range certs {
		h.Write(c.Raw)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
