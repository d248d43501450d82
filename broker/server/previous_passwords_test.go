package server

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/conf"
)

// graceBroker is a broker started as natsforge-broker -c nats.conf
// --previous_passwords previous_passwords.conf: the overrides read the second
// file on every load, as the binary's do.
type graceBroker struct {
	s                *Server
	config, previous string
}

func startGraceBroker(t *testing.T, aliceHash string) *graceBroker {
	t.Helper()
	dir := t.TempDir()
	g := &graceBroker{config: filepath.Join(dir, "nats.conf"), previous: filepath.Join(dir, "previous_passwords.conf")}
	g.write(t, aliceHash, nil)
	overrides := func(o *conf.Options) error {
		o.Host, o.Port = "127.0.0.1", RandomPort
		pp, err := conf.LoadPreviousPasswordsFile(g.previous)
		o.PreviousPasswords = pp
		return err
	}
	o, _, err := conf.LoadFile(g.config)
	if err != nil {
		t.Fatal(err)
	}
	if err := overrides(o); err != nil {
		t.Fatal(err)
	}
	if g.s, err = New(o, nil); err != nil {
		t.Fatal(err)
	}
	if err := g.s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.s.Shutdown)
	if err := g.s.SetConfigFile(g.config, overrides); err != nil {
		t.Fatal(err)
	}
	return g
}

// write renders both files: alice with aliceHash, bob with a password of his
// own, and the previous passwords.
func (g *graceBroker) write(t *testing.T, aliceHash string, previous []conf.PreviousPassword) {
	t.Helper()
	cfg := fmt.Sprintf("authorization {\n  users = [\n    { user: alice, password: %q }\n    { user: bob, password: %q }\n  ]\n}\n",
		aliceHash, mustBcrypt(t, "bob-pw"))
	writeFile(t, g.config, cfg)
	b, err := conf.RenderPreviousPasswords(previous)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, g.previous, string(b))
}

func (g *graceBroker) rotate(t *testing.T, aliceHash string, previous []conf.PreviousPassword) {
	t.Helper()
	g.write(t, aliceHash, previous)
	if err := g.s.Reload(); err != nil {
		t.Fatal(err)
	}
}

func (g *graceBroker) url(user, pass string) string {
	return fmt.Sprintf("nats://%s:%s@%s", user, pass, g.s.Addr())
}

// watchedConn is a nats.go connection that does not reconnect, with what
// ended it and when.
type watchedConn struct {
	nc       *nats.Conn
	mu       sync.Mutex
	err      error
	closedAt time.Time
}

func dialWatched(t *testing.T, url string) *watchedConn {
	t.Helper()
	w := &watchedConn{}
	w.nc = connectTo(t, url, nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
		}),
		nats.ClosedHandler(func(*nats.Conn) {
			w.mu.Lock()
			w.closedAt = time.Now()
			w.mu.Unlock()
		}))
	return w
}

func (w *watchedConn) ended() (time.Time, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closedAt, w.err
}

