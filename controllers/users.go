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
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509/pkix"
	"fmt"
	"maps"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/pki"
	"github.com/natsforge/natsforge/controllers/resources"
)

// fingerprintKeyBytes is the size of the per-cluster HMAC key.
const fingerprintKeyBytes = 32

// resolvedUser is one spec user and, when it could be read, its password. The
// password lives only in memory for the length of one reconcile.
type resolvedUser struct {
	name       string
	spec       *v1alpha1.User
	secretName string
	key        string
	password   []byte
	// identity is a certificate user's tlsIdentity: the name the broker maps
	// its client certificate to. Such a user has no password.
	identity string
	reason   v1alpha1.UserReason
	message  string
	// natsUser is the NatsUser this user comes from; nil for a user of the
	// NatsCluster's spec. Such users are reported in their NatsUser's status,
	// not the cluster's.
	natsUser *v1alpha1.NatsUser
	// warning is a problem with a password that is used all the same (it
	// ends in a newline): a Warning Event when it first appears.
	warning string
	// system marks the system account's user: in the config and the
	// account counts, not in status.users.
	system bool
}

func (u resolvedUser) resolved() bool { return u.password != nil || u.identity != "" }

// servingLastGood tells whether u, whose password cannot be read, is in
// records with its last good hash (hashPasswords put it there).
func (u resolvedUser) servingLastGood(records fingerprints) bool {
	_, ok := records[u.name]
	return !u.resolved() && ok
}

// ensureOperatorSecrets reads, or creates, the Secrets the operator keeps for
// itself: the fingerprint key and the route credentials.
func (r *NatsClusterReconciler) ensureOperatorSecrets(ctx context.Context, rq *request) error {
	nc := rq.cluster
	keySecret, err := r.ensureSecret(ctx, nc, resources.FingerprintKeySecretName(nc),
		func(s *corev1.Secret) bool { return len(s.Data[resources.FingerprintKeyKey]) >= fingerprintKeyBytes },
		func() *corev1.Secret {
			key := make([]byte, fingerprintKeyBytes)
			_, _ = rand.Read(key) // crypto/rand.Read never fails
			return resources.FingerprintKeySecret(nc, key)
		})
	if err != nil {
		return err
	}
	rq.fingerprintKey = keySecret.Data[resources.FingerprintKeyKey]

	routes, err := r.ensureSecret(ctx, nc, resources.RoutesSecretName(nc),
		func(s *corev1.Secret) bool { return len(s.Data[resources.PasswordKey]) > 0 },
		func() *corev1.Secret { return resources.RoutesSecret(nc, rand.Text()) })
	if err != nil {
		return err
	}
	rq.routePassword = string(routes.Data[resources.PasswordKey])
	return nil
}

// ensureSecret returns the Secret name that nc controls, creating it with
// build() when it is missing and replacing its data when valid() refuses it.
// It never takes over a Secret it does not control.
func (r *NatsClusterReconciler) ensureSecret(ctx context.Context, nc *v1alpha1.NatsCluster, name string,
	valid func(*corev1.Secret) bool, build func() *corev1.Secret) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: name}, s)
	switch {
	case apierrors.IsNotFound(err):
		s = build()
		if err := r.Client.Create(ctx, s); err != nil {
			return nil, fmt.Errorf("create Secret %s: %w", name, err)
		}
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("get Secret %s: %w", name, err)
	case !metav1.IsControlledBy(s, nc):
		return nil, fmt.Errorf("refusing to take over Secret %s: it exists and is not controlled by this NatsCluster", name)
	case !valid(s):
		s.Data = build().Data
		if err := r.Client.Update(ctx, s); err != nil {
			return nil, fmt.Errorf("update Secret %s: %w", name, err)
		}
	}
	return s, nil
}

