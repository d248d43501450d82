package server

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/monitor"
)

func TestAuthMetricsCountFailuresByReasonBcryptTheCacheAndTheConnectLatency(t *testing.T) {
	s := runServer(t, &conf.Options{Authorization: &conf.Authorization{Users: []conf.User{
		{Name: "alice", Password: mustBcrypt(t, "a-secret")},
		{Name: "bob", Password: mustBcrypt(t, "b-secret")},
	}}})
	url := func(user, pass string) string { return fmt.Sprintf("nats://%s:%s@%s", user, pass, s.Addr()) }
	for range 2 { // the second is answered by the cache
		if err := connectTo(t, url("alice", "a-secret")).Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{url("alice", "wrong"), url("mallory", "x")} {
		if nc, err := nats.Connect(bad, nats.NoReconnect()); err == nil {
			nc.Close()
			t.Fatalf("%s was let in", bad)
		}
	}
	// An op before CONNECT, with no no_auth_user.
	raw := dialRaw(t, s.Addr().String())
	raw.line() // INFO
	raw.send("PING\r\n")
	raw.expect("-ERR 'Authorization Violation'")

	scrape := func(limit int) map[string]float64 {
		t.Helper()
		mon := httptest.NewServer(monitor.NewWithOptions(s, monitor.Options{UserLabelLimit: limit}).Handler())
		defer mon.Close()
		fams := scrapeFamilies(t, fetch(t, mon.URL+"/metrics"))
		got := map[string]float64{}
		for _, f := range []string{"natsforge_auth_failures_total", "natsforge_auth_user_failures_total",
			"natsforge_auth_bcrypt_verifications_total", "natsforge_auth_cache_hits_total",
			"natsforge_auth_cache_misses_total", "natsforge_auth_connect_duration_seconds"} {
			for _, m := range fams[f].GetMetric() {
				key := f
				for _, l := range m.GetLabel() {
					key += "{" + l.GetName() + "=" + l.GetValue() + "}"
				}
				switch {
				case m.Counter != nil:
					got[key] = m.GetCounter().GetValue()
				case m.Histogram != nil:
					got[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
					for _, b := range m.GetHistogram().GetBucket() {
						if b.GetUpperBound() == 10 {
							got[key+"_le10"] = float64(b.GetCumulativeCount())
						}
					}
				}
			}
		}
		return got
	}
	got := scrape(10)
	for k, want := range map[string]float64{
		"natsforge_auth_failures_total{reason=bad_password}":   1,
		"natsforge_auth_failures_total{reason=unknown_user}":   1,
		"natsforge_auth_failures_total{reason=no_credentials}": 1,
		"natsforge_auth_failures_total{reason=bad_token}":      0,
		"natsforge_auth_failures_total{reason=route}":          0,
		"natsforge_auth_user_failures_total{user=alice}":       1,
		"natsforge_auth_bcrypt_verifications_total":            3, // alice once, her wrong password, mallory's against the dummy hash
		"natsforge_auth_cache_hits_total":                      1,
		"natsforge_auth_cache_misses_total":                    3,
		"natsforge_auth_connect_duration_seconds_count":        2,
		"natsforge_auth_connect_duration_seconds_le10":         2,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if len(got) == 0 {
		t.Fatal("no auth metrics")
	}
	// Two users are not fewer than a limit of 2: no per-user series.
	got = scrape(2)
	for k := range got {
		if k == "natsforge_auth_user_failures_total{user=alice}" || k == "natsforge_auth_user_failures_total{user=mallory}" {
			t.Errorf("%s is served with 2 users and a limit of 2", k)
		}
	}
	if _, ok := got["natsforge_auth_user_failures_total{user=mallory}"]; ok {
		t.Error("an unknown user name became a label")
	}

}
