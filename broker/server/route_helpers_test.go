package server

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/internal/logbuf"
)

// waitUntil polls cond every few milliseconds until it holds or d passes.
func waitUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v still waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// freePorts reserves n distinct loopback ports and releases them for a server
// to take; routes need their peers' ports before the peers start.
func freePorts(t testing.TB, n int) []int {
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

const (
	testRouteUser = "route"
	testRoutePass = "s3cr3t-route-pw"
)

// clusterOpts is a member of a test cluster on loopback: client port any,
// cluster port clusterPort, routes to every port in routePorts.
func clusterOpts(name string, clusterPort int, routePorts []int) *conf.Options {
	o := &conf.Options{
		ServerName: name, Host: "127.0.0.1", Port: RandomPort,
		Cluster: &conf.Cluster{
			Name: "test", Host: "127.0.0.1", Port: clusterPort,
			Authorization: &conf.ClusterAuthorization{User: testRouteUser, Password: testRoutePass},
		},
	}
	for _, p := range routePorts {
		o.Cluster.Routes = append(o.Cluster.Routes,
			fmt.Sprintf("nats-route://%s:%s@127.0.0.1:%d", testRouteUser, testRoutePass, p))
	}
	return o
}

// startServer starts a server from opts, logging into logs when not nil.
func startMember(t testing.TB, opts *conf.Options, logs *logbuf.Buffer) *Server {
	t.Helper()
	var logger *slog.Logger
	if logs != nil {
		logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	s, err := New(opts, logger)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// startCluster starts n servers that all name each other as routes (and
// themselves, as a StatefulSet's rendered config does). They listen on any
// free port first and learn their routes after, so no port is reserved and
// released in between for another process to take.
func startCluster(t testing.TB, n int) []*Server {
	t.Helper()
	servers := make([]*Server, n)
	var ports []int
	for i := range n {
		servers[i] = startMember(t, clusterOpts(fmt.Sprintf("s%d", i), RandomPort, nil), nil)
		ports = append(ports, servers[i].routes().addr().Port)
	}
	for _, s := range servers {
		o := *s.getOpts()
		cl := *o.Cluster
		cl.Routes = clusterOpts("", 0, ports).Cluster.Routes
		o.Cluster = &cl
		if err := s.routes().reconfigure(&o); err != nil {
			t.Fatal(err)
		}
	}
	waitMesh(t, servers...)
	return servers
}

// waitMesh waits until every server has a route to every other one.
func waitMesh(t testing.TB, servers ...*Server) {
	t.Helper()
	waitUntil(t, 10*time.Second, "a full mesh", func() bool {
		for _, s := range servers {
			if s.routes().numRoutes() != len(servers)-1 {
				return false
			}
		}
		return true
	})
}

// waitInterest waits until s knows of remote interest in subject.
func waitInterest(t testing.TB, s *Server, subject string, n int) {
	t.Helper()
	waitUntil(t, 5*time.Second, "interest in "+subject+" on "+s.Name(), func() bool {
		got := 0
		for _, r := range s.routes().registered() {
			sl := r.sublist(conf.GlobalAccount)
			if sl == nil {
				continue
			}
			res := sl.Match(subject)
			got += len(res.psubs)
			for _, q := range res.qsubs {
				got += len(q)
			}
		}
		return got >= n
	})
}

func connectTo(t testing.TB, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func routeURLFor(port int, user, pass string) string {
	return fmt.Sprintf("nats-route://%s:%s@127.0.0.1:%d", user, pass, port)
}

func mustBcrypt(t testing.TB, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), 4)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func newTestHTTP(h http.Handler) *httptest.Server { return httptest.NewServer(h) }

var (
	httpClient = &http.Client{Timeout: 5 * time.Second}
	ioCopy     = io.Copy
)

// routePort is where s accepts routes.
func routePort(s *Server) int { return s.routes().addr().Port }