// resolveUsers reads every user's password: from the Secret its
// passwordSecretRef names, or from (a newly generated) "<cluster>-user-<name>".
// A missing Secret or key, or an invalid password, concerns that user only:
// writeConfig keeps its last good hash, or leaves it out if it never had one.
func (r *NatsClusterReconciler) resolveUsers(ctx context.Context, rq *request) error {
	nc := rq.cluster
	secrets, err := r.readReferencedSecrets(ctx, nc)
	if err != nil {
		return err
	}
	wantGenerated := map[string]bool{}
	users := make([]resolvedUser, 0, len(nc.Spec.Auth.Users))

	for i := range nc.Spec.Auth.Users {
		spec := &nc.Spec.Auth.Users[i]
		u := resolvedUser{
			name:       spec.Name,
			spec:       spec,
			secretName: resources.UserSecretName(nc, spec),
			key:        resources.UserSecretKey(spec),
		}
		if spec.TLSIdentity != "" {
			users = append(users, r.resolveCertificateUser(ctx, rq, u, wantGenerated))
			if rq.failure != nil {
				return rq.failure
			}
			continue
		}
		if spec.PasswordSecretRef == nil {
			wantGenerated[u.secretName] = true
			pw, err := r.ensureGeneratedCredentials(ctx, rq, spec.Name)
			if err != nil {
				return err
			}
			u.password, u.reason = pw, v1alpha1.UserGenerated
			u.message = fmt.Sprintf("password generated into Secret %s", u.secretName)
			users = append(users, u)
			continue
		}

		c := readPassword(secrets[u.secretName], u.secretName, u.key)
		u.password, u.reason, u.message, u.warning = c.password, c.reason, c.message, c.warning
		users = append(users, u)
	}

	if resources.SystemAccountEnabled(nc) && !certificateUsers(nc) {
		u, err := r.resolveSystemUser(ctx, rq)
		if err != nil {
			return err
		}
		wantGenerated[u.secretName] = true
		users = append(users, u)
	}

	rq.users = users
	if err := r.deleteStaleGeneratedCredentials(ctx, nc, wantGenerated); err != nil {
		return err
	}
	return r.resolveNatsUsers(ctx, rq)
}

// resolveCertificateUser resolves a user with a tlsIdentity: it authenticates
// with a client certificate, which in mode Operator the operator issues into
// "<cluster>-user-<name>".
func (r *NatsClusterReconciler) resolveCertificateUser(ctx context.Context, rq *request, u resolvedUser, wantGenerated map[string]bool) resolvedUser {
	u.key = ""
	if _, err := pki.ParseIdentity(u.spec.TLSIdentity, u.name); err != nil {
		u.secretName, u.reason, u.message = "", v1alpha1.UserInvalidTLSIdentity, err.Error()
		return u
	}
	u.identity, u.reason = u.spec.TLSIdentity, v1alpha1.UserCertificate
	if rq.tls.mode != v1alpha1.TLSModeOperator {
		u.secretName = ""
		u.message = fmt.Sprintf("authenticates with a client certificate for %s signed by the CA in ca.crt", u.identity)
		return u
	}
	wantGenerated[u.secretName] = true
	if err := r.ensureUserCertificate(ctx, rq, u.spec); err != nil {
		rq.failure = err
		return u
	}
	u.message = fmt.Sprintf("client certificate for %s issued into Secret %s", u.identity, u.secretName)
	return u
}

// secretReads is how many Secrets are read from the API server at once.
const secretReads = 8

