package conf

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// fullOptions sets every field, with values that need care when written out.
func fullOptions() *Options {
	return &Options{
		ServerName:          "n1",
		Host:                "127.0.0.1",
		Port:                4333,
		HTTPHost:            "::1",
		HTTPPort:            8333,
		MaxPayload:          2 << 20,
		MaxControlLine:      8192,
		MaxConnections:      1000,
		MaxSubscriptions:    50,
		MaxPending:          128 << 20,
		PingInterval:        90 * time.Second,
		MaxPingsOut:         3,
		WriteDeadline:       1500 * time.Millisecond,
		LameDuckDuration:    45 * time.Second,
		LameDuckGracePeriod: 5 * time.Second,
		Debug:               true,
		Trace:               true,
		NoAuthUser:          "alice",
		Authorization: &Authorization{
			Timeout: 1250 * time.Millisecond,
			DefaultPermissions: &Permissions{
				Subscribe: &SubjectPermission{Allow: []string{"PUBLIC.>"}},
			},
			Users: []User{
				{Name: "alice", Password: "$2a$11$abcdefghijklmnopqrstuu5/Jx0Zx2OvvBzDy1l4wl6ZkbUdvXHGi", Permissions: &Permissions{
					Publish:        &SubjectPermission{Allow: []string{"orders.>"}, Deny: []string{"orders.secret"}},
					Subscribe:      &SubjectPermission{Allow: []string{"replies.>", "work.* workers"}},
					AllowResponses: true,
				}},
				{Name: `bob "the" \builder`, Password: "pa$$ word\n\"quoted\"\\ # not a comment // nor this"},
				{Name: "carol", Password: "$2b$11$abcdefghijklmnopqrstuu5/Jx0Zx2OvvBzDy1l4wl6ZkbUdvXHGi"},
			},
		},
		Cluster: &Cluster{
			Name: "C1",
			Host: "0.0.0.0",
			Port: 6333,
			Authorization: &ClusterAuthorization{
				User:     "route",
				Password: "s3cr$t",
				Timeout:  3 * time.Second,
			},
			Routes: []string{
				"nats://route:s3cr$t@c1-0.c1-routes:6333",
				"nats://route:s3cr$t@c1-1.c1-routes:6333",
			},
			NoAdvertise: true,
		},
	}
}

func TestRenderThenParseGivesTheSameOptions(t *testing.T) {
	for name, o := range map[string]*Options{
		"empty":       {},
		"every field": fullOptions(),
		"single user": {Authorization: &Authorization{User: "me", Password: "pw"}},
		"token":       {Authorization: &Authorization{Token: "t0k$n"}},
		"http port":   {HTTPPort: 8222},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Render(o)
			if err != nil {
				t.Fatal(err)
			}
			got, warnings, err := Parse(b, "rendered.conf")
			if err != nil {
				t.Fatalf("%v\n%s", err, b)
			}
			if len(warnings) > 0 {
				t.Errorf("warnings: %v", warnings)
			}
			if !reflect.DeepEqual(got, o) {
				t.Errorf("%s\n%s", diff(got, o), b)
			}
		})
	}
}

func TestRenderThenParseGivesTheSameOptionsForRandomOptions(t *testing.T) {
	for seed := range uint64(5000) {
		o := randomOptions(rand.New(rand.NewPCG(seed, 1)))
		b, err := Render(o)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		got, warnings, err := Parse(b, "rendered.conf")
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, b)
		}
		if len(warnings) > 0 {
			t.Errorf("seed %d: warnings: %v", seed, warnings)
		}
		if !reflect.DeepEqual(got, o) {
			t.Fatalf("seed %d:\n%s\n%s", seed, diff(got, o), b)
		}
		again, err := Render(got)
		if err != nil || string(again) != string(b) {
			t.Fatalf("seed %d: rendering the parsed options again differs (%v):\n%s\n%s", seed, err, b, again)
		}
	}
}
