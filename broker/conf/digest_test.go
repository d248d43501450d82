package conf

import (
	"strings"
	"testing"
)

func TestDigestIsTheSameHoweverTheFileIsWritten(t *testing.T) {
	a, _, err := Parse([]byte("port: 4222\nauthorization { users: [ {user: a, password: b} ] }\n"), "a.conf")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := Parse([]byte("# same, written differently\nU = a\nauthorization = {\n  users = [\n    { password = 'b', user = $U }\n  ]\n}\nlisten: 4222\n"), "b.conf")
	if err != nil {
		t.Fatal(err)
	}
	da, err := Digest(a)
	if err != nil {
		t.Fatal(err)
	}
	db, _ := Digest(b)
	if da != db {
		t.Errorf("digests differ: %s %s", da, db)
	}
	if !strings.HasPrefix(da, "sha256:") || len(da) != len("sha256:")+64 {
		t.Errorf("digest %q is not sha256:<hex>", da)
	}
}

func TestDigestChangesWhenAPasswordChanges(t *testing.T) {
	o := &Options{Authorization: &Authorization{Users: []User{{Name: "a", Password: "x"}}}}
	before, _ := Digest(o)
	o.Authorization.Users[0].Password = "y"
	after, _ := Digest(o)
	if before == after {
		t.Error("the digest did not change")
	}
}
