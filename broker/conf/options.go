// Package conf reads and writes the broker's configuration file: a strict subset
// of nats-server's format (see PROTOCOL.md), so that a file rendered here is also
// accepted by `nats-server -t`.
//
// Options is the typed model shared by the parser, the renderer, the broker and the
// operator. The zero value of a field means "not set": the broker applies its
// defaults (see Defaults) after parsing, and the renderer leaves unset fields out.
//
// ParseFile and Parse read a file (parser.go: the syntax, includes and
// variables; decode.go: keys onto Options; tls.go: the tls {} blocks, decoded,
// validated and rendered); Validate checks ranges and how
// options fit together, by nats-server's rules; Render writes Options back
// out, and Digest names them. ReadConfig (parts.go) reads a config the
// operator delivered in parts, joining them and checking their digest. Parse then Render then Parse is the identity on
// valid Options, and nats-server reads what Render writes the same way; the
// tests check both against nats-server itself.
//
// previous.go is the one extension, kept out of the config file so that the
// promise above holds: the previous-passwords file, which only
// natsforge-broker reads, carries a second hash per user during a password
// rotation's grace window (Options.PreviousPasswords).
package conf

import "time"

// Defaults, as nats-server's.
const (
	DefaultPort                = 4222
	DefaultClusterPort         = 6222
	DefaultHTTPPort            = 8222
	DefaultMaxPayload          = 1 << 20 // 1 MiB
	DefaultMaxControlLine      = 4096
	DefaultMaxPending          = 64 << 20 // 64 MiB
	DefaultAuthTimeout         = 2 * time.Second
	DefaultPingInterval        = 2 * time.Minute
	DefaultMaxPingsOut         = 2
	DefaultWriteDeadline       = 10 * time.Second
	DefaultLameDuckDuration    = 2 * time.Minute
	DefaultLameDuckGracePeriod = 10 * time.Second
)

// Options is everything the broker can be configured with.
type Options struct {
	ServerName string // server_name
	Host       string // host (or listen's host part); "" means 0.0.0.0
	Port       int    // port (or listen's port part)

	HTTPHost string // http: "host:port" sets both; http_port sets the port
	HTTPPort int
	// HTTPSHost and HTTPSPort serve monitoring over HTTPS with the client TLS
	// certificate (https: "host:port", https_port). Exclusive with HTTPPort.
	HTTPSHost string
	HTTPSPort int

	MaxPayload       int64 // max_payload, bytes (sizes accept 1MB, 64KB)
	MaxControlLine   int   // max_control_line
	MaxConnections   int   // max_connections
	MaxSubscriptions int   // max_subscriptions (per connection)
	MaxPending       int64 // max_pending, bytes

	PingInterval        time.Duration // ping_interval ("2m", or seconds as a number)
	MaxPingsOut         int           // ping_max
	WriteDeadline       time.Duration // write_deadline
	LameDuckDuration    time.Duration // lame_duck_duration
	LameDuckGracePeriod time.Duration // lame_duck_grace_period

	Debug bool // debug
	Trace bool // trace

	// NoAuthUser names a user from Authorization.Users or an account's users
	// that clients presenting no credentials are authenticated as
	// (no_auth_user).
	NoAuthUser string

	Authorization *Authorization // authorization {}
	// Accounts are the accounts {} block in file order (accounts.go). Users
	// in authorization {} belong to the global account, $G.
	Accounts []Account
	// SystemAccount names the account that carries the server's own
	// requests and events, $SYS.> (system_account).
	SystemAccount string
	Cluster       *Cluster // cluster {}
	// TLS secures the client listener and HTTPS monitoring (tls {}).
	TLS *TLS

	// PreviousPasswords are not read from the config file and not rendered
	// into it: they come from the previous-passwords file that only
	// natsforge-broker reads (previous.go), and Validate checks them against
	// Authorization.Users.
	PreviousPasswords []PreviousPassword
}

