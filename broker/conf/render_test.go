package conf

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// operatorOptions is the shape of config the operator renders for a
// three-pod cluster.
func operatorOptions() *Options {
	routes := []string{}
	for _, pod := range []string{"c1-0", "c1-1", "c1-2"} {
		routes = append(routes, "nats://route:R0utePassw0rd@"+pod+".c1-routes.default.svc:6222")
	}
	return &Options{
		ServerName:       "c1-0",
		Port:             DefaultPort,
		HTTPPort:         DefaultHTTPPort,
		LameDuckDuration: 30 * time.Second,
		NoAuthUser:       "anonymous",
		Authorization: &Authorization{
			Users: []User{
				{Name: "anonymous", Password: "$2a$11$XwF6o1zZ5bN1kqzGxGZ3kOaQ1b2Nw8fKpS6fA1TfN4Yb1xG7oJv5a",
					Permissions: &Permissions{Subscribe: &SubjectPermission{Allow: []string{"PUBLIC.>"}}}},
				{Name: "app", Password: "$2a$11$5Yx0bq9mHf8o2yq6cQ3X0eJ8m6mKxv6H2o4V9Zb8b4xq1m8o3pZr2",
					Permissions: &Permissions{
						Publish:        &SubjectPermission{Allow: []string{"orders.>"}, Deny: []string{"orders.secret"}},
						Subscribe:      &SubjectPermission{Allow: []string{"replies.>", "work.* workers"}},
						AllowResponses: true,
					}},
			},
		},
		Cluster: &Cluster{
			Name:          "c1",
			Port:          DefaultClusterPort,
			Authorization: &ClusterAuthorization{User: "route", Password: "R0utePassw0rd"},
			Routes:        routes,
		},
	}
}

func TestRenderMatchesTheGoldenFiles(t *testing.T) {
	for name, o := range map[string]*Options{
		"empty":       {},
		"every_field": fullOptions(),
		"operator":    operatorOptions(),
		"single_user": {Port: 4222, Authorization: &Authorization{User: "me", Password: "$2y$11$abcdefghijklmnopqrstuu5/Jx0Zx2OvvBzDy1l4wl6ZkbUdvXHGi", Timeout: 2 * time.Second}},
		"token":       {Host: "::1", HTTPHost: "::1", HTTPPort: 8222, Authorization: &Authorization{Token: `a"b\c$d`}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := Render(o)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("Render differs from %s (go test -update rewrites it):\n%s", path, got)
			}
		})
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	first, _ := Render(fullOptions())
	for range 20 {
		if again, _ := Render(fullOptions()); string(again) != string(first) {
			t.Fatal("two renders of the same options differ")
		}
	}
}

func TestRenderQuotesEveryStringSafely(t *testing.T) {
	for in, want := range map[string]string{
		"plain":                `"plain"`,
		`a"b`:                  `"a\"b"`,
		`a\b`:                  `"a\\b"`,
		"$2a$11$xyz":           `"$2a$11$xyz"`,
		"$VAR":                 `"$VAR"`,
		"# not // a comment":   `"# not // a comment"`,
		"line\nbreak\ttab\rcr": `"line\nbreak\ttab\rcr"`,
		"nul\x00del\x7f":       `"nul\x00del\x7f"`,
		"é":                    `"\xc3\xa9"`,
		"{[,;:=]}":             `"{[,;:=]}"`,
		"":                     `""`,
	} {
		if got := quote(in); got != want {
			t.Errorf("quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestRenderWritesTimeoutsAsExactSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2 * time.Second:             "2",
		1500 * time.Millisecond:     "1.5",
		time.Nanosecond:             "0.000000001",
		time.Hour + time.Nanosecond: "3600.000000001",
	} {
		if got := formatSeconds(d); got != want {
			t.Errorf("formatSeconds(%v) = %s, want %s", d, got, want)
		}
	}
}

func TestRenderRefusesInvalidOptions(t *testing.T) {
	_, err := Render(&Options{Port: 70000, NoAuthUser: "ghost"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"port: port 70000 is out of range 0-65535", `no_auth_user: "ghost" is not a user in authorization.users`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}
