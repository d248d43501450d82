package conf

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidOptionsPassValidate(t *testing.T) {
	for name, o := range map[string]*Options{
		"empty":       {},
		"every field": fullOptions(),
		"operator":    operatorOptions(),
	} {
		if err := o.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidateNamesTheKeyOfEachProblem(t *testing.T) {
	users := func(names ...string) *Authorization {
		a := &Authorization{}
		for _, n := range names {
			a.Users = append(a.Users, User{Name: n, Password: "pw"})
		}
		return a
	}
	for _, tc := range []struct {
		name string
		o    *Options
		want string
	}{
		{"a port above 65535", &Options{Port: 65536}, "port: port 65536 is out of range 0-65535"},
		{"a negative http port", &Options{HTTPPort: -1}, "http_port: port -1 is out of range 0-65535"},
		{"a cluster port out of range", &Options{Cluster: &Cluster{Port: 1 << 20}}, "cluster.port: port 1048576 is out of range 0-65535"},
		{"a host with a space", &Options{Host: "a b"}, `host: invalid host "a b"`},
		{"a server name with a space", &Options{ServerName: "a b"}, `server_name: "a b" contains whitespace`},
		{"a cluster name with a space", &Options{Cluster: &Cluster{Name: "C 1"}}, `cluster.name: "C 1" contains whitespace`},
		{"the reserved cluster name", &Options{Cluster: &Cluster{Name: "_"}}, `cluster.name: "_" is reserved by nats-server`},
		{"a negative max_payload", &Options{MaxPayload: -1}, "max_payload: -1 is below 0"},
		{"a max_payload nats-server cannot hold", &Options{MaxPayload: 1 << 31}, "max_payload: 2147483648 is above 2147483647"},
		{"a negative ping interval", &Options{PingInterval: -time.Second}, "ping_interval: -1s is negative"},
		{"a short lame duck duration", &Options{LameDuckDuration: 5 * time.Second}, "lame_duck_duration: 5s is below nats-server's minimum of 30s"},
		{"no_auth_user without users", &Options{NoAuthUser: "a"}, `no_auth_user: "a" is not a user in authorization.users or an account`},
		{"no_auth_user not among the users", &Options{NoAuthUser: "x", Authorization: users("a", "b")}, `no_auth_user: "x" is not a user in authorization.users or an account`},
		{"a user listed twice", &Options{Authorization: users("a", "b", "a")}, `authorization.users[2].user: user "a" is listed twice`},
		{"a user without a name", &Options{Authorization: users("a", "")}, "authorization.users[1].user: a user needs a name"},
		{"a single user and a users list", &Options{Authorization: &Authorization{User: "x", Users: []User{{Name: "a"}}}}, "authorization.users: cannot have both a single user/password and a users list"},
		{"a token and a users list", &Options{Authorization: &Authorization{Token: "t", Users: []User{{Name: "a"}}}}, "authorization.users: cannot have both a token and a users list"},
		{"a token and a user", &Options{Authorization: &Authorization{Token: "t", User: "u"}}, "authorization.token: cannot have both a user/password and a token"},
		{"a password without a user", &Options{Authorization: &Authorization{Password: "p"}}, "authorization.password: a password needs a user"},
		{"a negative timeout", &Options{Authorization: &Authorization{Timeout: -1}}, "authorization.timeout: -1ns is negative"},
		{"an invalid publish subject", &Options{Authorization: &Authorization{Users: []User{{Name: "a", Permissions: &Permissions{Publish: &SubjectPermission{Deny: []string{"ok", "a..b"}}}}}}}, `authorization.users[0].permissions.publish.deny[1]: invalid subject "a..b"`},
		{"a queue in a publish permission", &Options{Authorization: &Authorization{DefaultPermissions: &Permissions{Publish: &SubjectPermission{Allow: []string{"a q"}}}}}, `authorization.default_permissions.publish.allow[0]: invalid subject "a q"`},
		{"'>' before the last token", &Options{Authorization: &Authorization{DefaultPermissions: &Permissions{Subscribe: &SubjectPermission{Allow: []string{">.a"}}}}}, `authorization.default_permissions.subscribe.allow[0]: invalid subject ">.a"`},
		{"a route without a host", &Options{Cluster: &Cluster{Routes: []string{"c1-0:6222"}}}, "cluster.routes[0]: invalid route URL (expected nats://user:password@host:port)"},
		{"a route with a fragment", &Options{Cluster: &Cluster{Routes: []string{"nats://h:1#x"}}}, "cluster.routes[0]: invalid route URL (expected nats://user:password@host:port)"},
		{"a route with a vertical tab", &Options{Cluster: &Cluster{Routes: []string{"nats://h:1\v"}}}, "cluster.routes[0]: invalid route URL (expected nats://user:password@host:port)"},
		{"a route of another scheme", &Options{Cluster: &Cluster{Routes: []string{"http://h:1"}}}, "cluster.routes[0]: invalid route URL (expected nats://user:password@host:port)"},
		{"a user without a password", &Options{Authorization: &Authorization{Users: []User{{Name: "a", Password: "x"}, {Name: "b"}}}}, `authorization.users[1].password: user "b" has no password: only tls.verify_and_map (a certificate identity) or no_auth_user can authenticate it`},
		{"a user without a password and tls without verify_and_map", &Options{TLS: &TLS{CertFile: "c", KeyFile: "k", Verify: true}, Authorization: &Authorization{Users: []User{{Name: "CN=b"}}}}, `authorization.users[0].password: user "CN=b" has no password: only tls.verify_and_map (a certificate identity) or no_auth_user can authenticate it`},
		{"a route listed twice", &Options{Cluster: &Cluster{Routes: []string{"nats://r:SECRET@h:1", "nats://r:SECRET@h:1"}}}, "cluster.routes[1]: route nats://r:xxxxx@h:1 is listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.o.Validate()
			if err == nil {
				t.Fatalf("no error, want %s", tc.want)
			}
			if !strings.Contains(err.Error()+"\n", tc.want+"\n") {
				t.Errorf("error\n%v\nlacks\n%s", err, tc.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("error shows a password: %v", err)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error %T holds no *Error", err)
			}
		})
	}
}

func TestValidateAcceptsUsersWithoutPasswordsAsCertificateIdentitiesOrTheNoAuthUser(t *testing.T) {
	for name, o := range map[string]*Options{
		"verify_and_map": {TLS: &TLS{CertFile: "c", KeyFile: "k", VerifyAndMap: true}, Authorization: &Authorization{Users: []User{{Name: "CN=alice"}, {Name: "bob", Password: "pw"}}}},
		"no_auth_user":   {NoAuthUser: "anon", Authorization: &Authorization{Users: []User{{Name: "anon"}}}},
	} {
		if err := o.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestValidateAcceptsQueueSubscribePermissions(t *testing.T) {
	o := &Options{Authorization: &Authorization{DefaultPermissions: &Permissions{Subscribe: &SubjectPermission{Allow: []string{"work.* workers", "a.>"}}}}}
	if err := o.Validate(); err != nil {
		t.Error(err)
	}
}