// exchange checks that a message from one connection reaches another's
// subscription through the broker.
func exchange(t *testing.T, from, to *nats.Conn, subject string) {
	t.Helper()
	sub, err := to.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := to.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := from.Publish(subject, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
}

func TestAPreviousPasswordWorksUntilItsWindowEndsThenItsConnectionsAreClosedAndItIsRefused(t *testing.T) {
	h1, h2 := mustBcrypt(t, "old-pw"), mustBcrypt(t, "new-pw")
	g := startGraceBroker(t, h1)
	before := dialWatched(t, g.url("alice", "old-pw")) // connected before the rotation
	bob := dialWatched(t, g.url("bob", "bob-pw"))

	const window = 5 * time.Second
	until := time.Now().Add(window).Truncate(time.Second) // the file has whole seconds
	g.rotate(t, h2, []conf.PreviousPassword{{User: "alice", Password: h1, ValidUntil: until}})

	during := dialWatched(t, g.url("alice", "old-pw")) // a new connection with the previous password
	fresh := dialWatched(t, g.url("alice", "new-pw"))
	exchange(t, before.nc, during.nc, "old.to.old")
	exchange(t, during.nc, fresh.nc, "old.to.new")
	exchange(t, fresh.nc, before.nc, "new.to.old")
	if time.Now().After(until) {
		t.Fatalf("the machine is too slow for a %v window: the checks above ran past its end", window)
	}

	for name, w := range map[string]*watchedConn{"connected before the rotation": before, "connected during the window": during} {
		waitUntil(t, window+10*time.Second, "the previous password's connection "+name+" to close", w.nc.IsClosed)
		at, err := w.ended()
		if at.Before(until) {
			t.Errorf("the connection %s closed at %v, %v before its window ended", name, at.Format(time.StampMilli), until.Sub(at))
		}
		if !errors.Is(err, nats.ErrAuthExpired) {
			t.Errorf("the connection %s ended with %v, want nats.ErrAuthExpired ('User Authentication Expired')", name, err)
		}
	}
	for name, w := range map[string]*watchedConn{"alice with the new password": fresh, "bob": bob} {
		if !w.nc.IsConnected() {
			t.Errorf("%s was disconnected when the window ended", name)
		}
	}
	exchange(t, fresh.nc, bob.nc, "after.window")

	if _, err := nats.Connect(g.url("alice", "old-pw"), nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("after the window the previous password connects: %v", err)
	}
	connectTo(t, g.url("alice", "new-pw"))
}

func TestAPreviousPasswordWhoseWindowHasEndedIsRefusedFromTheStart(t *testing.T) {
	h1, h2 := mustBcrypt(t, "old-pw"), mustBcrypt(t, "new-pw")
	g := startGraceBroker(t, h1)
	g.rotate(t, h2, []conf.PreviousPassword{{User: "alice", Password: h1, ValidUntil: time.Now().Add(-time.Second)}})
	if _, err := nats.Connect(g.url("alice", "old-pw"), nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("an expired previous password connects: %v", err)
	}
}

// rotationOutcome is what a client sees of a password rotation.
type rotationOutcome struct {
	OldConnectionClosed bool
	OldConnectionError  string
	OldPasswordRefused  string
	NewPasswordWorks    bool
	OtherUserUntouched  bool
}

// observeRotation connects alice (old password) and bob, rotates alice's
// password with rotate, and reports what the clients see.
func observeRotation(t *testing.T, url func(user, pass string) string, rotate func()) rotationOutcome {
	t.Helper()
	alice := dialWatched(t, url("alice", "old-pw"))
	bob := dialWatched(t, url("bob", "bob-pw"))
	rotate()
	waitUntil(t, 10*time.Second, "alice's old connection to close", alice.nc.IsClosed)
	var out rotationOutcome
	_, err := alice.ended()
	out.OldConnectionClosed, out.OldConnectionError = alice.nc.IsClosed(), fmt.Sprint(err)
	if _, err := nats.Connect(url("alice", "old-pw"), nats.NoReconnect()); err != nil {
		out.OldPasswordRefused = err.Error()
	}
	if nc, err := nats.Connect(url("alice", "new-pw"), nats.NoReconnect()); err == nil {
		out.NewPasswordWorks = true
		nc.Close()
	}
	out.OtherUserUntouched = bob.nc.IsConnected()
	return out
}

// nats-server has no grace window: a rotation cuts the old password at once.
// Without previous passwords (the operator's default, rotationGracePeriod 0)
// the broker makes the same cut, as a client sees it.
func TestWithoutAGraceWindowARotationIsTheHardCutNatsServerMakes(t *testing.T) {
	h1, h2, hb := mustBcrypt(t, "old-pw"), mustBcrypt(t, "new-pw"), mustBcrypt(t, "bob-pw")

	g := startGraceBroker(t, h1)
	ours := observeRotation(t, g.url, func() { g.rotate(t, h2, nil) })

	port := freePorts(t, 1)[0]
	users := func(alice string) []*natsserver.User {
		return []*natsserver.User{{Username: "alice", Password: alice}, {Username: "bob", Password: hb}}
	}
	oracleOpts := func(alice string) *natsserver.Options {
		return &natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true, Users: users(alice)}
	}
	ns, err := natsserver.NewServer(oracleOpts(h1))
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(ns.Shutdown)
	oracleURL := func(user, pass string) string { return fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", user, pass, port) }
	theirs := observeRotation(t, oracleURL, func() {
		if err := ns.ReloadOptions(oracleOpts(h2)); err != nil {
			t.Fatal(err)
		}
	})

	if ours != theirs {
		t.Fatalf("a rotation without a grace window\n broker:      %+v\n nats-server: %+v", ours, theirs)
	}
	if !ours.OldConnectionClosed || ours.OldPasswordRefused == "" || !ours.NewPasswordWorks || !ours.OtherUserUntouched {
		t.Fatalf("not a hard cut: %+v", ours)
	}
}

// armed tells whether s's grace-window timer is set.
func armed(s *Server) bool {
	e := s.passwordExpiry()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.timer != nil
}

// The grace window costs nothing when there is none: no timer, and a
// connect pays the one bcrypt comparison it always did. During a window
// one timer runs, and it is gone once the window has ended.
func TestNoGraceWindowNoTimerAndOneBcryptPerNewPassword(t *testing.T) {
	h1, h2 := mustBcrypt(t, "old-pw"), mustBcrypt(t, "new-pw")
	g := startGraceBroker(t, h1)
	if armed(g.s) {
		t.Fatal("a timer runs with no previous password configured")
	}
	before := g.s.verifier.Comparisons()
	for range 5 {
		connectTo(t, g.url("alice", "old-pw")).Close()
	}
	if paid := g.s.verifier.Comparisons() - before; paid != 1 {
		t.Errorf("5 connects with one password paid %d bcrypt comparisons, want 1", paid)
	}

	until := time.Now().Add(2 * time.Second).Truncate(time.Second).Add(time.Second)
	g.rotate(t, h2, []conf.PreviousPassword{{User: "alice", Password: h1, ValidUntil: until}})
	if !armed(g.s) {
		t.Fatal("no timer during a grace window")
	}
	// A storm on the previous password pays for it once, not once per
	// connection for the failed comparison with the new hash.
	before = g.s.verifier.Comparisons()
	for range 5 {
		connectTo(t, g.url("alice", "old-pw")).Close()
	}
	if paid := g.s.verifier.Comparisons() - before; paid > 2 {
		t.Errorf("5 connects with the previous password paid %d bcrypt comparisons, want at most 2 (the new hash, then the previous)", paid)
	}
	waitUntil(t, time.Until(until)+10*time.Second, "the timer to be gone after the window", func() bool { return !armed(g.s) })
}

// BenchmarkAuthenticationWithAGraceWindow compares, in one run, a connect's
// password check (remembered, as on a reconnect) without a grace window, and
// during one with the current and with the previous password. It fails if a
// remembered check pays bcrypt; the allocations per check are the same in all
// three (one digest and one cache look-up each), which holds however loaded
// the machine is, unlike ns/op.
func BenchmarkAuthenticationWithAGraceWindow(b *testing.B) {
	h1, h2 := mustBcrypt(b, "old-pw"), mustBcrypt(b, "new-pw")
	window := []conf.PreviousPassword{{User: "alice", Password: h1, ValidUntil: time.Now().Add(time.Hour)}}
	for _, tc := range []struct {
		name     string
		previous []conf.PreviousPassword
		pass     string
	}{
		{"no window", nil, "new-pw"},
		{"window, current password", window, "new-pw"},
		{"window, previous password", window, "old-pw"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			o := &conf.Options{Authorization: &conf.Authorization{Users: []conf.User{{Name: "alice", Password: h2}}}, PreviousPasswords: tc.previous}
			s, err := New(o, nil)
			if err != nil {
				b.Fatal(err)
			}
			c := &client{srv: s}
			c.opts.Username, c.opts.Password = "alice", tc.pass
			if ok, _ := s.authenticate(c); !ok { // pays the bcrypt, then remembered
				b.Fatal("refused")
			}
			paid := s.verifier.Comparisons()
			b.ReportAllocs()
			for b.Loop() {
				if ok, _ := s.authenticate(c); !ok {
					b.Fatal("refused")
				}
			}
			if s.verifier.Comparisons() != paid {
				b.Fatalf("remembered checks paid %d bcrypt comparisons", s.verifier.Comparisons()-paid)
			}
		})
	}
}
