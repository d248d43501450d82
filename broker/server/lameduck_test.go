package server

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestLameDuckMovesNatsGoClientsToOtherServersWithTheirSubscriptions(t *testing.T) {
	s := startCluster(t, 3)
	for _, srv := range s {
		o := *srv.getOpts()
		o.LameDuckDuration, o.LameDuckGracePeriod = 600*time.Millisecond, 100*time.Millisecond
		srv.opts.Store(&o)
	}
	var ldmSeen, reconnected atomic.Int64
	const n = 5
	var subs []*nats.Subscription
	var conns []*nats.Conn
	for range n {
		nc := connectTo(t, s[0].ClientURL(),
			nats.LameDuckModeHandler(func(*nats.Conn) { ldmSeen.Add(1) }),
			nats.ReconnectHandler(func(*nats.Conn) { reconnected.Add(1) }),
			nats.ReconnectWait(20*time.Millisecond))
		sub, err := nc.SubscribeSync("ld.work")
		if err != nil {
			t.Fatal(err)
		}
		noErr(t, nc.Flush())
		conns = append(conns, nc)
		subs = append(subs, sub)
	}
	for _, nc := range conns {
		waitUntil(t, 5*time.Second, "connect_urls learned", func() bool { return len(nc.DiscoveredServers()) == 2 })
	}
	waitInterest(t, s[1], "ld.work", 1)

	done := make(chan struct{})
	start := time.Now()
	go func() {
		s[0].LameDuckShutdown()
		close(done)
	}()
	waitUntil(t, 5*time.Second, "every client told of lame duck mode", func() bool { return ldmSeen.Load() == n })
	waitUntil(t, 5*time.Second, "every client reconnected", func() bool { return reconnected.Load() == n })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("lame duck mode did not end")
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Fatalf("clients were closed in %v, not spread over the lame duck duration", el)
	}
	for _, nc := range conns {
		if url := nc.ConnectedUrl(); url == s[0].ClientURL() {
			t.Fatalf("a client is back on the lame duck server")
		}
	}
	// The clients are spread over s1 and s2 now; publish from s2 until every
	// subscription has heard (interest on s1 takes a moment to reach s2).
	pub := connectTo(t, s[2].ClientURL())
	waitUntil(t, 5*time.Second, "every subscription to receive", func() bool {
		noErr(t, pub.Publish("ld.work", []byte("after")))
		noErr(t, pub.Flush())
		for _, sub := range subs {
			if n, _, _ := sub.Pending(); n == 0 {
				return false
			}
		}
		return true
	})
	for i, sub := range subs {
		if m, err := sub.NextMsg(time.Second); err != nil || string(m.Data) != "after" {
			t.Fatalf("client %d lost its subscription: %v %v", i, m, err)
		}
	}
}

func TestLameDuckTellsPeersToStopAdvertisingTheServer(t *testing.T) {
	s := startCluster(t, 3)
	o := *s[0].getOpts()
	o.LameDuckDuration, o.LameDuckGracePeriod = 2*time.Second, time.Second
	s[0].opts.Store(&o)
	onB := connectTo(t, s[1].ClientURL())
	waitUntil(t, 5*time.Second, "two discovered", func() bool { return len(onB.DiscoveredServers()) == 2 })
	keep := connectTo(t, s[0].ClientURL()) // keeps s0 in lame duck mode for a while
	noErr(t, keep.Flush())
	go s[0].LameDuckShutdown()
	waitUntil(t, 5*time.Second, "s1 to stop advertising s0", func() bool {
		for _, u := range s[1].Varz().ClientConnectURLs {
			if "nats://"+u == s[0].ClientURL() {
				return false
			}
		}
		return true
	})
	if !s[0].Varz().LameDuckMode {
		t.Fatal("varz does not show lame duck mode")
	}
}
