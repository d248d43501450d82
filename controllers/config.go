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
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// defaultBcryptCost is the API's default for spec.auth.bcryptCost.
const defaultBcryptCost = 11

// brokerUser is a password user as it goes into the broker config: its hash
// and, during a grace window, its previous one.
func brokerUser(name string, rec fingerprintRecord, perms *v1alpha1.Permissions) resources.BrokerUser {
	u := resources.BrokerUser{Name: name, PasswordHash: rec.Hash, Permissions: perms}
	if rec.PreviousHash != "" && rec.PreviousValidUntil != nil {
		u.PreviousPasswordHash, u.PreviousValidUntil = rec.PreviousHash, rec.PreviousValidUntil.Time
	}
	return u
}

// writeConfig hashes the passwords that changed (and only those), renders the
// broker config, and writes the config Secret when its bytes differ.
func (r *NatsClusterReconciler) writeConfig(ctx context.Context, rq *request) error {
	nc := rq.cluster
	key := client.ObjectKey{Namespace: nc.Namespace, Name: resources.ConfigSecretName(nc)}

	existing := &corev1.Secret{}
	err := r.APIReader.Get(ctx, key, existing)
	found := err == nil
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("get Secret %s: %w", key.Name, err)
	case !metav1.IsControlledBy(existing, nc):
		return fmt.Errorf("refusing to take over Secret %s: it exists and is not controlled by this NatsCluster", key.Name)
	}

	var existingParts []*corev1.Secret
	prev := fingerprints{}
	if found {
		if existingParts, err = r.readConfigParts(ctx, nc); err != nil {
			return err
		}
		prev = parseFingerprints(resources.JoinFingerprints(existing, existingParts))
	}
	cost := int(nc.Spec.Auth.BcryptCost)
	if cost == 0 { // the API defaults it; an object written around the schema may lack it
		cost = defaultBcryptCost
	}
	pacing := types.NamespacedName{Namespace: nc.Namespace, Name: nc.Name}
	wait := r.pacer.wait(pacing)
	records, rotated, held, err := hashPasswordsPaced(rq.fingerprintKey, prev, rq.users, cost,
		metav1.NewTime(rq.now.Truncate(time.Second)), rotationGracePeriod(nc), wait > 0)
	if err != nil {
		return err
	}
	if len(rotated) > 0 {
		r.pacer.rehashed(pacing)
	}
	if held > 0 {
		// The changed passwords go in when the interval ends: the requeue
		// then, or an event's reconcile after it.
		rq.hashesHeldFor = wait
		logf.FromContext(ctx).V(1).Info("changed passwords wait for the hash pacing", "users", held, "for", wait.String())
	}
	r.recordUserProblems(rq, records)
	if dropped := fitGraceWindows(records, previousPasswordsBudget); len(dropped) > 0 {
		r.event(nc, corev1.EventTypeWarning, "GraceWindowSkipped", "RotatePassword",
			"%d users rotated at once get no grace window (the previous-passwords file would pass %d bytes): the hard cut for %s",
			len(dropped), previousPasswordsBudget, firstNames(dropped, 5))
	}
	var users []resources.BrokerUser
	certificateUsers := false
	var systemUser *resources.BrokerUser
	for _, u := range rq.users {
		if u.identity != "" {
			certificateUsers = true
			users = append(users, resources.BrokerUser{Name: u.identity, Permissions: u.spec.Permissions, Account: u.spec.Account})
			continue
		}
		// Resolved, or kept on its last good hash.
		rec, ok := records[u.name]
		switch {
		case !ok:
		case u.system:
			su := brokerUser(u.name, rec, nil)
			systemUser = &su
		default:
			bu := brokerUser(u.name, rec, u.spec.Permissions)
			bu.Account = u.spec.Account
			users = append(users, bu)
		}
	}
	in := resources.ConfigInputs{Users: users, RoutePassword: rq.routePassword, CertificateUsers: certificateUsers, SystemUser: systemUser}
	config, err := resources.RenderConfig(nc, in)
	if err != nil {
		return err
	}
	previous, err := resources.RenderPreviousPasswords(nc, in)
	if err != nil {
		return err
	}
	rq.config, rq.configHash = config, resources.ConfigDigest(config)
	rq.renderedAt = r.now()
	for name := range rotated {
		rec := records[name]
		rec.ConfigHash = rq.configHash
		records[name] = rec
	}
	rq.history = nil
	if found {
		rq.history = parseConfigHistory(existing.Data[resources.ConfigHistoryKey])
	}
	rq.history = rq.history.add(rq.configHash)

	desired, desiredParts, err := resources.ConfigSecrets(nc, config, previous, records.marshal(), rq.history.marshal())
	if err != nil {
		return err
	}
	// The parts first: a manifest is never written before the parts it names.
	written := false
	for i, part := range desiredParts {
		var have *corev1.Secret
		if i < len(existingParts) {
			have = existingParts[i]
		}
		w, err := r.writeConfigSecret(ctx, nc, have, part)
		if err != nil {
			return err
		}
		written = written || w
	}
	var have *corev1.Secret
	if found {
		have = existing
	}
	w, err := r.writeConfigSecret(ctx, nc, have, desired)
	if err != nil {
		return err
	}
	written = written || w
	for _, stale := range existingParts[min(len(desiredParts), len(existingParts)):] {
		if err := r.Client.Delete(ctx, stale); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete Secret %s: %w", stale.Name, err)
		}
		written = true
	}
	rq.configWritten, rq.records = written, records
	if !written || !found {
		return nil
	}
	for _, u := range rq.users {
		if _, had := prev[u.name]; had && rotated[u.name] {
			if until := records[u.name].PreviousValidUntil; until != nil {
				r.event(nc, corev1.EventTypeNormal, "PasswordRotated", "RotatePassword",
					"user %s: new password hash in the config; the previous password is accepted until %s", u.name, until.UTC().Format(time.RFC3339))
			} else {
				r.event(nc, corev1.EventTypeNormal, "PasswordRotated", "RotatePassword", "user %s: new password hash in the config", u.name)
			}
		}
	}
	r.event(nc, corev1.EventTypeNormal, "ConfigUpdated", "WriteConfig", "config Secret %s updated, digest %s", key.Name, rq.configHash)
	// One line per changed config, with the reconcile's own marks: what a
	// rotation's time is spent on (make bench-cluster reads it).
	logf.FromContext(ctx).Info("config Secret written", "secret", key.Name, "configHash", rq.configHash,
		"reconcileStarted", rq.now.UTC().Format(time.RFC3339Nano), "rendered", rq.renderedAt.UTC().Format(time.RFC3339Nano))
	return nil
}

