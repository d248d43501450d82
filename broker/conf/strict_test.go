package conf

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// natsServerError is nats-server's error for the config file at path, as its
// binary prints it (without the "nats-server: " prefix), lines sorted:
// nats-server reports several errors in Go map order. "" when it accepts.
func natsServerError(t *testing.T, path string) string {
	t.Helper()
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		_, err = natsserver.ProcessConfigFile(path)
	}()
	if err == nil {
		return ""
	}
	return sortedLines(err.Error())
}

func sortedLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func writeConf(t *testing.T, dir, name, src string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUnknownKeysAreErrorsInNATSServersExactWords(t *testing.T) {
	for name, src := range map[string]string{
		"British spelling, on line 2":           "\nauthorisation { users: [ { user: a, password: b } ] }\n",
		"on the first line (column 0)":          "authorisation { users: [ { user: a, password: b } ] }\n",
		"indented":                              "  port: 4222\n    authorisation: 5\n",
		"after tabs":                            "\t\tbar = 2\n",
		"after another key on its line":         "port: 1, bar: 2\n",
		"quoted":                                "authorization {\n  \"bar\" = 2 }\n",
		"single-quoted":                         "authorization {\n  'bar' = 2 }\n",
		"value on the next line":                "authorization {\n  bar =\n 2 }\n",
		"in a file wrapped in braces":           "{ port: 1\n bar: 2 }\n",
		"in a user":                             "authorization { users: [ { user: a, password: b, foo: 1 } ] }\n",
		"in authorization":                      "authorization { users: [ { user: a, password: b } ], bar = 2 }\n",
		"in a user's permissions":               "authorization { users: [ { user: a, password: b, permissions: { foo: 1 } } ] }\n",
		"in default permissions":                "authorization {\n  default_permissions: { publish: x, pubs: y }\n}\n",
		"in subject permissions":                "authorization { users: [ { user: a, password: b, permissions: { publish: { foo: 1 } } } ] }\n",
		"in default subject permissions":        "authorization { permissions: { publish: { allow: x, foo: y } } }\n",
		"in cluster":                            "cluster { zz: 1 }\n",
		"in cluster authorization":              "cluster { authorization { user: a, password: b, zz: 1 } }\n",
		"tls in cluster authorization":          "cluster {\n  authorization { tls: {} }\n}\n",
		"several, in file order":                "foo: 1\nport: 4222\nbar: 2\ncluster { baz: 3 }\n",
		"a variable that is never used":         "CLIENT_PORT: 4222\nport: $CLIENT_PORT\nunused: 1\n",
		"a variable shadowed by an inner block": "route_pass: x\ncluster {\n  route_pass: y\n  authorization { user: r, password: $route_pass }\n}\n",
		"after a multi-byte character":          "server_name: \"é\"; bar: 2\n",
		"in mixed case":                         "Port: 1\nAuthorisation: {}\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := writeConf(t, t.TempDir(), "x.conf", src)
			want := natsServerError(t, path)
			if !strings.Contains(strings.ToLower(want), "unknown field") {
				t.Fatalf("nats-server does not call it an unknown field: %q", want)
			}
			_, _, err := ParseFile(path)
			if err == nil {
				t.Fatalf("we accept what nats-server refuses with %q", want)
			}
			if got := sortedLines(err.Error()); got != want {
				t.Errorf("we say\n%s\nnats-server says\n%s", got, want)
			}
		})
	}
}

func TestAnUnknownKeyInAnIncludedFileIsReportedAsNATSServerDoes(t *testing.T) {
	dir := t.TempDir()
	writeConf(t, dir, "inc.conf", "port: 1\n  qq: 3\n")
	path := writeConf(t, dir, "x.conf", "include \"inc.conf\"\n")
	want := natsServerError(t, path)
	_, _, err := ParseFile(path)
	// nats-server names the include as written; we name it by its path.
	if err == nil || err.Error() != filepath.Join(dir, "inc.conf")+":2:3: unknown field \"qq\"" || !strings.HasSuffix(want, "inc.conf:2:3: unknown field \"qq\"") {
		t.Errorf("we say %v, nats-server says %s", err, want)
	}
}

