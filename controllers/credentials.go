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
	"cmp"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// A user's credential lifecycle, the same for every kind of password user
// (an inline spec.auth.users entry or a NatsUser):
//
//   - readPassword classifies what its Secret holds: a usable password, or
//     SecretMissing, KeyMissing or InvalidPassword (never quoting the value).
//   - Keep last good: a user whose password cannot be read but who had a
//     working one keeps that hash on the brokers (hashPasswords carries its
//     fingerprint record over). A user that never had one stays out.
//     Removing the user revokes it at once: its record is not carried over.
//   - Grace window: when a user's password changes and the cluster has a
//     rotationGracePeriod, the record keeps the previous hash until
//     now+period; the brokers accept both until then (broker/conf
//     previous.go) and close the previous one's connections at its end.
//
// Where the last good hash lives: in the fingerprint records of the config
// Secret "<cluster>-config" (key fingerprints.json), next to the config the
// hash went into. The operator owns that Secret and writes both in one
// update, so what it reads back after a restart is exactly what the brokers
// were given: the records are the source of truth, and no status (which a
// user may edit, or a restore may lose) or in-memory state is needed to keep
// a user whose Secret has vanished. The previous hash of a grace window lives
// there too, and is dropped from it when the window ends.

// credential is what a user's Secret key yields: a password (nil when it
// cannot be used) and why, for the user's status.
type credential struct {
	password []byte
	reason   v1alpha1.UserReason
	message  string
	// warning is set for a password that is used but is probably a mistake
	// (it ends in a newline); it becomes a Warning Event.
	warning string
}

// readPassword classifies the password under key in s (nil: the Secret does
// not exist), named secretName in messages. Messages name the Secret and
// key, never the value.
func readPassword(s *corev1.Secret, secretName, key string) credential {
	if s == nil {
		return credential{reason: v1alpha1.UserSecretMissing, message: fmt.Sprintf("Secret %s not found", secretName)}
	}
	pw, ok := s.Data[key]
	at := fmt.Sprintf("the password in Secret %s key %q", secretName, key)
	switch {
	case !ok:
		return credential{reason: v1alpha1.UserKeyMissing, message: fmt.Sprintf("Secret %s has no key %q", secretName, key)}
	case len(pw) == 0:
		return credential{reason: v1alpha1.UserInvalidPassword, message: at + " is empty"}
	case !utf8.Valid(pw):
		return credential{reason: v1alpha1.UserInvalidPassword,
			message: at + " is not valid UTF-8: a client's CONNECT, which is JSON, cannot carry it"}
	case len(pw) > bcryptMaxPassword:
		return credential{reason: v1alpha1.UserInvalidPassword,
			message: fmt.Sprintf("%s is %d bytes, longer than bcrypt's %d", at, len(pw), bcryptMaxPassword)}
	}
	c := credential{password: pw, reason: v1alpha1.UserResolved, message: fmt.Sprintf("password read from Secret %s key %q", secretName, key)}
	if bytes.HasSuffix(pw, []byte("\n")) {
		// Used as it is: the Secret is the truth, and a client may well send
		// the newline too. But `kubectl create secret --from-file` keeps a
		// file's last newline, which is rarely meant.
		c.warning = fmt.Sprintf("%s ends in a newline, which is part of the password (kubectl create secret --from-file keeps a file's final newline)", at)
		c.message += "; it ends in a newline, which is part of the password"
	}
	return c
}

// keepsLastGood tells whether a user whose password could not be read for
// reason keeps its last good hash on the brokers.
func keepsLastGood(reason v1alpha1.UserReason) bool {
	switch reason {
	case v1alpha1.UserSecretMissing, v1alpha1.UserKeyMissing, v1alpha1.UserInvalidPassword:
		return true
	}
	return false
}

// rotationGracePeriod is spec.auth.rotationGracePeriod, 0 when unset.
func rotationGracePeriod(nc *v1alpha1.NatsCluster) time.Duration {
	if d := nc.Spec.Auth.RotationGracePeriod; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return 0
}

// withoutExpiredPrevious is rec without its previous hash once the grace
// window has ended at now.
func withoutExpiredPrevious(rec fingerprintRecord, now metav1.Time) fingerprintRecord {
	if rec.PreviousValidUntil != nil && !now.Before(rec.PreviousValidUntil) {
		rec.PreviousHash, rec.PreviousValidUntil = "", nil
	}
	return rec
}

// nextPreviousExpiry is the earliest end of a grace window in records, zero
// when none is open: the reconcile then drops the previous hash from the
// config Secret and the user's status.
func nextPreviousExpiry(records fingerprints) time.Time {
	var next time.Time
	for _, rec := range records {
		if until := rec.PreviousValidUntil; until != nil && (next.IsZero() || until.Time.Before(next)) {
			next = until.Time
		}
	}
	return next
}

// previousPasswordsBudget is the most bytes the previous-passwords file may
// take: it shares the config Secret with up to ConfigPartSize of config and
// as much of fingerprint records, and a Secret holds at most 1 MiB.
const previousPasswordsBudget = 150 << 10

// previousEntrySize bounds the bytes one user's entry takes in the
// previous-passwords file (conf.RenderPreviousPasswords): the name, quoted
// and escaped at worst, the hash, the time and the syntax around them.
func previousEntrySize(name string) int { return 4*len(name) + 60 + 20 + 80 }

// fitGraceWindows keeps the previous-passwords file within budget bytes: when
// more users are in a grace window than fit (a mass rotation), those whose
// window opened last (then by name) lose it, which is the hard cut, rather
// than the config Secret growing past what the API server stores and no
// rotation happening at all. It returns the users that lost their window.
func fitGraceWindows(records fingerprints, budget int) []string {
	var open []string
	size := 0
	for name, rec := range records {
		if rec.PreviousHash != "" {
			open = append(open, name)
			size += previousEntrySize(name)
		}
	}
	if size <= budget {
		return nil
	}
	slices.SortFunc(open, func(a, b string) int {
		return cmp.Or(records[a].RotatedAt.Compare(records[b].RotatedAt.Time), cmp.Compare(a, b))
	})
	var dropped []string
	for size > budget {
		name := open[len(open)-1]
		open = open[:len(open)-1]
		rec := records[name]
		rec.PreviousHash, rec.PreviousValidUntil = "", nil
		records[name] = rec
		size -= previousEntrySize(name)
		dropped = append(dropped, name)
	}
	slices.Sort(dropped)
	return dropped
}
