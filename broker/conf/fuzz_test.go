package conf

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	natsconf "github.com/nats-io/nats-server/v2/conf"
)

// fuzzSeeds are configs in every syntax form, for both fuzz targets.
var fuzzSeeds = []string{
	"port: 4222\nhttp_port: 8222\nmax_payload: 1MB\n",
	"port = 4222; debug = true, trace: off\n",
	"listen 0.0.0.0:4222\nhttp: localhost:8222\n",
	"{ \"port\": 4222, 'server_name': \"a\\tb\\x41\" }",
	"ping_interval: \"2m\"\nwrite_deadline: 10\nlame_duck_duration: \"30s\"\n",
	"max_pending: 64KB\nmax_control_line: 4K\nmax_connections: 10\nmax_subs: 5\nping_max: 3\n",
	"# comment\n// comment\nserver_name: n1 # trailing\n",
	"authorization {\n  user: me\n  password: \"$2a$11$abcdefghijklmnopqrstuu5/Jx0Zx2OvvBzDy1l4wl6ZkbUdvXHGi\"\n  timeout: 0.5\n}\n",
	"authorization { token: 's3cr3t' }\nno_auth_user: x\n",
	"authorization {\n  default_permissions: { subscribe: \"PUBLIC.>\" }\n  users = [\n    { user: alice, password: \"$2a$11$...\", permissions: {\n        publish: { allow: [\"orders.>\"], deny: [\"orders.secret\"] },\n        subscribe: \"replies.>\", allow_responses: true } }\n  ]\n}\nno_auth_user: alice\n",
	"cluster { name: C1, listen: 0.0.0.0:6222,\n  authorization { user: route, password: \"$2a$11$...\" },\n  routes = [ nats://route:GENERATED@c1-0.c1-routes:6222,\n             nats://route:GENERATED@c1-1.c1-routes:6222 ] }\n",
	"cluster {\n  host: 127.0.0.1\n  port: 6222\n  no_advertise: yes\n  routes: [\n    \"nats://a:b@h:1\" # c\n  ]\n}\n",
	"V: 4222\nport: $V\nN: { a: 1 }\ncluster { name: $HOME }\n",
	"a: [1, 2.5, -3, 1MB, true, \"x\", 'y', z, [], {}]\n",
	"users: [ {user: a}, {user: b, password: c} ]\njetstream { max_mem: 1G }\n",
	"\nauthorisation { users: [ { user: a, password: b } ] }\n",
	"accounts { A { users: [ { user: x, password: y } ] } }\n",
	"tls { cert_file: c.pem, key_file: k.pem }\n",
	"authorization { users: [ { user: a, nkey: UABC, permissions: { allow_responses: { max: 2 } } } ] }\n",
	"U: 1\nauthorization { user: $U, password: p, bad: 3 }\ncluster { authorization { users: [] } }\n",
}

func addSeeds(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	golden, _ := filepath.Glob(filepath.Join("testdata", "*.golden"))
	for _, p := range golden {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

// FuzzParse checks that Parse never panics, that its errors are *Error with
// a line, and that whatever it reads and Validate accepts survives
// Render-then-Parse unchanged.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		o, warnings, err := Parse(data, "fuzz.conf")
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Line < 1 {
				t.Fatalf("error %T %v is not an *Error with a line", err, err)
			}
			return
		}
		for _, w := range warnings {
			if w.Line < 1 || w.File == "" {
				t.Fatalf("warning without a file or line: %+v", w)
			}
		}
		if o.Validate() != nil {
			return
		}
		b, err := Render(o)
		if err != nil {
			t.Fatalf("Render of valid options: %v", err)
		}
		again, warnings, err := Parse(b, "rendered.conf")
		if err != nil {
			t.Fatalf("Parse of rendered config: %v\n%s", err, b)
		}
		if len(warnings) > 0 {
			t.Fatalf("rendered config warns: %v\n%s", warnings, b)
		}
		if !reflect.DeepEqual(again, o) {
			t.Fatalf("render then parse changed the options:\n%s\n%s", diff(again, o), b)
		}
		if b2, _ := Render(again); string(b2) != string(b) {
			t.Fatalf("rendering twice differs:\n%s\n%s", b, b2)
		}
	})
}

// FuzzRenderIsReadByNATSServer renders what Parse reads from fuzzed input
// (when valid) and checks that nats-server reads the same options from it.
func FuzzRenderIsReadByNATSServer(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		o, _, err := Parse(data, "fuzz.conf")
		if err != nil || o.Validate() != nil || !tlsFilesLoad(o) {
			return
		}
		b, err := Render(o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := natsServerReadsString(b)
		if err != nil {
			t.Fatalf("nats-server rejects the rendered config: %v\n%s", err, b)
		}
		if want := asNATSServerSeesIt(o); !reflect.DeepEqual(got, want) {
			t.Fatalf("nats-server read differently:\n%s\nfrom\n%s", diff(got, want), b)
		}
	})
}

