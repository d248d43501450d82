package server

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natsforge/natsforge/broker/auth"
	"github.com/natsforge/natsforge/broker/conf"
)

// RandomPort as Options.Port listens on any free port (Addr tells which);
// 0 means the default, 4222, as everywhere in conf.Options.
const RandomPort = -1

// Version is the nats-server version this broker reports to clients (INFO
// and /varz version). Clients read it as semver to decide on features, so it
// names the nats-server generation whose client protocol the broker speaks,
// not natsforge's own version: a 0.x there would read as a server older than
// headers (2.2.0). nats.go itself gates headers and no-responders on INFO's
// headers flag and only JetStream helpers on this version; JetStream is not
// implemented, and its requests get no responders either way.
const Version = "2.10.0"

// NatsforgeVersion is natsforge's own version, reported apart from Version:
// in /varz natsforge_version and the start banner. The broker binary sets it
// from its build (-ldflags "-X main.version=...").
var NatsforgeVersion = "0.1.0-dev"

// Server is the broker: a client listener, the connections, and the subject
// index they share. See doc.go for goroutines and lock order.
type Server struct {
	// Immutable after New.
	id       string
	name     string
	logger   *slog.Logger
	trace    bool
	verifier *auth.Verifier
	sl       *Sublist // the global account's ($G)
	// tag names this server in service reply subjects (account.go).
	tag string

	// accounts is swapped whole by reload (account.go).
	accounts       atomic.Pointer[accountSet]
	respInterestMu sync.Mutex
	// sys is the system account's service (system.go), nil without one.
	sys atomic.Pointer[system]

	// opts and auth are swapped whole by reload; readers load them once per use.
	opts atomic.Pointer[conf.Options]
	auth atomic.Pointer[authConfig]
	// tlsClient is the client listener's certificate material (tls.go), nil
	// without TLS; reload stores new material for new connections.
	tlsClient atomic.Pointer[tlsMaterial]
	// tlsRoutes is cluster.tls's material (route_tls.go), nil without it.
	tlsRoutes atomic.Pointer[tlsMaterial]
	// clusterPtr is set once by Start when there is a cluster (extend.go).
	clusterPtr atomic.Pointer[cluster]

	// Totals, for /varz.
	inMsgs, inBytes, outMsgs, outBytes atomic.Int64
	slowConsumers                      atomic.Int64
	totalConns                         atomic.Uint64

	mu         sync.Mutex
	started    time.Time
	running    bool
	shutdown   bool
	listener   net.Listener
	clients    map[uint64]*client
	closed     closedRing // recently closed clients, for /connz?state=closed
	nextCID    uint64
	ready      chan struct{}
	done       chan struct{}
	configLoad time.Time

	wg sync.WaitGroup // every goroutine the server starts
}

// New makes a server from options (not modified; defaults are applied to a
// copy). logger may be nil to discard logs.
func New(opts *conf.Options, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o := WithDefaults(opts)
	if err := Validate(o); err != nil {
		return nil, err
	}
	tm, rm, err := loadAllTLS(o)
	if err != nil {
		return nil, err
	}
	s := &Server{
		id:         newServerID(),
		logger:     logger,
		trace:      o.Trace,
		verifier:   auth.NewVerifier(),
		sl:         NewSublist(),
		clients:    make(map[uint64]*client),
		ready:      make(chan struct{}),
		done:       make(chan struct{}),
		configLoad: time.Now(),
	}
	s.name = o.ServerName
	if s.name == "" {
		s.name = s.id
	}
	s.tag = randomTag(6)
	set, imps := s.buildAccounts(o, nil)
	ac, err := newAuthConfig(o, set)
	if err != nil {
		return nil, err
	}
	s.commitAccounts(set, imps)
	s.opts.Store(o)
	s.auth.Store(ac)
	s.tlsClient.Store(tm)
	s.tlsRoutes.Store(rm)
	return s, nil
}

// WithDefaults returns a copy of opts with nats-server's defaults filled in
// where a field is unset.
func WithDefaults(opts *conf.Options) *conf.Options {
	o := &conf.Options{}
	if opts != nil {
		*o = *opts
	}
	switch o.Port {
	case 0:
		o.Port = conf.DefaultPort
	case RandomPort:
		o.Port = 0
	}
	if o.MaxPayload == 0 {
		o.MaxPayload = conf.DefaultMaxPayload
	}
	if o.MaxControlLine == 0 {
		o.MaxControlLine = conf.DefaultMaxControlLine
	}
	if o.MaxPending == 0 {
		o.MaxPending = conf.DefaultMaxPending
	}
	if o.PingInterval == 0 {
		o.PingInterval = conf.DefaultPingInterval
	}
	if o.MaxPingsOut == 0 {
		o.MaxPingsOut = conf.DefaultMaxPingsOut
	}
	if o.WriteDeadline == 0 {
		o.WriteDeadline = conf.DefaultWriteDeadline
	}
	if o.LameDuckDuration == 0 {
		o.LameDuckDuration = conf.DefaultLameDuckDuration
	}
	if o.LameDuckGracePeriod == 0 {
		o.LameDuckGracePeriod = conf.DefaultLameDuckGracePeriod
	}
	if o.Authorization != nil {
		a := *o.Authorization
		if a.Timeout == 0 {
			a.Timeout = conf.DefaultAuthTimeout
		}
		o.Authorization = &a
	}
	return o
}