// writeConfigSecret creates desired, or updates existing (nil: missing) to it
// when it differs, retrying on conflict; it tells whether it wrote.
func (r *NatsClusterReconciler) writeConfigSecret(ctx context.Context, nc *v1alpha1.NatsCluster, existing, desired *corev1.Secret) (bool, error) {
	if existing == nil {
		if err := r.Client.Create(ctx, desired); err != nil {
			return false, fmt.Errorf("create Secret %s: %w", desired.Name, err)
		}
		return true, nil
	}
	if secretUpToDate(existing, desired) {
		return false, nil
	}
	key := client.ObjectKeyFromObject(desired)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if existing.ResourceVersion == "" {
			if err := r.APIReader.Get(ctx, key, existing); err != nil {
				return err
			}
			if !metav1.IsControlledBy(existing, nc) {
				return fmt.Errorf("refusing to take over Secret %s: it is not controlled by this NatsCluster", key.Name)
			}
		}
		mergeSecret(existing, desired)
		err := r.Client.Update(ctx, existing)
		existing.ResourceVersion = "" // re-read on conflict
		return err
	})
	if err != nil {
		return false, fmt.Errorf("update Secret %s: %w", key.Name, err)
	}
	return true, nil
}

// readConfigParts reads the config part Secrets "<name>-config-1", ... in
// order, up to the first missing one.
func (r *NatsClusterReconciler) readConfigParts(ctx context.Context, nc *v1alpha1.NatsCluster) ([]*corev1.Secret, error) {
	var parts []*corev1.Secret
	for i := 1; i <= resources.MaxConfigParts+1; i++ {
		s := &corev1.Secret{}
		name := resources.ConfigPartSecretName(nc, i)
		err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: nc.Namespace, Name: name}, s)
		switch {
		case apierrors.IsNotFound(err):
			return parts, nil
		case err != nil:
			return nil, fmt.Errorf("get Secret %s: %w", name, err)
		case !metav1.IsControlledBy(s, nc):
			return nil, fmt.Errorf("refusing to take over Secret %s: it exists and is not controlled by this NatsCluster", name)
		}
		parts = append(parts, s)
	}
	return parts, nil
}

// firstNames lists up to n names, and how many more there are.
func firstNames(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:n], ", "), len(names)-n)
}