// readReferencedSecrets reads, in parallel and straight from the API server,
// every Secret a passwordSecretRef names. A missing Secret maps to nil.
func (r *NatsClusterReconciler) readReferencedSecrets(ctx context.Context, nc *v1alpha1.NatsCluster) (map[string]*corev1.Secret, error) {
	names := indexSecretNames(nc)
	found := make([]*corev1.Secret, len(names))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(secretReads)
	for i, name := range names {
		g.Go(func() error {
			s := &corev1.Secret{}
			err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: name}, s)
			switch {
			case apierrors.IsNotFound(err):
				return nil
			case err != nil:
				return fmt.Errorf("get Secret %s: %w", name, err)
			}
			found[i] = s
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	secrets := make(map[string]*corev1.Secret, len(names))
	for i, name := range names {
		secrets[name] = found[i]
	}
	return secrets, nil
}

// ensureGeneratedCredentials returns the password of a user without
// passwordSecretRef, generating it (and its Secret) on first use. An
// application may also set a password of its own in that Secret: the url key
// follows it. With TLS the Secret carries ca.crt; with verifyClients in mode
// Operator also a client certificate.
func (r *NatsClusterReconciler) ensureGeneratedCredentials(ctx context.Context, rq *request, user string) ([]byte, error) {
	nc := rq.cluster
	return r.ensureCredentialsSecret(ctx, rq, user, resources.GeneratedUserSecretName(nc, user),
		func(password string, caPEM []byte) *corev1.Secret {
			return resources.GeneratedUserSecret(nc, user, password, caPEM)
		})
}

// ensureCredentialsSecret keeps the Secret name that build makes for user's
// generated password (made once, kept while the Secret keeps it).
func (r *NatsClusterReconciler) ensureCredentialsSecret(ctx context.Context, rq *request, user, name string,
	build func(password string, caPEM []byte) *corev1.Secret) ([]byte, error) {
	nc := rq.cluster
	caPEM := rq.tls.caPEM
	existing := &corev1.Secret{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: name}, existing)
	switch {
	case apierrors.IsNotFound(err):
		existing = nil
	case err != nil:
		return nil, fmt.Errorf("get Secret %s: %w", name, err)
	case !metav1.IsControlledBy(existing, nc):
		return nil, fmt.Errorf("refusing to take over Secret %s: it exists and is not controlled by this NatsCluster", name)
	}

	password := ""
	if existing != nil {
		password = string(existing.Data[resources.PasswordKey])
		if caPEM == nil && rq.tls.enabled { // mode Secrets with its Secret missing: keep the last ca.crt
			caPEM = existing.Data[resources.CACertKey]
		}
	}
	if password == "" || len(password) > bcryptMaxPassword {
		password = rand.Text()
	}
	desired := build(password, caPEM)
	if err := r.addClientCertificate(rq, user, existing, desired); err != nil {
		return nil, err
	}
	if existing == nil {
		if err := r.Client.Create(ctx, desired); err != nil {
			return nil, fmt.Errorf("create Secret %s: %w", name, err)
		}
	} else if !secretUpToDate(existing, desired) {
		if err := r.writeOwnedSecret(ctx, existing, desired); err != nil {
			return nil, err
		}
	}
	return []byte(password), nil
}

// addClientCertificate gives a generated user's Secret a client certificate
// (CN=<user>, tls.crt and tls.key) when clients must present one
// (verifyClients) and the operator holds the CA (mode Operator): the current
// one while it is good, else a new one.
func (r *NatsClusterReconciler) addClientCertificate(rq *request, user string, existing, desired *corev1.Secret) error {
	if rq.tls.ca == nil || !rq.cluster.Spec.TLS.VerifyClients {
		return nil
	}
	var current *pki.KeyPair
	if existing != nil {
		current, _ = pki.ParseKeyPair(existing.Data[resources.TLSCertKey], existing.Data[resources.TLSKeyKey])
	}
	req := pki.Request{Subject: pkix.Name{CommonName: user}, Usages: pki.ClientUsage, Lifetime: resources.CertificateDuration(rq.cluster)}
	kp := current
	if pki.Reissue(current, rq.tls.ca, req, rq.now) != "" {
		var err error
		if kp, err = pki.Issue(rq.tls.ca, req, rq.now); err != nil {
			return fmt.Errorf("issue client certificate of user %s: %w", user, err)
		}
	}
	desired.Data[resources.TLSCertKey], desired.Data[resources.TLSKeyKey] = kp.CertPEM, kp.KeyPEM
	rq.tls.due(pki.RenewalTime(kp.Cert))
	return nil
}

// deleteStaleGeneratedCredentials removes generated credential Secrets of
// users that are gone, or that now name a Secret of their own.
func (r *NatsClusterReconciler) deleteStaleGeneratedCredentials(ctx context.Context, nc *v1alpha1.NatsCluster, want map[string]bool) error {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("SecretList"))
	sel := resources.SelectorLabels(nc)
	sel[resources.LabelComponent] = resources.ComponentUserCredentials
	if err := r.Client.List(ctx, list, client.InNamespace(nc.Namespace), client.MatchingLabels(sel)); err != nil {
		return fmt.Errorf("list generated credential Secrets: %w", err)
	}
	for i := range list.Items {
		s := &list.Items[i]
		if want[s.Name] || !metav1.IsControlledBy(s, nc) {
			continue
		}
		if err := r.Client.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete Secret %s: %w", s.Name, err)
		}
	}
	return nil
}

