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
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// bcryptOperations counts bcrypt hashes computed. A resync of an unchanged
// cluster adds nothing to it: that is what the fingerprints are for.
var bcryptOperations = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "natsforge_bcrypt_operations_total",
	Help: "Number of bcrypt password hashes the operator has computed.",
})

func init() {
	metrics.Registry.MustRegister(bcryptOperations)
}

// bcryptMaxPassword is bcrypt's input limit: longer passwords are refused
// rather than silently truncated.
const bcryptMaxPassword = 72

// fingerprintRecord remembers which password a hash was made from, as a keyed
// fingerprint: without the per-cluster key it tells nothing about the
// password, and with it the operator can see that a password is unchanged
// without calling bcrypt.
type fingerprintRecord struct {
	Fingerprint string `json:"fingerprint"`
	Hash        string `json:"hash"`
	// RotatedAt is when Hash was made: the user's status.lastRotationTime. It
	// lives here, next to the hash, rather than only in status, which a
	// reconcile may read stale from the cache.
	RotatedAt metav1.Time `json:"rotatedAt"`
	// ConfigHash is the hash of the first config that carried Hash: a
	// broker serving that config, or a later one (configHistory), serves
	// this password. A NatsUser's status reports it.
	ConfigHash string `json:"configHash,omitempty"`
	// PreviousHash is the hash Hash replaced, still accepted by the brokers
	// until PreviousValidUntil: a rotation grace window (credentials.go).
	// Both are empty outside a window.
	PreviousHash       string       `json:"previousHash,omitempty"`
	PreviousValidUntil *metav1.Time `json:"previousValidUntil,omitempty"`
}

// fingerprints are the records of one cluster, by user name. They are kept in
// the config Secret next to the config the hashes went into, so the two are
// always written together.
type fingerprints map[string]fingerprintRecord

func parseFingerprints(b []byte) fingerprints {
	f := fingerprints{}
	if len(b) > 0 {
		// A damaged record only costs a re-hash.
		_ = json.Unmarshal(b, &f)
	}
	return f
}

func (f fingerprints) marshal() []byte {
	b, err := json.Marshal(f) // map keys are sorted: the output is stable
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	return b
}

// fingerprint is HMAC-SHA256(key, user NUL password), hex.
func fingerprint(key []byte, user string, password []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write(password)
	return hex.EncodeToString(m.Sum(nil))
}

// hashPasswords returns the records for users: a user whose password and cost
// are unchanged keeps its hash; the others are hashed with bcrypt, in
// parallel. rotated names the users whose hash changed. A user whose password
// cannot be read keeps its last good record (keep last good, credentials.go).
// A user whose password changed keeps the hash it had as the previous one
// until now+grace when grace is positive; a previous hash whose window has
// ended at now is dropped.
func hashPasswords(key []byte, prev fingerprints, users []resolvedUser, cost int, now metav1.Time, grace time.Duration) (next fingerprints, rotated map[string]bool, err error) {
	next, rotated, _, err = hashPasswordsPaced(key, prev, users, cost, now, grace, false)
	return next, rotated, err
}

// hashPasswordsPaced is hashPasswords that, when hold is set, hashes no new
// password of a user who has a record: that user keeps its record for now
// and is counted in held. New users and cost changes are hashed either way.
func hashPasswordsPaced(key []byte, prev fingerprints, users []resolvedUser, cost int, now metav1.Time, grace time.Duration, hold bool) (next fingerprints, rotated map[string]bool, held int, err error) {
	next = make(fingerprints, len(users))
	rotated = map[string]bool{}
	type job struct {
		name     string
		password []byte
		fp       string
	}
	var jobs []job
	for _, u := range users {
		if u.password == nil { // unresolved, or a certificate user
			if old, ok := prev[u.name]; ok && u.identity == "" && keepsLastGood(u.reason) {
				next[u.name] = withoutExpiredPrevious(old, now)
			}
			continue
		}
		fp := fingerprint(key, u.name, u.password)
		if old, ok := prev[u.name]; ok {
			c, err := bcrypt.Cost([]byte(old.Hash))
			same := hmac.Equal([]byte(old.Fingerprint), []byte(fp))
			if err == nil && c == cost && (same || hold) {
				if !same {
					held++
				}
				next[u.name] = withoutExpiredPrevious(old, now)
				continue
			}
		}
		jobs = append(jobs, job{u.name, u.password, fp})
	}

	hashes := make([]string, len(jobs))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, j := range jobs {
		g.Go(func() error {
			h, err := bcrypt.GenerateFromPassword(j.password, cost)
			bcryptOperations.Inc()
			if err != nil {
				return fmt.Errorf("hash password of user %q: %w", j.name, err)
			}
			hashes[i] = string(h)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, 0, err
	}
	for i, j := range jobs {
		rec := fingerprintRecord{Fingerprint: j.fp, Hash: hashes[i], RotatedAt: now}
		if old, ok := prev[j.name]; ok && grace > 0 && old.Fingerprint != j.fp {
			// The password changed (not only the cost): the old hash stays
			// good for the window. Only the latest previous one is kept.
			// Whole seconds, as every time in status and records.
			until := metav1.NewTime(now.Add(grace).Truncate(time.Second))
			rec.PreviousHash, rec.PreviousValidUntil = old.Hash, &until
		} else if ok && old.Fingerprint == j.fp {
			// Re-hashed at a new cost: the same password, so a window
			// that was open stays as it was.
			kept := withoutExpiredPrevious(old, now)
			rec.PreviousHash, rec.PreviousValidUntil = kept.PreviousHash, kept.PreviousValidUntil
		}
		next[j.name] = rec
		rotated[j.name] = true
	}
	return next, rotated, held, nil
}

// hashPacing is the shortest time between two config writes of one cluster
// that carry changed passwords. A quiet cluster's first change is hashed at
// once; a burst of edits (a script rewriting a Secret, a mass rotation
// applied twice) waits for the rest of the interval and then costs one
// bcrypt per user for all the edits it coalesced, instead of one per
// reconcile, each of which writes a config every broker reloads.
const hashPacing = time.Second

// hashPacer remembers, per cluster, when a changed password last went into
// its config. Wall-clock time: it paces CPU and writes, whatever the
// reconciler's clock says. Forgotten on an operator restart, which only
// lets the first change after it through at once.
type hashPacer struct {
	mu   sync.Mutex
	last map[types.NamespacedName]time.Time
}

func newHashPacer() *hashPacer {
	return &hashPacer{last: map[types.NamespacedName]time.Time{}}
}

// wait is how long a cluster's changed passwords must wait; 0 means now.
func (p *hashPacer) wait(key types.NamespacedName) time.Duration {
	if p == nil {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(hashPacing-time.Since(p.last[key]), 0)
}

// rehashed records that a changed password of the cluster was hashed now.
func (p *hashPacer) rehashed(key types.NamespacedName) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last[key] = time.Now()
}

func (p *hashPacer) forget(key types.NamespacedName) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.last, key)
}
