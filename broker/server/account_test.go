package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/monitor"
)

// Accounts, checked by behaviour against nats-server: the same config file
// runs our broker and nats-server (one server, or three in a cluster), and
// the same scenario, with the real nats.go client, runs against both.

// testAccounts: A exports a stream and a service to all, a private stream to
// C only; B imports A's stream under a prefix and A's service under another
// name; C imports the private stream; g is in the global account.
const testAccounts = `
accounts {
  A {
    users: [ { user: a, password: a }, { user: a_narrow, password: a_narrow, permissions: { publish: "nothing.>" } }
             { user: a_resp, password: a_resp, permissions: { publish: "nothing.>", allow_responses: true } } ]
    exports: [
      { stream: "orders.>" }
      { service: "help.>" }
      { stream: "private.>", accounts: [C] }
    ]
  }
  B {
    users: [ { user: b, password: b }, { user: b2, password: b2 } ]
    imports: [
      { stream: { account: A, subject: "orders.>" }, prefix: "from_a" }
      { service: { account: A, subject: "help.>" }, to: "a.help.>" }
    ]
  }
  C {
    users: [ { user: c, password: c } ]
    imports: [ { stream: { account: A, subject: "private.>" } } ]
  }
}
authorization { users: [ { user: g, password: g } ] }
`

// accountsMember is one server's config file: the accounts, its client port
// and, in a cluster, its routes.
func accountsMemberConf(accounts string, port, clusterPort int, routePorts []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: srv-%d\nhost: 127.0.0.1\nport: %d\n%s\n", port, port, accounts)
	if clusterPort != 0 {
		fmt.Fprintf(&b, "cluster { name: acc, listen: \"127.0.0.1:%d\", authorization { user: r, password: r }, routes: [", clusterPort)
		for _, p := range routePorts {
			fmt.Fprintf(&b, " \"nats://r:r@127.0.0.1:%d\",", p)
		}
		b.WriteString(" ] }\n")
	}
	return b.String()
}

// accountsCluster is n servers of one kind (ours or nats-server) running
// the same accounts.
type accountsCluster struct {
	ports   []int
	paths   []string
	reload  func(i int) error
	servers []*Server // ours only
}

func (ac *accountsCluster) url(i int, user string) string {
	return fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", user, user, ac.ports[i])
}

// startAccounts starts n servers (ours, or nats-server when oracle) from
// config files holding accounts.
func startAccounts(t *testing.T, oracle bool, n int, accounts string) *accountsCluster {
	t.Helper()
	ports := freePorts(t, 2*n)
	ac := &accountsCluster{ports: ports[:n]}
	dir := t.TempDir()
	var oracles []*natsserver.Server
	for i := range n {
		clusterPort, routes := 0, []int(nil)
		if n > 1 {
			clusterPort, routes = ports[n+i], ports[n:]
		}
		path := filepath.Join(dir, fmt.Sprintf("s%d.conf", i))
		writeFile(t, path, accountsMemberConf(accounts, ports[i], clusterPort, routes))
		ac.paths = append(ac.paths, path)
		if oracle {
			o, err := natsserver.ProcessConfigFile(path)
			if err != nil {
				t.Fatalf("nats-server refuses the config: %v", err)
			}
			o.NoLog, o.NoSigs = true, true
			// One route connection per pair, as ours: messages of all
			// accounts between two servers keep their order.
			o.Cluster.PoolSize = -1
			s, err := natsserver.NewServer(o)
			if err != nil {
				t.Fatalf("nats-server: %v", err)
			}
			go s.Start()
			if !s.ReadyForConnections(10 * time.Second) {
				t.Fatal("nats-server did not start")
			}
			t.Cleanup(s.Shutdown)
			oracles = append(oracles, s)
			continue
		}
		o, _, err := conf.LoadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		s := startMember(t, o, nil)
		if err := s.SetConfigFile(path, nil); err != nil {
			t.Fatal(err)
		}
		ac.servers = append(ac.servers, s)
	}
	ac.reload = func(i int) error {
		if oracle {
			return oracles[i].Reload()
		}
		return ac.servers[i].Reload()
	}
	if n > 1 {
		waitUntil(t, 10*time.Second, "a full mesh", func() bool {
			for i := range n {
				if oracle && oracles[i].NumRoutes() < n-1 || !oracle && ac.servers[i].routes().numRoutes() < n-1 {
					return false
				}
			}
			return true
		})
	}
	return ac
}

