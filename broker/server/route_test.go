package server

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/internal/logbuf"
)

func TestClientsOnDifferentServersExchangeMessagesAcrossTheCluster(t *testing.T) {
	s := startCluster(t, 3)
	a, b := connectTo(t, s[0].ClientURL()), connectTo(t, s[1].ClientURL())
	sub, err := b.SubscribeSync("orders.*")
	if err != nil {
		t.Fatal(err)
	}
	noErr(t, b.Flush())
	waitInterest(t, s[0], "orders.new", 1)
	if err := a.Publish("orders.new", []byte("one")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(2 * time.Second)
	if err != nil || string(m.Data) != "one" || m.Subject != "orders.new" {
		t.Fatalf("got %v, %v", m, err)
	}
	// Headers cross too.
	hm := nats.NewMsg("orders.hdr")
	hm.Header.Set("K", "V")
	hm.Data = []byte("h")
	if err := a.PublishMsg(hm); err != nil {
		t.Fatal(err)
	}
	m, err = sub.NextMsg(2 * time.Second)
	if err != nil || m.Header.Get("K") != "V" || string(m.Data) != "h" {
		t.Fatalf("got %v, %v", m, err)
	}
}

func TestRequestReplyWorksBetweenServers(t *testing.T) {
	s := startCluster(t, 3)
	responder, requester := connectTo(t, s[2].ClientURL()), connectTo(t, s[0].ClientURL())
	if _, err := responder.Subscribe("svc.echo", func(m *nats.Msg) { respond(t, m, append([]byte("re:"), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	noErr(t, responder.Flush())
	waitInterest(t, s[0], "svc.echo", 1)
	for i := range 20 {
		msg, err := requester.Request("svc.echo", fmt.Appendf(nil, "%d", i), 2*time.Second)
		if err != nil || string(msg.Data) != fmt.Sprintf("re:%d", i) {
			t.Fatalf("request %d: %v %v", i, msg, err)
		}
	}
}

func TestARequestNobodyAnswersAnywhereGetsNoResponders(t *testing.T) {
	s := startCluster(t, 2)
	nc := connectTo(t, s[0].ClientURL())
	if _, err := nc.Request("nobody.home", nil, 2*time.Second); err != nats.ErrNoResponders {
		t.Fatalf("got %v, want no responders", err)
	}
}

func TestQueueGroupsDeliverExactlyOncePerGroupAcrossTheCluster(t *testing.T) {
	s := startCluster(t, 3)
	subs := map[string][]*nats.Subscription{}
	var flushes atomic.Int64
	var plain *nats.Subscription
	for i := range s {
		nc := connectTo(t, s[i].ClientURL())
		for _, g := range []string{"g1", "g2"} {
			for range 2 {
				sub, err := nc.QueueSubscribe("work", g, func(*nats.Msg) {})
				if err != nil {
					t.Fatal(err)
				}
				subs[g] = append(subs[g], sub)
			}
		}
		if i == 2 {
			var err error
			if plain, err = nc.Subscribe("work", func(*nats.Msg) {}); err != nil {
				t.Fatal(err)
			}
		}
		// The flush marker shares each subscriber's connection (and so every
		// route the work crossed): once it arrives, nothing sent before it is
		// still in flight.
		if _, err := nc.Subscribe("flush", func(*nats.Msg) { flushes.Add(1) }); err != nil {
			t.Fatal(err)
		}
		noErr(t, nc.Flush())
	}
	// s0 hears of g1 and g2 on s1, and of g1, g2 and the plain one on s2; and
	// of "flush" on both.
	waitInterest(t, s[0], "work", 5)
	waitInterest(t, s[0], "flush", 2)
	pub := connectTo(t, s[0].ClientURL())
	const n = 300
	for range n {
		noErr(t, pub.Publish("work", []byte("x")))
	}
	noErr(t, pub.Flush())
	// received counts what reached the client library for a subscription,
	// whether or not its callback has run yet.
	received := func(subs ...*nats.Subscription) int {
		sum := 0
		for _, sub := range subs {
			d, _ := sub.Delivered()
			p, _, _ := sub.Pending()
			sum += int(d) + p
		}
		return sum
	}
	waitUntil(t, 5*time.Second, "every message delivered", func() bool {
		return received(subs["g1"]...) >= n && received(subs["g2"]...) >= n && received(plain) >= n
	})
	noErr(t, pub.Publish("flush", nil))
	waitUntil(t, 5*time.Second, "the flush marker on every server", func() bool { return flushes.Load() == 3 })
	if g1, g2, p := received(subs["g1"]...), received(subs["g2"]...), received(plain); g1 != n || g2 != n || p != n {
		t.Fatalf("g1 got %d, g2 got %d, the plain subscriber %d; want %d each", g1, g2, p, n)
	}
}

func TestAMessageCrossesAtMostOneRoute(t *testing.T) {
	s := startCluster(t, 3)
	var got atomic.Int64
	for i := range s {
		nc := connectTo(t, s[i].ClientURL())
		if _, err := nc.Subscribe("fanout", func(*nats.Msg) { got.Add(1) }); err != nil {
			t.Fatal(err)
		}
		noErr(t, nc.Flush())
	}
	for i := range s {
		waitInterest(t, s[i], "fanout", 2)
	}
	pub := connectTo(t, s[0].ClientURL())
	for range 10 {
		noErr(t, pub.Publish("fanout", nil))
	}
	noErr(t, pub.Flush())
	waitUntil(t, 5*time.Second, "30 deliveries", func() bool { return got.Load() >= 30 })
	marker := connectTo(t, s[2].ClientURL())
	var markers atomic.Int64
	if _, err := marker.Subscribe("marker", func(*nats.Msg) { markers.Add(1) }); err != nil {
		t.Fatal(err)
	}
	noErr(t, marker.Flush())
	waitInterest(t, s[0], "marker", 1)
	noErr(t, pub.Publish("marker", nil))
	noErr(t, pub.Flush())
	waitUntil(t, 5*time.Second, "the marker", func() bool { return markers.Load() == 1 })
	if got.Load() != 30 {
		t.Fatalf("got %d deliveries, want exactly 30", got.Load())
	}
}

func TestEchoOffHoldsAcrossServers(t *testing.T) {
	s := startCluster(t, 2)
	nc := connectTo(t, s[0].ClientURL(), nats.NoEcho())
	other := connectTo(t, s[1].ClientURL())
	own, _ := nc.SubscribeSync("echo.test")
	theirs, _ := other.SubscribeSync("echo.test")
	noErr(t, nc.Flush())
	noErr(t, other.Flush())
	waitInterest(t, s[0], "echo.test", 1)
	noErr(t, nc.Publish("echo.test", []byte("x")))
	noErr(t, nc.Flush())
	if _, err := theirs.NextMsg(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	if m, err := own.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("echo off, yet got my own message back: %v", m)
	}
}

func TestDuplicateRoutesBetweenTwoServersResolveToOne(t *testing.T) {
	s := startCluster(t, 3)
	// Every server dialled every other: each pair ended up with two
	// connections, and each side must keep the same single one.
	for _, srv := range s {
		m := srv.routes()
		waitUntil(t, 5*time.Second, "duplicates closed", func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return len(m.all) == 2
		})
	}
	for _, srv := range s {
		for _, r := range srv.routes().registered() {
			var peer *Server
			for _, p := range s {
				if p.ID() == r.remoteID {
					peer = p
				}
			}
			back := peer.routes().registered()
			found := false
			for _, pr := range back {
				if pr.remoteID == srv.ID() && pr.token() == r.token() {
					found = true
				}
			}
			if !found {
				t.Fatalf("%s and %s kept different connections", srv.Name(), peer.Name())
			}
		}
	}
}

func TestAServerStartedLastJoinsAndCatchesUpOnInterest(t *testing.T) {
	a := startMember(t, clusterOpts("a", RandomPort, nil), nil)
	b := startMember(t, clusterOpts("b", RandomPort, []int{routePort(a)}), nil)
	waitMesh(t, a, b)
	onA := connectTo(t, a.ClientURL())
	sub, _ := onA.SubscribeSync("late.>")
	qsub, _ := onA.QueueSubscribeSync("late.q", "workers")
	noErr(t, onA.Flush())

	c := startMember(t, clusterOpts("c", RandomPort, []int{routePort(a), routePort(b)}), nil)
	waitMesh(t, a, b, c)
	waitInterest(t, c, "late.x", 1)
	waitInterest(t, c, "late.q", 2)
	onC := connectTo(t, c.ClientURL())
	noErr(t, onC.Publish("late.x", []byte("hi")))
	noErr(t, onC.Publish("late.q", []byte("q")))
	noErr(t, onC.Flush())
	if m, err := sub.NextMsg(2 * time.Second); err != nil || string(m.Data) != "hi" {
		t.Fatalf("%v %v", m, err)
	}
	if m, err := qsub.NextMsg(2 * time.Second); err != nil || string(m.Data) != "q" {
		t.Fatalf("%v %v", m, err)
	}
}

func TestAServerThatKnowsOneSeedMeetsTheWholeMeshByGossip(t *testing.T) {
	a := startMember(t, clusterOpts("a", RandomPort, nil), nil)
	b := startMember(t, clusterOpts("b", RandomPort, []int{routePort(a)}), nil)
	waitMesh(t, a, b)
	c := startMember(t, clusterOpts("c", RandomPort, []int{routePort(a)}), nil)
	waitMesh(t, a, b, c)
}

func TestARouteWithAWrongPasswordIsRefusedAndNoPasswordIsLogged(t *testing.T) {
	var logs logbuf.Buffer
	hashed := clusterOpts("a", RandomPort, nil)
	// The accepting side may hold a bcrypt hash of the route password.
	hashed.Cluster.Authorization.Password = mustBcrypt(t, testRoutePass)
	a := startMember(t, hashed, &logs)
	bad := clusterOpts("b", RandomPort, nil)
	bad.Cluster.Routes = []string{routeURLFor(routePort(a), testRouteUser, "wrong-pw-123")}
	b := startMember(t, bad, &logs)
	waitUntil(t, 5*time.Second, "the refusal in the log", func() bool {
		return strings.Contains(logs.String(), "authorization violation")
	})
	if a.routes().numRoutes() != 0 || b.routes().numRoutes() != 0 {
		t.Fatal("a route with a wrong password was registered")
	}
	c := startMember(t, clusterOpts("c", RandomPort, []int{routePort(a)}), &logs)
	waitMesh(t, a, c)
	for _, secret := range []string{testRoutePass, "wrong-pw-123"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a route password appears in the logs:\n%s", logs.String())
		}
	}
}

func TestClientsLearnTheOtherServersURLsByAsyncInfo(t *testing.T) {
	s := startCluster(t, 3)
	nc := connectTo(t, s[0].ClientURL())
	waitUntil(t, 5*time.Second, "two discovered servers", func() bool {
		return len(nc.DiscoveredServers()) == 2
	})
	var mu sync.Mutex
	var discovered []string
	mu.Lock()
	discovered = nc.DiscoveredServers()
	mu.Unlock()
	for _, srv := range s[1:] {
		found := false
		for _, u := range discovered {
			if strings.HasSuffix(srv.ClientURL(), strings.TrimPrefix(u, "nats://")) {
				found = true
			}
		}
		if !found {
			t.Fatalf("%s not among %v", srv.ClientURL(), discovered)
		}
	}
}

func TestNoAdvertiseKeepsClientURLsOutOfInfo(t *testing.T) {
	var servers []*Server
	var seeds []int
	for i := range 2 {
		o := clusterOpts(fmt.Sprint(i), RandomPort, seeds)
		o.Cluster.NoAdvertise = true
		servers = append(servers, startMember(t, o, nil))
		seeds = append(seeds, routePort(servers[i]))
	}
	waitMesh(t, servers...)
	nc := connectTo(t, servers[0].ClientURL())
	noErr(t, nc.Flush())
	if d := nc.DiscoveredServers(); len(d) != 0 {
		t.Fatalf("discovered %v despite no_advertise", d)
	}
}

func TestPermissionsHoldAcrossServers(t *testing.T) {
	var servers []*Server
	var seeds []int
	for i := range 2 {
		o := clusterOpts(fmt.Sprint(i), RandomPort, seeds)
		o.Authorization = &conf.Authorization{Users: []conf.User{
			{Name: "pub", Password: "pw", Permissions: &conf.Permissions{
				Publish: &conf.SubjectPermission{Allow: []string{"public.>", "svc.>"}}}},
			{Name: "sub", Password: "pw", Permissions: &conf.Permissions{
				Subscribe: &conf.SubjectPermission{Allow: []string{"public.>", "svc.>"}, Deny: []string{"public.secret"}},
				Publish:   &conf.SubjectPermission{Allow: []string{"nothing"}}, AllowResponses: true}},
		}}
		servers = append(servers, startMember(t, o, nil))
		seeds = append(seeds, routePort(servers[i]))
	}
	waitMesh(t, servers...)
	userURL := func(s *Server, user string) string {
		return strings.Replace(s.ClientURL(), "nats://", "nats://"+user+":pw@", 1)
	}
	sub := connectTo(t, userURL(servers[1], "sub"))
	wide, _ := sub.SubscribeSync("public.*")
	if _, err := sub.Subscribe("svc.ask", func(m *nats.Msg) { respond(t, m, []byte("answer")) }); err != nil {
		t.Fatal(err)
	}
	noErr(t, sub.Flush())
	waitInterest(t, servers[0], "public.x", 1)
	waitInterest(t, servers[0], "svc.ask", 1)

	pub := connectTo(t, userURL(servers[0], "pub"))
	noErr(t, pub.Publish("public.secret", []byte("denied to sub")))
	noErr(t, pub.Publish("public.news", []byte("allowed")))
	noErr(t, pub.Flush())
	if m, err := wide.NextMsg(2 * time.Second); err != nil || string(m.Data) != "allowed" {
		t.Fatalf("got %v %v, want only the allowed message", m, err)
	}
	// allow_responses on one server lets the reply cross back to the other.
	if m, err := pub.Request("svc.ask", nil, 2*time.Second); err != nil || string(m.Data) != "answer" {
		t.Fatalf("a response across servers: %v %v", m, err)
	}
}

func TestClientsOfAStoppedServerFailOverAndTheServerRejoinsWhenRestarted(t *testing.T) {
	ports := freePorts(t, 3)
	var s []*Server
	for i := range 3 {
		s = append(s, startMember(t, clusterOpts(fmt.Sprint(i), ports[i], ports), nil))
	}
	waitMesh(t, s...)
	var reconnects atomic.Int64
	nc := connectTo(t, s[0].ClientURL(), nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1),
		nats.ReconnectHandler(func(*nats.Conn) { reconnects.Add(1) }))
	sub, _ := nc.SubscribeSync("fo.x")
	noErr(t, nc.Flush())
	waitUntil(t, 5*time.Second, "connect_urls", func() bool { return len(nc.DiscoveredServers()) == 2 })

	s[0].Shutdown()
	waitUntil(t, 10*time.Second, "the fail-over", func() bool { return reconnects.Load() == 1 && nc.IsConnected() })
	waitMesh(t, s[1], s[2])
	pub := connectTo(t, s[2].ClientURL())
	waitUntil(t, 5*time.Second, "the resubscription", func() bool {
		return s[2].routes().numRemoteSubs() > 0 || nc.ConnectedUrl() == s[2].ClientURL()
	})
	noErr(t, pub.Publish("fo.x", []byte("1")))
	if m, err := sub.NextMsg(2 * time.Second); err != nil || string(m.Data) != "1" {
		t.Fatalf("after the fail-over: %v %v", m, err)
	}

	restarted := startMember(t, clusterOpts("0", ports[0], ports), nil)
	waitMesh(t, restarted, s[1], s[2])
	waitInterest(t, restarted, "fo.x", 1)
	back := connectTo(t, restarted.ClientURL())
	noErr(t, back.Publish("fo.x", []byte("2")))
	if m, err := sub.NextMsg(2 * time.Second); err != nil || string(m.Data) != "2" {
		t.Fatalf("from the restarted server: %v %v", m, err)
	}
}

func TestAQueueGroupWithNoLocalMemberIsSpreadOverServersByTheirWeights(t *testing.T) {
	s := startCluster(t, 3)
	var onOne, onThree atomic.Int64
	nc1 := connectTo(t, s[1].ClientURL())
	if _, err := nc1.QueueSubscribe("w", "g", func(*nats.Msg) { onOne.Add(1) }); err != nil {
		t.Fatal(err)
	}
	noErr(t, nc1.Flush())
	nc2 := connectTo(t, s[2].ClientURL())
	for range 3 {
		if _, err := nc2.QueueSubscribe("w", "g", func(*nats.Msg) { onThree.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	noErr(t, nc2.Flush())
	waitUntil(t, 5*time.Second, "weights to arrive", func() bool {
		var w1, w3 int64
		for _, r := range s[0].routes().registered() {
			sl := r.sublist(conf.GlobalAccount)
			if sl == nil {
				continue
			}
			for _, q := range sl.Match("w").qsubs {
				if r.remoteID == s[1].ID() {
					w1 = r.weight(conf.GlobalAccount, q)
				} else {
					w3 = r.weight(conf.GlobalAccount, q)
				}
			}
		}
		return w1 == 1 && w3 == 3
	})
	pub := connectTo(t, s[0].ClientURL())
	const n = 2000
	for range n {
		noErr(t, pub.Publish("w", nil))
	}
	noErr(t, pub.Flush())
	waitUntil(t, 5*time.Second, "every message", func() bool { return onOne.Load()+onThree.Load() == n })
	// Expect about 1:3; far from both 1:1 and all-or-nothing.
	if share := float64(onThree.Load()) / n; share < 0.65 || share > 0.85 {
		t.Fatalf("the server with 3 members took %.2f of the messages, want about 0.75", share)
	}
}
