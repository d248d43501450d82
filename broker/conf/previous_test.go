package conf

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// Two well-formed bcrypt hashes (the PROTOCOL.md test vector and another).
const (
	hashA = "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq"
	hashB = "$2a$11$DoVmwh1Ic.e3VprNsLnwAu5n1WjvQ6FhZoq05biQhXF6TKE58GGUW"
)

func TestPreviousPasswordsRenderAndReadBack(t *testing.T) {
	until := time.Date(2026, 12, 1, 3, 4, 5, 0, time.UTC)
	in := []PreviousPassword{
		{User: "alice", Password: hashA, ValidUntil: until},
		{User: `we"ird\user`, Password: hashB, ValidUntil: until.Add(time.Hour)},
	}
	b, err := RenderPreviousPasswords(in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePreviousPasswords(b, "previous_passwords.conf")
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("read back\n%s\nwant\n%s", dump(got), dump(in))
	}
	empty, err := RenderPreviousPasswords(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParsePreviousPasswords(empty, "p.conf"); err != nil || len(got) != 0 {
		t.Fatalf("an empty file read back as %v, %v", got, err)
	}
}

func TestAPreviousPasswordsFileIsCheckedAsStrictlyAsTheConfig(t *testing.T) {
	for _, tc := range []struct{ name, file, want string }{
		{"an unknown top-level key", "previous_passwords: []\nprevious_pasword: []\n", `p.conf:2:1: unknown field "previous_pasword"`},
		{"an unknown key in an entry",
			"previous_passwords: [\n  { user: a, password: \"" + hashA + "\", valid_until: \"2026-12-01T03:04:05Z\", expires: 1 }\n]\n",
			`p.conf:2:`},
		{"a plaintext password", "previous_passwords: [\n  { user: a, password: \"hunter2\", valid_until: \"2026-12-01T03:04:05Z\" }\n]\n",
			`p.conf:2: previous_passwords[0].password: must be a bcrypt hash`},
		{"a time that is not RFC 3339", "previous_passwords: [\n  { user: a, password: \"" + hashA + "\", valid_until: \"tomorrow\" }\n]\n",
			`p.conf:2: previous_passwords[0].valid_until: not an RFC 3339 time`},
		{"no valid_until", "previous_passwords: [\n  { user: a, password: \"" + hashA + "\" }\n]\n",
			`p.conf:2: previous_passwords[0]: an entry needs valid_until`},
		{"a user twice", "previous_passwords: [\n  { user: a, password: \"" + hashA + "\", valid_until: \"2026-12-01T03:04:05Z\" }\n  { user: a, password: \"" + hashB + "\", valid_until: \"2026-12-01T03:04:05Z\" }\n]\n",
			`p.conf:3: previous_passwords[1].user: user "a" is listed twice`},
		{"not a list", "previous_passwords: { user: a }\n", `p.conf:1: previous_passwords: expected an array, got a map`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePreviousPasswords([]byte(tc.file), "p.conf")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			for _, h := range []string{hashA, hashB, "hunter2"} {
				if strings.Contains(err.Error(), h) {
					t.Fatalf("the error quotes a password or hash: %v", err)
				}
			}
		})
	}
}

func TestValidateRefusesAPreviousPasswordOfAUserNotInTheConfig(t *testing.T) {
	o := &Options{Authorization: &Authorization{Users: []User{{Name: "alice", Password: hashB}}}}
	o.PreviousPasswords = []PreviousPassword{{User: "alice", Password: hashA, ValidUntil: time.Now()}}
	if err := o.Validate(); err != nil {
		t.Fatalf("alice's previous password refused: %v", err)
	}
	o.PreviousPasswords = append(o.PreviousPasswords, PreviousPassword{User: "mallory", Password: hashA, ValidUntil: time.Now()})
	err := o.Validate()
	if err == nil || !strings.Contains(err.Error(), `previous_passwords[1].user: "mallory" is not a user in authorization.users`) {
		t.Fatalf("error %v", err)
	}
}

// The extension cannot live in the config file: nats-server refuses an
// unknown key in a user entry and a user listed twice, so a rendered config
// with either would no longer pass `nats-server -t`. The broker refuses the
// key too (fail closed); Render never writes PreviousPasswords.
func TestNatsServerCannotCarryASecondHashInItsConfigSoItLivesInAFileOfItsOwn(t *testing.T) {
	for name, cfg := range map[string]string{
		"an unknown key in a user": "authorization { users = [ { user: alice, password: \"" + hashA + "\", previous_password: \"" + hashB + "\" } ] }\n",
		"a user twice":             "authorization { users = [ { user: alice, password: \"" + hashA + "\" }, { user: alice, password: \"" + hashB + "\" } ] }\n",
	} {
		path := filepath.Join(t.TempDir(), "nats.conf")
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := natsserver.ProcessConfigFile(path); err == nil {
			t.Errorf("%s: nats-server accepts it", name)
		}
		if _, _, err := Load([]byte(cfg), "nats.conf"); err == nil {
			t.Errorf("%s: the broker accepts it", name)
		}
	}

	o := &Options{Authorization: &Authorization{Users: []User{{Name: "alice", Password: hashB}}},
		PreviousPasswords: []PreviousPassword{{User: "alice", Password: hashA, ValidUntil: time.Now().Add(time.Hour)}}}
	b, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), hashA) {
		t.Fatalf("Render wrote the previous password into the config file:\n%s", b)
	}
	natsServerReads(t, b)
}

// FuzzPreviousPasswords: any input either is refused with an error or reads
// to entries that render and read back to the same entries.
func FuzzPreviousPasswords(f *testing.F) {
	f.Add("previous_passwords: []\n")
	f.Add("previous_passwords: [\n  { user: \"alice\", password: \"" + hashA + "\", valid_until: \"2026-12-01T03:04:05Z\" }\n]\n")
	f.Add("previous_passwords: [ { user: b, password: \"" + hashB + "\", valid_until: \"2026-12-01T03:04:05+02:00\" } ]")
	f.Add("previous_passwords: [ { user: b, pass: x } ]")
	f.Fuzz(func(t *testing.T, in string) {
		pp, err := ParsePreviousPasswords([]byte(in), "p.conf")
		if err != nil {
			return
		}
		b, err := RenderPreviousPasswords(pp)
		if err != nil {
			t.Fatalf("read %+v, which does not render: %v", pp, err)
		}
		back, err := ParsePreviousPasswords(b, "p.conf")
		if err != nil {
			t.Fatalf("rendered %q does not read back: %v", b, err)
		}
		if len(back) != len(pp) {
			t.Fatalf("read back %d entries, want %d", len(back), len(pp))
		}
		for i := range pp {
			if back[i].User != pp[i].User || back[i].Password != pp[i].Password || !back[i].ValidUntil.Equal(pp[i].ValidUntil.Truncate(time.Second)) {
				t.Fatalf("entry %d read back as %+v, want %+v", i, back[i], pp[i])
			}
		}
	})
}