// Validate rejects option combinations the server cannot run with.
func Validate(o *conf.Options) error {
	if o.MaxPayload > o.MaxPending {
		return fmt.Errorf("max_payload (%d) cannot be larger than max_pending (%d)", o.MaxPayload, o.MaxPending)
	}
	if o.MaxPayload > 1<<31-1 {
		return fmt.Errorf("max_payload (%d) too large", o.MaxPayload)
	}
	if a := o.Authorization; a != nil {
		if a.Token != "" && (a.User != "" || len(a.Users) > 0) {
			return errors.New("authorization: cannot have a token together with users")
		}
		seen := map[string]bool{}
		if a.User != "" {
			seen[a.User] = true
		}
		for _, u := range a.Users {
			if u.Name == "" {
				return errors.New("authorization: a user has no name")
			}
			if seen[u.Name] {
				return fmt.Errorf("authorization: duplicate user %q", u.Name)
			}
			seen[u.Name] = true
		}
	}
	if err := o.ValidatePreviousPasswords(); err != nil {
		return err
	}
	// Not served yet: refuse rather than run plaintext where the file asks
	// for TLS.
	if o.HTTPSPort != 0 && o.TLS == nil {
		return errors.New("https_port: TLS cert and key required for HTTPS (a tls {} block)")
	}
	if o.HTTPSPort != 0 && o.HTTPPort != 0 {
		return fmt.Errorf("can't specify both HTTP (%v) and HTTPs (%v) ports", o.HTTPPort, o.HTTPSPort)
	}
	if o.NoAuthUser != "" {
		found := false
		if o.Authorization != nil {
			for _, u := range o.Authorization.Users {
				if u.Name == o.NoAuthUser {
					found = true
				}
			}
		}
		for _, a := range o.Accounts {
			for _, u := range a.Users {
				if u.Name == o.NoAuthUser {
					found = true
				}
			}
		}
		if !found {
			return fmt.Errorf("no_auth_user: %q not present as user in authorization block", o.NoAuthUser)
		}
	}
	return nil
}

func newServerID() string {
	var b [35]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	// Shaped like nats-server's ids (56 upper-case base32 characters, N...).
	id := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])
	return "N" + id[:55]
}

// ID is the server's id, as sent in INFO.
func (s *Server) ID() string { return s.id }

// Name is the server's name (server_name, or the id).
func (s *Server) Name() string { return s.name }

// Logger is the server's logger.
func (s *Server) Logger() *slog.Logger { return s.logger }

// getOpts returns the current options (never modify them; reload stores a
// new value).
func (s *Server) getOpts() *conf.Options { return s.opts.Load() }

// Options returns the current options, defaults applied. Do not modify.
func (s *Server) Options() *conf.Options { return s.opts.Load() }

// Start listens on the client port and starts accepting. It returns once the
// listener is up (Addr is valid), or with the listen error.
func (s *Server) Start() error {
	o := s.getOpts()
	s.mu.Lock()
	if s.running || s.shutdown {
		s.mu.Unlock()
		return errors.New("server already started")
	}
	addr := net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		s.mu.Unlock()
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.listener = l
	s.running = true
	s.started = time.Now()
	s.mu.Unlock()

	s.logger.Info("starting natsforge broker", "natsforge_version", NatsforgeVersion, "version", Version, "server_id", s.id,
		"server_name", s.name, "go", runtime.Version())
	s.logger.Info("listening for client connections", "addr", l.Addr().String())
	if ac := s.authConfig(); ac.required {
		s.logger.Info("authorization required", "users", len(ac.users), "token", ac.token != "")
	}

	if o.Cluster != nil && newCluster != nil {
		cl, err := newCluster(s)
		if err != nil {
			s.Shutdown()
			return fmt.Errorf("cluster: %w", err)
		}
		s.clusterPtr.Store(&cl)
		if err := cl.start(); err != nil {
			s.Shutdown()
			return fmt.Errorf("cluster: %w", err)
		}
	}
	for _, h := range startHooks {
		if err := h(s); err != nil {
			s.Shutdown()
			return err
		}
	}

	s.wg.Add(1)
	go s.acceptLoop(l)
	close(s.ready)
	return nil
}

