// Command dashboard writes the Grafana dashboard the Helm chart ships
// (charts/natsforge/dashboards/natsforge.json, in a ConfigMap labelled
// grafana_dashboard for Grafana's dashboard sidecar), built as code with the
// Grafana Foundation SDK. `make dashboard` runs it; `make verify` fails when
// the checked-in file differs from what it writes.
//
// Broker panels query prometheus-nats-exporter's gnatsd_* names (a dashboard
// built for the exporter reads the same series) and the brokers' natsforge_*
// auth and TLS series; per-pod panels group by the pod and namespace labels a
// PodMonitor (spec.monitoring.podMonitor) puts on every series. Operator
// panels query the operator's natsforge_* series. test/prometheus runs every
// panel's query against a real Prometheus scraping real brokers and the
// operator, and fails on a query that returns nothing.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// datasource is the dashboard's Prometheus, picked with the datasource
// variable.
var datasource = common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}

// query is one target: PromQL and the legend of its series.
type query struct{ expr, legend string }

// panel is one time series panel.
type panel struct {
	title, description, unit string
	queries                  []query
}

// rows are the dashboard's sections, in order.
var rows = []struct {
	title  string
	panels []panel
}{
	{"Brokers", []panel{
		{"Client connections", "Open client connections per broker pod (gnatsd_varz_connections).", "short",
			[]query{{`sum by (namespace, pod) (gnatsd_varz_connections)`, "{{namespace}}/{{pod}}"}}},
		{"Messages", "Messages received and sent per second per broker pod, routes included.", "msg/s",
			[]query{
				{`sum by (namespace, pod) (rate(gnatsd_varz_in_msgs[$__rate_interval]))`, "{{namespace}}/{{pod}} in"},
				{`sum by (namespace, pod) (rate(gnatsd_varz_out_msgs[$__rate_interval]))`, "{{namespace}}/{{pod}} out"},
			}},
		{"Bytes", "Payload bytes received and sent per second per broker pod.", "Bps",
			[]query{
				{`sum by (namespace, pod) (rate(gnatsd_varz_in_bytes[$__rate_interval]))`, "{{namespace}}/{{pod}} in"},
				{`sum by (namespace, pod) (rate(gnatsd_varz_out_bytes[$__rate_interval]))`, "{{namespace}}/{{pod}} out"},
			}},
		{"Slow consumers", "Connections each broker pod has closed as slow consumers since it started.", "short",
			[]query{{`sum by (namespace, pod) (gnatsd_varz_slow_consumers)`, "{{namespace}}/{{pod}}"}}},
		{"Routes", "Routes each broker pod has to its peers: a full mesh is replicas - 1.", "short",
			[]query{{`sum by (namespace, pod) (gnatsd_routez_num_routes)`, "{{namespace}}/{{pod}}"}}},
	}},
	{"Authentication", []panel{
		{"Authentication failures", "Clients and routes refused per second, by reason.", "reqps",
			[]query{{`sum by (namespace, reason) (rate(natsforge_auth_failures_total[$__rate_interval]))`, "{{namespace}} {{reason}}"}}},
		{"Connect to authenticated", "Time from accepting a connection to letting it in (a bcrypt check when the verification cache cannot answer).", "s",
			[]query{
				{`histogram_quantile(0.5, sum by (le) (rate(natsforge_auth_connect_duration_seconds_bucket[$__rate_interval])))`, "p50"},
				{`histogram_quantile(0.99, sum by (le) (rate(natsforge_auth_connect_duration_seconds_bucket[$__rate_interval])))`, "p99"},
			}},
		{"bcrypt verifications and cache", "bcrypt comparisons paid and verification cache hits per second.", "ops",
			[]query{
				{`sum by (namespace) (rate(natsforge_auth_bcrypt_verifications_total[$__rate_interval]))`, "{{namespace}} bcrypt"},
				{`sum by (namespace) (rate(natsforge_auth_cache_hits_total[$__rate_interval]))`, "{{namespace}} cache hits"},
			}},
		{"Config reloads", "Broker configuration reloads by result (a rotation is a reload).", "short",
			[]query{{`sum by (namespace, result) (increase(natsforge_config_reloads_total[$__rate_interval]))`, "{{namespace}} {{result}}"}}},
	}},
	{"Operator", []panel{
		{"Rotation propagation latency", "From the operator first seeing a changed password, user or certificate to every ready broker serving it.", "s",
			[]query{
				{`histogram_quantile(0.5, sum by (le) (rate(natsforge_rotation_propagation_seconds_bucket[$__rate_interval])))`, "p50"},
				{`histogram_quantile(0.95, sum by (le) (rate(natsforge_rotation_propagation_seconds_bucket[$__rate_interval])))`, "p95"},
			}},
		{"Users by state", "Users of every NatsCluster by status.users[].reason.", "short",
			[]query{{`sum by (state) (natsforge_users)`, "{{state}}"}}},
		{"Reconciles", "NatsCluster reconciles per second by result.", "ops",
			[]query{{`sum by (result) (rate(natsforge_reconciles_total[$__rate_interval]))`, "{{result}}"}}},
	}},
	{"Certificates", []panel{
		{"Certificate expiry (brokers)", "Time until the certificate each broker pod serves expires, per listener.", "s",
			[]query{{`min by (namespace, pod, listener) (natsforge_tls_certificate_expiry_seconds)`, "{{namespace}}/{{pod}} {{listener}}"}}},
		{"Certificate expiry (operator)", "Time until each cluster's server certificate and CA expire, as the operator issued or read them.", "s",
			[]query{{`min by (namespace, natscluster, certificate) (natsforge_certificate_expiry_timestamp_seconds) - time()`, "{{namespace}}/{{natscluster}} {{certificate}}"}}},
	}},
}

// build uses the classic dashboard schema, which the SDK marks deprecated in
// favour of dashboardv2: Grafana's dashboard sidecar provisions classic JSON
// files, and every Grafana a chart user may run reads them.
//
//nolint:staticcheck // SA1019: see above.
func build() (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder("natsforge").
		Uid("natsforge").
		Description("NATS brokers run by natsforge, and the operator: traffic, authentication, rotations, certificates.").
		Tags([]string{"nats", "natsforge"}).
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Prometheus").Type("prometheus"))
	id := uint32(0)
	next := func() uint32 { id++; return id }
	legend := common.NewVizLegendOptionsBuilder().ShowLegend(true).
		DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom)
	for _, row := range rows {
		b = b.WithRow(dashboard.NewRowBuilder(row.title).Id(next()))
		for _, p := range row.panels {
			tp := timeseries.NewPanelBuilder().Id(next()).Title(p.title).Description(p.description).Unit(p.unit).
				Datasource(datasource).Height(8).Span(12).Legend(legend)
			for i, q := range p.queries {
				tp = tp.WithTarget(prometheus.NewDataqueryBuilder().Datasource(datasource).
					Expr(q.expr).LegendFormat(q.legend).RefId(string(rune('A' + i))))
			}
			b = b.WithPanel(tp)
		}
	}
	return b.Build()
}

func main() {
	out := flag.String("o", "charts/natsforge/dashboards/natsforge.json", "file to write")
	flag.Parse()
	d, err := build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
	raw, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, append(raw, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}
