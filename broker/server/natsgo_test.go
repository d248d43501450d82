package server

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestNatsGoClientPublishesAndSubscribes(t *testing.T) {
	s := runServer(t, nil)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
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
