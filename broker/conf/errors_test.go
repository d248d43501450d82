package conf

import (
	"errors"
	"strings"
	"testing"
)

func TestMalformedValuesAreErrorsNamingFileLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, src, want string
	}{
		{"a size with an unknown suffix", strings.Repeat("\n", 11) + "max_payload: 12QB", `nats.conf:12: max_payload: invalid size "12QB"`},
		{"a quoted size", `max_payload: "1MB"`, `nats.conf:1: max_payload: invalid size "1MB"`},
		{"a size too big for nats-server", "max_payload: 4GB", `nats.conf:1: max_payload: size 4GB is too big (at most 2147483647)`},
		{"a size that overflows", "max_pending: 9999999EB", `nats.conf:1: max_pending: number out of range`},
		{"a size with a doubled suffix", "max_pending: 1kbb", `nats.conf:1: max_pending: invalid size suffix`},
		{"a lame duck duration below nats-server's minimum", `lame_duck_duration: "0s"`, `nats.conf:1: lame_duck_duration: 0s is below nats-server's minimum of 30s`},
		{"max_connections 0, which nats-server reads as none", `max_connections: 0`, `nats.conf:1: max_connections: 0 would refuse every client in nats-server; leave the key out for the default`},
		{"listen and port together", "listen: 1.2.3.4:5\nport: 6", `nats.conf:2: port: sets what listen on line 1 sets; nats-server would apply one of them at random`},
		{"a key and its alias", "cluster {\n host: a\n net: b\n}", `nats.conf:3: cluster.net: sets what host on line 2 sets; nats-server would apply one of them at random`},
		{"a key in two cases", "authorization { users: [ {user: a, permissions: { sub: x, SUB: y }} ] }", `nats.conf:1: authorization.users[0].permissions.SUB: sets what sub on line 1 sets; nats-server would apply one of them at random`},
		{"a quoted port", `port: "4222"`, `nats.conf:1: port: expected a number, got a string`},
		{"a port that is a map", `port {}`, `nats.conf:1: port: expected a number, got a map`},
		{"a bad listen address", "listen: nohost", `nats.conf:1: listen: invalid address "nohost": expected host:port`},
		{"a bad http port", `http: "h:x"`, `nats.conf:1: http: invalid port "x"`},
		{"a word for a boolean", "debug: maybe", `nats.conf:1: debug: expected a boolean, got a string`},
		{"a bad duration", `ping_interval: "2x"`, `nats.conf:1: ping_interval: invalid duration "2x"`},
		{"a duration as a float", `write_deadline: 1.5`, `nats.conf:1: write_deadline: expected a duration like "2m", got a decimal number`},
		{"a bad timeout", "authorization {\n  timeout: true\n}", `nats.conf:2: authorization.timeout: expected a number of seconds, got a boolean`},
		{"a nested bad port", "cluster {\n  name: C1\n  port: x\n}", `nats.conf:3: cluster.port: expected a number, got a string`},
		{"users that is not a list", "authorization { users: {} }", `nats.conf:1: authorization.users: expected an array, got a map`},
		{"a user that is not a map", "authorization { users: [ a ] }", `nats.conf:1: authorization.users[0]: expected a map, got a string`},
		{"a user without a name", "authorization {\n users: [\n  {user: a}\n  {password: b}\n ]\n}", `nats.conf:4: authorization.users[1]: a user entry needs a user`},
		{"a permission that is a number", "authorization { users: [ {user: a, permissions: { publish: 1 }} ] }", `nats.conf:1: authorization.users[0].permissions.publish: expected a subject, a list of subjects or {allow, deny}, got a number`},
		{"a subject that is a number", "authorization { users: [ {user: a, permissions: { publish: { deny: [a, 1, c] } }} ] }", `nats.conf:1: authorization.users[0].permissions.publish.deny[1]: expected a subject, got a number`},
		{"allow_responses that is a string", "authorization { users: [ {user: a, permissions: { allow_responses: x }} ] }", `nats.conf:1: authorization.users[0].permissions.allow_responses: expected a boolean or a map, got a string`},
		{"routes that are not a list", "cluster { routes: nats://a:1 }", `nats.conf:1: cluster.routes: expected an array, got a string`},
		{"a route that is a number", "cluster {\n routes: [\n  nats://a:1\n  12\n ]\n}", `nats.conf:4: cluster.routes[1]: expected a URL, got a number`},
		{"cluster users", "cluster { authorization { users: [] } }", `nats.conf:1: cluster.authorization.users: cluster authorization does not allow multiple users`},

		{"an unterminated string", "port: 1\nserver_name: \"abc", `nats.conf:2: server_name: unterminated quoted string`},
		{"an unterminated map", "cluster {\n  port: 1\n", `nats.conf:3: cluster: unexpected end of file inside a map: missing '}'`},
		{"an unterminated array", "cluster { routes: [ a", `nats.conf:1: cluster.routes: unexpected end of file in an array: missing ']'`},
		{"a key without a value", "port:\nhttp_port: 1", `nats.conf:1: port: expected a value`},
		{"a key at the end of the file", "port", `nats.conf:1: unexpected end of file after a key`},
		{"two values for one key", "port: 1 2", `nats.conf:1: port: expected a new line, ',' or '}' after the value`},
		{"a bad escape", `server_name: "a\qb"`, `nats.conf:1: server_name: invalid escape: only \t \n \r \" \\ and \xHH are allowed`},
		{"a bad hex escape", `server_name: "a\xZZ"`, `nats.conf:1: server_name: expected two hexadecimal digits after \x`},
		{"a stray closing brace", "port: 1\n}", `nats.conf:2: unexpected '}' where a key should be`},
		{"a separator without a key", "= 1", `nats.conf:1: unexpected key separator '=' where a key should be`},
		{"a datetime", "server_name: 2024-01-01T00:00:00Z", `nats.conf:1: server_name: datetimes are not supported`},
		{"a block string", "server_name: (\nabc\n)", `nats.conf:1: server_name: '(' blocks are not supported`},
		{"a float without a leading digit", "server_name: .5", `nats.conf:1: server_name: a number must start with a digit`},
		{"an undefined variable", "port: $NATSFORGE_TEST_UNDEFINED", `nats.conf:1: port: variable $NATSFORGE_TEST_UNDEFINED is not defined`},
		{"a variable used before it is defined", "port: $P\nP: 1", `nats.conf:1: port: variable $P is not defined`},
		{"maps nested too deep", "a " + strings.Repeat("{b ", 70) + strings.Repeat("}", 70), "nats.conf:1: a" + strings.Repeat(".b", 64) + ": maps and arrays nested more than 64 deep"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse([]byte(tc.src), "nats.conf")
			if err == nil {
				t.Fatalf("Parse(%q) = nil error, want %s", tc.src, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not an *Error", err)
			}
			if err.Error() != tc.want {
				t.Errorf("Parse(%q)\n got error %s\nwant error %s", tc.src, err, tc.want)
			}
		})
	}
}

