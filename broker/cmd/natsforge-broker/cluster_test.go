package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/natsforge/natsforge/broker/internal/logbuf"
)

// These tests run three brokers as separate processes of the built binary,
// clustered over loopback, and drive them with nats.go and HTTP monitoring.

const (
	routeUser, routePass = "route", "r0ute-pw-xyz"
	alicePw1, alicePw2   = "alice-pw-one", "alice-pw-two"
	bobPw                = "bob-pw"
)

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v still waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func freeLoopbackPorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close() // a listener taken only for its port
	}
	return ports
}

func bcryptOf(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), 4)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// member is one broker process and its config.
type member struct {
	t                       *testing.T
	bin, dir, name          string
	port, clusterPort, http int
	routePorts              []int
	aliceHash, bobHash      string
	extra                   string
	clusterExtra            string // inside the cluster block
	cmd                     *exec.Cmd
	logs                    *logbuf.Buffer
	exited                  chan struct{}
	exitCode                int
}

func (m *member) confPath() string { return filepath.Join(m.dir, m.name+".conf") }

func (m *member) render() string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nhost: 127.0.0.1\nport: %d\nhttp: \"127.0.0.1:%d\"\n", m.name, m.port, m.http)
	fmt.Fprintf(&b, "authorization {\n  users = [\n    { user: alice, password: %q }\n    { user: bob, password: %q }\n  ]\n}\n", m.aliceHash, m.bobHash)
	fmt.Fprintf(&b, "cluster {\n  name: c1\n  listen: 127.0.0.1:%d\n  authorization { user: %s, password: %q }\n  routes = [\n",
		m.clusterPort, routeUser, bcryptOf(m.t, routePass))
	for _, p := range m.routePorts {
		fmt.Fprintf(&b, "    nats://%s:%s@127.0.0.1:%d\n", routeUser, routePass, p)
	}
	b.WriteString("  ]\n")
	b.WriteString(m.clusterExtra)
	b.WriteString("}\n")
	b.WriteString(m.extra)
	return b.String()
}

func (m *member) writeConfig(body string) {
	m.t.Helper()
	tmp := m.confPath() + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Rename(tmp, m.confPath()); err != nil {
		m.t.Fatal(err)
	}
}

func (m *member) start() {
	m.t.Helper()
	m.logs = &logbuf.Buffer{}
	m.exited = make(chan struct{})
	m.cmd = exec.Command(m.bin, "-c", m.confPath())
	m.cmd.Stderr = m.logs
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	cmd, exited := m.cmd, m.exited
	go func() {
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			m.exitCode = ee.ExitCode()
		}
		close(exited)
	}()
	waitFor(m.t, 10*time.Second, m.name+" healthy", func() bool {
		var h map[string]string
		return m.getJSON("/healthz", &h) == nil && h["status"] == "ok"
	})
}

