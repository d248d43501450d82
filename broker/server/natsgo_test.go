package server

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/auth"
	"github.com/natsforge/natsforge/broker/conf"
)

// These tests drive the broker with the real nats.go client.

const (
	vectorPassword = `IW@$6v(y1(t@fhPDvf!5^%`
	vectorHash     = "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq"
)

func hostPort(s *Server) string { return strings.TrimPrefix(s.ClientURL(), "nats://") }

func TestNatsGoClientPublishesAndSubscribes(t *testing.T) {
	s := runServer(t, nil)
	nc := connect(t, s.ClientURL())
	sub, err := nc.SubscribeSync("foo.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("foo.bar", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "hello" || m.Subject != "foo.bar" {
		t.Fatalf("got %q on %q", m.Data, m.Subject)
	}
}

func TestNatsGoConnectsWithUserAndPasswordInTheURL(t *testing.T) {
	s := runServer(t, &conf.Options{Authorization: &conf.Authorization{User: "myname", Password: "password"}})
	nc := connect(t, "nats://myname:password@"+hostPort(s))
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := s.Connections(false)[0].AuthorizedUser; got != "myname" {
		t.Fatalf("authorized user %q", got)
	}
}

func TestNatsGoConnectsWithUserInfoAgainstABcryptHash(t *testing.T) {
	s := runServer(t, &conf.Options{Authorization: &conf.Authorization{Users: []conf.User{{Name: "alice", Password: vectorHash}}}})
	connect(t, s.ClientURL(), nats.UserInfo("alice", vectorPassword))
	// The URL form needs the password escaped.
	connect(t, "nats://alice:"+url.QueryEscape(vectorPassword)+"@"+hostPort(s))
}

func TestNatsGoConnectsWithAHashMadeByTheHashingTool(t *testing.T) {
	hash, err := auth.HashPassword("s3cret", 4)
	if err != nil {
		t.Fatal(err)
	}
	s := runServer(t, &conf.Options{Authorization: &conf.Authorization{Users: []conf.User{{Name: "svc", Password: hash}}}})
	connect(t, s.ClientURL(), nats.UserInfo("svc", "s3cret"))
}

func TestNatsGoIsRefusedWithAWrongOrMissingPassword(t *testing.T) {
	s := runServer(t, &conf.Options{Authorization: &conf.Authorization{Users: []conf.User{{Name: "alice", Password: vectorHash}}}})
	for name, opts := range map[string][]nats.Option{
		"wrong password":     {nats.UserInfo("alice", "wrong")},
		"missing password":   {nats.UserInfo("alice", "")},
		"no credentials":     nil,
		"the hash itself":    {nats.UserInfo("alice", vectorHash)},
		"unknown user":       {nats.UserInfo("mallory", vectorPassword)},
		"a token, not users": {nats.Token("alice")},
	} {
		_, err := nats.Connect(s.ClientURL(), append(opts, nats.NoReconnect())...)
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: got %v, want %v", name, err, nats.ErrAuthorization)
		}
	}
}

func TestNatsGoConnectsWithAToken(t *testing.T) {
	s := runServer(t, &conf.Options{Authorization: &conf.Authorization{Token: "tok"}})
	// A URL with a user and no password carries a token.
	connect(t, "nats://tok@"+hostPort(s))
	if _, err := nats.Connect("nats://bad@"+hostPort(s), nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("got %v", err)
	}
}

