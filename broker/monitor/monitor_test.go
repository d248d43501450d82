package monitor

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type fakeSource struct {
	conns  int
	health error
}

func (f *fakeSource) Healthz() error { return f.health }

func (f *fakeSource) Varz() *Varz {
	return &Varz{ID: "NID", Name: "n1", Version: "2.10.0", Connections: f.conns, InMsgs: 7,
		ConfigDigest: "abc", ConfigLoadTime: time.Unix(1700000000, 0), ReloadErrors: 2,
		LastReloadError: "nats.conf:3:1: bad", AuthFailures: 4, Reloads: 1}
}

func (f *fakeSource) Connz(opts ConnzOptions) *Connz {
	c := &Connz{ID: "NID", Now: time.Now()}
	for i := f.conns; i >= 1; i-- {
		ci := &ConnInfo{Cid: uint64(i), IP: "127.0.0.1", AuthorizedUser: "alice", NumSubs: 1}
		if opts.Subs {
			ci.Subs = []string{"foo"}
		}
		if opts.SubsDetail {
			ci.SubsDetail = []SubDetail{{Subject: "foo", Sid: "1", Cid: uint64(i)}}
		}
		c.Conns = append(c.Conns, ci)
	}
	return c
}

func (f *fakeSource) Routez(RoutezOptions) *Routez { return &Routez{ID: "NID"} }

func (f *fakeSource) Subsz(opts SubszOptions) *Subsz {
	s := &Subsz{ID: "NID", SublistStats: &SublistStats{NumSubs: 2}}
	if opts.Subs {
		s.Subs = []SubDetail{{Subject: "b", Sid: "2", Cid: 1}, {Subject: "a", Sid: "1", Cid: 1}}
	}
	return s
}

func get(t *testing.T, h http.Handler, path string) (int, map[string]any, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Body)
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	return rec.Code, m, string(body)
}

func TestHealthzSaysOKOnlyWhileTheServerServes(t *testing.T) {
	code, _, body := get(t, New(&fakeSource{}).Handler(), "/healthz")
	if code != http.StatusOK || body != `{"status":"ok"}` {
		t.Fatalf("serving: %d %s", code, body)
	}
	down := &fakeSource{health: errors.New("failed to be ready for connections after 1ms: server")}
	code, _, body = get(t, New(down).Handler(), "/healthz")
	if want := `{"status":"error","error":"failed to be ready for connections after 1ms: server"}`; code != http.StatusInternalServerError || body != want {
		t.Fatalf("not serving: %d %s, want 500 %s", code, body, want)
	}
}

func TestVarzCarriesNatsServerFieldNamesAndTheConfigDigest(t *testing.T) {
	_, m, body := get(t, New(&fakeSource{conns: 3}).Handler(), "/varz")
	for _, k := range []string{"server_id", "server_name", "version", "uptime", "connections",
		"total_connections", "routes", "in_msgs", "out_msgs", "in_bytes", "out_bytes",
		"slow_consumers", "subscriptions", "config_load_time", "config_digest",
		"http_req_stats", "config_reload_error"} {
		if _, ok := m[k]; !ok {
			t.Errorf("varz lacks %q: %s", k, body)
		}
	}
}

func TestConnzHidesUsersAndSubscriptionsUnlessAskedAndPages(t *testing.T) {
	h := New(&fakeSource{conns: 5}).Handler()
	_, m, body := get(t, h, "/connz?limit=2&offset=1")
	conns := m["connections"].([]any)
	if len(conns) != 2 || m["total"].(float64) != 5 || m["num_connections"].(float64) != 2 {
		t.Fatalf("paging wrong: %s", body)
	}
	if c := conns[0].(map[string]any); c["cid"].(float64) != 2 || c["authorized_user"] != nil || c["subscriptions_list"] != nil {
		t.Fatalf("first connection wrong: %v", c)
	}
	_, m, _ = get(t, h, "/connz?auth=1&subs=1")
	c := m["connections"].([]any)[0].(map[string]any)
	if c["authorized_user"] != "alice" || c["subscriptions_list"] == nil {
		t.Fatalf("auth/subs not shown: %v", c)
	}
	_, m, _ = get(t, h, "/connz?subs=detail")
	if c := m["connections"].([]any)[0].(map[string]any); c["subscriptions_list_detail"] == nil {
		t.Fatalf("detail not shown: %v", c)
	}
	if code, _, _ := get(t, h, "/connz?limit=x"); code != http.StatusBadRequest {
		t.Fatalf("bad limit answered %d", code)
	}
}

func TestSubszListsSubscriptionsOnlyWhenAsked(t *testing.T) {
	h := New(&fakeSource{}).Handler()
	_, m, body := get(t, h, "/subsz")
	if m["num_subscriptions"].(float64) != 2 || m["subscriptions_list"] != nil {
		t.Fatalf("%s", body)
	}
	_, m, _ = get(t, h, "/subsz?subs=1")
	if l := m["subscriptions_list"].([]any); len(l) != 2 || l[0].(map[string]any)["subject"] != "a" {
		t.Fatalf("%v", l)
	}
}

func TestRoutezAnswersAnEmptyListNotNull(t *testing.T) {
	_, _, body := get(t, New(&fakeSource{}).Handler(), "/routez")
	if !strings.Contains(body, `"routes": []`) || !strings.Contains(body, `"num_routes": 0`) {
		t.Fatalf("%s", body)
	}
}

func TestMetricsExposeCountersInPrometheusText(t *testing.T) {
	_, _, body := get(t, New(&fakeSource{conns: 3}).Handler(), "/metrics")
	for _, want := range []string{
		`gnatsd_varz_connections{server_id="NID"} 3`, `gnatsd_varz_in_msgs{server_id="NID"} 7`,
		`gnatsd_varz_server_name{server_id="NID",value="n1"} 1`, `gnatsd_connz_num_connections{server_id="NID"} 3`,
		`gnatsd_subsz_num_subscriptions{server_id="NID"} 2`, `gnatsd_routez_num_routes{server_id="NID"} 0`,
		`natsforge_config_reloads_total{result="failure"} 2`, `natsforge_config_reloads_total{result="success"} 1`,
		`natsforge_server_info{cluster="",config_digest="abc"`, "go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
