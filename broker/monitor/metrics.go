package monitor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector turns a /varz snapshot into Prometheus metrics at scrape time, so the
// server keeps one set of counters and /varz and /metrics never disagree.
type collector struct {
	src Source

	info, connections, totalConnections, subscriptions, routes    *prometheus.Desc
	inMsgs, outMsgs, inBytes, outBytes, slowConsumers, staleConns *prometheus.Desc
	authFailures, reloads, reloadErrors, configLoadTime, lameDuck *prometheus.Desc
	certExpiry                                                    *prometheus.Desc
}

const namespace = "natsforge"

func newCollector(src Source) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &collector{
		src:              src,
		info:             d("server_info", "Constant 1, labelled with the server's identity and the loaded config digest.", "server_id", "server_name", "version", "cluster", "config_digest"),
		connections:      d("connections", "Client connections open now."),
		totalConnections: d("connections_total", "Client connections accepted since start."),
		subscriptions:    d("subscriptions", "Subscriptions in the subject index now, local and remote."),
		routes:           d("routes", "Route connections open now."),
		inMsgs:           d("in_msgs_total", "Messages received from clients and routes."),
		outMsgs:          d("out_msgs_total", "Messages sent to clients and routes."),
		inBytes:          d("in_bytes_total", "Payload bytes received from clients and routes."),
		outBytes:         d("out_bytes_total", "Payload bytes sent to clients and routes."),
		slowConsumers:    d("slow_consumers_total", "Connections closed as slow consumers."),
		staleConns:       d("stale_connections_total", "Connections closed as stale (unanswered pings)."),
		authFailures:     d("auth_failures_total", "Connections refused or closed with 'Authorization Violation'."),
		reloads:          d("config_reloads_total", "Configuration reloads applied."),
		reloadErrors:     d("config_reload_errors_total", "Configuration reloads refused."),
		configLoadTime:   d("config_load_timestamp_seconds", "Unix time the running configuration was loaded."),
		lameDuck:         d("lame_duck_mode", "1 while the server is in lame duck mode."),
		certExpiry:       d("tls_certificate_expiry_seconds", "Seconds until the certificate served on a listener (client: clients and HTTPS monitoring; cluster: routes) expires; negative once expired.", "listener"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.info, c.connections, c.totalConnections, c.subscriptions, c.routes,
		c.inMsgs, c.outMsgs, c.inBytes, c.outBytes, c.slowConsumers, c.staleConns,
		c.authFailures, c.reloads, c.reloadErrors, c.configLoadTime, c.lameDuck, c.certExpiry,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	v := c.src.Varz()
	gauge := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, labels...)
	}
	counter := func(d *prometheus.Desc, x float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, x)
	}
	gauge(c.info, 1, v.ID, v.Name, v.Version, v.Cluster.Name, v.ConfigDigest)
	gauge(c.connections, float64(v.Connections))
	counter(c.totalConnections, float64(v.TotalConnections))
	gauge(c.subscriptions, float64(v.Subscriptions))
	gauge(c.routes, float64(v.Routes))
	counter(c.inMsgs, float64(v.InMsgs))
	counter(c.outMsgs, float64(v.OutMsgs))
	counter(c.inBytes, float64(v.InBytes))
	counter(c.outBytes, float64(v.OutBytes))
	counter(c.slowConsumers, float64(v.SlowConsumers))
	counter(c.staleConns, float64(v.StaleConnections))
	counter(c.authFailures, float64(v.AuthFailures))
	counter(c.reloads, float64(v.Reloads))
	counter(c.reloadErrors, float64(v.ReloadErrors))
	if !v.ConfigLoadTime.IsZero() {
		gauge(c.configLoadTime, float64(v.ConfigLoadTime.UnixNano())/1e9)
	}
	ld := 0.0
	if v.LameDuckMode {
		ld = 1
	}
	gauge(c.lameDuck, ld)
	for listener, notAfter := range map[string]time.Time{"client": v.TLSCertNotAfter, "cluster": v.Cluster.TLSCertNotAfter} {
		if !notAfter.IsZero() {
			gauge(c.certExpiry, time.Until(notAfter).Seconds(), listener)
		}
	}
}
