package conf

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// # The previous-passwords file
//
// A password rotation with a grace window needs a second hash per user, valid
// until a point in time. nats-server has no such thing, and its config format
// has no room for it: an unknown key in a user entry is an error there (as
// it is here), and a user listed twice is refused ("Duplicate user"). So the
// extension does not go into the config file at all. It lives in a file of
// its own that only natsforge-broker reads, named on its command line
// (--previous_passwords FILE), in the same syntax:
//
//	# natsforge-broker only: previous passwords still accepted (rotation grace window)
//	previous_passwords: [
//	  { user: "alice", password: "$2a$11$...", valid_until: "2026-12-01T03:04:05Z" }
//	]
//
// The config file stays exactly what nats-server accepts (`nats-server -t`
// still passes, and the digest the broker reports covers it alone), and
// nats-server, which never sees the second file, behaves as a broker whose
// grace window is zero: the hard cut.
//
// Each entry names a user of authorization.users, a bcrypt hash (never a
// plaintext password) and an RFC 3339 time. Until that time a client may
// authenticate as the user with either the user's password or the previous
// one; at that time connections that authenticated with the previous one are
// closed ('User Authentication Expired', as nats-server says when a user's
// credentials expire) and it is refused from then on. Keys are checked as
// strictly as the config file's: an unknown key is an error naming file, line
// and key. The file is read at start-up and on every reload, together with
// the config file; a file that does not load refuses the reload whole. It is
// not watched on its own: whoever changes it changes the config file in the
// same step (the operator writes both into one Secret, which the kubelet
// swaps in whole), or sends SIGHUP. An entry past its valid_until is simply
// no longer accepted, so pruning it needs no reload.

// PreviousPassword is a user's previous password hash, accepted alongside the
// current one until ValidUntil.
type PreviousPassword struct {
	User       string    // user: a user of authorization.users
	Password   string    // password: a bcrypt hash, never plaintext
	ValidUntil time.Time // valid_until: RFC 3339
}

// previousPasswordsKey is the file's only top-level key.
const previousPasswordsKey = "previous_passwords"

var (
	previousPasswordsFields = map[string][]string{previousPasswordsKey: nil}
	previousPasswordFields  = map[string][]string{"user": nil, "password": nil, "valid_until": nil}

	previousPasswordsBlock = &block{path: "(previous passwords file)", fields: previousPasswordsFields, unknownMsg: `unknown field %q`}
	previousPasswordBlock  = &block{path: "previous_passwords[]", fields: previousPasswordFields, unknownMsg: `unknown field %q`}
)

// LoadPreviousPasswordsFile reads and checks the previous-passwords file at
// path. The error is an *Error naming file, line and key; it never quotes a
// hash.
func LoadPreviousPasswordsFile(path string) ([]PreviousPassword, error) {
	data, err := readConfigFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read: " + err.Error()}
	}
	return ParsePreviousPasswords(data, path)
}

// ParsePreviousPasswords reads a previous-passwords file from data; filename
// names it in errors. Whether each user exists is Validate's question, asked
// of the Options the entries are put into.
func ParsePreviousPasswords(data []byte, filename string) ([]PreviousPassword, error) {
	tree, err := parseTree(string(data), filename)
	if err != nil {
		return nil, err
	}
	d := &decoder{}
	var out []PreviousPassword
	for _, e := range tree.effective() {
		if strings.ToLower(e.key) != previousPasswordsKey {
			d.unknown(e, e.key, previousPasswordsBlock)
			continue
		}
		if out, err = d.previousPasswords(e.val, previousPasswordsKey); err != nil {
			break
		}
	}
	if err != nil || len(d.keyErrors) > 0 {
		return nil, d.joinKeyErrors(err)
	}
	return out, nil
}