// forBoth runs f against our broker and against nats-server.
func forBoth(t *testing.T, n int, accounts string, f func(t *testing.T, ac *accountsCluster)) {
	for _, oracle := range []bool{false, true} {
		name := "natsforge"
		if oracle {
			name = "nats-server"
		}
		t.Run(name, func(t *testing.T) { f(t, startAccounts(t, oracle, n, accounts)) })
	}
}

// untilReceived publishes with pub until sub gets a message (interest takes
// a moment to cross routes), and returns it.
func untilReceived(t *testing.T, what string, pub func(), sub *nats.Subscription) *nats.Msg {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		pub()
		if m, err := sub.NextMsg(50 * time.Millisecond); err == nil {
			return m
		}
	}
	t.Fatalf("%s: nothing received", what)
	return nil
}

// drained flushes the connections, then says whether sub holds nothing.
// A publisher's flush returns once the server has queued what it
// delivered, and the subscriber's flush once that has been read.
func drained(t *testing.T, sub *nats.Subscription, conns ...*nats.Conn) bool {
	t.Helper()
	for _, nc := range conns {
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	n, _, err := sub.Pending()
	if err != nil {
		t.Fatal(err)
	}
	return n == 0
}

// accountsScenario publishes from server pubAt and subscribes at subAt (the
// same index for one server): streams with their prefix, isolation, private
// exports, and a service across accounts.
func accountsScenario(t *testing.T, ac *accountsCluster, pubAt, subAt, svcAt int) {
	conn := func(i int, user string) *nats.Conn { return connectTo(t, ac.url(i, user)) }
	a, b, c, g := conn(pubAt, "a"), conn(subAt, "b"), conn(subAt, "c"), conn(subAt, "g")
	sync := func(nc *nats.Conn, subject string) *nats.Subscription {
		s, err := nc.SubscribeSync(subject)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	imported := sync(b, "from_a.orders.>")
	plainB := sync(b, "orders.>")
	global := sync(g, "orders.>")
	privC := sync(c, "private.>")
	privB := sync(b, "private.>")
	privBPrefixed := sync(b, "from_a.private.>")
	for _, nc := range []*nats.Conn{b, c, g} {
		noErr(t, nc.Flush())
	}

	m := untilReceived(t, "B's import of A's stream", func() { noErr(t, a.Publish("orders.1", []byte("o1"))) }, imported)
	if m.Subject != "from_a.orders.1" || string(m.Data) != "o1" {
		t.Fatalf("B got %q %q, want from_a.orders.1 o1", m.Subject, m.Data)
	}
	untilReceived(t, "C's import of A's private stream", func() { noErr(t, a.Publish("private.x", []byte("p"))) }, privC)
	// Ordering: what A published reached B and C; had it also reached the
	// global account, or B unprefixed, it would be queued there by now.
	if !drained(t, global, a, g) || !drained(t, plainB, b) {
		t.Error("a message published in A reached another account outside its imports")
	}
	if !drained(t, privB, b) || !drained(t, privBPrefixed, b) {
		t.Error("a stream exported to C only reached B")
	}

	// Nothing flows back: B's publish on the same subject stays in B.
	inA := sync(a, "orders.>")
	noErr(t, a.Flush())
	untilReceived(t, "B's own subscriber", func() { noErr(t, b.Publish("orders.2", []byte("b"))) }, plainB)
	if !drained(t, inA, b, a) {
		t.Error("a message published in B reached A")
	}

	// The service: a responder in A, at svcAt, answers B's requests on
	// B's name for it; the reply crosses back to B.
	responder := conn(svcAt, "a")
	if _, err := responder.Subscribe("help.>", func(m *nats.Msg) {
		if err := m.Respond([]byte("A answers " + m.Subject)); err != nil {
			t.Error(err) // a handler's goroutine: no Fatal
		}
	}); err != nil {
		t.Fatal(err)
	}
	noErr(t, responder.Flush())
	var reply *nats.Msg
	waitUntil(t, 5*time.Second, "B's request answered through the import", func() bool {
		var err error
		reply, err = b.Request("a.help.me", []byte("?"), 200*time.Millisecond)
		return err == nil
	})
	if string(reply.Data) != "A answers help.me" {
		t.Errorf("reply %q, want %q", reply.Data, "A answers help.me")
	}
	// The global account imports nothing: the subject is nobody's there.
	if _, err := g.Request("help.me", nil, 500*time.Millisecond); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("a request from the global account: %v, want no responders", err)
	}
}

func TestAccountsIsolateAndShareStreamsAndServicesOnOneServerAsNATSServer(t *testing.T) {
	forBoth(t, 1, testAccounts, func(t *testing.T, ac *accountsCluster) {
		accountsScenario(t, ac, 0, 0, 0)
	})
}

func TestAccountsIsolateAndShareStreamsAndServicesAcrossThreeServersAsNATSServer(t *testing.T) {
	forBoth(t, 3, testAccounts, func(t *testing.T, ac *accountsCluster) {
		accountsScenario(t, ac, 0, 1, 2)
	})
}

// A responder whose publish permissions allow nothing answers a request that
// crossed from B exactly when nats-server lets it: not on its own, with
// allow_responses yes (nats-server gives no reply permission implicitly).
func TestAResponderWithNarrowPermissionsAnswersAnImportedRequestAsNATSServer(t *testing.T) {
	for _, user := range []string{"a_narrow", "a_resp"} {
		results := map[bool]string{}
		for _, oracle := range []bool{false, true} {
			ac := startAccounts(t, oracle, 1, testAccounts)
			responder := connectTo(t, ac.url(0, user))
			if _, err := responder.Subscribe("help.>", func(m *nats.Msg) { respond(t, m, []byte("ok")) }); err != nil {
				t.Fatal(err)
			}
			noErr(t, responder.Flush())
			b := connectTo(t, ac.url(0, "b"))
			_, err := b.Request("a.help.x", nil, 500*time.Millisecond)
			results[oracle] = fmt.Sprint(err)
		}
		if results[false] != results[true] {
			t.Errorf("%s: natsforge: %s; nats-server: %s", user, results[false], results[true])
		}
		if want := map[string]string{"a_narrow": "nats: timeout", "a_resp": "<nil>"}[user]; results[true] != want {
			t.Errorf("%s: nats-server says %s, the test expects %s", user, results[true], want)
		}
	}
}

func TestReloadChangesAccountsAsNATSServerDoes(t *testing.T) {
	// Without the stream export and its import, and without user c.
	narrowed := strings.NewReplacer(
		`{ stream: "orders.>" }`, ``,
		`{ stream: { account: A, subject: "orders.>" }, prefix: "from_a" }`, ``,
		`users: [ { user: c, password: c } ]`, `users: [ { user: c2, password: c2 }, { user: b2, password: b2 } ]`,
		`{ user: b2, password: b2 }`, ``,
	).Replace(testAccounts)
	forBoth(t, 1, testAccounts, func(t *testing.T, ac *accountsCluster) {
		a, b := connectTo(t, ac.url(0, "a")), connectTo(t, ac.url(0, "b"))
		closed := func(user string) chan struct{} {
			ch := make(chan struct{})
			connectTo(t, ac.url(0, user), nats.NoReconnect(), nats.ClosedHandler(func(*nats.Conn) { close(ch) }))
			return ch
		}
		cClosed, b2Closed := closed("c"), closed("b2")
		g := connectTo(t, ac.url(0, "g"))
		imported, _ := b.SubscribeSync("from_a.orders.>")
		noErr(t, b.Flush())
		untilReceived(t, "the import before the reload", func() { noErr(t, a.Publish("orders.1", nil)) }, imported)

		writeFile(t, ac.paths[0], accountsMemberConf(narrowed, ac.ports[0], 0, nil))
		if err := ac.reload(0); err != nil {
			t.Fatal(err)
		}
		for user, ch := range map[string]chan struct{}{"removed user c": cClosed, "user b2, moved from B to C": b2Closed} {
			select {
			case <-ch:
			case <-time.After(5 * time.Second):
				t.Fatalf("the %s is still connected", user)
			}
		}
		// The removed export stops delivery; B's subscription stays.
		probe, _ := b.SubscribeSync("probe")
		noErr(t, b.Flush())
		noErr(t, a.Publish("orders.2", nil))
		noErr(t, a.Flush())
		untilReceived(t, "B still served", func() { noErr(t, b.Publish("probe", nil)) }, probe)
		if !drained(t, imported, a, b) {
			t.Error("a stream whose export was removed is still delivered")
		}
		// The service import is untouched.
		if _, err := a.Subscribe("help.>", func(m *nats.Msg) { respond(t, m, []byte("ok")) }); err != nil {
			t.Fatal(err)
		}
		noErr(t, a.Flush())
		if _, err := b.Request("a.help.x", nil, 2*time.Second); err != nil {
			t.Errorf("the service after the reload: %v", err)
		}
		for name, nc := range map[string]*nats.Conn{"a": a, "b": b, "g": g} {
			if !nc.IsConnected() {
				t.Errorf("%s was disconnected by a reload that did not touch it", name)
			}
		}
	})
}

func TestAConfigImportingWhatIsNotExportedIsRefusedAtStartAndOnReload(t *testing.T) {
	bad := strings.Replace(testAccounts, `{ stream: { account: A, subject: "private.>" } }`,
		`{ stream: { account: A, subject: "secret.>" } }`, 1)
	path := filepath.Join(t.TempDir(), "bad.conf")
	writeFile(t, path, accountsMemberConf(bad, 4222, 0, nil))
	_, _, err := conf.LoadFile(path)
	var ce *conf.Error
	if !errors.As(err, &ce) || ce.Line == 0 || !strings.Contains(err.Error(), `accounts.C.imports[0].stream: Error adding stream import "secret.>": stream import not authorized`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := natsserver.ProcessConfigFile(path); err == nil || !strings.Contains(err.Error(), "stream import not authorized") {
		t.Fatalf("nats-server: %v", err)
	}

	ac := startAccounts(t, false, 1, testAccounts)
	c := connectTo(t, ac.url(0, "c"))
	writeFile(t, ac.paths[0], accountsMemberConf(bad, ac.ports[0], 0, nil))
	if err := ac.reload(0); err == nil || !strings.Contains(err.Error(), "stream import not authorized") {
		t.Fatalf("reload: %v", err)
	}
	if !c.IsConnected() {
		t.Error("a refused reload disconnected a client")
	}
}

// /connz?auth=1 names each connection's account (not the global one) and
// /subsz?subs=1 each subscription's, as nats-server's do.
func TestMonitoringShowsTheAccountOfEachConnectionAndSubscriptionAsNATSServer(t *testing.T) {
	type seen struct{ conns, subs map[string]string }
	look := func(base string) seen {
		var connz struct {
			Conns []struct {
				User    string `json:"authorized_user"`
				Account string `json:"account"`
			} `json:"connections"`
		}
		var subsz struct {
			Subs []struct {
				Subject string `json:"subject"`
				Account string `json:"account"`
			} `json:"subscriptions_list"`
		}
		if err := json.Unmarshal([]byte(fetch(t, base+"/connz?auth=1")), &connz); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(fetch(t, base+"/subsz?subs=1")), &subsz); err != nil {
			t.Fatal(err)
		}
		out := seen{map[string]string{}, map[string]string{}}
		for _, c := range connz.Conns {
			out.conns[c.User] = c.Account
		}
		for _, s := range subsz.Subs {
			if strings.HasPrefix(s.Subject, "sub.of.") { // not nats-server's internal ones
				out.subs[s.Subject] = s.Account
			}
		}
		return out
	}
	results := map[bool]seen{}
	for _, oracle := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "s.conf")
		port := freePorts(t, 1)[0]
		writeFile(t, path, accountsMemberConf(testAccounts, port, 0, nil))
		var base string
		if oracle {
			o, err := natsserver.ProcessConfigFile(path)
			if err != nil {
				t.Fatal(err)
			}
			o.NoLog, o.NoSigs, o.HTTPHost, o.HTTPPort = true, true, "127.0.0.1", -1
			s, err := natsserver.NewServer(o)
			if err != nil {
				t.Fatal(err)
			}
			go s.Start()
			if !s.ReadyForConnections(10 * time.Second) {
				t.Fatal("nats-server did not start")
			}
			t.Cleanup(s.Shutdown)
			base = "http://" + s.MonitorAddr().String()
		} else {
			o, _, err := conf.LoadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			h := httptest.NewServer(monitor.New(startMember(t, o, nil)).Handler())
			t.Cleanup(h.Close)
			base = h.URL
		}
		for _, user := range []string{"a", "b", "g"} {
			nc := connectTo(t, fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", user, user, port))
			if _, err := nc.SubscribeSync("sub.of." + user); err != nil {
				t.Fatal(err)
			}
			noErr(t, nc.Flush())
		}
		results[oracle] = look(base)
	}
	if d := fmt.Sprint(results[false]); d != fmt.Sprint(results[true]) {
		t.Errorf("natsforge shows %v\nnats-server shows %v", results[false], results[true])
	}
	if results[false].conns["a"] != "A" || results[false].subs["sub.of.b"] != "B" {
		t.Errorf("accounts not shown: %v", results[false])
	}
}

