package conf

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, src string) *Options {
	t.Helper()
	o, warnings, err := Parse([]byte(src), "nats.conf")
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	if len(warnings) > 0 {
		t.Fatalf("Parse(%q) warns: %v", src, warnings)
	}
	return o
}

func TestEverySyntaxFormReadsTheSame(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      *Options
	}{
		{"key equals value", "port = 4222", &Options{Port: 4222}},
		{"key colon value", "port: 4222", &Options{Port: 4222}},
		{"key space value", "port 4222", &Options{Port: 4222}},
		{"no space around separators", "port=4222\nhttp_port:8222", &Options{Port: 4222, HTTPPort: 8222}},
		{"tabs", "port\t=\t4222", &Options{Port: 4222}},
		{"a trailing semicolon", "port: 4222;", &Options{Port: 4222}},
		{"commas between top-level keys", "port: 4222, http_port: 8222", &Options{Port: 4222, HTTPPort: 8222}},
		{"hash comments", "# a comment\nport: 4222 # trailing\n#end", &Options{Port: 4222}},
		{"slash comments", "// a comment\nport: 4222 // trailing", &Options{Port: 4222}},
		{"CRLF line ends", "port: 4222\r\nhttp_port: 8222\r\n", &Options{Port: 4222, HTTPPort: 8222}},
		{"double-quoted key", `"port": 4222`, &Options{Port: 4222}},
		{"single-quoted key", `'port' = 4222`, &Options{Port: 4222}},
		{"keys in any case", "PORT: 4222\nServer_Name: a", &Options{Port: 4222, ServerName: "a"}},
		{"a file wrapped in braces", "{\n  port: 4222\n}\n", &Options{Port: 4222}},
		{"the last of a repeated key wins", "port: 1\nport: 2", &Options{Port: 2}},
		{"an empty file", "", &Options{}},
		{"only comments", "# nothing\n// here\n", &Options{}},
		{"a value on the next line", "port\n  4222", &Options{Port: 4222}},

		{"a map with a separator", "cluster: { port: 6222 }", &Options{Cluster: &Cluster{Port: 6222}}},
		{"a map without a separator", "cluster { port: 6222 }", &Options{Cluster: &Cluster{Port: 6222}}},
		{"a map on several lines", "cluster {\n  port: 6222\n  name: C1\n}", &Options{Cluster: &Cluster{Port: 6222, Name: "C1"}}},
		{"commas in a map", "cluster { port: 6222, name: C1 }", &Options{Cluster: &Cluster{Port: 6222, Name: "C1"}}},
		{"semicolons in a map", "cluster { port: 6222; name: C1; }", &Options{Cluster: &Cluster{Port: 6222, Name: "C1"}}},
		{"comments in a map", "cluster { # c\n port: 6222 // c\n}", &Options{Cluster: &Cluster{Port: 6222}}},
		{"a map value after a new line", "cluster {\n port:\n 6222\n}", &Options{Cluster: &Cluster{Port: 6222}}},
		{"an empty map", "cluster {}", &Options{Cluster: &Cluster{}}},

		{"an array with commas", `cluster { routes: ["nats://a:1", "nats://b:2"] }`, &Options{Cluster: &Cluster{Routes: []string{"nats://a:1", "nats://b:2"}}}},
		{"an array with new lines", "cluster { routes: [\n nats://a:1\n nats://b:2\n] }", &Options{Cluster: &Cluster{Routes: []string{"nats://a:1", "nats://b:2"}}}},
		{"an array with a trailing comma", `cluster { routes: [nats://a:1, nats://b:2,] }`, &Options{Cluster: &Cluster{Routes: []string{"nats://a:1", "nats://b:2"}}}},
		{"an array with comments", "cluster { routes: [ # c\n nats://a:1 // c\n] }", &Options{Cluster: &Cluster{Routes: []string{"nats://a:1"}}}},
		{"an empty array", "cluster { routes: [] }", &Options{Cluster: &Cluster{}}},

		{"an unquoted string", "server_name: n-1.x_y", &Options{ServerName: "n-1.x_y"}},
		{"a double-quoted string with escapes", `server_name: "a\"b\\c\t\x41"`, &Options{ServerName: "a\"b\\c\tA"}},
		{"a double-quoted string keeps # and //", `server_name: "a#b//c"`, &Options{ServerName: "a#b//c"}},
		{"a single-quoted string is raw", `server_name: 'a\x41'`, &Options{ServerName: `a\x41`}},
		{"an unquoted string starting with digits", "server_name: 12ab", &Options{ServerName: "12ab"}},
		{"an unquoted string with an escape", `server_name: a\tb`, &Options{ServerName: "a\tb"}},
		{"an IP address", "host: 10.0.0.1", &Options{Host: "10.0.0.1"}},

		{"true", "debug: true", &Options{Debug: true}},
		{"yes", "debug: yes", &Options{Debug: true}},
		{"on", "debug: on", &Options{Debug: true}},
		{"TRUE", "debug: TRUE", &Options{Debug: true}},
		{"false", "debug: true\ndebug: false", &Options{}},
		{"no", "trace: no", &Options{}},
		{"off", "trace: off", &Options{}},

		{"a plain size", "max_payload: 65536", &Options{MaxPayload: 65536}},
		{"MB", "max_payload: 1MB", &Options{MaxPayload: 1 << 20}},
		{"mb", "max_payload: 2mb", &Options{MaxPayload: 2 << 20}},
		{"KB", "max_payload: 64KB", &Options{MaxPayload: 64 << 10}},
		{"K is decimal", "max_payload: 1K", &Options{MaxPayload: 1000}},
		{"M is decimal", "max_payload: 1M", &Options{MaxPayload: 1000000}},
		{"KiB", "max_payload: 1KiB", &Options{MaxPayload: 1024}},
		{"Mi", "max_payload: 3Mi", &Options{MaxPayload: 3 << 20}},
		{"GB", "max_pending: 1GB", &Options{MaxPending: 1 << 30}},
		{"TB", "max_pending: 1TB", &Options{MaxPending: 1 << 40}},
		{"G", "max_pending: 2G", &Options{MaxPending: 2e9}},

		{"a duration string", `ping_interval: "2m"`, &Options{PingInterval: 2 * time.Minute}},
		{"a fractional duration", `write_deadline: "1.5s"`, &Options{WriteDeadline: 1500 * time.Millisecond}},
		{"a compound duration", `lame_duck_duration: "1h2m3s"`, &Options{LameDuckDuration: time.Hour + 2*time.Minute + 3*time.Second}},
		{"a duration in seconds", "ping_interval: 120", &Options{PingInterval: 2 * time.Minute}},
		{"an unquoted duration string", "ping_interval: 2m0s", &Options{PingInterval: 2 * time.Minute}},

		{"a timeout in seconds", "authorization { timeout: 2 }", &Options{Authorization: &Authorization{Timeout: 2 * time.Second}}},
		{"a fractional timeout", "authorization { timeout: 0.1 }", &Options{Authorization: &Authorization{Timeout: 100 * time.Millisecond}}},
		{"a timeout string", `authorization { timeout: "1500ms" }`, &Options{Authorization: &Authorization{Timeout: 1500 * time.Millisecond}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustParse(t, tc.src); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q):\n%s", tc.src, diff(got, tc.want))
			}
		})
	}
}

