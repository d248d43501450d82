package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/natsforge/natsforge/broker/internal/testcerts"
)

// clusterTLSBlock is a cluster.tls block with a certificate for 127.0.0.1
// from ca, written into dir.
func clusterTLSBlock(t *testing.T, ca *testcerts.CA, trust *testcerts.CA, dir string) string {
	f := ca.Server(t, "route").Write(t, dir, trust)
	return fmt.Sprintf("  tls {\n    cert_file: %q\n    key_file: %q\n    ca_file: %q\n  }\n", f.Cert, f.Key, f.CA)
}

func TestThreeBrokerProcessesWithRouteTLSCarryMessagesAndRefuseARouteWithoutAValidCertificate(t *testing.T) {
	ca := testcerts.NewCA(t, "cluster CA")
	ms := startProcessClusterWith(t, 3, "", clusterTLSBlock(t, ca, ca, t.TempDir()))

	sub := dial(t, ms[2].url("bob", bobPw))
	s, _ := sub.SubscribeSync("over.tls")
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "interest on b0", func() bool { return ms[0].hasRemoteInterest("over.tls", 1) })
	pub := dial(t, ms[0].url("alice", alicePw1))
	if err := pub.Publish("over.tls", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if m, err := s.NextMsg(3 * time.Second); err != nil || string(m.Data) != "hi" {
		t.Fatalf("across TLS routes: %v %v", m, err)
	}

	// A fourth broker with a certificate from another CA (that trusts the
	// cluster's CA) dials every member: each refuses it in the handshake.
	other := testcerts.NewCA(t, "other CA")
	ports := freeLoopbackPorts(t, 3)
	x := &member{t: t, bin: ms[0].bin, dir: t.TempDir(), name: "intruder", port: ports[0], clusterPort: ports[1], http: ports[2],
		aliceHash: ms[0].aliceHash, bobHash: ms[0].bobHash,
		clusterExtra: clusterTLSBlock(t, other, ca, filepath.Join(t.TempDir(), "x"))}
	for _, m := range ms {
		x.routePorts = append(x.routePorts, m.clusterPort)
	}
	x.writeConfig(x.render())
	x.start()
	t.Cleanup(x.stop)
	waitFor(t, 15*time.Second, "every member to refuse the intruder's route", func() bool {
		for _, m := range ms {
			if !strings.Contains(m.logs.String(), "route TLS failed") {
				return false
			}
		}
		return true
	})
	if n := x.numRoutes(); n != 0 {
		t.Fatalf("the intruder has %d routes", n)
	}
	for _, m := range ms {
		if n := m.numRoutes(); n != 2 {
			t.Fatalf("%s has %d routes, want 2 (the mesh, without the intruder)", m.name, n)
		}
	}
}
