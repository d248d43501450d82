package server

import (
	"bytes"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/conf"
)

func TestMaxConnectionsRefusesOneMoreWithItsErrorAsNatsServerDoes(t *testing.T) {
	opts := &conf.Options{MaxConnections: 1}
	for name, addr := range map[string]string{
		"ours":        runServer(t, opts).Addr().String(),
		"nats-server": runOracle(t, opts).Addr().String(),
	} {
		first := dialRaw(t, addr)
		if l := first.line(); !strings.HasPrefix(l, "INFO ") {
			t.Fatalf("%s: first connection got %q", name, l)
		}
		first.send("CONNECT {\"verbose\":false}\r\nPING\r\n")
		first.expect("PONG")

		second := dialRaw(t, addr)
		if l := second.line(); !strings.HasPrefix(l, "INFO ") {
			t.Fatalf("%s: second connection got %q", name, l)
		}
		second.expect("-ERR '" + errTextMaxConnections + "'")
		second.expectClosed()
	}
}

func TestASubscriberWithoutHeadersGetsTheMessageWithoutThem(t *testing.T) {
	for name, addr := range map[string]string{
		"ours":        runServer(t, nil).Addr().String(),
		"nats-server": runOracle(t, nil).Addr().String(),
	} {
		sub := dialRaw(t, addr)
		sub.line()
		sub.send("CONNECT {\"verbose\":false,\"headers\":false}\r\nSUB foo 1\r\nPING\r\n")
		sub.expect("PONG")
		pub := dialRaw(t, addr)
		pub.line()
		pub.send("CONNECT {\"verbose\":false,\"headers\":true}\r\nHPUB foo 18 20\r\nNATS/1.0\r\nA: B\r\n\r\nhi\r\nPING\r\n")
		pub.expect("PONG")
		if got := sub.line(); got != "MSG foo 1 2" {
			t.Fatalf("%s: got %q", name, got)
		}
		sub.expect("hi")
	}
}

// stalledSubscriber subscribes to subject over raw TCP and never reads.
func stalledSubscriber(t *testing.T, addr, subject string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() }) // the test is done with it
	_ = nc.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := nc.Write([]byte("CONNECT {\"verbose\":false}\r\nSUB " + subject + " 1\r\n")); err != nil {
		t.Fatal(err)
	}
	return nc
}

func connect(t *testing.T, url string, o ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, o...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestASubscriberPastMaxPendingIsCutOffWithoutStallingOthers(t *testing.T) {
	s := runServer(t, &conf.Options{MaxPending: 2 << 20, MaxPayload: 1 << 10})
	stalledSubscriber(t, s.Addr().String(), "flood")
	eventually(t, 2*time.Second, "the stalled subscription", func() bool { return s.sl.Count() == 1 })

	fast := connect(t, s.ClientURL())
	sub, err := fast.SubscribeSync("flood")
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.SetPendingLimits(-1, -1)
	_ = fast.Flush()

	pub := connect(t, s.ClientURL())
	payload := bytes.Repeat([]byte("x"), 1000)
	const batch, maxBatches = 500, 200 // up to 100 MB
	for b := 0; s.Stats().SlowConsumers == 0; b++ {
		if b == maxBatches {
			t.Fatal("the stalled subscriber was never cut off")
		}
		for i := 0; i < batch; i++ {
			if err := pub.Publish("flood", payload); err != nil {
				t.Fatal(err)
			}
		}
		if err := pub.FlushTimeout(5 * time.Second); err != nil {
			t.Fatalf("the publisher stalled: %v", err)
		}
		// The fast subscriber keeps up, batch by batch.
		for i := 0; i < batch; i++ {
			if _, err := sub.NextMsg(5 * time.Second); err != nil {
				t.Fatalf("batch %d: the fast subscriber got %d of %d: %v", b, i, batch, err)
			}
		}
	}
	eventually(t, 5*time.Second, "the slow consumer's connection to go", func() bool {
		return s.Stats().Connections == 2
	})
	if !fast.IsConnected() || !pub.IsConnected() {
		t.Fatal("a fast connection was dropped")
	}
}

func TestASubscriberWhoseWritesStallPastTheDeadlineIsCutOff(t *testing.T) {
	s := runServer(t, &conf.Options{WriteDeadline: 100 * time.Millisecond})
	stalledSubscriber(t, s.Addr().String(), "flood")
	eventually(t, 2*time.Second, "the stalled subscription", func() bool { return s.sl.Count() == 1 })

	pub := connect(t, s.ClientURL())
	payload := bytes.Repeat([]byte("x"), 1000)
	deadline := time.Now().Add(20 * time.Second)
	for s.Stats().SlowConsumers == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled subscriber was never cut off")
		}
		for i := 0; i < 1000; i++ {
			_ = pub.Publish("flood", payload)
		}
		_ = pub.Flush()
	}
	eventually(t, 5*time.Second, "the connection to go", func() bool { return s.Stats().Connections == 1 })
}

// pacedSubscriber subscribes over raw TCP and reads at most chunk bytes per
// tick: a consumer that keeps reading, only slower than a publisher can write.
// It returns a counter of the bytes it has read.
func pacedSubscriber(t *testing.T, addr, subject string, chunk int, tick time.Duration) *atomic.Int64 {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() }) // the test is done with it
	if _, err := nc.Write([]byte("CONNECT {\"verbose\":false}\r\nSUB " + subject + " 1\r\n")); err != nil {
		t.Fatal(err)
	}
	var got atomic.Int64
	go func() {
		buf := make([]byte, chunk)
		pace := time.NewTicker(tick)
		defer pace.Stop()
		for range pace.C {
			n, err := nc.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	return &got
}

func TestAPublisherFasterThanItsSubscriberIsSlowedDownInsteadOfTheSubscriberCutOff(t *testing.T) {
	// max_pending is 16 MiB: with bounded stalls (at most 10 ms per read
	// pass, as nats-server), the subscriber may fall behind by that much
	// while a loaded machine does not schedule it, and still not be cut off.
	s := runServer(t, &conf.Options{MaxPending: 16 << 20, MaxPayload: 1 << 10})
	// At most 32 KiB a millisecond: far below what one publisher can send.
	received := pacedSubscriber(t, s.Addr().String(), "bulk", 32<<10, time.Millisecond)
	eventually(t, 2*time.Second, "the subscription", func() bool { return s.sl.Count() == 1 })

	pub := connect(t, s.ClientURL())
	payload := bytes.Repeat([]byte("x"), 1000)
	const n = 40000 // 40 MB: two and a half times max_pending
	for i := 0; i < n; i++ {
		if err := pub.Publish("bulk", payload); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.FlushTimeout(30 * time.Second); err != nil {
		t.Fatalf("the publisher's flush: %v", err)
	}
	want := int64(n * len("MSG bulk 1 1000\r\n"+string(payload)+"\r\n"))
	eventually(t, 30*time.Second, "every message to reach the paced subscriber", func() bool {
		return received.Load() >= want || s.Stats().SlowConsumers > 0
	})
	if sc := s.Stats().SlowConsumers; sc != 0 {
		t.Fatalf("the subscriber was cut off as a slow consumer after %d of %d bytes", received.Load(), want)
	}
	// The INFO and any PING the server sent are under one message's size, so
	// a lost message cannot hide behind them.
	if got := received.Load(); got < want {
		t.Fatalf("the subscriber read %d bytes, want at least %d", got, want)
	}
}