func TestEveryKeyIsRead(t *testing.T) {
	hash := "$2a$11$abcdefghijklmnopqrstuu5/Jx0Zx2OvvBzDy1l4wl6ZkbUdvXHGi"
	for _, tc := range []struct {
		src  string
		want *Options
	}{
		{"server_name: n1", &Options{ServerName: "n1"}},
		{"host: 127.0.0.1", &Options{Host: "127.0.0.1"}},
		{"net: 127.0.0.1", &Options{Host: "127.0.0.1"}},
		{"port: 4333", &Options{Port: 4333}},
		{"listen: 4333", &Options{Port: 4333}},
		{"listen: 127.0.0.1:4333", &Options{Host: "127.0.0.1", Port: 4333}},
		{"listen: localhost:4333", &Options{Host: "localhost", Port: 4333}},
		{`listen: "[::1]:4333"`, &Options{Host: "::1", Port: 4333}},
		{"listen: :4333", &Options{Port: 4333}},
		{"http: 8333", &Options{HTTPPort: 8333}},
		{"http: 0.0.0.0:8333", &Options{HTTPHost: "0.0.0.0", HTTPPort: 8333}},
		{"http_port: 8333", &Options{HTTPPort: 8333}},
		{"monitor_port: 8333", &Options{HTTPPort: 8333}},
		{"max_payload: 2MB", &Options{MaxPayload: 2 << 20}},
		{"max_control_line: 8KB", &Options{MaxControlLine: 8 << 10}},
		{"max_connections: 100", &Options{MaxConnections: 100}},
		{"max_conn: 100", &Options{MaxConnections: 100}},
		{"max_subscriptions: 10", &Options{MaxSubscriptions: 10}},
		{"max_subs: 10", &Options{MaxSubscriptions: 10}},
		{"max_pending: 32MB", &Options{MaxPending: 32 << 20}},
		{`ping_interval: "30s"`, &Options{PingInterval: 30 * time.Second}},
		{"ping_max: 5", &Options{MaxPingsOut: 5}},
		{`write_deadline: "5s"`, &Options{WriteDeadline: 5 * time.Second}},
		{`lame_duck_duration: "45s"`, &Options{LameDuckDuration: 45 * time.Second}},
		{`lame_duck_grace_period: "3s"`, &Options{LameDuckGracePeriod: 3 * time.Second}},
		{"debug: true", &Options{Debug: true}},
		{"trace: true", &Options{Trace: true}},
		{"no_auth_user: alice", &Options{NoAuthUser: "alice"}},

		{"authorization { user: me, password: pw }", &Options{Authorization: &Authorization{User: "me", Password: "pw"}}},
		{"authorization { username: me, pass: pw }", &Options{Authorization: &Authorization{User: "me", Password: "pw"}}},
		{`authorization { user: me, password: "` + hash + `" }`, &Options{Authorization: &Authorization{User: "me", Password: hash}}},
		{"authorization { token: s3cr3t }", &Options{Authorization: &Authorization{Token: "s3cr3t"}}},
		{"authorization { users: [ {user: a, password: b}, {username: c, pass: d} ] }", &Options{Authorization: &Authorization{Users: []User{{Name: "a", Password: "b"}, {Name: "c", Password: "d"}}}}},
		{"authorization { default_permissions: { publish: a.> } }", &Options{Authorization: &Authorization{DefaultPermissions: &Permissions{Publish: &SubjectPermission{Allow: []string{"a.>"}}}}}},
		{"authorization { permissions: { sub: a } }", &Options{Authorization: &Authorization{DefaultPermissions: &Permissions{Subscribe: &SubjectPermission{Allow: []string{"a"}}}}}},

		{"authorization { users: [ {user: a, permissions: { publish: orders.> }} ] }",
			&Options{Authorization: &Authorization{Users: []User{{Name: "a", Permissions: &Permissions{Publish: &SubjectPermission{Allow: []string{"orders.>"}}}}}}}},
		{"authorization { users: [ {user: a, permissions: { publish: [a, b], subscribe: [c] }} ] }",
			&Options{Authorization: &Authorization{Users: []User{{Name: "a", Permissions: &Permissions{Publish: &SubjectPermission{Allow: []string{"a", "b"}}, Subscribe: &SubjectPermission{Allow: []string{"c"}}}}}}}},
		{"authorization { users: [ {user: a, permissions: { pub: { allow: [a], deny: b }, sub: { deny: [c, d] } }} ] }",
			&Options{Authorization: &Authorization{Users: []User{{Name: "a", Permissions: &Permissions{Publish: &SubjectPermission{Allow: []string{"a"}, Deny: []string{"b"}}, Subscribe: &SubjectPermission{Deny: []string{"c", "d"}}}}}}}},
		{`authorization { users: [ {user: a, permissions: { subscribe: "work.* workers" }} ] }`,
			&Options{Authorization: &Authorization{Users: []User{{Name: "a", Permissions: &Permissions{Subscribe: &SubjectPermission{Allow: []string{"work.* workers"}}}}}}}},
		{"authorization { users: [ {user: a, permissions: { allow_responses: true }} ] }",
			&Options{Authorization: &Authorization{Users: []User{{Name: "a", Permissions: &Permissions{AllowResponses: true}}}}}},
		{"authorization { users: [ {user: a, permissions: { publish: {}, subscribe: [] }} ] }",
			&Options{Authorization: &Authorization{Users: []User{{Name: "a", Permissions: &Permissions{}}}}}},

		{"cluster { name: C1 }", &Options{Cluster: &Cluster{Name: "C1"}}},
		{"cluster { listen: 0.0.0.0:6333 }", &Options{Cluster: &Cluster{Host: "0.0.0.0", Port: 6333}}},
		{"cluster { listen: 6333 }", &Options{Cluster: &Cluster{Port: 6333}}},
		{"cluster { host: 0.0.0.0, port: 6333 }", &Options{Cluster: &Cluster{Host: "0.0.0.0", Port: 6333}}},
		{"cluster { authorization { user: route, password: pw, timeout: 0.5 } }", &Options{Cluster: &Cluster{Authorization: &ClusterAuthorization{User: "route", Password: "pw", Timeout: 500 * time.Millisecond}}}},
		{"cluster { routes: [ nats://route:pw@c1-0.c1-routes:6222 ] }", &Options{Cluster: &Cluster{Routes: []string{"nats://route:pw@c1-0.c1-routes:6222"}}}},
		{"cluster { no_advertise: true }", &Options{Cluster: &Cluster{NoAdvertise: true}}},
	} {
		t.Run(tc.src, func(t *testing.T) {
			if got := mustParse(t, tc.src); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Parse(%q):\n%s", tc.src, diff(got, tc.want))
			}
		})
	}
}