// TLS is a tls {} block: the top-level one for clients and monitoring, or
// cluster.tls for routes. Syntax and meaning are nats-server's.
type TLS struct {
	CertFile string // cert_file: PEM certificate chain
	KeyFile  string // key_file: PEM private key
	CAFile   string // ca_file: PEM CAs that client (or route) certificates must chain to
	// Verify requires and verifies a peer certificate (verify). Routes verify
	// by default in nats-server; the broker follows it.
	Verify bool
	// VerifyAndMap requires a client certificate and maps its identity (email
	// SAN, DNS SAN, then the RFC 2253 subject) to a user in
	// authorization.users (verify_and_map). It implies Verify.
	VerifyAndMap bool
	// Timeout bounds the TLS handshake (timeout, seconds; nats-server's default
	// is 2s, as for authorization).
	Timeout time.Duration
	// HandshakeFirst does TLS before the server sends INFO (handshake_first),
	// for clients such as nats.go's TLSHandshakeFirst().
	HandshakeFirst bool
	// CipherSuites and CurvePreferences are Go's names (cipher_suites,
	// curve_preferences); empty means Go's defaults, as nats-server.
	CipherSuites     []string
	CurvePreferences []string
	// MinVersion is "1.2" or "1.3" (min_version); "" means TLS 1.2.
	MinVersion string
}

// Authorization is the client authorization block.
type Authorization struct {
	// Single-user auth (authorization { user, password }), as --user/--pass.
	User     string
	Password string // plain, or a bcrypt hash ($2a$/$2b$/$2x$/$2y$)
	// Token is auth_token (authorization { token }).
	Token string
	// Timeout is how long a client has to send CONNECT (timeout, seconds).
	Timeout time.Duration
	// DefaultPermissions apply to users that carry no permissions of their own.
	DefaultPermissions *Permissions
	Users              []User
}

// User is one entry of authorization.users.
type User struct {
	Name        string // user
	Password    string // password: plain, or a bcrypt hash
	Permissions *Permissions
}

// Permissions restricts what a user may publish and subscribe to.
type Permissions struct {
	Publish   *SubjectPermission
	Subscribe *SubjectPermission
	// AllowResponses lets the user publish to the reply subject of a message it
	// received, even where Publish would deny it (allow_responses: true).
	//
	// As in nats-server, it also implies a publish allow list: when Publish is
	// nil or has no Allow entries, the user may publish ONLY to reply subjects
	// (nats-server sets Publish.Allow to an empty, deny-all list). A map value
	// in the file ({max, expires}) is read as true; its limits are not modelled.
	AllowResponses bool
}

// SubjectPermission is an allow list checked first (none = all allowed), then a
// deny list.
type SubjectPermission struct {
	Allow []string
	Deny  []string
}

// Cluster is the cluster {} block: how this server meets its peers.
type Cluster struct {
	Name string // name
	Host string // listen's host part (or host)
	Port int    // listen's port part (or port)
	// Authorization is checked on accepted route connections; a route learned by
	// gossip dials with it, so it must then hold the plaintext password.
	Authorization *ClusterAuthorization
	// Routes are URLs to dial, carrying the dialling credentials:
	// nats://route:pw@host:6222.
	Routes []string
	// NoAdvertise stops gossiping client URLs to clients (no_advertise).
	NoAdvertise bool
	// TLS secures routes (cluster.tls): mutual, as in nats-server.
	TLS *TLS
}

// ClusterAuthorization is cluster.authorization.
type ClusterAuthorization struct {
	User     string
	Password string
	Timeout  time.Duration
}

// GlobalAccount is the account of users outside accounts {}, as nats-server
// names it; the name is reserved.
const GlobalAccount = "$G"

// Account is one entry of accounts {}: its own subject space, shared with
// other accounts only through exports and imports (nats-server's syntax).
type Account struct {
	Name  string
	Users []User
	// DefaultPermissions apply to the account's users that carry none of
	// their own (default_permissions).
	DefaultPermissions *Permissions
	Exports            []Export
	Imports            []Import
}

// Export offers a stream ({stream: "a.>"}) or a service ({service: "help"})
// to other accounts: to all of them, or to those in Accounts.
type Export struct {
	Stream   string
	Service  string
	Accounts []string // accounts: only these may import it; empty means public
}

// Import takes a stream or a service another account exports.
type Import struct {
	Stream  *ImportSource // stream: {account, subject}
	Service *ImportSource // service: {account, subject}
	// Prefix (streams) is put in front of the subjects the importer sees.
	Prefix string
	// To (services) is the subject the importer publishes requests to;
	// empty means the exported subject itself.
	To string
}

// ImportSource names what is imported: an account and a subject it exports.
type ImportSource struct {
	Account string
	Subject string
}
