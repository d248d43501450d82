package server

import (
	"io"
	"net"
	"net/http/httptest"
	"regexp"
	"strconv"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/internal/testcerts"
	"github.com/natsforge/natsforge/broker/monitor"
)

func TestVarzReportsTLSAsNATSServerAndTheCertificateExpiryOfOurOwn(t *testing.T) {
	ca := testcerts.NewCA(t, "varz CA")
	expires := time.Now().Add(90 * time.Minute).Truncate(time.Second)
	leaf := ca.Issue(t, testcerts.Options{DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")}, NotAfter: expires, Server: true, Client: true})
	vol := testcerts.NewSecretVolume(t, t.TempDir(), leaf.Secret(ca))
	for _, verify := range []bool{false, true} {
		tlsc := secretTLS(vol.Dir)
		tlsc.Verify = verify
		s := runServer(t, &conf.Options{TLS: tlsc})
		ns := runOracle(t, &conf.Options{TLS: tlsc})
		theirs, err := ns.Varz(&natsserver.VarzOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ours := s.Varz()
		if ours.TLSRequired != theirs.TLSRequired || ours.TLSVerify != theirs.TLSVerify || ours.TLSTimeout != theirs.TLSTimeout {
			t.Errorf("verify %v: tls_required/tls_verify/tls_timeout %v/%v/%v, nats-server %v/%v/%v", verify,
				ours.TLSRequired, ours.TLSVerify, ours.TLSTimeout, theirs.TLSRequired, theirs.TLSVerify, theirs.TLSTimeout)
		}
		if !ours.TLSCertNotAfter.Equal(expires) {
			t.Errorf("tls_cert_not_after %v, want %v", ours.TLSCertNotAfter, expires)
		}
	}
}

var expiryLine = regexp.MustCompile(`(?m)^natsforge_tls_certificate_expiry_seconds\{listener="(\w+)"\} (\S+)$`)

func TestMetricsGiveTheSecondsUntilEachCertificateExpiresAndFollowARotation(t *testing.T) {
	ca := testcerts.NewCA(t, "metrics CA")
	issue := func(d time.Duration) *testcerts.Leaf {
		return ca.Issue(t, testcerts.Options{IPs: []net.IP{net.ParseIP("127.0.0.1")}, NotAfter: time.Now().Add(d), Server: true, Client: true})
	}
	client := testcerts.NewSecretVolume(t, t.TempDir(), issue(2*time.Hour).Secret(ca))
	route := testcerts.NewSecretVolume(t, t.TempDir(), issue(5*time.Hour).Secret(ca))
	o := clusterOpts("m", RandomPort, nil)
	o.TLS, o.Cluster.TLS = secretTLS(client.Dir), secretTLS(route.Dir)
	s := startMember(t, o, nil)
	h := httptest.NewServer(monitor.New(s).Handler())
	t.Cleanup(h.Close)
	expiry := func() map[string]float64 {
		resp, err := h.Client().Get(h.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		out := map[string]float64{}
		for _, m := range expiryLine.FindAllStringSubmatch(string(b), -1) {
			out[m[1]], _ = strconv.ParseFloat(m[2], 64)
		}
		return out
	}
	near := func(got float64, want time.Duration) bool {
		return got > (want-time.Minute).Seconds() && got <= want.Seconds()
	}
	if e := expiry(); !near(e["client"], 2*time.Hour) || !near(e["cluster"], 5*time.Hour) {
		t.Fatalf("expiry gauges %v; want about 7200 (client) and 18000 (cluster)", e)
	}
	client.Update(t, issue(30*time.Minute).Secret(ca))
	eventually(t, 10*time.Second, "the gauge to follow the rotated client certificate", func() bool {
		return near(expiry()["client"], 30*time.Minute)
	})
}
