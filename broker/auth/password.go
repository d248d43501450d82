// Package auth checks client credentials and holds the compiled form of user
// permissions.
//
// A configured password is either plaintext, compared in constant time, or a
// bcrypt hash (it matches ^\$2[abxy]\$\d{2}\$), checked with bcrypt. Verifier
// remembers successful bcrypt checks so that a reconnect storm does not pay
// bcrypt on every connect; a failed check always pays it.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"regexp"

	"golang.org/x/crypto/bcrypt"
)

// DefaultCost is the bcrypt cost the passwd tool uses unless told otherwise.
const DefaultCost = 11

var bcryptPrefix = regexp.MustCompile(`^\$2[abxy]\$\d{2}\$`)

// IsBcrypt reports whether a configured password is a bcrypt hash.
func IsBcrypt(stored string) bool { return bcryptPrefix.MatchString(stored) }

// CheckPassword reports whether given matches the configured password stored,
// which is a bcrypt hash or plaintext. Sending the hash itself never matches a
// bcrypt entry.
func CheckPassword(stored, given string) bool {
	if IsBcrypt(stored) {
		return bcrypt.CompareHashAndPassword([]byte(stored), []byte(given)) == nil
	}
	return subtle.ConstantTimeCompare([]byte(stored), []byte(given)) == 1
}

// HashPassword returns the bcrypt hash of password at cost (DefaultCost when 0).
func HashPassword(password string, cost int) (string, error) {
	if cost == 0 {
		cost = DefaultCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", err
	}
	return string(h), nil
}

// passwordAlphabet avoids characters that need escaping in a URL or a shell.
const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// GeneratePassword returns a random password of 24 characters drawn uniformly
// from [A-Za-z0-9] (about 143 bits).
func GeneratePassword() (string, error) {
	const n = 24
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", err
		}
		for _, b := range buf {
			// Rejection sampling keeps the distribution uniform: 248 = 4*62.
			if b >= 248 {
				continue
			}
			out = append(out, passwordAlphabet[int(b)%len(passwordAlphabet)])
			if len(out) == n {
				break
			}
		}
	}
	return string(out), nil
}