// An account's default_permissions apply to its users (authorization's do
// not), and no_auth_user may name a user in an account, as in nats-server.
func TestAccountDefaultPermissionsAndNoAuthUserInAnAccountAsNATSServer(t *testing.T) {
	const accounts = `
accounts {
  A { users: [ { user: a, password: a } ], default_permissions: { publish: "ok.>" } }
  B { users: [ { user: b, password: b } ] }
}
authorization { default_permissions: { publish: "never" }, users: [ { user: g, password: g } ] }
no_auth_user: b
`
	forBoth(t, 1, accounts, func(t *testing.T, ac *accountsCluster) {
		violations := make(chan error, 4)
		a := connectTo(t, ac.url(0, "a"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
		noErr(t, a.Publish("not.ok", nil))
		noErr(t, a.Flush())
		select {
		case err := <-violations:
			if !strings.Contains(strings.ToLower(err.Error()), `permissions violation for publish to "not.ok"`) {
				t.Errorf("a's violation: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("A's default_permissions did not stop a publish outside ok.>")
		}
		// b takes neither A's defaults nor authorization's; the anonymous
		// client is b, in B.
		anon := connectTo(t, fmt.Sprintf("nats://127.0.0.1:%d", ac.ports[0]))
		b := connectTo(t, ac.url(0, "b"))
		sub, _ := anon.SubscribeSync("anything")
		noErr(t, anon.Flush())
		noErr(t, b.Publish("anything", []byte("x")))
		if _, err := sub.NextMsg(5 * time.Second); err != nil {
			t.Errorf("b to the anonymous client in B: %v", err)
		}
	})
}
