package conf

import (
	"crypto/sha256"
	"encoding/hex"
)

// Digest identifies o: "sha256:" and the hex SHA-256 of Render(o). Equal
// Options give equal digests, however the file that held them was written
// (comments, key order, includes, variables), so the broker can report the
// digest of the config it loaded and the operator can compare it with the
// digest of the config it rendered. Passwords are in the hashed text, so a
// digest of a config holding weak plaintext passwords could be guessed at;
// configs the operator renders hold only bcrypt hashes and the generated
// route password.
func Digest(o *Options) (string, error) {
	b, err := Render(o)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}
