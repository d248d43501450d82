package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/internal/logbuf"
	"github.com/natsforge/natsforge/broker/monitor"
)

// memberConfig renders one cluster member's config file: alice and bob (bob
// may subscribe to bobSubs only), the cluster on clusterPort with routes to
// every port in routePorts.
type memberConfig struct {
	name                    string
	port, clusterPort       int
	alicePass, bobPass      string // bcrypt hashes or plaintext
	bobSubs                 string
	routePorts              []int
	lameDuck, lameDuckGrace string
	withoutBob              bool // render alice only: bob removed
}

func (mc memberConfig) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nhost: 127.0.0.1\nport: %d\n", mc.name, mc.port)
	bobSubs := mc.bobSubs
	if bobSubs == "" {
		bobSubs = ">"
	}
	fmt.Fprintf(&b, "authorization {\n  users = [\n    { user: alice, password: %q }\n", mc.alicePass)
	if !mc.withoutBob {
		fmt.Fprintf(&b, "    { user: bob, password: %q, permissions: { subscribe: %q } }\n", mc.bobPass, bobSubs)
	}
	b.WriteString("  ]\n}\n")
	fmt.Fprintf(&b, "cluster {\n  name: test\n  listen: 127.0.0.1:%d\n", mc.clusterPort)
	fmt.Fprintf(&b, "  authorization { user: %s, password: %s }\n  routes = [\n", testRouteUser, testRoutePass)
	for _, p := range mc.routePorts {
		fmt.Fprintf(&b, "    %s\n", routeURLFor(p, testRouteUser, testRoutePass))
	}
	b.WriteString("  ]\n}\n")
	if mc.lameDuck != "" {
		fmt.Fprintf(&b, "lame_duck_duration: %q\nlame_duck_grace_period: %q\n", mc.lameDuck, mc.lameDuckGrace)
	}
	return b.String()
}

// fileMember is a cluster member started from a config file, as the binary is.
type fileMember struct {
	s    *Server
	path string
	cfg  memberConfig
}

func (fm *fileMember) url(user, pass string) string {
	return fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", user, pass, fm.cfg.port)
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func startFileMember(t testing.TB, path string, mc memberConfig, logs *logbuf.Buffer) *fileMember {
	t.Helper()
	writeFile(t, path, mc.render())
	o, _, err := conf.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := startMember(t, o, logs)
	if err := s.SetConfigFile(path, nil); err != nil {
		t.Fatal(err)
	}
	return &fileMember{s: s, path: path, cfg: mc}
}

// startFileCluster starts n members from config files in dir.
func startFileCluster(t testing.TB, n int, base memberConfig, logs *logbuf.Buffer) []*fileMember {
	t.Helper()
	ports := freePorts(t, 2*n)
	dir := t.TempDir()
	var ms []*fileMember
	for i := range n {
		mc := base
		mc.name = fmt.Sprintf("m%d", i)
		mc.port, mc.clusterPort = ports[2*i], ports[2*i+1]
		for j := range n {
			mc.routePorts = append(mc.routePorts, ports[2*j+1])
		}
		ms = append(ms, startFileMember(t, filepath.Join(dir, mc.name+".conf"), mc, logs))
	}
	var servers []*Server
	for _, m := range ms {
		servers = append(servers, m.s)
	}
	waitMesh(t, servers...)
	return ms
}

var (
	alicePass1, alicePass2 = "alice-first-pw", "alice-second-pw"
	bobPass                = "bob-pw"
)

func hashed(t testing.TB) (a1, a2, b string) {
	return mustBcrypt(t, alicePass1), mustBcrypt(t, alicePass2), mustBcrypt(t, bobPass)
}

func TestRotatingAPasswordByReloadClosesOnlyThatUsersClientsOnEveryServer(t *testing.T) {
	a1, a2, b := hashed(t)
	ms := startFileCluster(t, 3, memberConfig{alicePass: a1, bobPass: b}, nil)

	type watched struct {
		nc           *nats.Conn
		disconnected atomic.Int64
		authErr      atomic.Bool
	}
	var alices, bobs []*watched
	for _, m := range ms {
		for _, who := range []string{"alice", "bob"} {
			w := &watched{}
			pass := map[string]string{"alice": alicePass1, "bob": bobPass}[who]
			w.nc = connectTo(t, m.url(who, pass), nats.NoReconnect(),
				nats.DisconnectErrHandler(func(*nats.Conn, error) { w.disconnected.Add(1) }),
				nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
					if errors.Is(err, nats.ErrAuthorization) {
						w.authErr.Store(true)
					}
				}))
			if who == "alice" {
				alices = append(alices, w)
			} else {
				bobs = append(bobs, w)
			}
		}
	}
	// Bob subscribes on m0; bob on m2 publishes to it after the rotation.
	bsub, err := bobs[0].nc.SubscribeSync("bob.inbox")
	if err != nil {
		t.Fatal(err)
	}
	noErr(t, bobs[0].nc.Flush())
	waitInterest(t, ms[2].s, "bob.inbox", 1)

	for _, m := range ms {
		m.cfg.alicePass = a2
		writeFile(t, m.path, m.cfg.render())
		if err := m.s.Reload(); err != nil {
			t.Fatalf("%s: %v", m.s.Name(), err)
		}
	}
	for i, a := range alices {
		waitUntil(t, 5*time.Second, fmt.Sprintf("alice on m%d closed", i), func() bool { return a.nc.IsClosed() })
		waitUntil(t, 5*time.Second, fmt.Sprintf("alice on m%d told 'Authorization Violation'", i), a.authErr.Load)
	}
	for i, m := range ms {
		if _, err := nats.Connect(m.url("alice", alicePass1)); err == nil {
			t.Errorf("m%d still takes alice's old password", i)
		}
		connectTo(t, m.url("alice", alicePass2))
	}
	if err := bobs[2].nc.Publish("bob.inbox", []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if m, err := bsub.NextMsg(2 * time.Second); err != nil || string(m.Data) != "still here" {
		t.Fatalf("bob's subscription after the reload: %v %v", m, err)
	}
	for i, b := range bobs {
		if b.disconnected.Load() != 0 || !b.nc.IsConnected() {
			t.Errorf("bob on m%d was disconnected by a reload that did not concern him", i)
		}
	}
}