func TestKeysThatOnlyDefineUsedVariablesAreNotUnknown(t *testing.T) {
	for _, src := range []string{
		"CLIENT_PORT: 4222\nport: $CLIENT_PORT\n",
		"authorization { T: 2, timeout: $T }\n",
		"P: pw\nauthorization { users: [ { user: a, password: $P } ] }\n",
	} {
		path := writeConf(t, t.TempDir(), "x.conf", src)
		if e := natsServerError(t, path); e != "" {
			t.Fatalf("nats-server refuses %q: %s", src, e)
		}
		if _, _, err := ParseFile(path); err != nil {
			t.Errorf("we refuse %q, which nats-server accepts: %v", src, err)
		}
	}
}

// placements put a key into each block of the table, on line 2 or 3.
var placements = map[*block]struct {
	src       string
	line, col int
	path      string
}{
	topBlock:                  {"port: 1\n%s: 1\n", 2, 1, "%s"},
	authorizationBlock:        {"authorization {\n  %s: 1\n}\n", 2, 3, "authorization.%s"},
	userBlock:                 {"authorization {\n  users: [\n    { user: a, %s: 1 }\n  ]\n}\n", 3, 16, "authorization.users[0].%s"},
	permissionsBlock:          {"authorization {\n  users: [ { user: a, permissions: {\n    %s: 1 } } ]\n}\n", 3, 5, "authorization.users[0].permissions.%s"},
	subjectPermissionBlock:    {"authorization {\n  default_permissions: { publish: {\n    %s: x } }\n}\n", 3, 5, "authorization.default_permissions.publish.%s"},
	clusterBlock:              {"cluster {\n  %s: 1\n}\n", 2, 3, "cluster.%s"},
	clusterAuthorizationBlock: {"cluster {\n  authorization {\n    %s: 1\n  }\n}\n", 3, 5, "cluster.authorization.%s"},
	tlsBlock:                  {"tls {\n  %s: 1\n}\n", 2, 3, "tls.%s"},
	accountBlock:              {"accounts {\n  A {\n    %s: 1\n  }\n}\n", 3, 5, "accounts.A.%s"},
	exportBlock:               {"accounts {\n  A { exports: [\n    { stream: x, %s: 1 } ] }\n}\n", 3, 18, "accounts.A.exports[0].%s"},
	importBlock:               {"accounts {\n  A { exports: [ { stream: x } ], imports: [\n    { stream: { account: A, subject: x }, %s: 1 } ] }\n}\n", 3, 43, "accounts.A.imports[0].%s"},
	importSourceBlock:         {"accounts {\n  A { imports: [\n    { stream: { account: A, %s: 1 } } ] }\n}\n", 3, 29, "accounts.A.imports[0].stream.%s"},
}

func TestKeysNATSServerKnowsAndWeDoNotAreRefusedByName(t *testing.T) {
	for _, b := range blocks {
		p, ok := placements[b]
		if !ok {
			t.Fatalf("no placement for block %s", b.path)
		}
		for _, key := range b.unsupported {
			path := writeConf(t, t.TempDir(), "x.conf", fmt.Sprintf(p.src, key))
			// The table is right: nats-server knows the key.
			if e := natsServerError(t, path); strings.Contains(strings.ToLower(e), "unknown field") {
				t.Errorf("%s.%s: nats-server does not know it: %s", b.path, key, e)
			}
			_, _, err := ParseFile(path)
			want := fmt.Sprintf("%s:%d:%d: field %q is not supported by natsforge-broker", path, p.line, p.col, fmt.Sprintf(p.path, key))
			if err == nil || err.Error() != want {
				t.Errorf("%s.%s: err = %v, want %s", b.path, key, err, want)
			}
			// In capitals too: nats-server matches keys in any case.
			upper := writeConf(t, t.TempDir(), "x.conf", fmt.Sprintf(p.src, strings.ToUpper(key)))
			if _, _, err := ParseFile(upper); err == nil || !strings.Contains(err.Error(), NotSupported) {
				t.Errorf("%s.%s in capitals: err = %v", b.path, strings.ToUpper(key), err)
			}
		}
	}
}

