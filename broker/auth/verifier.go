package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"
)

// verifierCacheMax bounds the number of remembered successes.
const verifierCacheMax = 16384

// Verifier checks passwords and remembers successful bcrypt checks.
//
// An entry is keyed by HMAC-SHA256(key, user NUL password) under a key drawn at
// random when the Verifier is made, so neither the plaintext nor anything
// derivable from it without the key is kept. The entry also records the hash it
// was checked against: after the configured hash changes, the entry no longer
// counts. Failures are never remembered, so a wrong password always costs a
// bcrypt comparison.
//
// Concurrent checks of the same user, password and hash share one bcrypt
// comparison (a storm of clients of one user after a restart pays once). Only
// a success is shared: when the shared comparison fails, each waiter pays a
// comparison of its own, so a wrong password never gets cheaper by being
// guessed many times at once. The zero value is not usable; call NewVerifier.
type Verifier struct {
	key [32]byte

	mu       sync.Mutex
	entries  map[[sha256.Size]byte]cacheEntry
	inFlight map[flightKey]*flight

	comparisons atomic.Uint64 // bcrypt comparisons paid, cached or not
	hits        atomic.Uint64 // bcrypt checks answered by a remembered success
	misses      atomic.Uint64 // bcrypt checks that were not (compared, or waited for a comparison)
}

type cacheEntry struct {
	user   string
	stored string
}

// flightKey names one bcrypt comparison: the keyed digest of user and
// password, and the hash it is checked against.
type flightKey struct {
	digest [sha256.Size]byte
	stored string
}

// flight is a bcrypt comparison in progress; ok is set before done closes.
type flight struct {
	done chan struct{}
	ok   bool
}

// NewVerifier returns a Verifier with a fresh random key.
func NewVerifier() *Verifier {
	v := &Verifier{entries: make(map[[sha256.Size]byte]cacheEntry), inFlight: make(map[flightKey]*flight)}
	if _, err := rand.Read(v.key[:]); err != nil {
		panic("auth: no randomness for the verification cache key: " + err.Error())
	}
	return v
}

func (v *Verifier) digest(user, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, v.key[:])
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var d [sha256.Size]byte
	m.Sum(d[:0])
	return d
}

// Verify reports whether password is right for user, whose configured password
// is stored (plaintext or bcrypt hash). Plaintext is compared in constant time
// and not cached.
func (v *Verifier) Verify(user, stored, password string) bool {
	if !IsBcrypt(stored) {
		return CheckPassword(stored, password)
	}
	d := v.digest(user, password)
	k := flightKey{digest: d, stored: stored}
	v.mu.Lock()
	if e, ok := v.entries[d]; ok && e.user == user && e.stored == stored {
		v.mu.Unlock()
		v.hits.Add(1)
		return true
	}
	v.misses.Add(1)
	if f := v.inFlight[k]; f != nil {
		v.mu.Unlock()
		<-f.done
		if f.ok {
			return true
		}
		return v.compare(stored, password)
	}
	f := &flight{done: make(chan struct{})}
	v.inFlight[k] = f
	v.mu.Unlock()

	f.ok = v.compare(stored, password)

	v.mu.Lock()
	delete(v.inFlight, k)
	if f.ok {
		v.remember(d, cacheEntry{user: user, stored: stored})
	}
	v.mu.Unlock()
	close(f.done)
	return f.ok
}

// VerifyEither checks password against a user's two configured passwords,
// current first, and says which matched: 1 for current, 2 for previous, 0
// for neither (previous may be ""). During a rotation grace window both are
// configured; a success remembered for either costs no bcrypt, so a
// reconnect storm of clients still on the previous password pays once, not
// once per client for the failed comparison with the current one.
func (v *Verifier) VerifyEither(user, current, previous, password string) int {
	if previous == "" {
		if v.Verify(user, current, password) {
			return 1
		}
		return 0
	}
	if IsBcrypt(current) && IsBcrypt(previous) {
		// One digest and one look-up for both: the remembered success, if
		// any, names the hash it was checked against.
		d := v.digest(user, password)
		v.mu.Lock()
		e, ok := v.entries[d]
		v.mu.Unlock()
		if ok && e.user == user && (e.stored == current || e.stored == previous) {
			v.hits.Add(1)
			if e.stored == current {
				return 1
			}
			return 2
		}
	}
	if v.Verify(user, current, password) {
		return 1
	}
	if v.Verify(user, previous, password) {
		return 2
	}
	return 0
}

// compare pays one bcrypt comparison.
func (v *Verifier) compare(stored, password string) bool {
	v.comparisons.Add(1)
	return bcrypt.CompareHashAndPassword([]byte(stored), []byte(password)) == nil
}

// remember records a success. Lock held.
func (v *Verifier) remember(d [sha256.Size]byte, e cacheEntry) {
	if len(v.entries) >= verifierCacheMax {
		// Drop an arbitrary tenth; map order is random enough for a cache.
		n := 0
		for k := range v.entries {
			delete(v.entries, k)
			if n++; n >= verifierCacheMax/10 {
				break
			}
		}
	}
	v.entries[d] = e
}

// Forget drops every remembered success of user (on reload, when the user's
// password changes or the user is removed).
func (v *Verifier) Forget(user string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, e := range v.entries {
		if e.user == user {
			delete(v.entries, k)
		}
	}
}

// ForgetAll drops every remembered success.
func (v *Verifier) ForgetAll() {
	v.mu.Lock()
	defer v.mu.Unlock()
	clear(v.entries)
}

// Comparisons is the number of bcrypt comparisons Verify has paid for so far.
func (v *Verifier) Comparisons() uint64 { return v.comparisons.Load() }

// CacheHits is the number of bcrypt checks answered from the cache.
func (v *Verifier) CacheHits() uint64 { return v.hits.Load() }

// CacheMisses is the number of bcrypt checks the cache could not answer.
func (v *Verifier) CacheMisses() uint64 { return v.misses.Load() }

// Len is the number of remembered successes.
func (v *Verifier) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.entries)
}