func TestAUserRemovedByReloadIsCutOffOnEveryServerAndNobodyElseIs(t *testing.T) {
	a, _, b := hashed(t)
	ms := startFileCluster(t, 2, memberConfig{alicePass: a, bobPass: b}, nil)
	type watched struct {
		nc      *nats.Conn
		authErr atomic.Bool
	}
	watch := func(m *fileMember, user, pass string) *watched {
		w := &watched{}
		w.nc = connectTo(t, m.url(user, pass), nats.NoReconnect(),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				if errors.Is(err, nats.ErrAuthorization) {
					w.authErr.Store(true)
				}
			}))
		return w
	}
	var bobs, alices []*watched
	for _, m := range ms {
		bobs = append(bobs, watch(m, "bob", bobPass))
		alices = append(alices, watch(m, "alice", alicePass1))
	}
	for _, m := range ms {
		m.cfg.withoutBob = true
		writeFile(t, m.path, m.cfg.render())
		if err := m.s.Reload(); err != nil {
			t.Fatalf("%s: %v", m.s.Name(), err)
		}
	}
	for i, w := range bobs {
		waitUntil(t, 5*time.Second, fmt.Sprintf("removed bob on m%d closed", i), w.nc.IsClosed)
		waitUntil(t, 5*time.Second, fmt.Sprintf("removed bob on m%d told 'Authorization Violation'", i), w.authErr.Load)
	}
	for i, m := range ms {
		if nc, err := nats.Connect(m.url("bob", bobPass)); err == nil {
			nc.Close()
			t.Errorf("m%d still takes removed bob", i)
		}
	}
	// Alice, untouched by the reload, still talks across the cluster.
	sub, err := alices[0].nc.SubscribeSync("alice.inbox")
	if err != nil {
		t.Fatal(err)
	}
	noErr(t, alices[0].nc.Flush())
	waitInterest(t, ms[1].s, "alice.inbox", 1)
	if err := alices[1].nc.Publish("alice.inbox", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(2 * time.Second); err != nil {
		t.Fatalf("alice after bob's removal: %v", err)
	}
	for i, w := range alices {
		if !w.nc.IsConnected() {
			t.Errorf("alice on m%d was disconnected by a reload that removed bob", i)
		}
	}
}

