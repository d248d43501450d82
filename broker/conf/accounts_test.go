package conf

import (
	"errors"
	"strings"
	"testing"
)

const accountsConf = `accounts {
  A {
    users: [ { user: a, password: pa } ]
    default_permissions: { subscribe: "orders.>" }
    exports: [
      { stream: "orders.>" }
      { service: "help", accounts: [B] }
    ]
  }
  B {
    users: [ { user: b, password: pb, permissions: { publish: "a.help" } } ]
    imports: [
      { stream: { account: A, subject: "orders.>" }, prefix: "from_a" }
      { service: { account: A, subject: "help" }, to: "a.help" }
    ]
  }
  SYS { users: [ { user: sys, password: ps } ] }
}
authorization { users: [ { user: g, password: pg } ] }
system_account: SYS
no_auth_user: b
`

func TestAccountsAreReadRenderedAndReadBackAsNATSServerReadsThem(t *testing.T) {
	o := mustParse(t, accountsConf)
	want := []Account{
		{Name: "A", Users: []User{{Name: "a", Password: "pa"}},
			DefaultPermissions: &Permissions{Subscribe: &SubjectPermission{Allow: []string{"orders.>"}}},
			Exports:            []Export{{Stream: "orders.>"}, {Service: "help", Accounts: []string{"B"}}}},
		{Name: "B", Users: []User{{Name: "b", Password: "pb", Permissions: &Permissions{Publish: &SubjectPermission{Allow: []string{"a.help"}}}}},
			Imports: []Import{
				{Stream: &ImportSource{Account: "A", Subject: "orders.>"}, Prefix: "from_a"},
				{Service: &ImportSource{Account: "A", Subject: "help"}, To: "a.help"},
			}},
		{Name: "SYS", Users: []User{{Name: "sys", Password: "ps"}}},
	}
	if d := diff(o.Accounts, want); d != "" {
		t.Fatalf("accounts read:\n%s", d)
	}
	if o.SystemAccount != "SYS" || o.NoAuthUser != "b" {
		t.Errorf("system_account %q, no_auth_user %q", o.SystemAccount, o.NoAuthUser)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	b, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	back, _, err := Parse(b, "rendered.conf")
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if d := diff(back, o); d != "" {
		t.Fatalf("render then parse changed the options:\n%s\n%s", d, b)
	}
	if d := diff(natsServerReads(t, b), asNATSServerSeesIt(o)); d != "" {
		t.Errorf("nats-server reads the rendered accounts differently:\n%s", d)
	}
}

func TestAnImportOfWhatIsNotExportedIsRefusedWithFileLineAndKeyAsNATSServerRefusesIt(t *testing.T) {
	for name, tc := range map[string]struct{ src, want, natsWant string }{
		"a stream nobody exports": {
			src:      "accounts {\n  A { exports: [ { stream: \"orders.>\" } ] }\n  B { imports: [\n    { stream: { account: A, subject: \"billing.>\" } } ] }\n}\n",
			want:     `x.conf:4: accounts.B.imports[0].stream: Error adding stream import "billing.>": stream import not authorized`,
			natsWant: `Error adding stream import "billing.>": stream import not authorized`,
		},
		"a service exported to other accounts": {
			src:      "accounts {\n  A { exports: [ { service: help, accounts: [C] } ] }\n  B { imports: [\n    { service: { account: A, subject: help } } ] }\n  C {}\n}\n",
			want:     `x.conf:4: accounts.B.imports[0].service: Error adding service import "help": service import not authorized`,
			natsWant: `Error adding service import "help": service import not authorized`,
		},
		"a stream exported as a service": {
			src:      "accounts {\n  A { exports: [ { service: help } ] }\n  B { imports: [\n    { stream: { account: A, subject: help } } ] }\n}\n",
			want:     `x.conf:4: accounts.B.imports[0].stream: Error adding stream import "help": stream import not authorized`,
			natsWant: `Error adding stream import "help": stream import not authorized`,
		},
		"an account that does not exist": {
			src:      "accounts {\n  B { imports: [\n    { stream: { account: Z, subject: x } } ] }\n}\n",
			want:     `x.conf:3: accounts.B.imports[0].stream.account: "Z" account not defined for stream import`,
			natsWant: `"Z" account not defined for stream import`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			path := writeConf(t, t.TempDir(), "x.conf", tc.src)
			if e := natsServerError(t, path); !strings.Contains(e, tc.natsWant) {
				t.Fatalf("nats-server says %q, want it to contain %q", e, tc.natsWant)
			}
			_, _, err := ParseFile(path)
			var ce *Error
			if err == nil || !errors.As(err, &ce) || !strings.HasSuffix(err.Error(), tc.want) || ce.Line == 0 {
				t.Errorf("err = %v, want one ending %s", err, tc.want)
			}
		})
	}
}

func TestAccountsKeepTheUnknownKeyChecks(t *testing.T) {
	path := writeConf(t, t.TempDir(), "x.conf", "accounts {\n  A {\n    userz: []\n  }\n}\n")
	want := path + `:3:5: unknown field "userz"`
	if e := natsServerError(t, path); e != want {
		t.Fatalf("nats-server says %q, want %q", e, want)
	}
	if _, _, err := ParseFile(path); err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestAUserInTwoAccountsAndTheReservedGlobalAccountAreRefused(t *testing.T) {
	for src, want := range map[string]string{
		"accounts { A { users: [ {user: u, password: p} ] }, B { users: [ {user: u, password: q} ] } }\n":             `Duplicate user "u" detected`,
		"authorization { users: [ {user: u, password: p} ] }\naccounts { A { users: [ {user: u, password: q} ] } }\n": `Duplicate user "u" detected`,
		"accounts { \"$G\" { } }\n": `"$G" is a Reserved Account`,
	} {
		path := writeConf(t, t.TempDir(), "x.conf", src)
		if e := natsServerError(t, path); e == "" {
			t.Errorf("nats-server accepts %q", src)
		}
		if _, _, err := LoadFile(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %s", src, err, want)
		}
	}
}

func TestASystemAccountThatIsNotDefinedIsRefused(t *testing.T) {
	// nats-server's parser lets it through; its server then runs without the
	// account the file names. Refusing it here is the fail-closed choice.
	_, _, err := Load([]byte("accounts { A {} }\nsystem_account: S\n"), "x.conf")
	if err == nil || err.Error() != `x.conf:2: system_account: system account "S" not defined` {
		t.Errorf("err = %v", err)
	}
}
