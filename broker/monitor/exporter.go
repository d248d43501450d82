package monitor

import (
	"encoding/json"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The gnatsd_* metrics are those prometheus-nats-exporter makes from a
// nats-server's monitoring endpoints when run with -varz -connz -routez -subz,
// under the same names and labels, so dashboards and alerts built on the
// exporter work against these brokers with no sidecar. The one difference is
// the server_id label: the exporter sets it to the URL it polls unless it runs
// with -use_internal_server_id; a broker has no such URL and uses its server
// ID, as that flag does. exporter_names_test.go holds the list taken from the
// exporter's source and checks it.
const exporterNamespace = "gnatsd"

// exporterCollector serves the exporter's metrics. Everything is read at
// scrape time from the same snapshots /varz, /connz, /routez and /subsz
// serve.
type exporterCollector struct {
	src Source

	connz                                             map[string]*prometheus.Desc
	routezServerID, routezServerName, routezNumRoutes *prometheus.Desc
	routeInfo                                         *prometheus.Desc
	routeSubs, routeUptime, routeInMsgs, routeOutMsgs *prometheus.Desc
	routeInBytes, routeOutBytes                       *prometheus.Desc
}

// connzTotals are the exporter's -connz gauges: the page it reads (offset 0,
// the default limit) and sums over its connections.
var connzTotals = []string{"num_connections", "total", "offset", "limit", "pending_bytes",
	"subscriptions", "in_bytes", "out_bytes", "in_msgs", "out_msgs"}

func newExporterCollector(src Source) *exporterCollector {
	d := func(subsystem, name string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(exporterNamespace, subsystem, name), name, labels, nil)
	}
	c := &exporterCollector{src: src, connz: map[string]*prometheus.Desc{}}
	for _, n := range connzTotals {
		c.connz[n] = d("connz", n, "server_id")
	}
	c.routezServerID = d("routez", "server_id", "server_id", "value")
	c.routezServerName = d("routez", "server_name", "server_id", "value")
	c.routezNumRoutes = d("routez", "num_routes", "server_id")
	c.routeInfo = d("routez", "route_info", "server_id", "rid", "remote_id", "remote_name", "account", "ip", "compression")
	c.routeSubs = d("routez", "route_subscriptions", "server_id", "rid")
	c.routeUptime = d("routez", "route_uptime_seconds", "server_id", "rid")
	c.routeInMsgs = d("routez", "route_in_msgs", "server_id", "rid")
	c.routeOutMsgs = d("routez", "route_out_msgs", "server_id", "rid")
	c.routeInBytes = d("routez", "route_in_bytes", "server_id", "rid")
	c.routeOutBytes = d("routez", "route_out_bytes", "server_id", "rid")
	return c
}

// Describe sends nothing: the -varz and -subz metrics are named after the
// documents' fields, as the exporter names them, which makes this an
// unchecked collector.
func (c *exporterCollector) Describe(chan<- *prometheus.Desc) {}

func (c *exporterCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.src.Varz()
	id := v.ID
	collectDocument(ch, "varz", id, v)

	sz := c.src.Subsz(SubszOptions{})
	if sz.SublistStats == nil {
		sz.SublistStats = &SublistStats{}
	}
	sz.Total, sz.Offset, sz.Limit = int(sz.NumSubs), 0, DefaultSubListSize
	collectDocument(ch, "subsz", id, sz)

	c.collectConnz(ch, id)
	c.collectRoutez(ch, id)
}

// collectDocument is the exporter's generic collector (-varz, -subz): every
// top-level JSON number of the document becomes a gauge
// gnatsd_<endpoint>_<field>{server_id}, and the strings server_id,
// server_name and version a gauge of 1 with the string as label value.
// Objects, arrays, booleans and other strings are left out, as there.
func collectDocument(ch chan<- prometheus.Metric, endpoint, id string, doc any) {
	raw, err := json.Marshal(doc)
	if err != nil {
		return
	}
	var fields map[string]any
	if json.Unmarshal(raw, &fields) != nil {
		return
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		name := prometheus.BuildFQName(exporterNamespace, endpoint, k)
		switch x := fields[k].(type) {
		case float64:
			ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, k, []string{"server_id"}, nil), prometheus.GaugeValue, x, id)
		case string:
			if k == "server_id" || k == "server_name" || k == "version" {
				ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, k, []string{"server_id", "value"}, nil), prometheus.GaugeValue, 1, id, x)
			}
		}
	}
}

func (c *exporterCollector) collectConnz(ch chan<- prometheus.Metric, id string) {
	cz := c.src.Connz(ConnzOptions{})
	conns := cz.Conns
	sort.Slice(conns, func(i, j int) bool { return conns[i].Cid < conns[j].Cid })
	total := len(conns)
	if len(conns) > DefaultConnListSize {
		conns = conns[:DefaultConnListSize]
	}
	vals := map[string]float64{"num_connections": float64(len(conns)), "total": float64(total),
		"offset": 0, "limit": DefaultConnListSize}
	for _, ci := range conns {
		vals["pending_bytes"] += float64(ci.Pending)
		vals["subscriptions"] += float64(ci.NumSubs)
		vals["in_bytes"] += float64(ci.InBytes)
		vals["out_bytes"] += float64(ci.OutBytes)
		vals["in_msgs"] += float64(ci.InMsgs)
		vals["out_msgs"] += float64(ci.OutMsgs)
	}
	for _, n := range connzTotals {
		t := prometheus.GaugeValue
		switch n {
		case "in_bytes", "out_bytes", "in_msgs", "out_msgs":
			t = prometheus.CounterValue // as the exporter types them
		}
		ch <- prometheus.MustNewConstMetric(c.connz[n], t, vals[n], id)
	}
}

func (c *exporterCollector) collectRoutez(ch chan<- prometheus.Metric, id string) {
	rz := c.src.Routez(RoutezOptions{})
	gauge := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, labels...)
	}
	gauge(c.routezServerID, 1, id, rz.ID)
	gauge(c.routezServerName, 1, id, rz.Name)
	gauge(c.routezNumRoutes, float64(len(rz.Routes)), id) // num_routes, as /routez fills it
	for _, r := range rz.Routes {
		rid := strconv.FormatUint(r.Rid, 10)
		gauge(c.routeInfo, 1, id, rid, r.RemoteID, r.RemoteName, "", r.IP, "")
		gauge(c.routeSubs, float64(r.NumSubs), id, rid)
		if !r.Start.IsZero() {
			gauge(c.routeUptime, time.Since(r.Start).Truncate(time.Second).Seconds(), id, rid)
		}
		gauge(c.routeInMsgs, float64(r.InMsgs), id, rid)
		gauge(c.routeOutMsgs, float64(r.OutMsgs), id, rid)
		gauge(c.routeInBytes, float64(r.InBytes), id, rid)
		gauge(c.routeOutBytes, float64(r.OutBytes), id, rid)
	}
}
