package monitor

import "time"

// The snapshot types below carry nats-server's JSON field names (server/monitor.go,
// v2.15), so dashboards, scrapers and `nats` CLI habits built for nats-server carry
// over. Fields nats-server has and this broker cannot fill are left out rather than
// reported as zero; fields this broker adds are marked as such.

// Varz is the /varz document: general server information and counters.
type Varz struct {
	ID      string `json:"server_id"`
	Name    string `json:"server_name"`
	Version string `json:"version"`
	// NatsforgeVersion is natsforge's own version (this broker adds it);
	// version is the nats-server version clients read features from.
	NatsforgeVersion  string          `json:"natsforge_version"`
	Proto             int             `json:"proto"`
	GoVersion         string          `json:"go"`
	Host              string          `json:"host"`
	Port              int             `json:"port"`
	AuthRequired      bool            `json:"auth_required,omitempty"`
	TLSRequired       bool            `json:"tls_required,omitempty"`
	TLSVerify         bool            `json:"tls_verify,omitempty"`
	TLSTimeout        float64         `json:"tls_timeout,omitempty"`
	ClientConnectURLs []string        `json:"connect_urls,omitempty"`
	MaxConn           int             `json:"max_connections"`
	MaxSubs           int             `json:"max_subscriptions,omitempty"`
	PingInterval      time.Duration   `json:"ping_interval"`
	MaxPingsOut       int             `json:"ping_max"`
	HTTPHost          string          `json:"http_host"`
	HTTPPort          int             `json:"http_port"`
	HTTPSPort         int             `json:"https_port"`
	AuthTimeout       float64         `json:"auth_timeout"`
	MaxControlLine    int32           `json:"max_control_line"`
	MaxPayload        int             `json:"max_payload"`
	MaxPending        int64           `json:"max_pending"`
	Cluster           ClusterOptsVarz `json:"cluster,omitempty"`
	WriteDeadline     time.Duration   `json:"write_deadline"`
	Start             time.Time       `json:"start"`
	Now               time.Time       `json:"now"`
	Uptime            string          `json:"uptime"`
	Mem               int64           `json:"mem"`
	CPU               float64         `json:"cpu"`
	Cores             int             `json:"cores"`
	MaxProcs          int             `json:"gomaxprocs"`
	Connections       int             `json:"connections"`
	TotalConnections  uint64          `json:"total_connections"`
	Routes            int             `json:"routes"`
	Remotes           int             `json:"remotes"`
	// Leafnodes is always 0: the broker has no leaf node connections.
	Leafnodes        int               `json:"leafnodes"`
	InMsgs           int64             `json:"in_msgs"`
	InBytes          int64             `json:"in_bytes"`
	InClientMsgs     int64             `json:"in_client_msgs"`
	InClientBytes    int64             `json:"in_client_bytes"`
	OutMsgs          int64             `json:"out_msgs"`
	OutBytes         int64             `json:"out_bytes"`
	OutClientMsgs    int64             `json:"out_client_msgs"`
	OutClientBytes   int64             `json:"out_client_bytes"`
	SlowConsumers    int64             `json:"slow_consumers"`
	StaleConnections int64             `json:"stale_connections"`
	Subscriptions    uint32            `json:"subscriptions"`
	HTTPReqStats     map[string]uint64 `json:"http_req_stats"`
	ConfigLoadTime   time.Time         `json:"config_load_time"`
	// ConfigDigest is the sha256 (hex) of the loaded config file's bytes; the
	// operator compares it with the digest of the config it rendered.
	ConfigDigest string `json:"config_digest"`

	// Added by this broker.
	ConfigFile      string    `json:"config_file,omitempty"`
	AuthFailures    int64     `json:"auth_failures"`
	Reloads         int64     `json:"config_reloads"`
	ReloadErrors    int64     `json:"config_reload_errors"`
	LastReloadError string    `json:"config_reload_error,omitempty"`
	LastReloadTime  time.Time `json:"config_reload_error_time,omitzero"`
	LameDuckMode    bool      `json:"lame_duck_mode,omitempty"`
	// TLSCertSHA256 is the SHA-256 (hex) of the DER of the certificate the
	// client listener serves now (after any reload); the operator compares
	// it with the certificate it put in the mounted Secret.
	TLSCertSHA256 string `json:"tls_cert_sha256,omitempty"`
	// TLSCertNotAfter is when that certificate expires; it moves when a
	// rotated certificate is loaded.
	TLSCertNotAfter time.Time `json:"tls_cert_not_after,omitzero"`
}

// ClusterOptsVarz is the cluster part of /varz.
type ClusterOptsVarz struct {
	Name        string  `json:"name,omitempty"`
	Host        string  `json:"addr,omitempty"`
	Port        int     `json:"cluster_port,omitempty"`
	AuthTimeout float64 `json:"auth_timeout,omitempty"`
	// URLs are the configured routes with their credentials removed.
	URLs        []string `json:"urls,omitempty"`
	TLSRequired bool     `json:"tls_required,omitempty"`
	TLSVerify   bool     `json:"tls_verify,omitempty"`
	TLSTimeout  float64  `json:"tls_timeout,omitempty"`
	// TLSCertNotAfter is when the route certificate expires (ours).
	TLSCertNotAfter time.Time `json:"tls_cert_not_after,omitzero"`
}

// Connz is the /connz document.
type Connz struct {
	ID       string      `json:"server_id"`
	Now      time.Time   `json:"now"`
	NumConns int         `json:"num_connections"`
	Total    int         `json:"total"`
	Offset   int         `json:"offset"`
	Limit    int         `json:"limit"`
	Conns    []*ConnInfo `json:"connections"`
}