func TestErrorsNeverShowAPasswordOrToken(t *testing.T) {
	const secret = "Sup3rSecretValue"
	for _, src := range []string{
		"authorization { user: a, password: [1" + secret + "] }",
		"authorization { user: a, password: " + secret + " x }",
		"authorization { user: a, password: \"" + secret,
		"authorization { user: a, password: \"" + secret + "\\q\" }",
		"authorization { user: a, password: " + secret + "'x }",
		"authorization { token: [" + secret + "] }",
		"authorization { token: " + secret + "} }",
		"authorization { users: [ {user: a, password: {" + secret + ": 1}} ] }",
		"authorization { users: [ {user: a, pass: " + secret + " " + secret + "} ] }",
		"cluster { authorization { user: r, password: {7" + secret + ": 1} } }",
		"cluster { routes: [ {x: 1" + secret + "} ] }",
		"cluster { routes: [ \"nats://r:" + secret + "@h:1\", 5 ] }",
		"cluster { routes: [ \"nats://r:" + secret + "@h:%zz\" ] }",
	} {
		_, _, err := Parse([]byte(src), "nats.conf")
		if err == nil {
			t.Errorf("Parse(%q) succeeded", src)
			continue
		}
		if strings.Contains(err.Error(), secret[4:]) {
			t.Errorf("Parse(%q) error shows the secret: %v", src, err)
		}
	}
}

func TestUnknownAndUnsupportedKeysAreAllReportedInFileOrder(t *testing.T) {
	src := `port: 4222
jetstream { store_dir: /data }
authorization {
  users: [
    { user: a, password: b, nkey: UABC }
  ]
  auth_callout: {}
}
cluster {
  pool_size: 3
  authorization { tls: {} }
  routes: []
}
mappings: {}
`
	o, _, err := Parse([]byte(src), "nats.conf")
	if o != nil {
		t.Errorf("a config with unknown keys gave options: %s", dump(o))
	}
	want := `nats.conf:2:1: field "jetstream" is not supported by natsforge-broker
nats.conf:5:29: field "authorization.users[0].nkey" is not supported by natsforge-broker
nats.conf:7:3: field "authorization.auth_callout" is not supported by natsforge-broker
nats.conf:10:3: field "cluster.pool_size" is not supported by natsforge-broker
nats.conf:11:19: unknown field "tls"
nats.conf:14:1: field "mappings" is not supported by natsforge-broker`
	if err == nil || err.Error() != want {
		t.Fatalf("err =\n%v\nwant\n%s", err, want)
	}
	var e *Error
	if !errors.As(err, &e) || e.Line != 2 || e.Col != 1 || e.Key != "jetstream" {
		t.Errorf("first error = %+v", e)
	}
}

func TestValuesNATSServerWouldReadDifferentlyAreWarnings(t *testing.T) {
	_, warnings, err := Parse([]byte("lame_duck_duration: 60\n"), "nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || warnings[0].Key != "lame_duck_duration" || warnings[0].Line != 1 {
		t.Errorf("warnings = %v", warnings)
	}
}

func TestResponseLimitsAreRefusedNotReadAsAllowResponses(t *testing.T) {
	src := "authorization { users: [ {user: a, permissions: { allow_responses: { max: 1 } }} ] }"
	_, _, err := Parse([]byte(src), "nats.conf")
	want := "nats.conf:1: authorization.users[0].permissions.allow_responses: response limits (a map with max, expires) are not supported by natsforge-broker; use true"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}
