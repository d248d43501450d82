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
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/controllers/resources"
)

// defaultBcryptCost is the API's default for spec.auth.bcryptCost.
const defaultBcryptCost = 11

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

	prev := fingerprints{}
	if found {
		prev = parseFingerprints(existing.Data[resources.FingerprintsKey])
	}
	cost := int(nc.Spec.Auth.BcryptCost)
	if cost == 0 { // the API defaults it; an object written around the schema may lack it
		cost = defaultBcryptCost
	}
	records, rotated, err := hashPasswords(rq.fingerprintKey, prev, rq.users, cost, metav1.NewTime(rq.now.Truncate(time.Second)))
	if err != nil {
		return err
	}
	var users []resources.BrokerUser
	certificateUsers := false
	for _, u := range rq.users {
		switch {
		case u.identity != "":
			certificateUsers = true
			users = append(users, resources.BrokerUser{Name: u.identity, Permissions: u.spec.Permissions})
		case u.resolved():
			users = append(users, resources.BrokerUser{Name: u.name, PasswordHash: records[u.name].Hash, Permissions: u.spec.Permissions})
		}
	}
	config, err := resources.RenderConfig(nc, resources.ConfigInputs{Users: users, RoutePassword: rq.routePassword, CertificateUsers: certificateUsers})
	if err != nil {
		return err
	}
	rq.config, rq.configHash = config, resources.ConfigDigest(config)

	desired := resources.ConfigSecret(nc, config, records.marshal())
	if !found {
		if err := r.Client.Create(ctx, desired); err != nil {
			return fmt.Errorf("create Secret %s: %w", key.Name, err)
		}
		rq.configWritten, rq.records = true, records
		return nil
	}
	if secretUpToDate(existing, desired) {
		rq.records = records
		return nil
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if existing.ResourceVersion == "" {
			if err := r.APIReader.Get(ctx, key, existing); err != nil {
				return err
			}
		}
		mergeSecret(existing, desired)
		err := r.Client.Update(ctx, existing)
		existing.ResourceVersion = "" // re-read on conflict
		return err
	})
	if err != nil {
		return fmt.Errorf("update Secret %s: %w", key.Name, err)
	}
	rq.configWritten, rq.records = true, records
	for _, u := range rq.users {
		if _, had := prev[u.name]; had && rotated[u.name] {
			r.event(nc, corev1.EventTypeNormal, "PasswordRotated", "RotatePassword", "user %s: new password hash in the config", u.name)
		}
	}
	r.event(nc, corev1.EventTypeNormal, "ConfigUpdated", "WriteConfig", "config Secret %s updated, digest %s", key.Name, rq.configHash)
	return nil
}