// ConnInfo is one client connection in /connz.
type ConnInfo struct {
	Cid            uint64    `json:"cid"`
	Kind           string    `json:"kind,omitempty"`
	Type           string    `json:"type,omitempty"`
	IP             string    `json:"ip"`
	Port           int       `json:"port"`
	Start          time.Time `json:"start"`
	LastActivity   time.Time `json:"last_activity"`
	RTT            string    `json:"rtt,omitempty"`
	Uptime         string    `json:"uptime"`
	Idle           string    `json:"idle"`
	Pending        int       `json:"pending_bytes"`
	InMsgs         int64     `json:"in_msgs"`
	OutMsgs        int64     `json:"out_msgs"`
	InBytes        int64     `json:"in_bytes"`
	OutBytes       int64     `json:"out_bytes"`
	NumSubs        uint32    `json:"subscriptions"`
	Name           string    `json:"name,omitempty"`
	Lang           string    `json:"lang,omitempty"`
	Version        string    `json:"version,omitempty"`
	AuthorizedUser string    `json:"authorized_user,omitempty"`
	// Account is the connection's account, left out for the global one
	// ($G), with ?auth=1 as authorized_user (nats-server's rule).
	Account    string      `json:"account,omitempty"`
	TLSVersion string      `json:"tls_version,omitempty"`
	TLSCipher  string      `json:"tls_cipher_suite,omitempty"`
	Subs       []string    `json:"subscriptions_list,omitempty"`
	SubsDetail []SubDetail `json:"subscriptions_list_detail,omitempty"`
	// Stop and Reason are set on a closed connection (/connz?state=closed).
	Stop   *time.Time `json:"stop,omitempty"`
	Reason string     `json:"reason,omitempty"`
	// RTTValue is RTT as a duration, for sort=rtt.
	RTTValue time.Duration `json:"-"`
}

// Routez is the /routez document.
type Routez struct {
	ID        string       `json:"server_id"`
	Name      string       `json:"server_name"`
	Now       time.Time    `json:"now"`
	NumRoutes int          `json:"num_routes"`
	Routes    []*RouteInfo `json:"routes"`
}

// RouteInfo is one route connection in /routez.
type RouteInfo struct {
	Rid          uint64      `json:"rid"`
	RemoteID     string      `json:"remote_id"`
	RemoteName   string      `json:"remote_name"`
	DidSolicit   bool        `json:"did_solicit"`
	IsConfigured bool        `json:"is_configured"`
	IP           string      `json:"ip"`
	Port         int         `json:"port"`
	Start        time.Time   `json:"start"`
	LastActivity time.Time   `json:"last_activity"`
	Uptime       string      `json:"uptime"`
	Idle         string      `json:"idle"`
	Pending      int         `json:"pending_size"`
	InMsgs       int64       `json:"in_msgs"`
	OutMsgs      int64       `json:"out_msgs"`
	InBytes      int64       `json:"in_bytes"`
	OutBytes     int64       `json:"out_bytes"`
	NumSubs      uint32      `json:"subscriptions"`
	Subs         []string    `json:"subscriptions_list,omitempty"`
	SubsDetail   []SubDetail `json:"subscriptions_list_detail,omitempty"`
}

// Subsz is the /subsz document.
type Subsz struct {
	ID  string    `json:"server_id"`
	Now time.Time `json:"now"`
	*SublistStats
	Total  int         `json:"total"`
	Offset int         `json:"offset"`
	Limit  int         `json:"limit"`
	Subs   []SubDetail `json:"subscriptions_list,omitempty"`
}

// SublistStats are the subject index's statistics.
type SublistStats struct {
	NumSubs      uint32  `json:"num_subscriptions"`
	NumCache     uint32  `json:"num_cache"`
	NumInserts   uint64  `json:"num_inserts"`
	NumRemoves   uint64  `json:"num_removes"`
	NumMatches   uint64  `json:"num_matches"`
	CacheHitRate float64 `json:"cache_hit_rate"`
	MaxFanout    uint32  `json:"max_fanout"`
	AvgFanout    float64 `json:"avg_fanout"`
}

// SubDetail is one subscription.
type SubDetail struct {
	// Account is the subscription's account (/subsz; nats-server leaves it
	// out of /connz's lists).
	Account string `json:"account,omitempty"`
	Subject string `json:"subject"`
	Queue   string `json:"qgroup,omitempty"`
	Sid     string `json:"sid"`
	Msgs    int64  `json:"msgs"`
	Max     int64  `json:"max,omitempty"`
	Cid     uint64 `json:"cid"`
}

// AuthStats are the authentication counters behind natsforge_auth_* (ours:
// prometheus-nats-exporter has no authentication metrics).
type AuthStats struct {
	// Failures counts refused clients and routes by reason, from a fixed set.
	Failures map[string]uint64
	// UserFailures counts wrong passwords of each configured user. It is
	// served only while Users is under the monitoring server's user label
	// limit, so a config of many users cannot blow up the series count.
	UserFailures map[string]uint64
	// Users is how many users are configured.
	Users int
	// BcryptVerifications is how many bcrypt comparisons were paid.
	BcryptVerifications uint64
	// CacheHits and CacheMisses count bcrypt-hashed password checks answered
	// by the verification cache, and those that were not.
	CacheHits, CacheMisses uint64
	// Latency is the time from accepting a connection (after its TLS
	// handshake) to letting it in, when authentication is required.
	Latency Histogram
}

// Histogram is a cumulative histogram read at scrape time.
type Histogram struct {
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64 // upper bound -> cumulative count
}