func TestNarrowedPermissionsDropOnlyTheOffendingSubscriptions(t *testing.T) {
	_, _, b := hashed(t)
	ms := startFileCluster(t, 1, memberConfig{alicePass: "x", bobPass: b, bobSubs: ">"}, nil)
	m := ms[0]
	errs := make(chan error, 10)
	nc := connectTo(t, m.url("bob", bobPass), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	keep, _ := nc.SubscribeSync("public.news")
	drop, _ := nc.SubscribeSync("private.stuff")
	noErr(t, nc.Flush())

	m.cfg.bobSubs = "public.>"
	writeFile(t, m.path, m.cfg.render())
	if err := m.s.Reload(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !strings.Contains(strings.ToLower(err.Error()), `permissions violation for subscription to "private.stuff"`) {
			t.Fatalf("got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no permissions violation reported")
	}
	pub := connectTo(t, m.url("alice", "x"))
	noErr(t, pub.Publish("public.news", []byte("n")))
	noErr(t, pub.Publish("private.stuff", []byte("p")))
	noErr(t, pub.Flush())
	if _, err := keep.NextMsg(2 * time.Second); err != nil {
		t.Fatalf("the allowed subscription lost its messages: %v", err)
	}
	if msg, err := drop.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("the dropped subscription still got %q", msg.Data)
	}
	if !nc.IsConnected() {
		t.Fatal("narrowing permissions closed the connection")
	}
}

func TestABrokenConfigReloadLeavesEveryServerServingAndShowsInMonitoring(t *testing.T) {
	a1, _, b := hashed(t)
	var logs logbuf.Buffer
	ms := startFileCluster(t, 3, memberConfig{alicePass: a1, bobPass: b}, &logs)
	for _, m := range ms {
		digest := m.s.Varz().ConfigDigest
		writeFile(t, m.path, "port: 4222\nauthorization {\n  users = [ { user: alice password: \n")
		err := m.s.Reload()
		if err == nil {
			t.Fatalf("%s accepted a broken config", m.s.Name())
		}
		v := m.s.Varz()
		if v.ReloadErrors != 1 || !strings.Contains(v.LastReloadError, m.path+":") || v.ConfigDigest != digest {
			t.Fatalf("varz after the refusal: errors %d, error %q, digest changed %v", v.ReloadErrors, v.LastReloadError, v.ConfigDigest != digest)
		}
		noErr(t, connectTo(t, m.url("alice", alicePass1)).Flush())

		// A config that parses but moves the client port is refused whole too.
		moved := m.cfg
		moved.port++
		moved.alicePass = "changed"
		writeFile(t, m.path, moved.render())
		if err := m.s.Reload(); err == nil || !strings.Contains(err.Error(), "port") {
			t.Fatalf("a port change was not refused: %v", err)
		}
		noErr(t, connectTo(t, m.url("alice", alicePass1)).Flush())

		mon := monitor.New(m.s)
		rec := httpGet(t, mon.Handler(), "/metrics")
		if !strings.Contains(rec, `natsforge_config_reloads_total{result="failure"} 2`) {
			t.Fatalf("metrics do not count the refusals:\n%s", rec)
		}
		rec = httpGet(t, mon.Handler(), "/varz")
		if !strings.Contains(rec, `"config_reload_error": "reload: port cannot change`) {
			t.Fatalf("varz does not show the last error:\n%s", rec)
		}
	}
	if !strings.Contains(logs.String(), "config reload refused") {
		t.Fatal("the refusal was not logged")
	}
}

func TestAKubernetesSecretVolumeSwapTriggersAReload(t *testing.T) {
	a1, a2, b := hashed(t)
	ports := freePorts(t, 2)
	mc := memberConfig{name: "k", port: ports[0], clusterPort: ports[1], alicePass: a1, bobPass: b}
	vol, path := newKubeSecretVolume(t, "nats.conf", []byte(mc.render()))
	o, _, err := conf.ParseFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := startMember(t, o, nil)
	if err := s.SetConfigFile(path, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.WatchConfigFile(10 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	before := s.Varz().ConfigDigest
	mc.alicePass = a2
	vol.update(t, "nats.conf", []byte(mc.render()))
	waitUntil(t, 5*time.Second, "the reload", func() bool { return s.Varz().Reloads == 1 })
	if s.Varz().ConfigDigest == before {
		t.Fatal("config_digest did not change")
	}
	fm := &fileMember{s: s, cfg: mc}
	connectTo(t, fm.url("alice", alicePass2))
	if _, err := nats.Connect(fm.url("alice", alicePass1)); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("old password: %v", err)
	}
}

func httpGet(t testing.TB, h http.Handler, path string) string {
	t.Helper()
	srv := newTestHTTP(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestARouteAddedByReloadIsDialledAndARemovedOneIsDropped(t *testing.T) {
	_, _, b := hashed(t)
	ports := freePorts(t, 4)
	dir := t.TempDir()
	x := startFileMember(t, filepath.Join(dir, "x.conf"),
		memberConfig{name: "x", port: ports[0], clusterPort: ports[1], alicePass: "a", bobPass: b}, nil)
	y := startFileMember(t, filepath.Join(dir, "y.conf"),
		memberConfig{name: "y", port: ports[2], clusterPort: ports[3], alicePass: "a", bobPass: b}, nil)
	if x.s.routes().numRoutes() != 0 {
		t.Fatal("routes before any were configured")
	}
	x.cfg.routePorts = []int{ports[3]}
	writeFile(t, x.path, x.cfg.render())
	if err := x.s.Reload(); err != nil {
		t.Fatal(err)
	}
	waitMesh(t, x.s, y.s)
	if got := x.s.Varz().Cluster.URLs; len(got) != 1 {
		t.Fatalf("varz cluster urls %v", got)
	}

	x.cfg.routePorts = nil
	writeFile(t, x.path, x.cfg.render())
	if err := x.s.Reload(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the removed route to close", func() bool {
		return x.s.routes().numRoutes() == 0 && y.s.routes().numRoutes() == 0
	})
}
