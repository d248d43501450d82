package server

import (
	"encoding/json"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/natsforge/natsforge/broker/monitor"
)

// exporterSeries are the metric names and label names prometheus-nats-exporter
// serves for a nats-server with -varz -connz -routez -subz, taken from its
// source in github.com/nats-io/prometheus-nats-exporter at these commits:
//
//   - collector/collector.go 00e7211cedae (newNatsCollector, the generic
//     collector behind -varz, -subz and, in the releases through v0.20.2,
//     -routez): every top-level JSON number of the endpoint's document is a
//     gauge <system>_<endpoint>_<field>{server_id}; the strings server_id,
//     server_name and version are a gauge of 1 {server_id, value}.
//   - collector/connz.go 095d116f22b7 (createConnzCollector, -connz).
//   - collector/routez.go 3958c21bbe85 (newRoutezCollector and
//     newRouteMetrics: the per-route series on the exporter's main branch).
//
// The -varz and -subz names depend on the server's documents; the ones below
// are those the generic collector makes from nats-server v2.15.2's, which
// TestExporterVarzNamesAreNatsServers derives again from a running
// nats-server (the oracle), minus notServedVarz.
var exporterSeries = map[string][]string{
	// -varz (collector.go over nats-server v2.15.2 /varz)
	"gnatsd_varz_server_id":         {"server_id", "value"},
	"gnatsd_varz_server_name":       {"server_id", "value"},
	"gnatsd_varz_version":           {"server_id", "value"},
	"gnatsd_varz_auth_timeout":      {"server_id"},
	"gnatsd_varz_connections":       {"server_id"},
	"gnatsd_varz_cores":             {"server_id"},
	"gnatsd_varz_cpu":               {"server_id"},
	"gnatsd_varz_gomaxprocs":        {"server_id"},
	"gnatsd_varz_http_port":         {"server_id"},
	"gnatsd_varz_https_port":        {"server_id"},
	"gnatsd_varz_in_bytes":          {"server_id"},
	"gnatsd_varz_in_client_bytes":   {"server_id"},
	"gnatsd_varz_in_client_msgs":    {"server_id"},
	"gnatsd_varz_in_msgs":           {"server_id"},
	"gnatsd_varz_leafnodes":         {"server_id"},
	"gnatsd_varz_max_connections":   {"server_id"},
	"gnatsd_varz_max_control_line":  {"server_id"},
	"gnatsd_varz_max_payload":       {"server_id"},
	"gnatsd_varz_max_pending":       {"server_id"},
	"gnatsd_varz_mem":               {"server_id"},
	"gnatsd_varz_out_bytes":         {"server_id"},
	"gnatsd_varz_out_client_bytes":  {"server_id"},
	"gnatsd_varz_out_client_msgs":   {"server_id"},
	"gnatsd_varz_out_msgs":          {"server_id"},
	"gnatsd_varz_ping_interval":     {"server_id"},
	"gnatsd_varz_ping_max":          {"server_id"},
	"gnatsd_varz_port":              {"server_id"},
	"gnatsd_varz_proto":             {"server_id"},
	"gnatsd_varz_remotes":           {"server_id"},
	"gnatsd_varz_routes":            {"server_id"},
	"gnatsd_varz_slow_consumers":    {"server_id"},
	"gnatsd_varz_stale_connections": {"server_id"},
	"gnatsd_varz_subscriptions":     {"server_id"},
	"gnatsd_varz_tls_timeout":       {"server_id"},
	"gnatsd_varz_total_connections": {"server_id"},
	"gnatsd_varz_write_deadline":    {"server_id"},
	// -connz (connz.go)
	"gnatsd_connz_num_connections": {"server_id"},
	"gnatsd_connz_total":           {"server_id"},
	"gnatsd_connz_offset":          {"server_id"},
	"gnatsd_connz_limit":           {"server_id"},
	"gnatsd_connz_pending_bytes":   {"server_id"},
	"gnatsd_connz_subscriptions":   {"server_id"},
	"gnatsd_connz_in_bytes":        {"server_id"},
	"gnatsd_connz_out_bytes":       {"server_id"},
	"gnatsd_connz_in_msgs":         {"server_id"},
	"gnatsd_connz_out_msgs":        {"server_id"},
	// -routez (collector.go: the document's numbers and names; routez.go: per route)
	"gnatsd_routez_server_id":            {"server_id", "value"},
	"gnatsd_routez_server_name":          {"server_id", "value"},
	"gnatsd_routez_num_routes":           {"server_id"},
	"gnatsd_routez_route_info":           {"server_id", "rid", "remote_id", "remote_name", "account", "ip", "compression"},
	"gnatsd_routez_route_subscriptions":  {"server_id", "rid"},
	"gnatsd_routez_route_uptime_seconds": {"server_id", "rid"},
	"gnatsd_routez_route_in_msgs":        {"server_id", "rid"},
	"gnatsd_routez_route_out_msgs":       {"server_id", "rid"},
	"gnatsd_routez_route_in_bytes":       {"server_id", "rid"},
	"gnatsd_routez_route_out_bytes":      {"server_id", "rid"},
	// -subz (collector.go over nats-server v2.15.2 /subsz)
	"gnatsd_subsz_server_id":         {"server_id", "value"},
	"gnatsd_subsz_num_subscriptions": {"server_id"},
	"gnatsd_subsz_num_cache":         {"server_id"},
	"gnatsd_subsz_num_inserts":       {"server_id"},
	"gnatsd_subsz_num_removes":       {"server_id"},
	"gnatsd_subsz_num_matches":       {"server_id"},
	"gnatsd_subsz_cache_hit_rate":    {"server_id"},
	"gnatsd_subsz_max_fanout":        {"server_id"},
	"gnatsd_subsz_avg_fanout":        {"server_id"},
	"gnatsd_subsz_total":             {"server_id"},
	"gnatsd_subsz_offset":            {"server_id"},
	"gnatsd_subsz_limit":             {"server_id"},
}

