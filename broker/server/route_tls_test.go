package server

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/internal/logbuf"
	"github.com/natsforge/natsforge/broker/internal/testcerts"
)

// routeTLSFor is a cluster.tls block with a certificate from ca for 127.0.0.1.
func routeTLSFor(t *testing.T, ca *testcerts.CA, name string) *conf.TLS {
	f := ca.Server(t, name).Write(t, t.TempDir(), ca)
	return &conf.TLS{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA}
}

// startTLSCluster starts n members with route TLS from ca, each listing every
// member's route URL (nats://, credentials in it).
func startTLSCluster(t *testing.T, ca *testcerts.CA, n int) ([]*Server, []*logbuf.Buffer) {
	t.Helper()
	ports := freePorts(t, n)
	var servers []*Server
	var logs []*logbuf.Buffer
	for i := range n {
		o := clusterOpts(fmt.Sprintf("s%d", i), ports[i], ports)
		for j := range o.Cluster.Routes {
			o.Cluster.Routes[j] = strings.Replace(o.Cluster.Routes[j], "nats-route://", "nats://", 1)
		}
		o.Cluster.TLS = routeTLSFor(t, ca, o.ServerName)
		l := &logbuf.Buffer{}
		servers = append(servers, startMember(t, o, l))
		logs = append(logs, l)
	}
	waitMesh(t, servers...)
	return servers, logs
}

func TestRoutesWithTLSFormAMeshAndCarryMessages(t *testing.T) {
	ca := testcerts.NewCA(t, "cluster CA")
	servers, _ := startTLSCluster(t, ca, 3)
	sub := connectTo(t, servers[0].ClientURL())
	s, err := sub.SubscribeSync("over.tls")
	if err != nil {
		t.Fatal(err)
	}
	noErr(t, sub.Flush())
	waitInterest(t, servers[2], "over.tls", 1)
	pub := connectTo(t, servers[2].ClientURL())
	if err := pub.Publish("over.tls", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if m, err := s.NextMsg(3 * time.Second); err != nil || string(m.Data) != "hi" {
		t.Fatalf("%v %v", m, err)
	}
	for _, r := range servers[0].routes().registered() {
		if _, ok := r.nc.(*tls.Conn); !ok {
			t.Errorf("route to %s runs over %T", r.remoteName, r.nc)
		}
	}
}

func TestARouteWithoutAValidCertificateIsRefused(t *testing.T) {
	ca := testcerts.NewCA(t, "cluster CA")
	servers, logs := startTLSCluster(t, ca, 2)
	seed := routePort(servers[0])
	for _, tc := range []struct {
		name string
		tls  func() *conf.TLS
		pass string
		why  string // in the accepting server's log
	}{
		{"a certificate from another CA", func() *conf.TLS {
			other := testcerts.NewCA(t, "other CA")
			c := routeTLSFor(t, other, "intruder")
			c.CAFile = routeTLSFor(t, ca, "x").CAFile // it trusts the cluster, the cluster does not trust it
			return c
		}, testRoutePass, "route TLS failed"},
		{"no TLS at all", func() *conf.TLS { return nil }, testRoutePass, "route TLS failed"},
		{"a good certificate and a wrong password", func() *conf.TLS { return routeTLSFor(t, ca, "x") }, "wrong", "authorization violation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := clusterOpts("intruder", RandomPort, nil)
			o.Cluster.Routes = []string{fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", testRouteUser, tc.pass, seed)}
			o.Cluster.TLS = tc.tls()
			before := strings.Count(logs[0].String(), tc.why)
			xlogs := &logbuf.Buffer{}
			x := startMember(t, o, xlogs)
			if tc.tls() == nil {
				// Without TLS the dialler stops at the INFO and never sends
				// its credentials in the clear.
				waitUntil(t, 10*time.Second, "the intruder to stop at tls_required", func() bool {
					return strings.Contains(xlogs.String(), "the remote requires TLS")
				})
				if strings.Contains(xlogs.String(), "refused") {
					t.Fatalf("the intruder sent CONNECT:\n%s", xlogs)
				}
				x.Shutdown()
				return
			}
			waitUntil(t, 10*time.Second, "the seed to refuse the route ("+tc.why+")", func() bool {
				return strings.Count(logs[0].String(), tc.why) > before
			})
			if n := x.routes().numRoutes(); n != 0 {
				t.Fatalf("the intruder has %d routes", n)
			}
			if n := servers[0].routes().numRoutes(); n != 1 {
				t.Fatalf("the seed has %d routes, want 1", n)
			}
			x.Shutdown()
		})
	}
}