func TestTheProtocolDocExampleReads(t *testing.T) {
	src := `port: 4222
http_port: 8222
max_payload: 1MB
authorization {
  timeout: 2
  default_permissions: { subscribe: "PUBLIC.>" }
  users = [
    { user: alice, password: "$2a$11$...", permissions: {
        publish: { allow: ["orders.>"], deny: ["orders.secret"] },
        subscribe: "replies.>", allow_responses: true } }
  ]
}
no_auth_user: alice
cluster { name: C1, listen: 0.0.0.0:6222,
  authorization { user: route, password: "$2a$11$..." },
  routes = [ nats://route:GENERATED@c1-0.c1-routes:6222,
             nats://route:GENERATED@c1-1.c1-routes:6222 ] }
lame_duck_duration: "30s"
`
	want := &Options{
		Port: 4222, HTTPPort: 8222, MaxPayload: 1 << 20, NoAuthUser: "alice", LameDuckDuration: 30 * time.Second,
		Authorization: &Authorization{
			Timeout:            2 * time.Second,
			DefaultPermissions: &Permissions{Subscribe: &SubjectPermission{Allow: []string{"PUBLIC.>"}}},
			Users: []User{{Name: "alice", Password: "$2a$11$...", Permissions: &Permissions{
				Publish:        &SubjectPermission{Allow: []string{"orders.>"}, Deny: []string{"orders.secret"}},
				Subscribe:      &SubjectPermission{Allow: []string{"replies.>"}},
				AllowResponses: true,
			}}},
		},
		Cluster: &Cluster{
			Name: "C1", Host: "0.0.0.0", Port: 6222,
			Authorization: &ClusterAuthorization{User: "route", Password: "$2a$11$..."},
			Routes:        []string{"nats://route:GENERATED@c1-0.c1-routes:6222", "nats://route:GENERATED@c1-1.c1-routes:6222"},
		},
	}
	got := mustParse(t, src)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s", diff(got, want))
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestBcryptHashesAreValuesWhenQuoted(t *testing.T) {
	hash := "$2b$11$abcdefghijklmnopqrstuu5/Jx0Zx2OvvBzDy1l4wl6ZkbUdvXHGi"
	for _, src := range []string{
		`authorization { user: a, password: "` + hash + `" }`,
		`authorization { user: a, password: '` + hash + `' }`,
	} {
		if got := mustParse(t, src).Authorization.Password; got != hash {
			t.Errorf("Parse(%q) password = %q", src, got)
		}
	}
}

func TestAnUnquoted2aHashIsAValueAsInNATSServer(t *testing.T) {
	hash := "$2a$11$abcdefghijklmnopqrstuu5/Jx0Zx2OvvBzDy1l4wl6ZkbUdvXHGi"
	if got := mustParse(t, "authorization { user: a, password: "+hash+" }").Authorization.Password; got != hash {
		t.Errorf("password = %q", got)
	}
}

func TestAnUnquoted2bHashIsAnErrorThatDoesNotShowIt(t *testing.T) {
	hash := "$2b$11$abcdefghijklmnopqrstuu5/Jx0Zx2OvvBzDy1l4wl6ZkbUdvXHGi"
	_, _, err := Parse([]byte("authorization {\n  user: a\n  password: "+hash+"\n}"), "nats.conf")
	want := "nats.conf:3: authorization.password: an unquoted bcrypt hash is read as a variable: put it in quotes"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
	if strings.Contains(err.Error(), "abcdefgh") {
		t.Errorf("the error shows the hash: %v", err)
	}
}
