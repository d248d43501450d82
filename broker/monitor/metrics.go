package monitor

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collector serves the natsforge_* metrics: what prometheus-nats-exporter has
// no name for (exporter.go serves the rest under its names). Everything is
// read at scrape time from counters the server keeps anyway (atomics written
// once per connection or reload, never per message), so /varz and /metrics
// never disagree and the hot path pays nothing for metrics.
type collector struct {
	src       Source
	userLimit int

	info, configLoadTime, lameDuck, certExpiry, reloads *prometheus.Desc
	authFailures, authUserFailures, bcrypt              *prometheus.Desc
	cacheHits, cacheMisses, authLatency                 *prometheus.Desc
}

const namespace = "natsforge"

func newCollector(src Source, o Options) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
	}
	return &collector{
		src:              src,
		userLimit:        o.UserLabelLimit,
		info:             d("server_info", "Constant 1, labelled with the server's identity and the loaded config digest.", "server_id", "server_name", "version", "cluster", "config_digest"),
		configLoadTime:   d("config_load_timestamp_seconds", "Unix time the running configuration was loaded."),
		lameDuck:         d("lame_duck_mode", "1 while the server is in lame duck mode."),
		certExpiry:       d("tls_certificate_expiry_seconds", "Seconds until the certificate served on a listener (client: clients and HTTPS monitoring; cluster: routes) expires; negative once expired.", "listener"),
		reloads:          d("config_reloads_total", "Configuration reloads (SIGHUP, the config file or a certificate file changing) by result: success (applied) or failure (refused, the running config kept).", "result"),
		authFailures:     d("auth_failures_total", "Clients and routes refused by authentication, by reason (unknown_user, bad_password, bad_token, certificate_not_mapped, no_credentials, account_not_allowed, route).", "reason"),
		authUserFailures: d("auth_user_failures_total", "Wrong passwords per configured user; served only while fewer users are configured than the broker's --metrics_user_label_limit.", "user"),
		bcrypt:           d("auth_bcrypt_verifications_total", "bcrypt password comparisons paid (the verification cache answers the rest)."),
		cacheHits:        d("auth_cache_hits_total", "bcrypt-hashed password checks answered by the verification cache."),
		cacheMisses:      d("auth_cache_misses_total", "bcrypt-hashed password checks the verification cache could not answer."),
		authLatency:      d("auth_connect_duration_seconds", "Time from accepting a client connection (after its TLS handshake) to letting it in, when authentication is required."),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.info, c.configLoadTime, c.lameDuck, c.certExpiry, c.reloads,
		c.authFailures, c.authUserFailures, c.bcrypt, c.cacheHits, c.cacheMisses, c.authLatency,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	v := c.src.Varz()
	gauge := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, labels...)
	}
	counter := func(d *prometheus.Desc, x float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, x, labels...)
	}
	gauge(c.info, 1, v.ID, v.Name, v.Version, v.Cluster.Name, v.ConfigDigest)
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
	counter(c.reloads, float64(v.Reloads), "success")
	counter(c.reloads, float64(v.ReloadErrors), "failure")

	as, ok := c.src.(AuthSource)
	if !ok {
		return
	}
	a := as.AuthStats()
	for reason, n := range a.Failures {
		counter(c.authFailures, float64(n), reason)
	}
	if a.Users < c.userLimit {
		for user, n := range a.UserFailures {
			counter(c.authUserFailures, float64(n), user)
		}
	}
	counter(c.bcrypt, float64(a.BcryptVerifications))
	counter(c.cacheHits, float64(a.CacheHits))
	counter(c.cacheMisses, float64(a.CacheMisses))
	ch <- prometheus.MustNewConstHistogram(c.authLatency, a.Latency.Count, a.Latency.Sum, a.Latency.Buckets)
}