func TestEveryKeyInTheTableIsKnownToNATSServerAndListedOnce(t *testing.T) {
	for _, b := range blocks {
		p := placements[b]
		seen := map[string]bool{}
		for key := range b.fields {
			seen[key] = true
			path := writeConf(t, t.TempDir(), "x.conf", fmt.Sprintf(p.src, key))
			if e := natsServerError(t, path); strings.Contains(strings.ToLower(e), "unknown field") {
				t.Errorf("%s.%s is read by us, unknown to nats-server: %s", b.path, key, e)
			}
		}
		for _, key := range b.unsupported {
			if seen[key] {
				t.Errorf("%s.%s is listed as supported and as not supported", b.path, key)
			}
			seen[key] = true
		}
	}
}

func TestTheREADMEListsTheSupportTable(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), SupportTable()) {
		t.Errorf("README.md does not contain the current support table; paste this:\n%s", SupportTable())
	}
}

// TestKeysPlantedInRandomConfigsAreRefusedAsNATSServerRefusesThem plants a
// key (a typo, a key of another block, a key we do not support, or noise) in
// a random block of a random rendered config, at a random column, and
// compares with nats-server: whatever it refuses we refuse, and where it
// reports only unknown fields we report the same text, line and column.
func TestKeysPlantedInRandomConfigsAreRefusedAsNATSServerRefusesThem(t *testing.T) {
	vocabulary := []string{"authorisation", "pasword", "usr", "Users", "routez", "tls_x", "foo", "jetstream", "nkey",
		"accounts", "auth_callout", "pool_size", "allow", "publish", "permissions", "port", "cluster", "x_1"}
	for _, b := range blocks {
		vocabulary = append(vocabulary, b.unsupported...)
	}
	n := 300
	if testing.Short() {
		n = 40
	}
	compared := 0
	for seed := range uint64(n) {
		r := rand.New(rand.NewPCG(seed, 11))
		rendered, err := Render(randomOptions(r))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(rendered), "\n")
		var opens []int // lines that open a map
		for i, l := range lines {
			if strings.HasSuffix(l, "{") {
				opens = append(opens, i)
			}
		}
		key := vocabulary[r.IntN(len(vocabulary))]
		if r.IntN(4) == 0 {
			key = `"` + key + `"`
		}
		indent := strings.Repeat(" \t"[r.IntN(2):r.IntN(2)+1], r.IntN(6))
		planted := indent + key + []string{": ", " = ", " "}[r.IntN(3)] + []string{"1", `"x"`, "true"}[r.IntN(3)]
		at := -1 // the top level, before everything
		if len(opens) > 0 && r.IntN(3) > 0 {
			at = opens[r.IntN(len(opens))]
		}
		lines = slices.Insert(lines, at+1, planted)
		src := strings.Join(lines, "\n")
		path := writeConf(t, t.TempDir(), "x.conf", src)
		theirs := natsServerError(t, path)
		_, _, err = ParseFile(path)
		if theirs == "" {
			continue
		}
		if err == nil {
			t.Fatalf("seed %d: nats-server refuses (%s); we accept:\n%s", seed, theirs, src)
		}
		onlyUnknown := true
		for _, l := range strings.Split(theirs, "\n") {
			onlyUnknown = onlyUnknown && strings.Contains(strings.ToLower(l), "unknown field")
		}
		if onlyUnknown {
			compared++
			if got := sortedLines(err.Error()); got != theirs {
				t.Fatalf("seed %d: we say\n%s\nnats-server says\n%s\nfor\n%s", seed, got, theirs, src)
			}
		}
	}
	if compared < n/4 {
		t.Errorf("only %d of %d configs compared an unknown field", compared, n)
	}
	t.Logf("%d configs, %d unknown-field errors compared verbatim", n, compared)
}