// FuzzParseMeansTheSameToNATSServer checks the key layer against
// nats-server: a config we read without a warning, and Validate accepts,
// nats-server must accept too and read as the same options.
func FuzzParseMeansTheSameToNATSServer(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if strings.Contains(strings.ToLower(string(data)), "include") {
			return
		}
		o, warnings, err := Parse(data, "fuzz.conf")
		if err != nil || len(warnings) > 0 || o.Validate() != nil || !tlsFilesLoad(o) {
			return
		}
		got, err := natsServerReadsString(data)
		if err != nil {
			t.Fatalf("we read %q; nats-server refuses it: %v", data, err)
		}
		if want := asNATSServerSeesIt(o); !reflect.DeepEqual(got, want) {
			t.Fatalf("we read %q differently from nats-server:\n%s", data, diff(got, want))
		}
	})
}

// FuzzWhatNATSServerRefusesWeRefuse is the fail-closed rule under fuzzing:
// no config that nats-server rejects starts our broker (Parse or Validate
// refuses it).
func FuzzWhatNATSServerRefusesWeRefuse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		if strings.Contains(strings.ToLower(string(data)), "include") {
			return
		}
		if _, err := natsServerReadsString(data); err == nil {
			return
		}
		o, _, err := Parse(data, "fuzz.conf")
		if err == nil && (o.TLS != nil || o.Cluster != nil && o.Cluster.TLS != nil) {
			// Certificate files are read, and refused when missing, by
			// the server (broker/server), not by the config format.
			return
		}
		if err == nil && o.Validate() == nil {
			_, theirs := natsServerReadsString(data)
			t.Fatalf("nats-server refuses %q (%v); we accept it", data, theirs)
		}
	})
}

// FuzzParseAgreesWithNATSServer checks the syntax layer against nats-server's
// own parser: whatever we read, nats-server reads too, to the same tree. (We
// may refuse what nats-server accepts.)
func FuzzParseAgreesWithNATSServer(f *testing.F) {
	addSeeds(f)
	for _, s := range []string{
		"include a.conf\nport: 2",
		"include sub/b.conf\n",
		"c { include 'a.conf', d: 1 }",
		"include \"vars.conf\"\nport: $V\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	for name, content := range map[string]string{
		"a.conf":     "port: 1\nx = { y: [1, 2] }\n",
		"sub/b.conf": "include ../a.conf\nz: 'q'\n",
		"vars.conf":  "V: 5\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := os.CreateTemp(dir, "fuzz-*.conf")
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := os.Remove(file.Name()); err != nil {
				t.Error(err)
			}
		}()
		if _, err := file.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := file.Close(); err != nil {
			t.Fatal(err)
		}
		// We refuse include cycles, so nats-server (which recurses without
		// end on them) only sees files whose includes end.
		tree, err := parseTree(string(data), file.Name())
		if err != nil {
			return
		}
		var theirs map[string]any
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("we read %q; nats-server panics: %v", data, r)
				}
			}()
			theirs, err = natsconf.ParseFile(file.Name())
		}()
		if err != nil {
			t.Fatalf("we read %q; nats-server refuses it: %v", data, err)
		}
		if ours := toNATSValue(tree); !reflect.DeepEqual(ours, any(theirs)) {
			t.Fatalf("we read %q as\n%#v\nnats-server as\n%#v", data, ours, theirs)
		}
	})
}

// toNATSValue turns our tree into the shapes nats-server's conf.Parse returns.
func toNATSValue(n *node) any {
	switch n.kind {
	case kindString:
		return n.str
	case kindInt:
		return n.num
	case kindFloat:
		return n.flt
	case kindBool:
		return n.bool
	case kindMap:
		m := map[string]any{}
		for _, e := range n.entries {
			m[e.key] = toNATSValue(e.val)
		}
		return m
	case kindArray:
		a := make([]any, 0, len(n.items))
		for _, it := range n.items {
			a = append(a, toNATSValue(it))
		}
		return a
	}
	return nil
}

// FuzzRenderThenParse is the random round trip with fuzzed seeds: valid
// Options render to a config that we and nats-server both read back as them.
func FuzzRenderThenParse(f *testing.F) {
	for seed := range uint64(8) {
		f.Add(seed, seed*7919)
	}
	f.Fuzz(func(t *testing.T, s1, s2 uint64) {
		o := randomOptions(rand.New(rand.NewPCG(s1, s2)))
		b, err := Render(o)
		if err != nil {
			t.Fatal(err)
		}
		got, warnings, err := Parse(b, "rendered.conf")
		if err != nil || len(warnings) > 0 {
			t.Fatalf("Parse: %v %v\n%s", err, warnings, b)
		}
		if !reflect.DeepEqual(got, o) {
			t.Fatalf("%s\n%s", diff(got, o), b)
		}
		theirs, err := natsServerReadsString(b)
		if err != nil {
			t.Fatalf("nats-server rejects the rendered config: %v\n%s", err, b)
		}
		if want := asNATSServerSeesIt(o); !reflect.DeepEqual(theirs, want) {
			t.Fatalf("nats-server read differently:\n%s\nfrom\n%s", diff(theirs, want), b)
		}
	})
}
