package conf

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// writeFiles writes name -> content under a new temp dir and returns the dir.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestIncludesAreRelativeToTheIncludingFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"nats.conf":          "port: 4222\ninclude \"auth/auth.conf\"\ncluster {\n  include 'cluster.conf'\n  name: C1\n}\n",
		"auth/auth.conf":     "authorization {\n  include users.conf\n}\n",
		"auth/users.conf":    "users: [ {user: a, password: b} ]\n",
		"cluster.conf":       "port: 6222; routes: [nats://r:p@h:6222]",
		"unrelated/nats.cfg": "port: 1",
	})
	o, warnings, err := ParseFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
	want := &Options{
		Port:          4222,
		Authorization: &Authorization{Users: []User{{Name: "a", Password: "b"}}},
		Cluster:       &Cluster{Name: "C1", Port: 6222, Routes: []string{"nats://r:p@h:6222"}},
	}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("%s", diff(o, want))
	}
}

func TestParseResolvesIncludesNextToTheNamedFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{"extra.conf": "http_port: 8222"})
	o, _, err := Parse([]byte("include ./extra.conf\nport: 1"), filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if o.HTTPPort != 8222 || o.Port != 1 {
		t.Errorf("got %s", dump(o))
	}
}

func TestErrorsInAnIncludedFileNameThatFile(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"nats.conf": "port: 1\n\ninclude bad.conf\n",
		"bad.conf":  "# bad\nmax_payload: 12QB\n",
		"warn.conf": "\n\nfoo: 1\n",
		"main.conf": "include warn.conf\n",
	})
	_, _, err := ParseFile(filepath.Join(dir, "nats.conf"))
	want := filepath.Join(dir, "bad.conf") + `:2: max_payload: invalid size "12QB"`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
	_, _, err = ParseFile(filepath.Join(dir, "main.conf"))
	want = filepath.Join(dir, "warn.conf") + `:3:1: unknown field "foo"`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestAMissingIncludeIsAnErrorAtTheIncludeLine(t *testing.T) {
	dir := writeFiles(t, map[string]string{"nats.conf": "port: 1\ninclude \"nope.conf\"\n"})
	_, _, err := ParseFile(filepath.Join(dir, "nats.conf"))
	want := filepath.Join(dir, "nats.conf") + `:2: include: cannot read "nope.conf": no such file or directory`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestAnIncludeCycleIsAnError(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.conf": "include b.conf\n",
		"b.conf": "include a.conf\n",
	})
	_, _, err := ParseFile(filepath.Join(dir, "a.conf"))
	if err == nil {
		t.Fatal("no error")
	}
	if e, ok := err.(*Error); !ok || e.Key != "include" {
		t.Errorf("err = %v", err)
	}
}

func TestVariablesComeFromEnclosingBlocksThenTheEnvironment(t *testing.T) {
	t.Setenv("NATSFORGE_TEST_PORT", "4333")
	t.Setenv("NATSFORGE_TEST_SIZE", "2MB")
	t.Setenv("NATSFORGE_TEST_PASS", `"$2a$11$abc"`)
	t.Setenv("NATSFORGE_TEST_NAME", "C1")
	src := `
timeout: 3
port: $NATSFORGE_TEST_PORT
max_payload: $NATSFORGE_TEST_SIZE
authorization {
  timeout: $timeout
  users: [ {user: a, password: $NATSFORGE_TEST_PASS} ]
}
cluster {
  name: $NATSFORGE_TEST_NAME
  route_pass: "inner"
  authorization { user: route, password: $route_pass }
}
`
	o, _, err := Parse([]byte(src), "nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := &Options{
		Port:          4333,
		MaxPayload:    2 << 20,
		Authorization: &Authorization{Timeout: 3 * time.Second, Users: []User{{Name: "a", Password: "$2a$11$abc"}}},
		Cluster:       &Cluster{Name: "C1", Authorization: &ClusterAuthorization{User: "route", Password: "inner"}},
	}
	if !reflect.DeepEqual(o, want) {
		t.Errorf("%s", diff(o, want))
	}
}

func TestAVariableIsAWholeValueOnly(t *testing.T) {
	t.Setenv("NATSFORGE_TEST_HOST", "example.com")
	for src, want := range map[string]string{
		`server_name: "$NATSFORGE_TEST_HOST"`:           "$NATSFORGE_TEST_HOST",
		`server_name: "x-$NATSFORGE_TEST_HOST"`:         "x-$NATSFORGE_TEST_HOST",
		`server_name: '$NATSFORGE_TEST_HOST'`:           "$NATSFORGE_TEST_HOST",
		`server_name: x$NATSFORGE_TEST_HOST`:            "x$NATSFORGE_TEST_HOST",
		`server_name: $NATSFORGE_TEST_HOST`:             "example.com",
		"V: abc\nserver_name: $V":                       "abc",
		"V: abc\ncluster { name: $V }\nserver_name: $V": "abc",
	} {
		o, _, err := Parse([]byte(src), "nats.conf")
		if err != nil {
			t.Errorf("Parse(%q): %v", src, err)
			continue
		}
		if o.ServerName != want {
			t.Errorf("Parse(%q) server_name = %q, want %q", src, o.ServerName, want)
		}
	}
}

func TestAVariableReportsTheLineWhereItIsUsed(t *testing.T) {
	_, _, err := Parse([]byte("P: abc\n\nport: $P\n"), "nats.conf")
	if want := "nats.conf:3: port: expected a number, got a string"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestAnEnvironmentVariableThatRefersToItselfIsAnError(t *testing.T) {
	t.Setenv("NATSFORGE_TEST_LOOP", "$NATSFORGE_TEST_LOOP")
	_, _, err := Parse([]byte("port: $NATSFORGE_TEST_LOOP"), "nats.conf")
	if want := "nats.conf:1: port: environment variable $NATSFORGE_TEST_LOOP does not hold a valid value"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestAnIncludedFileDoesNotSeeTheIncludingFilesVariables(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"nats.conf": "P: 4222\ninclude inc.conf\n",
		"inc.conf":  "port: $P\n",
	})
	_, _, err := ParseFile(filepath.Join(dir, "nats.conf"))
	if err == nil {
		t.Error("the include read the including file's variable (nats-server does not)")
	}
}