// Ready is closed once Start has the listener up.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Done is closed when Shutdown has finished.
func (s *Server) Done() <-chan struct{} { return s.done }

// ReadyForConnections waits up to d for Start to finish.
func (s *Server) ReadyForConnections(d time.Duration) bool {
	select {
	case <-s.ready:
		return true
	case <-time.After(d):
		return false
	}
}

// Addr is the client listener's address (nil before Start).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listener == nil {
		return nil
	}
	return s.listener.Addr()
}

// ClientURL is nats://host:port of the client listener, for tests and logs.
func (s *Server) ClientURL() string {
	a, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	host := a.IP.String()
	if a.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "nats://" + net.JoinHostPort(host, strconv.Itoa(a.Port))
}

// Running reports whether the server is accepting connections.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Shutdown stops accepting, closes every connection and waits for every
// goroutine of the server to end. It is safe to call more than once.
func (s *Server) Shutdown() {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		<-s.done
		return
	}
	s.shutdown = true
	s.running = false
	l := s.listener
	cl := s.getCluster()
	conns := make([]*client, 0, len(s.clients))
	for _, c := range s.clients {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	if l != nil {
		_ = l.Close()
	}
	for _, h := range shutdownHooks {
		h(s)
	}
	if cl != nil {
		cl.shutdown()
	}
	for _, c := range conns {
		c.closeConnection(ServerShutdown)
	}
	s.wg.Wait()
	s.logger.Info("server shut down")
	close(s.done)
}

// StopAccepting closes the client listener and leaves connections alone (lame
// duck mode starts with this).
func (s *Server) StopAccepting() {
	s.mu.Lock()
	l := s.listener
	s.running = false
	s.mu.Unlock()
	if l != nil {
		_ = l.Close()
	}
}

func (s *Server) acceptLoop(l net.Listener) {
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failure (out of file descriptors): back off.
			if delay == 0 {
				delay = 10 * time.Millisecond
			} else if delay < time.Second {
				delay *= 2
			}
			s.logger.Error("accept failed", "err", err.Error(), "retry_in", delay.String())
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.acceptClient(nc)
	}
}

// acceptClient sets up a client connection: INFO first, then the limits and
// timers, then the loops. With TLS the handshake comes first, on a goroutine
// of its own (tls.go).
func (s *Server) acceptClient(nc net.Conn) {
	if m := s.clientTLS(); m != nil {
		s.wg.Add(1)
		go s.acceptTLSClient(nc, m)
		return
	}
	s.registerClient(s.newConn(nc), true)
}

// registerClient queues INFO (unless it went out already, before a TLS
// handshake), applies max_connections, arms the timers and starts the loops.
func (s *Server) registerClient(c *client, sendInfo bool) {
	nc := c.nc
	o := s.getOpts()
	ac := s.authConfig()
	s.totalConns.Add(1)

	c.mu.Lock()
	if ac.required {
		c.flags.set(flagExpectConnect)
	}
	c.mu.Unlock()

	var info []byte
	if sendInfo {
		info = s.clientInfo(c, false)
		c.mu.Lock()
		c.out.write(info)
		c.mu.Unlock()
	}

	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = nc.Close()
		return
	}
	if o.MaxConnections > 0 && len(s.clients) >= o.MaxConnections {
		s.mu.Unlock()
		s.logger.Info("maximum connections exceeded", "addr", nc.RemoteAddr().String())
		_ = nc.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = nc.Write(append(info, "-ERR '"+errTextMaxConnections+"'\r\n"...))
		c.mu.Lock()
		c.out.release()
		c.mu.Unlock()
		_ = nc.Close()
		return
	}
	s.clients[c.cid] = c
	s.mu.Unlock()

	c.mu.Lock()
	if ac.required {
		// The auth timer bounds the wait for CONNECT; the ping cycle starts
		// once the client is in (processConnect), as nats-server does, so a
		// PING never overtakes the handshake.
		timeout := ac.timeout
		c.authTimer = time.AfterFunc(timeout, c.authTimeout)
	} else {
		// Without auth nothing else bounds a peer that never speaks.
		c.setPingTimer(min(firstPingInterval, o.PingInterval))
	}
	c.mu.Unlock()
	s.logger.Debug("client connection created", "cid", c.cid, "addr", nc.RemoteAddr().String())
	s.startConn(c)
}

