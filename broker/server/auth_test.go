package server

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/auth"
	"github.com/natsforge/natsforge/broker/conf"
)

func TestReconnectingClientsDoNotPayBcryptAgainButWrongPasswordsDo(t *testing.T) {
	hash, err := auth.HashPassword("pw", 4)
	if err != nil {
		t.Fatal(err)
	}
	s := runServer(t, &conf.Options{Authorization: &conf.Authorization{Users: []conf.User{{Name: "app", Password: hash}}}})
	for i := 0; i < 5; i++ {
		nc := connect(t, s.ClientURL(), nats.UserInfo("app", "pw"))
		nc.Close()
	}
	if n := s.verifier.Len(); n != 1 {
		t.Fatalf("%d remembered successes after five logins, want 1", n)
	}
	for i := 0; i < 3; i++ {
		if _, err := nats.Connect(s.ClientURL(), nats.UserInfo("app", "nope"), nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("got %v", err)
		}
	}
	if n := s.verifier.Len(); n != 1 {
		t.Fatalf("failures were remembered: %d entries", n)
	}
}

func TestAnUnknownUserIsCheckedAgainstAHashOfTheConfiguredCost(t *testing.T) {
	if got := bcryptCost("$2a$11$abcdefghijklmnopqrstuvwxyz"); got != 11 {
		t.Fatalf("bcryptCost = %d", got)
	}
	if got := bcryptCost("plain"); got != 0 {
		t.Fatalf("bcryptCost(plain) = %d", got)
	}
	h := dummyHash(5)
	if bcryptCost(h) != 5 || h != dummyHash(5) {
		t.Fatalf("dummy hash %q", h)
	}
	o := WithDefaults(&conf.Options{Authorization: &conf.Authorization{Users: []conf.User{
		{Name: "a", Password: "plain"}, {Name: "b", Password: vectorHash},
	}}})
	set, _ := (&Server{sl: NewSublist()}).buildAccounts(o, nil)
	ac, err := newAuthConfig(o, set)
	if err != nil || ac.dummyCost != 4 || !ac.required {
		t.Fatalf("%+v %v", ac, err)
	}
}

func TestValidateRefusesConflictingAuthorization(t *testing.T) {
	for name, o := range map[string]*conf.Options{
		"token and users":          {Authorization: &conf.Authorization{Token: "t", Users: []conf.User{{Name: "a"}}}},
		"duplicate user":           {Authorization: &conf.Authorization{Users: []conf.User{{Name: "a"}, {Name: "a"}}}},
		"no_auth_user not a user":  {NoAuthUser: "x", Authorization: &conf.Authorization{Users: []conf.User{{Name: "a"}}}},
		"no_auth_user, no users":   {NoAuthUser: "x"},
		"payload over max pending": {MaxPayload: 2 << 20, MaxPending: 1 << 20},
	} {
		if _, err := New(o, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// A bcrypt check that outlasts the ping interval (a connect storm queues them)
// must not put a PING before the PONG nats.go waits for in its handshake.
func TestNoPingReachesAClientWhileItsPasswordIsBeingChecked(t *testing.T) {
	hash, err := auth.HashPassword("pw", 12) // a quarter second or more: far above the interval
	if err != nil {
		t.Fatal(err)
	}
	s := runServer(t, &conf.Options{
		PingInterval: 30 * time.Millisecond, MaxPingsOut: 1000,
		Authorization: &conf.Authorization{Users: []conf.User{{Name: "app", Password: hash}}},
	})
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("app", "pw"), nats.NoReconnect(), nats.Timeout(30*time.Second))
	if err != nil {
		t.Fatalf("connect while the check outlasts the ping interval: %v", err)
	}
	defer nc.Close()
	// The ping cycle starts once the client is in: its RTT gets measured.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c := s.Connections(false); len(c) == 1 && c[0].RTT > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no PING answered within 5s of connecting: the ping cycle did not restart")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