func TestQueueGroupMembersShareTheMessagesAndPlainSubscribersGetAll(t *testing.T) {
	s := runServer(t, nil)
	nc := connect(t, s.ClientURL())
	var mu sync.Mutex
	counts := map[string]int{}
	for _, name := range []string{"w1", "w2", "w3"} {
		if _, err := nc.QueueSubscribe("jobs", "workers", func(*nats.Msg) {
			mu.Lock()
			counts[name]++
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	plain, _ := nc.SubscribeSync("jobs")
	_ = nc.Flush()
	const n = 300
	for i := 0; i < n; i++ {
		_ = nc.Publish("jobs", []byte("x"))
	}
	_ = nc.Flush()
	eventually(t, 5*time.Second, "every job to be handled once", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return counts["w1"]+counts["w2"]+counts["w3"] == n
	})
	mu.Lock()
	for name, c := range counts {
		if c == 0 {
			t.Errorf("member %s got nothing: %v", name, counts)
		}
	}
	mu.Unlock()
	for i := 0; i < n; i++ {
		if _, err := plain.NextMsg(2 * time.Second); err != nil {
			t.Fatalf("plain subscriber got %d of %d", i, n)
		}
	}
}

func TestRequestGetsTheReply(t *testing.T) {
	s := runServer(t, nil)
	responder := connect(t, s.ClientURL())
	if _, err := responder.Subscribe("echo", func(m *nats.Msg) { _ = m.Respond(append([]byte("re: "), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	_ = responder.Flush()
	requester := connect(t, s.ClientURL())
	for i := 0; i < 10; i++ {
		m, err := requester.Request("echo", []byte(fmt.Sprint(i)), 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data) != fmt.Sprintf("re: %d", i) {
			t.Fatalf("got %q", m.Data)
		}
	}
}

func TestHeadersArriveIntact(t *testing.T) {
	s := runServer(t, nil)
	nc := connect(t, s.ClientURL())
	sub, _ := nc.SubscribeSync("h")
	msg := nats.NewMsg("h")
	msg.Header.Set("Trace-Id", "abc")
	msg.Header.Add("Multi", "1")
	msg.Header.Add("Multi", "2")
	msg.Data = []byte("body")
	if err := nc.PublishMsg(msg); err != nil {
		t.Fatal(err)
	}
	got, err := sub.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.Header.Get("Trace-Id") != "abc" || len(got.Header.Values("Multi")) != 2 || string(got.Data) != "body" {
		t.Fatalf("got %v %q", got.Header, got.Data)
	}
}

func TestARequestNobodyAnswersFailsWithNoResponders(t *testing.T) {
	s := runServer(t, nil)
	nc := connect(t, s.ClientURL())
	_, err := nc.Request("nobody.home", nil, 2*time.Second)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("got %v, want %v", err, nats.ErrNoResponders)
	}
}

func TestAutoUnsubscribeStopsAfterMaxMessages(t *testing.T) {
	s := runServer(t, nil)
	nc := connect(t, s.ClientURL())
	sub, _ := nc.SubscribeSync("tick")
	if err := sub.AutoUnsubscribe(3); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	for i := 0; i < 10; i++ {
		_ = nc.Publish("tick", []byte("t"))
	}
	_ = nc.Flush()
	for i := 0; i < 3; i++ {
		if _, err := sub.NextMsg(2 * time.Second); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	eventually(t, 2*time.Second, "the subscription to leave the server", func() bool { return s.sl.Count() == 0 })
	if _, err := sub.NextMsg(50 * time.Millisecond); err == nil {
		t.Fatal("a fourth message arrived")
	}
}

func TestPermissionViolationsAreAsyncErrorsAndTheConnectionStays(t *testing.T) {
	s := runServer(t, &conf.Options{Authorization: &conf.Authorization{Users: []conf.User{{
		Name: "alice", Password: "pw",
		Permissions: &conf.Permissions{
			Publish:   &conf.SubjectPermission{Allow: []string{"ok.>"}},
			Subscribe: &conf.SubjectPermission{Deny: []string{"secret.>"}},
		},
	}}}})
	errs := make(chan error, 10)
	nc := connect(t, s.ClientURL(), nats.UserInfo("alice", "pw"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))

	if err := nc.Publish("not.ok", []byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `"not.ok"`) {
			t.Fatalf("got %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no async error for the publish")
	}
	if _, err := nc.SubscribeSync("secret.plans"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), `"secret.plans"`) {
			t.Fatalf("got %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no async error for the subscription")
	}
	// Still connected and working.
	sub, _ := nc.SubscribeSync("ok.fine")
	_ = nc.Publish("ok.fine", []byte("y"))
	if _, err := sub.NextMsg(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if !nc.IsConnected() {
		t.Fatal("disconnected")
	}
}

func TestAWildcardSubscriptionDoesNotReceiveADeniedSubject(t *testing.T) {
	s := runServer(t, &conf.Options{Authorization: &conf.Authorization{Users: []conf.User{{
		Name: "alice", Password: "pw",
		Permissions: &conf.Permissions{Subscribe: &conf.SubjectPermission{Deny: []string{"news.secret"}}},
	}}}})
	alice := connect(t, s.ClientURL(), nats.UserInfo("alice", "pw"))
	sub, _ := alice.SubscribeSync("news.*")
	_ = alice.Flush()
	_ = alice.Publish("news.secret", []byte("no"))
	_ = alice.Publish("news.public", []byte("yes"))
	m, err := sub.NextMsg(2 * time.Second)
	if err != nil || m.Subject != "news.public" {
		t.Fatalf("got %v, %v", m, err)
	}
}

func TestEchoOffKeepsOwnMessagesAway(t *testing.T) {
	s := runServer(t, nil)
	nc := connect(t, s.ClientURL(), nats.NoEcho())
	other := connect(t, s.ClientURL())
	sub, _ := nc.SubscribeSync("e")
	_ = nc.Flush()
	_ = nc.Publish("e", []byte("mine"))
	_ = other.Publish("e", []byte("theirs"))
	m, err := sub.NextMsg(2 * time.Second)
	if err != nil || string(m.Data) != "theirs" {
		t.Fatalf("got %v, %v", m, err)
	}
}

func TestMaxPayloadIsAdvertisedAndEnforced(t *testing.T) {
	s := runServer(t, &conf.Options{MaxPayload: 1024})
	nc := connect(t, s.ClientURL())
	if nc.MaxPayload() != 1024 {
		t.Fatalf("max payload %d", nc.MaxPayload())
	}
	if err := nc.Publish("big", make([]byte, 2048)); !errors.Is(err, nats.ErrMaxPayload) {
		t.Fatalf("got %v", err)
	}
}

func TestShutdownDisconnectsClientsAndReturns(t *testing.T) {
	s := runServer(t, nil)
	closed := make(chan struct{})
	connect(t, s.ClientURL(), nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(closed) }))
	s.Shutdown()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("client not disconnected")
	}
	s.Shutdown() // twice is fine
}