// newConn makes a client connection around nc; it is not registered or
// started.
func (s *Server) newConn(nc net.Conn) *client {
	o := s.getOpts()
	s.mu.Lock()
	s.nextCID++
	cid := s.nextCID
	s.mu.Unlock()
	c := &client{
		srv:   s,
		cid:   cid,
		nc:    nc,
		start: time.Now(),
		mcl:   o.MaxControlLine,
		mpay:  o.MaxPayload,
		msubs: o.MaxSubscriptions,
		pcd:   make(map[*client]struct{}),
		opts:  defaultConnectOpts,
		echo:  true,
		subs:  make(map[string]*subscription),
		done:  make(chan struct{}),
	}
	c.pa.hdr = -1
	c.acc = s.accountSet().global
	c.localQueueFn = c.queueDeliveredHere
	c.out.mp = o.MaxPending
	c.out.wdl = o.WriteDeadline
	c.out.signal = make(chan struct{}, 1)
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.host, c.port = a.IP.String(), a.Port
	}
	c.lastActivity.Store(c.start.UnixNano())
	return c
}

// startConn runs the connection's read and write loops.
func (s *Server) startConn(c *client) {
	s.wg.Add(2)
	go c.writeLoop()
	go c.readLoop()
	c.signalWriter()
}

// removeConn forgets a closed connection.
func (s *Server) removeConn(c *client, reason ClosedReason) {
	s.mu.Lock()
	delete(s.clients, c.cid)
	s.mu.Unlock()
	s.logger.Debug("client connection closed", "cid", c.cid, "reason", reason.String())
}

// forEachClient calls f for every client connection, outside the server lock.
func (s *Server) forEachClient(f func(c *client)) {
	s.mu.Lock()
	conns := make([]*client, 0, len(s.clients))
	for _, c := range s.clients {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		f(c)
	}
}

// localInterestChanged tells the cluster about a local subscription added
// (delta 1) or removed (-1).
func (s *Server) localInterestChanged(sub *subscription, delta int) {
	if cl := s.getCluster(); cl != nil {
		cl.localInterest(sub.client.acc.name, sub.subject, sub.queue, int32(delta))
	}
}

// getCluster is the cluster, nil without one.
func (s *Server) getCluster() cluster {
	if p := s.clusterPtr.Load(); p != nil {
		return *p
	}
	return nil
}

// serverInfo is INFO's JSON, field for field as nats-server sends it.
type serverInfo struct {
	ID           string   `json:"server_id"`
	Name         string   `json:"server_name"`
	Version      string   `json:"version"`
	Proto        int      `json:"proto"`
	GoVersion    string   `json:"go"`
	Host         string   `json:"host"`
	Port         int      `json:"port"`
	Headers      bool     `json:"headers"`
	AuthRequired bool     `json:"auth_required,omitempty"`
	TLSRequired  bool     `json:"tls_required,omitempty"`
	TLSVerify    bool     `json:"tls_verify,omitempty"`
	MaxPayload   int64    `json:"max_payload"`
	ClientID     uint64   `json:"client_id,omitempty"`
	ClientIP     string   `json:"client_ip,omitempty"`
	ConnectURLs  []string `json:"connect_urls,omitempty"`
	LameDuckMode bool     `json:"ldm,omitempty"`
	Cluster      string   `json:"cluster,omitempty"`
	ConnectInfo  bool     `json:"connect_info,omitempty"`
	RemoteAcc    string   `json:"remote_account,omitempty"`
}

// infoExtras lets route*.go and lame duck add connect_urls, cluster and ldm.
var infoExtras []func(s *Server, info *serverInfo)

// clientInfo renders the INFO line for c. connectInfo marks the async INFO
// sent after the first PONG.
func (s *Server) clientInfo(c *client, connectInfo bool) []byte {
	o := s.getOpts()
	host := o.Host
	if host == "" {
		host = "0.0.0.0"
	}
	port := o.Port
	if a, ok := s.Addr().(*net.TCPAddr); ok {
		port = a.Port
	}
	ac := s.authConfig()
	info := serverInfo{
		ID:           s.id,
		Name:         s.name,
		Version:      Version,
		Proto:        1,
		GoVersion:    runtime.Version(),
		Host:         host,
		Port:         port,
		Headers:      true,
		AuthRequired: ac.required && ac.noAuthUser == nil,
		MaxPayload:   o.MaxPayload,
		ClientID:     c.cid,
		ClientIP:     c.host,
		ConnectInfo:  connectInfo,
	}
	if o.Cluster != nil {
		info.Cluster = o.Cluster.Name
	}
	if t := o.TLS; t != nil {
		info.TLSRequired = true
		info.TLSVerify = t.Verify || t.VerifyAndMap
	}
	if connectInfo {
		c.mu.Lock()
		info.RemoteAcc = c.acc.name
		c.mu.Unlock()
	}
	for _, f := range infoExtras {
		f(s, &info)
	}
	b, _ := json.Marshal(info)
	out := make([]byte, 0, len(b)+8)
	out = append(out, "INFO "...)
	out = append(out, b...)
	return append(out, " \r\n"...)
}
