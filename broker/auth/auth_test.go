package auth

import (
	"strings"
	"testing"

	"github.com/natsforge/natsforge/broker/conf"
)

const (
	vectorPassword = `IW@$6v(y1(t@fhPDvf!5^%`
	vectorHash     = "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq"
)

func TestThePasswordTestVectorMatchesItsHash(t *testing.T) {
	if !CheckPassword(vectorHash, vectorPassword) {
		t.Fatal("test vector does not match")
	}
	if CheckPassword(vectorHash, vectorHash) {
		t.Fatal("the hash matched itself")
	}
	if CheckPassword(vectorHash, vectorPassword+"x") {
		t.Fatal("a wrong password matched")
	}
}

func TestBcryptIsRecognisedByItsPrefix(t *testing.T) {
	for s, want := range map[string]bool{
		"$2a$11$abc": true, "$2b$04$x": true, "$2x$10$": true, "$2y$12$z": true,
		"$2c$11$abc": false, "$2a$1$abc": false, "2a$11$": false, "password": false, "": false,
	} {
		if got := IsBcrypt(s); got != want {
			t.Errorf("IsBcrypt(%q) = %v", s, got)
		}
	}
}

func TestPlainPasswordsCompareExactly(t *testing.T) {
	if !CheckPassword("s3cret", "s3cret") || CheckPassword("s3cret", "s3cre") || CheckPassword("s3cret", "") {
		t.Fatal("plain compare")
	}
}

func TestHashPasswordMakesAHashThatChecks(t *testing.T) {
	h, err := HashPassword("pw", 4)
	if err != nil || !strings.HasPrefix(h, "$2a$04$") || !CheckPassword(h, "pw") {
		t.Fatalf("%q %v", h, err)
	}
}

func TestGeneratedPasswordsAreLongAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		p, err := GeneratePassword()
		if err != nil || len(p) != 24 || seen[p] {
			t.Fatalf("%q %v", p, err)
		}
		seen[p] = true
		for _, c := range p {
			if !strings.ContainsRune(passwordAlphabet, c) {
				t.Fatalf("unexpected character in %q", p)
			}
		}
	}
}

func TestTheVerifierRemembersOnlySuccesses(t *testing.T) {
	v := NewVerifier()
	if v.Verify("alice", vectorHash, "wrong") || v.Len() != 0 {
		t.Fatal("a failure was remembered")
	}
	if !v.Verify("alice", vectorHash, vectorPassword) || v.Len() != 1 {
		t.Fatal("a success was not remembered")
	}
	if !v.Verify("alice", vectorHash, vectorPassword) {
		t.Fatal("a remembered success failed")
	}
	// The entry belongs to alice and that hash only: bob gets his own.
	if !v.Verify("bob", vectorHash, vectorPassword) || v.Len() != 2 {
		t.Fatal("entries are not per user")
	}
	v.Forget("bob")
	other, _ := HashPassword("new", 4)
	if v.Verify("alice", other, vectorPassword) {
		t.Fatal("an entry outlived its hash")
	}
	v.Forget("alice")
	if v.Len() != 0 {
		t.Fatal("Forget left entries")
	}
	if !v.Verify("alice", vectorHash, vectorPassword) {
		t.Fatal("verify after forget")
	}
	v.ForgetAll()
	if v.Len() != 0 {
		t.Fatal("ForgetAll left entries")
	}
}

func TestTheVerifierKeysEntriesByHMACNotThePassword(t *testing.T) {
	v := NewVerifier()
	v.Verify("alice", vectorHash, vectorPassword)
	for k, e := range v.entries {
		if strings.Contains(string(k[:]), vectorPassword) || strings.Contains(e.user+e.stored, vectorPassword) {
			t.Fatal("plaintext in the cache")
		}
	}
	if NewVerifier().digest("alice", "pw") == v.digest("alice", "pw") {
		t.Fatal("two verifiers share a key")
	}
	if v.digest("ali", "cepw") == v.digest("alice", "pw") {
		t.Fatal("user and password run together")
	}
}

func TestACachedSuccessSkipsBcryptAndAFailureAlwaysPaysIt(t *testing.T) {
	hash, _ := HashPassword("pw", 4)
	v := NewVerifier()
	steps := []struct {
		user, password string
		want           bool
		comparisons    uint64 // total bcrypt comparisons after this step
	}{
		{"u", "pw", true, 1},   // first success pays bcrypt
		{"u", "pw", true, 1},   // remembered
		{"u", "bad", false, 2}, // a failure pays bcrypt
		{"u", "bad", false, 3}, // ... every time
		{"w", "pw", true, 4},   // the same password for another user is not remembered
		{"u", "pw", true, 4},
	}
	for i, s := range steps {
		if got := v.Verify(s.user, hash, s.password); got != s.want {
			t.Fatalf("step %d: Verify(%q, %q) = %v, want %v", i, s.user, s.password, got, s.want)
		}
		if got := v.Comparisons(); got != s.comparisons {
			t.Fatalf("step %d: %d bcrypt comparisons, want %d", i, got, s.comparisons)
		}
	}
	v.Forget("u")
	v.Verify("u", hash, "pw")
	if got := v.Comparisons(); got != 5 {
		t.Fatalf("after Forget: %d bcrypt comparisons, want 5 (the forgotten success is checked again)", got)
	}
}

func TestPermissionsAllowThenDeny(t *testing.T) {
	p := Compile(&conf.Permissions{
		Publish:   &conf.SubjectPermission{Allow: []string{"orders.>"}, Deny: []string{"orders.secret"}},
		Subscribe: &conf.SubjectPermission{Allow: []string{"replies.>", "work q1"}, Deny: []string{"replies.hidden"}},
	})
	for subj, want := range map[string]bool{"orders.new": true, "orders.secret": false, "other": false, "orders": false} {
		if got := p.CanPublish(subj); got != want {
			t.Errorf("CanPublish(%q) = %v", subj, got)
		}
	}
	for _, c := range []struct {
		subj, queue string
		want        bool
	}{
		{"replies.a", "", true}, {"replies.hidden", "", false}, {"replies.*", "", true}, {">", "", false},
		{"work", "q1", true}, {"work", "q2", false}, {"work", "", false}, {"replies.a", "any", true},
	} {
		if got := p.CanSubscribe(c.subj, c.queue); got != c.want {
			t.Errorf("CanSubscribe(%q, %q) = %v", c.subj, c.queue, got)
		}
	}
	if !p.DeniesDelivery("replies.hidden", "") || p.DeniesDelivery("replies.a", "") {
		t.Error("DeniesDelivery")
	}
}

func TestAllowResponsesTurnsOffTheBlanketPublishAllow(t *testing.T) {
	p := Compile(&conf.Permissions{AllowResponses: true})
	if !p.Responses || p.CanPublish("anything") || !p.RestrictsPublish() {
		t.Fatal("allow_responses without publish permissions must deny plain publishes")
	}
	if !p.CanSubscribe("anything", "") {
		t.Fatal("subscribe is unrestricted")
	}
	var none *Permissions
	if !none.CanPublish("x") || !none.CanSubscribe("x", "q") || none.RestrictsPublish() {
		t.Fatal("nil permissions allow everything")
	}
}