// recordUserProblems emits a Warning Event for each user that has just
// become unresolved, or whose password has just started to end in a newline
// (not on every reconcile), naming the Secret, never a value. records are the
// ones going into the config: they tell a user kept on its last good password
// from one left out.
func (r *NatsClusterReconciler) recordUserProblems(rq *request, records fingerprints) {
	before := map[string]v1alpha1.UserStatus{}
	for _, s := range rq.original.Status.Users {
		before[s.Name] = s
	}
	for _, u := range rq.users {
		was := before[u.name]
		switch {
		case u.natsUser != nil: // reported in its own status
		case u.warning != "" && was.Message != u.message:
			r.event(rq.cluster, corev1.EventTypeWarning, "PasswordEndsInNewline", "ResolveUser", "user %s: %s", u.name, u.warning)
		case u.resolved() || was.Reason == u.reason:
		case u.servingLastGood(records):
			r.event(rq.cluster, corev1.EventTypeWarning, string(u.reason), "ResolveUser",
				"user %s keeps its last good password: %s", u.name, u.message)
		default:
			r.event(rq.cluster, corev1.EventTypeWarning, string(u.reason), "ResolveUser",
				"user %s left out of the config: %s", u.name, u.message)
		}
	}
}

func (r *NatsClusterReconciler) event(nc *v1alpha1.NatsCluster, eventtype, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(nc, nil, eventtype, reason, action, note, args...)
	}
}

// secretUpToDate tells whether existing already has desired's data, type,
// labels and annotations.
func secretUpToDate(existing, desired *corev1.Secret) bool {
	if existing.Type != desired.Type || len(existing.Data) != len(desired.Data) {
		return false
	}
	for k, v := range desired.Data {
		if !bytes.Equal(existing.Data[k], v) {
			return false
		}
	}
	return hasAll(existing.Labels, desired.Labels) && hasAll(existing.Annotations, desired.Annotations)
}

func mergeSecret(existing, desired *corev1.Secret) {
	existing.Data = desired.Data
	existing.StringData = nil
	existing.Labels = mergeMaps(existing.Labels, desired.Labels)
	existing.Annotations = mergeMaps(existing.Annotations, desired.Annotations)
}

// hasAll tells whether have holds every key of want with the same value.
func hasAll(have, want map[string]string) bool {
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			return false
		}
	}
	return true
}

func mergeMaps(into, from map[string]string) map[string]string {
	if len(from) == 0 {
		return into
	}
	if into == nil {
		into = map[string]string{}
	}
	maps.Copy(into, from)
	return into
}

// resolveSystemUser generates (once) the system account's user into
// "<cluster>-system-user", with a nats CLI context beside its password.
func (r *NatsClusterReconciler) resolveSystemUser(ctx context.Context, rq *request) (resolvedUser, error) {
	nc := rq.cluster
	name := resources.SystemUserSecretName(nc)
	pw, err := r.ensureCredentialsSecret(ctx, rq, resources.SystemUserName, name,
		func(password string, caPEM []byte) *corev1.Secret {
			return resources.SystemUserSecret(nc, password, caPEM)
		})
	if err != nil {
		return resolvedUser{}, err
	}
	return resolvedUser{name: resources.SystemUserName, secretName: name, password: pw, system: true,
		spec:   &v1alpha1.User{Name: resources.SystemUserName, Account: resources.SystemAccountName},
		reason: v1alpha1.UserGenerated, message: "password generated into Secret " + name}, nil
}

// certificateUsers tells whether nc's users connect with certificates
// (tlsIdentity): the system user, a password user, then has no place.
func certificateUsers(nc *v1alpha1.NatsCluster) bool {
	for _, u := range nc.Spec.Auth.Users {
		if u.TLSIdentity != "" {
			return true
		}
	}
	return false
}