func (d *decoder) previousPasswords(n *node, at string) ([]PreviousPassword, error) {
	if err := d.want(n, at, kindArray); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	out := make([]PreviousPassword, 0, len(n.items))
	for i, item := range n.items {
		ikey := fmt.Sprintf("%s[%d]", at, i)
		if err := d.want(item, ikey, kindMap); err != nil {
			return nil, err
		}
		var p PreviousPassword
		for _, e := range item.effective() {
			v, key := e.val, path(ikey, e.key)
			var err error
			switch strings.ToLower(e.key) {
			case "user":
				p.User, err = d.str(v, key)
			case "password":
				p.Password, err = d.str(v, key)
			case "valid_until":
				var s string
				if s, err = d.str(v, key); err == nil {
					if p.ValidUntil, err = time.Parse(time.RFC3339, s); err != nil {
						err = d.fail(v, key, "not an RFC 3339 time such as 2026-12-01T03:04:05Z")
					} else if p.ValidUntil = p.ValidUntil.UTC(); p.ValidUntil.Year() < 1 || p.ValidUntil.Year() > 9999 {
						// RFC 3339 has four-digit years: what renders must read back.
						err = d.fail(v, key, "out of range: years 0001 to 9999 in UTC")
					}
				}
			default:
				d.unknown(e, key, previousPasswordBlock)
			}
			if err != nil {
				return nil, err
			}
		}
		switch {
		case p.User == "":
			return nil, d.fail(item, ikey, "an entry needs a user")
		case seen[p.User]:
			return nil, d.fail(item, ikey+".user", "user %q is listed twice", p.User)
		case !bcryptHash(p.Password):
			// The file exists to keep hashes only: a plaintext password
			// here would be the one place one is written down.
			return nil, d.fail(item, ikey+".password", "must be a bcrypt hash ($2a$, $2b$, $2x$ or $2y$)")
		case p.ValidUntil.IsZero():
			return nil, d.fail(item, ikey, "an entry needs valid_until")
		}
		seen[p.User] = true
		out = append(out, p)
	}
	return out, nil
}

// bcryptHash tells whether s has the form of a bcrypt hash: $2?$NN$ and 53
// characters of bcrypt's base64 alphabet after it.
func bcryptHash(s string) bool {
	if len(s) != 60 || s[0] != '$' || s[1] != '2' || !strings.ContainsRune("abxy", rune(s[2])) || s[3] != '$' || s[6] != '$' {
		return false
	}
	if !isDigit(rune(s[4])) || !isDigit(rune(s[5])) {
		return false
	}
	for _, c := range s[7:] {
		if !strings.ContainsRune("./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", c) {
			return false
		}
	}
	return true
}

// RenderPreviousPasswords writes the previous-passwords file for pp, which
// ParsePreviousPasswords reads back to the same entries (times at second
// precision, in UTC). An empty pp renders a file with an empty list, so that
// the file the broker is pointed at always exists.
func RenderPreviousPasswords(pp []PreviousPassword) ([]byte, error) {
	w := &writer{}
	w.line("# natsforge-broker only (never read by nats-server): previous password hashes")
	w.line("# still accepted until valid_until, during a rotation grace window.")
	w.line(previousPasswordsKey + ": [")
	w.depth++
	seen := map[string]bool{}
	for i, p := range pp {
		key := fmt.Sprintf("%s[%d]", previousPasswordsKey, i)
		switch {
		case p.User == "":
			return nil, &Error{Key: key + ".user", Msg: "an entry needs a user"}
		case seen[p.User]:
			return nil, &Error{Key: key + ".user", Msg: fmt.Sprintf("user %q is listed twice", p.User)}
		case !bcryptHash(p.Password):
			return nil, &Error{Key: key + ".password", Msg: "must be a bcrypt hash"}
		case p.ValidUntil.IsZero():
			return nil, &Error{Key: key + ".valid_until", Msg: "an entry needs valid_until"}
		}
		seen[p.User] = true
		w.line("{")
		w.depth++
		w.str("user", p.User)
		w.str("password", p.Password)
		w.str("valid_until", p.ValidUntil.UTC().Truncate(time.Second).Format(time.RFC3339))
		w.close()
	}
	w.depth--
	w.line("]")
	return w.buf.Bytes(), nil
}

// ValidatePreviousPasswords is the part of Validate about
// PreviousPasswords, for options whose previous passwords were added after
// the config file was loaded (as natsforge-broker adds them).
func (o *Options) ValidatePreviousPasswords() error {
	v := &validator{}
	v.previousPasswords(o)
	return errors.Join(v.errs...)
}

// previousPasswords checks that every previous password belongs to a
// user of authorization.users who has a password of its own.
func (v *validator) previousPasswords(o *Options) {
	if len(o.PreviousPasswords) == 0 {
		return
	}
	users := map[string]bool{}
	if a := o.Authorization; a != nil {
		for _, u := range a.Users {
			users[u.Name] = u.Password != ""
		}
	}
	for _, a := range o.Accounts {
		for _, u := range a.Users {
			users[u.Name] = u.Password != ""
		}
	}
	for i, p := range o.PreviousPasswords {
		key := fmt.Sprintf("%s[%d].user", previousPasswordsKey, i)
		hasPassword, ok := users[p.User]
		switch {
		case !ok:
			v.add(key, "%q is not a user in authorization.users", p.User)
		case !hasPassword:
			v.add(key, "user %q has no password in authorization.users", p.User)
		case !bcryptHash(p.Password):
			v.add(key, "the previous password of user %q is not a bcrypt hash", p.User)
		}
	}
}