// stop ends the process by its PID if it still runs.
func (m *member) stop() {
	select {
	case <-m.exited:
		return
	default:
	}
	_ = m.cmd.Process.Signal(os.Interrupt)
	select {
	case <-m.exited:
	case <-time.After(5 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

func (m *member) signal(sig os.Signal) {
	m.t.Helper()
	if err := m.cmd.Process.Signal(sig); err != nil {
		m.t.Fatal(err)
	}
}

func (m *member) url(user, pass string) string {
	return fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", user, pass, m.port)
}

func (m *member) get(path string) (string, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", m.http, path))
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func (m *member) getJSON(path string, v any) error {
	body, err := m.get(path)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(body), v)
}

func (m *member) varz() map[string]any {
	m.t.Helper()
	var v map[string]any
	if err := m.getJSON("/varz", &v); err != nil {
		m.t.Fatal(err)
	}
	return v
}

func (m *member) numRoutes() int {
	var rz struct {
		NumRoutes int `json:"num_routes"`
	}
	if m.getJSON("/routez", &rz) != nil {
		return -1
	}
	return rz.NumRoutes
}

// remoteInterest is how many route subscriptions match subject on m, by /routez.
func (m *member) hasRemoteInterest(subject string, n int) bool {
	var rz struct {
		Routes []struct {
			Subs []string `json:"subscriptions_list"`
		} `json:"routes"`
	}
	if m.getJSON("/routez?subs=1", &rz) != nil {
		return false
	}
	got := 0
	for _, r := range rz.Routes {
		for _, s := range r.Subs {
			if s == subject {
				got++
			}
		}
	}
	return got >= n
}

// startProcessCluster builds the binary and starts n members that all list
// every member as a route.
func startProcessCluster(t *testing.T, n int, extra string) []*member {
	t.Helper()
	return startProcessClusterWith(t, n, extra, "")
}

// startProcessClusterWith is startProcessCluster with clusterExtra inside
// every member's cluster block.
func startProcessClusterWith(t *testing.T, n int, extra, clusterExtra string) []*member {
	t.Helper()
	bin := buildBinary(t)
	dir := t.TempDir()
	ports := freeLoopbackPorts(t, 3*n)
	aliceHash, bobHash := bcryptOf(t, alicePw1), bcryptOf(t, bobPw)
	var ms []*member
	for i := range n {
		m := &member{t: t, bin: bin, dir: dir, name: fmt.Sprintf("b%d", i),
			port: ports[3*i], clusterPort: ports[3*i+1], http: ports[3*i+2],
			aliceHash: aliceHash, bobHash: bobHash, extra: extra, clusterExtra: clusterExtra}
		for j := range n {
			m.routePorts = append(m.routePorts, ports[3*j+1])
		}
		ms = append(ms, m)
	}
	for _, m := range ms {
		m.writeConfig(m.render())
		m.start()
		t.Cleanup(m.stop)
	}
	dumpOnFailure(t, ms)
	waitProcessMesh(t, ms...)
	return ms
}

func waitProcessMesh(t *testing.T, ms ...*member) {
	t.Helper()
	waitFor(t, 15*time.Second, "a full mesh", func() bool {
		for _, m := range ms {
			if m.numRoutes() != len(ms)-1 {
				return false
			}
		}
		return true
	})
}

func dial(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func TestThreeBrokerProcessesCarryMessagesRequestsAndQueueGroupsAcrossTheCluster(t *testing.T) {
	ms := startProcessCluster(t, 3, "")
	a := dial(t, ms[0].url("alice", alicePw1))
	b := dial(t, ms[1].url("bob", bobPw))
	c := dial(t, ms[2].url("bob", bobPw))

	sub, _ := b.SubscribeSync("greet.*")
	if _, err := b.Subscribe("svc.time", func(m *nats.Msg) {
		if err := m.Respond([]byte("noon")); err != nil {
			t.Error(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	var q1, q2 atomic.Int64
	if _, err := b.QueueSubscribe("jobs", "workers", func(*nats.Msg) { q1.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if _, err := c.QueueSubscribe("jobs", "workers", func(*nats.Msg) { q2.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "interest on b0", func() bool {
		return ms[0].hasRemoteInterest("greet.*", 1) && ms[0].hasRemoteInterest("svc.time", 1) &&
			ms[0].hasRemoteInterest("jobs", 2)
	})

	if err := a.Publish("greet.world", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(2 * time.Second); err != nil || string(m.Data) != "hello" {
		t.Fatalf("pub/sub across processes: %v %v", m, err)
	}
	if m, err := a.Request("svc.time", nil, 2*time.Second); err != nil || string(m.Data) != "noon" {
		t.Fatalf("request/reply across processes: %v %v", m, err)
	}
	const n = 200
	for range n {
		if err := a.Publish("jobs", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "every job taken", func() bool { return q1.Load()+q2.Load() >= n })
	if _, err := a.Request("svc.time", nil, 2*time.Second); err != nil { // a barrier behind the jobs
		t.Fatal(err)
	}
	if got := q1.Load() + q2.Load(); got != n {
		t.Fatalf("the queue group took %d messages, want exactly %d", got, n)
	}
	if q1.Load() == 0 || q2.Load() == 0 {
		t.Logf("queue members split %d/%d", q1.Load(), q2.Load())
	}
}

func TestABrokerKilledWithSIGKILLLosesItsClientsToTheOthersAndRejoins(t *testing.T) {
	ms := startProcessCluster(t, 3, "")
	var reconnects atomic.Int64
	victim := dial(t, ms[0].url("bob", bobPw), nats.ReconnectWait(50*time.Millisecond),
		nats.ReconnectHandler(func(*nats.Conn) { reconnects.Add(1) }), nats.MaxReconnects(-1))
	sub, _ := victim.SubscribeSync("after.kill")
	if err := victim.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "connect_urls", func() bool { return len(victim.DiscoveredServers()) == 2 })

	ms[0].signal(syscall.SIGKILL)
	<-ms[0].exited
	waitFor(t, 10*time.Second, "the client to fail over", func() bool { return reconnects.Load() == 1 && victim.IsConnected() })
	waitProcessMesh(t, ms[1], ms[2])

	pub := dial(t, ms[2].url("alice", alicePw1))
	waitFor(t, 5*time.Second, "the resubscription to spread", func() bool {
		return ms[1].hasRemoteInterest("after.kill", 1) || ms[2].hasRemoteInterest("after.kill", 1) ||
			strings.HasSuffix(victim.ConnectedUrl(), fmt.Sprint(ms[2].port))
	})
	if err := pub.Publish("after.kill", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(3 * time.Second); err != nil || string(m.Data) != "x" {
		t.Fatalf("after fail-over: %v %v", m, err)
	}

	ms[0].start()
	waitProcessMesh(t, ms...)
	back := dial(t, ms[0].url("alice", alicePw1))
	waitFor(t, 5*time.Second, "the restarted broker to learn the interest", func() bool {
		return ms[0].hasRemoteInterest("after.kill", 1)
	})
	if err := back.Publish("after.kill", []byte("y")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(3 * time.Second); err != nil || string(m.Data) != "y" {
		t.Fatalf("from the restarted broker: %v %v", m, err)
	}
}

// kubeSwap rewrites a config the way the kubelet updates a Secret volume:
// a new timestamped directory, then an atomic swap of the `..data` symlink.
func kubeSwap(t *testing.T, dir, name, body string, gen int) {
	t.Helper()
	ts := filepath.Join(dir, fmt.Sprintf("..2026_11_26_%02d", gen))
	if err := os.Mkdir(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, name), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
}

func TestRotationByReloadReachesEveryBrokerProcessWithoutDisturbingOthers(t *testing.T) {
	ms := startProcessCluster(t, 3, "")
	var bobDisconnects atomic.Int64
	var bobs, alices []*nats.Conn
	var aliceAuthErrs atomic.Int64
	for _, m := range ms {
		bobs = append(bobs, dial(t, m.url("bob", bobPw),
			nats.DisconnectErrHandler(func(*nats.Conn, error) { bobDisconnects.Add(1) })))
		alices = append(alices, dial(t, m.url("alice", alicePw1), nats.NoReconnect(),
			nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
				if errors.Is(err, nats.ErrAuthorization) {
					aliceAuthErrs.Add(1)
				}
			})))
	}
	sub, _ := bobs[0].SubscribeSync("bob.mail")
	if err := bobs[0].Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "bob's interest", func() bool { return ms[2].hasRemoteInterest("bob.mail", 1) })

	newHash := bcryptOf(t, alicePw2)
	digests := map[string]any{}
	for i, m := range ms {
		digests[m.name] = m.varz()["config_digest"]
		m.aliceHash = newHash
		if i == 0 {
			// b0 learns by SIGHUP; the others notice the file change.
			m.writeConfig(m.render())
			m.signal(syscall.SIGHUP)
		} else {
			m.writeConfig(m.render())
		}
	}
	for _, m := range ms {
		waitFor(t, 5*time.Second, m.name+" reloaded", func() bool {
			v := m.varz()
			return v["config_digest"] != digests[m.name] && v["config_reloads"].(float64) >= 1
		})
	}
	waitFor(t, 5*time.Second, "every alice told 'Authorization Violation'", func() bool { return aliceAuthErrs.Load() == 3 })
	for _, a := range alices {
		waitFor(t, 5*time.Second, "alice closed", a.IsClosed)
	}
	for _, m := range ms {
		if _, err := nats.Connect(m.url("alice", alicePw1), nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("%s: the old password: %v", m.name, err)
		}
		dial(t, m.url("alice", alicePw2)).Close()
	}
	if err := bobs[2].Publish("bob.mail", []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(2 * time.Second); err != nil || string(m.Data) != "still here" {
		t.Fatalf("bob after the rotation: %v %v", m, err)
	}
	if bobDisconnects.Load() != 0 {
		t.Fatalf("bob saw %d disconnects", bobDisconnects.Load())
	}
	for _, m := range ms {
		if strings.Contains(m.logs.String(), routePass) || strings.Contains(m.logs.String(), alicePw1) {
			t.Fatalf("%s logged a password", m.name)
		}
	}
}

func TestAKubernetesStyleSecretVolumeUpdateReloadsABrokerProcess(t *testing.T) {
	bin := buildBinary(t)
	ports := freeLoopbackPorts(t, 3)
	vol := t.TempDir()
	// name "nats" makes confPath vol/nats.conf, the symlink the kubelet keeps.
	m := &member{t: t, bin: bin, dir: vol, name: "nats", port: ports[0], clusterPort: ports[1], http: ports[2],
		aliceHash: bcryptOf(t, alicePw1), bobHash: bcryptOf(t, bobPw)}
	kubeSwap(t, vol, "nats.conf", m.render(), 1)
	if err := os.Symlink(filepath.Join("..data", "nats.conf"), filepath.Join(vol, "nats.conf")); err != nil {
		t.Fatal(err)
	}
	m.start()
	t.Cleanup(m.stop)
	before := m.varz()["config_digest"]

	m.aliceHash = bcryptOf(t, alicePw2)
	swapped := time.Now()
	kubeSwap(t, vol, "nats.conf", m.render(), 2)
	waitFor(t, 5*time.Second, "the reload", func() bool { return m.varz()["config_digest"] != before })
	t.Logf("the new config was served %v after the ..data swap", time.Since(swapped).Round(time.Millisecond))
	dial(t, m.url("alice", alicePw2))
	if _, err := nats.Connect(m.url("alice", alicePw1), nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("the old password: %v", err)
	}
}

func TestABrokenConfigLeavesEveryBrokerProcessServingAndShowsInMonitoring(t *testing.T) {
	ms := startProcessCluster(t, 3, "")
	for _, m := range ms {
		m.writeConfig("port: 4222\nauthorization {\n  users = [ { user: alice, password: \n")
		m.signal(syscall.SIGHUP)
	}
	for _, m := range ms {
		waitFor(t, 5*time.Second, m.name+" to report the refusal", func() bool {
			v := m.varz()
			e, _ := v["config_reload_error"].(string)
			return strings.Contains(e, m.confPath()+":") && v["config_reload_errors"].(float64) >= 1
		})
		metrics, err := m.get("/metrics")
		if err != nil || !strings.Contains(metrics, `natsforge_config_reloads_total{result="failure"}`) ||
			strings.Contains(metrics, `natsforge_config_reloads_total{result="failure"} 0`) {
			t.Fatalf("%s /metrics: %v\n%s", m.name, err, metrics)
		}
		dial(t, m.url("alice", alicePw1)).Close()
		if !strings.Contains(m.logs.String(), "config reload refused") {
			t.Fatalf("%s did not log the refusal", m.name)
		}
	}
	waitProcessMesh(t, ms...)
}

func TestSIGTERMPutsABrokerProcessInLameDuckModeAndItExitsZero(t *testing.T) {
	// 30s is nats-server's (and the config's) minimum; clients are closed at
	// most a second apart after the grace period, so this takes seconds.
	ms := startProcessCluster(t, 3, "lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"500ms\"\n")
	var ldm, reconnects atomic.Int64
	var subs []*nats.Subscription
	for range 4 {
		nc := dial(t, ms[0].url("bob", bobPw), nats.ReconnectWait(20*time.Millisecond),
			nats.LameDuckModeHandler(func(*nats.Conn) { ldm.Add(1) }),
			nats.ReconnectHandler(func(*nats.Conn) { reconnects.Add(1) }))
		sub, _ := nc.SubscribeSync("ld.jobs")
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "connect_urls", func() bool { return len(nc.DiscoveredServers()) == 2 })
		subs = append(subs, sub)
	}
	ms[0].signal(syscall.SIGTERM)
	waitFor(t, 5*time.Second, "lame duck INFO", func() bool { return ldm.Load() == 4 })
	select {
	case <-ms[0].exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the broker did not exit")
	}
	if ms[0].exitCode != 0 {
		t.Fatalf("exit code %d", ms[0].exitCode)
	}
	waitFor(t, 5*time.Second, "every client reconnected", func() bool { return reconnects.Load() == 4 })
	// The clients are spread over b1 and b2 now; publish from b2 until every
	// subscription has heard (interest on b1 takes a moment to reach b2).
	pub := dial(t, ms[2].url("alice", alicePw1))
	waitFor(t, 5*time.Second, "every subscription to receive", func() bool {
		if err := pub.Publish("ld.jobs", []byte("j")); err != nil {
			t.Fatal(err)
		}
		if err := pub.Flush(); err != nil {
			t.Fatal(err)
		}
		for _, sub := range subs {
			if n, _, _ := sub.Pending(); n == 0 {
				return false
			}
		}
		return true
	})
	for i, sub := range subs {
		if m, err := sub.NextMsg(3 * time.Second); err != nil || string(m.Data) != "j" {
			t.Fatalf("client %d lost its subscription: %v %v", i, m, err)
		}
	}
}

// dumpOnFailure logs every member's /routez and log once the test has failed.
func dumpOnFailure(t *testing.T, ms []*member) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, m := range ms {
			rz, _ := m.get("/routez?subs=1")
			t.Logf("%s /routez:\n%s\nlog:\n%s", m.name, rz, m.logs.String())
		}
	})
}

func TestClusterFlagsAloneFormARouteAsInNatsServer(t *testing.T) {
	bin := buildBinary(t)
	ports := freeLoopbackPorts(t, 4)
	var ms []*member
	for i := range 2 {
		m := &member{t: t, bin: bin, name: fmt.Sprintf("f%d", i), clusterPort: ports[i], http: ports[2+i]}
		m.logs = &logbuf.Buffer{}
		m.exited = make(chan struct{})
		m.cmd = exec.Command(bin, "-a", "127.0.0.1", "-p", "-1", "-m", fmt.Sprint(m.http),
			"--cluster", fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", routeUser, routePass, m.clusterPort),
			"--cluster_name", "flags",
			"--routes", fmt.Sprintf("nats://%s:%s@127.0.0.1:%d,nats://%s:%s@127.0.0.1:%d",
				routeUser, routePass, ports[0], routeUser, routePass, ports[1]))
		m.cmd.Stderr = m.logs
		if err := m.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmd, exited := m.cmd, m.exited
		go func() { _ = cmd.Wait(); close(exited) }()
		t.Cleanup(m.stop)
		ms = append(ms, m)
	}
	dumpOnFailure(t, ms)
	waitProcessMesh(t, ms...)
	v := ms[0].varz()
	cl, _ := v["cluster"].(map[string]any)
	if cl["name"] != "flags" {
		t.Fatalf("cluster name %v", cl["name"])
	}
	for _, m := range ms {
		for _, path := range []string{"/varz", "/routez"} {
			body, _ := m.get(path)
			if strings.Contains(body, routePass) {
				t.Fatalf("%s %s shows the route password", m.name, path)
			}
		}
		if strings.Contains(m.logs.String(), routePass) {
			t.Fatalf("%s logged the route password", m.name)
		}
	}
}