// notServedVarz are nats-server /varz numbers this broker has no counter for,
// so it serves no gnatsd_varz_ series for them rather than a made-up zero.
var notServedVarz = map[string]string{
	"gnatsd_varz_stalled_clients": "publishers wait for slow subscribers (doc.go) but the waits are not counted",
}

// scrapeFamilies reads a /metrics body with Prometheus's own text parser.
func scrapeFamilies(t testing.TB, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return fams
}

func labelNames(m *dto.Metric) []string {
	var out []string
	for _, l := range m.GetLabel() {
		out = append(out, l.GetName())
	}
	sort.Strings(out)
	return out
}

// value is the one series of name whose labels include want, or fails.
func value(t testing.TB, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("/metrics has no %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; ok && v != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("/metrics has no %s%v", name, want)
	return 0
}

func TestMetricsServePrometheusNatsExportersNamesAndLabels(t *testing.T) {
	servers := startCluster(t, 2)
	nc := connectTo(t, "nats://"+servers[0].Addr().String())
	sub, err := nc.SubscribeSync("x")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("x", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(time.Second); err != nil {
		t.Fatal(err)
	}
	mon := httptest.NewServer(monitor.New(servers[0]).Handler())
	defer mon.Close()
	fams := scrapeFamilies(t, fetch(t, mon.URL+"/metrics"))

	id := servers[0].Varz().ID
	for name, want := range exporterSeries {
		f := fams[name]
		if f == nil {
			t.Errorf("/metrics has no %s", name)
			continue
		}
		if f.GetType() == dto.MetricType_HISTOGRAM {
			t.Errorf("%s is a histogram", name)
		}
		for _, m := range f.GetMetric() {
			got := labelNames(m)
			w := slices.Clone(want)
			sort.Strings(w)
			if !slices.Equal(got, w) {
				t.Errorf("%s has labels %v, the exporter's %v", name, got, w)
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == "server_id" && l.GetValue() != id {
					t.Errorf("%s server_id %q, the server's ID is %q", name, l.GetValue(), id)
				}
			}
		}
	}
	// The values are the server's, not placeholders.
	for name, want := range map[string]float64{
		"gnatsd_varz_connections": 1, "gnatsd_varz_routes": 1, "gnatsd_connz_num_connections": 1,
		"gnatsd_connz_subscriptions": 1, "gnatsd_connz_in_msgs": 1, "gnatsd_connz_out_msgs": 1,
		"gnatsd_routez_num_routes": 1, "gnatsd_connz_in_bytes": 5, "gnatsd_varz_leafnodes": 0,
	} {
		if got := value(t, fams, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := value(t, fams, "gnatsd_varz_version", map[string]string{"value": Version}); got != 1 {
		t.Errorf("gnatsd_varz_version{value=%q} = %v", Version, got)
	}
	if got := value(t, fams, "gnatsd_routez_route_info", map[string]string{"remote_id": servers[1].Varz().ID}); got != 1 {
		t.Errorf("no route_info for the peer")
	}
	// Ours only where the exporter has none: no natsforge_ twin of a gnatsd_ series.
	for name := range fams {
		for _, dup := range []string{"natsforge_connections", "natsforge_in_msgs_total", "natsforge_subscriptions", "natsforge_routes", "natsforge_slow_consumers_total"} {
			if name == dup {
				t.Errorf("%s duplicates an exporter series", name)
			}
		}
	}
}

func TestExporterVarzNamesAreNatsServers(t *testing.T) {
	// Derive the generic collector's names from the oracle's documents, as
	// the exporter would against nats-server v2.15.2.
	oracle := runOracle(t, nil)
	derived := map[string]bool{}
	add := func(endpoint string, doc any) {
		raw, _ := json.Marshal(doc)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		for k, v := range m {
			_, isNumber := v.(float64)
			if isNumber || k == "server_id" || k == "server_name" || k == "version" {
				derived["gnatsd_"+endpoint+"_"+k] = true
			}
		}
	}
	v, _ := oracle.Varz(nil)
	add("varz", v)
	sz, _ := oracle.Subsz(nil)
	add("subsz", sz)
	rz, _ := oracle.Routez(nil)
	add("routez", rz)
	for name := range derived {
		if _, listed := exporterSeries[name]; !listed && notServedVarz[name] == "" {
			t.Errorf("the exporter makes %s from nats-server's documents; the list lacks it", name)
		}
	}
	for name := range exporterSeries {
		generic := strings.HasPrefix(name, "gnatsd_varz_") || strings.HasPrefix(name, "gnatsd_subsz_")
		if generic && !derived[name] {
			t.Errorf("%s is listed but nats-server's documents do not make it", name)
		}
	}
}
