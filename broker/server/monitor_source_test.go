package server

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/monitor"
)

// ourAdditions are /varz fields this broker adds to nats-server's.
var ourAdditions = map[string]bool{
	"config_file": true, "auth_failures": true, "config_reloads": true, "config_reload_errors": true,
	"config_reload_error": true, "config_reload_error_time": true, "lame_duck_mode": true, "natsforge_version": true,
	"tls_cert_sha256": true,
}

// jsonKeys collects the keys of a JSON document: top level as "key", inside
// an object or any element of a list as "parent.key".
func jsonKeys(t testing.TB, body string) map[string]bool {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	keys := map[string]bool{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			keys[prefix+k] = true
			switch x := v.(type) {
			case map[string]any:
				walk(prefix+k+".", x)
			case []any:
				for _, el := range x {
					if inner, ok := el.(map[string]any); ok {
						walk(prefix+k+".", inner)
					}
				}
			}
		}
	}
	walk("", doc)
	return keys
}

// oracleCluster starts two nats-servers routed together, with monitoring.
func oracleCluster(t testing.TB) (*natsserver.Server, *natsserver.Server) {
	t.Helper()
	start := func(name string, port int, routes []int) *natsserver.Server {
		o := &natsserver.Options{ServerName: name, Host: "127.0.0.1", Port: -1, HTTPHost: "127.0.0.1", HTTPPort: -1,
			NoLog: true, NoSigs: true, Username: "alice", Password: "pw"}
		o.Cluster.Name, o.Cluster.Host, o.Cluster.Port = "test", "127.0.0.1", port
		for _, p := range routes {
			o.Routes = append(o.Routes, natsserver.RoutesFromStr(fmt.Sprintf("nats://127.0.0.1:%d", p))...)
		}
		s, err := natsserver.NewServer(o)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(30 * time.Second) {
			t.Fatal("nats-server did not start")
		}
		t.Cleanup(s.Shutdown)
		return s
	}
	a := start("a", -1, nil)
	b := start("b", -1, []int{a.ClusterAddr().Port})
	waitUntil(t, 10*time.Second, "nats-server routes", func() bool { return a.NumRoutes() > 0 && b.NumRoutes() > 0 })
	return a, b
}

func TestMonitoringEndpointsUseNatsServerFieldNames(t *testing.T) {
	oa, ob := oracleCluster(t)
	s := startCluster(t, 2)
	for _, url := range []string{fmt.Sprintf("nats://alice:pw@%s", oa.Addr()), fmt.Sprintf("nats://alice:pw@%s", ob.Addr()),
		s[0].ClientURL(), s[1].ClientURL()} {
		nc := connectTo(t, url, nats.Name("probe"))
		if _, err := nc.SubscribeSync("mon.a"); err != nil {
			t.Fatal(err)
		}
		if _, err := nc.QueueSubscribeSync("mon.q", "g"); err != nil {
			t.Fatal(err)
		}
		noErr(t, nc.Publish("mon.a", []byte("x")))
		noErr(t, nc.Flush())
	}
	waitInterest(t, s[0], "mon.a", 1)
	waitInterest(t, s[1], "mon.a", 1)
	waitUntil(t, 5*time.Second, "nats-server interest", func() bool {
		return strings.Contains(fetch(t, fmt.Sprintf("http://%s/routez?subs=1", oa.MonitorAddr())), "mon.a")
	})
	ours := httptest.NewServer(monitor.New(s[0]).Handler())
	defer ours.Close()

	for _, path := range []string{"/varz", "/connz?auth=1&subs=1", "/connz?subs=detail", "/routez?subs=1", "/subsz?subs=1"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			want := jsonKeys(t, fetch(t, fmt.Sprintf("http://%s%s", oa.MonitorAddr(), path)))
			for k := range jsonKeys(t, fetch(t, fmt.Sprintf("http://%s%s", ob.MonitorAddr(), path))) {
				want[k] = true
			}
			got := jsonKeys(t, fetch(t, ours.URL+path))
			var extra []string
			for k := range got {
				top, _, _ := strings.Cut(k, ".")
				if !want[k] && !ourAdditions[top] {
					extra = append(extra, k)
				}
			}
			sort.Strings(extra)
			if len(extra) > 0 {
				t.Fatalf("fields nats-server does not have: %v", extra)
			}
		})
	}
	// The core of each document, which dashboards read, is all there.
	for path, keys := range map[string][]string{
		"/varz": {"server_id", "server_name", "version", "uptime", "connections", "total_connections",
			"routes", "in_msgs", "out_msgs", "in_bytes", "out_bytes", "slow_consumers", "subscriptions",
			"config_load_time", "config_digest", "cluster.name", "cluster.cluster_port"},
		"/connz?auth=1&subs=1": {"num_connections", "connections.cid", "connections.ip", "connections.port",
			"connections.name", "connections.lang", "connections.version",
			"connections.subscriptions", "connections.subscriptions_list", "connections.in_msgs",
			"connections.pending_bytes"},
		"/routez?subs=1": {"num_routes", "routes.remote_id", "routes.remote_name", "routes.did_solicit",
			"routes.subscriptions_list"},
		"/subsz": {"num_subscriptions", "num_cache", "num_matches"},
	} {
		got := jsonKeys(t, fetch(t, ours.URL+path))
		for _, k := range keys {
			if !got[k] {
				t.Errorf("%s lacks %s", path, k)
			}
		}
	}
}

func fetch(t testing.TB, url string) string {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var b strings.Builder
	if _, err := ioCopy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestNoRouteCredentialAppearsInAnyMonitoringEndpoint(t *testing.T) {
	s := startCluster(t, 2)
	ours := httptest.NewServer(monitor.New(s[0]).Handler())
	defer ours.Close()
	for _, path := range []string{"/varz", "/connz?auth=1&subs=detail", "/routez?subs=detail", "/subsz?subs=1", "/metrics"} {
		body := fetch(t, ours.URL+path)
		if strings.Contains(body, testRoutePass) {
			t.Fatalf("%s shows the route password:\n%s", path, body)
		}
	}
	v := s[0].Varz()
	if len(v.Cluster.URLs) != 2 || strings.Contains(strings.Join(v.Cluster.URLs, ","), "@") {
		t.Fatalf("cluster urls: %v", v.Cluster.URLs)
	}
}

func TestMetricsCountConnectionsMessagesAndAuthFailures(t *testing.T) {
	_, _, b := hashed(t)
	ms := startFileCluster(t, 1, memberConfig{alicePass: "x", bobPass: b}, nil)
	m := ms[0]
	nc := connectTo(t, m.url("alice", "x"))
	sub, _ := nc.SubscribeSync("m.x")
	for range 3 {
		noErr(t, nc.Publish("m.x", []byte("12345")))
	}
	noErr(t, nc.Flush())
	for range 3 {
		if _, err := sub.NextMsg(time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := nats.Connect(m.url("alice", "nope"), nats.NoReconnect()); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	ours := httptest.NewServer(monitor.New(m.s).Handler())
	defer ours.Close()
	fams := scrapeFamilies(t, fetch(t, ours.URL+"/metrics"))
	for name, want := range map[string]float64{
		"gnatsd_varz_connections": 1, "gnatsd_varz_in_msgs": 3, "gnatsd_varz_out_msgs": 3,
		"gnatsd_varz_in_bytes": 15, "gnatsd_varz_auth_failures": 1, "gnatsd_varz_subscriptions": 1,
		"gnatsd_varz_slow_consumers": 0, "gnatsd_varz_config_reloads": 0,
	} {
		if got := value(t, fams, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(t, fams, "natsforge_auth_failures_total", map[string]string{"reason": "bad_password"}); got != 1 {
		t.Errorf("natsforge_auth_failures_total{reason=bad_password} = %v", got)
	}
	if got := value(t, fams, "natsforge_config_reloads_total", map[string]string{"result": "success"}); got != 0 {
		t.Errorf("natsforge_config_reloads_total{result=success} = %v", got)
	}
}
