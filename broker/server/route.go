package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natsforge/natsforge/broker/auth"
	"github.com/natsforge/natsforge/broker/conf"
)

// Route timings and limits.
const (
	routeDialTimeout     = 2 * time.Second
	routeBackoffMin      = 50 * time.Millisecond
	routeBackoffMax      = time.Second
	routeImplicitRetries = 3
	routeMaxPending      = 256 << 20
)

func init() {
	newCluster = func(s *Server) (cluster, error) { return newRouteManager(s, s.getOpts()) }
}

// routeConfig is the cluster part of the options as the routes use it.
type routeConfig struct {
	name string // cluster name
	host string // route listen host
	port int    // route listen port
	// user and password are cluster.authorization: checked on accepted routes
	// (password may be a bcrypt hash) and used to dial gossiped routes.
	user, password string
	authTimeout    time.Duration
	routes         []*url.URL // configured, with their dialling credentials
	noAdvertise    bool
}

func newRouteConfig(o *conf.Options) (routeConfig, error) {
	cl := o.Cluster
	if cl == nil {
		return routeConfig{}, errors.New("no cluster block")
	}
	rc := routeConfig{name: cl.Name, host: cl.Host, port: cl.Port, noAdvertise: cl.NoAdvertise,
		authTimeout: conf.DefaultAuthTimeout}
	if rc.port == 0 {
		rc.port = conf.DefaultClusterPort
	} else if rc.port < 0 {
		rc.port = 0
	}
	if a := cl.Authorization; a != nil {
		rc.user, rc.password = a.User, a.Password
		if a.Timeout > 0 {
			rc.authTimeout = a.Timeout
		}
	}
	for _, r := range cl.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Host == "" {
			// url.Parse errors quote the URL, credentials included: say less.
			return routeConfig{}, fmt.Errorf("cluster.routes: cannot parse route URL %q", redactRawURL(r))
		}
		rc.routes = append(rc.routes, u)
	}
	return rc, nil
}

// redactRawURL removes the password from a URL that may not parse.
func redactRawURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return redactURL(u)
	}
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		if i := strings.Index(s, "://"); i >= 0 && i < at {
			return s[:i+3] + "***" + s[at:]
		}
		return "***" + s[at:]
	}
	return s
}

// redactURL is u without its password, for logs and monitoring.
func redactURL(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	return c.String()
}

// routeManager is the server's cluster: the route listener, a dialer per
// configured (or gossiped) route URL, every route connection, the local
// interest it advertises and each route's remote interest.
//
// Route connections are not clients: each has its own reader (route_proto.go)
// and writer, and its remote interest lives in its own Sublist, so the client
// core never sees a route.
//
// Lock order: routeManager.mu, then route.mu. The client core is called
// (deliverRouted, clusterURLsChanged) with neither held.
type routeManager struct {
	s *Server

	mu       sync.Mutex
	cfg      routeConfig
	ln       net.Listener
	byID     map[string]*route    // registered routes by remote server id
	pending  map[string]*route    // winners of a duplicate, waiting to take over
	all      map[*route]struct{}  // every route connection, registered or not
	local    map[string]*interest // local client interest by subKey
	dialers  map[string]*dialer   // configured route URLs by their full form
	implicit map[string]bool      // peer ids with a gossip dialer running
	selfURLs map[string]bool      // configured URLs that reached this server
	nextRID  uint64
	// clientPort is where this server takes clients, advertised to peers. The
	// client listener is up before the cluster starts and never moves.
	clientPort int
	lameDuck   bool
	// live is byID's values, replaced whole on every change, so that
	// routeMsg, on every publish, reads it without a lock.
	live atomic.Pointer[[]*route]
	// Route totals, to tell client traffic from route traffic in /varz.
	inMsgs, inBytes, outMsgs, outBytes atomic.Int64
	closed                             bool
	quit                               chan struct{}
	wg                                 sync.WaitGroup
}

// interest is one local subject, or queue group, with its number of local
// subscriptions.
type interest struct {
	acc            string
	subject, queue []byte
	n              int32
}

func newRouteManager(s *Server, o *conf.Options) (*routeManager, error) {
	cfg, err := newRouteConfig(o)
	if err != nil {
		return nil, err
	}
	return &routeManager{
		s: s, cfg: cfg, quit: make(chan struct{}),
		byID: map[string]*route{}, pending: map[string]*route{}, all: map[*route]struct{}{}, local: map[string]*interest{},
		dialers: map[string]*dialer{}, implicit: map[string]bool{}, selfURLs: map[string]bool{},
	}, nil
}

func (m *routeManager) config() routeConfig {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// start listens for routes and dials the configured ones.
func (m *routeManager) start() error {
	cfg := m.config()
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.host, strconv.Itoa(cfg.port)))
	if err != nil {
		return fmt.Errorf("route listener: %w", err)
	}
	clientPort := 0
	if a, ok := m.s.Addr().(*net.TCPAddr); ok {
		clientPort = a.Port
	}
	m.mu.Lock()
	m.ln = ln
	m.clientPort = clientPort
	m.mu.Unlock()
	m.s.logger.Info("listening for route connections", "addr", ln.Addr().String(), "cluster", cfg.name)
	m.wg.Add(1)
	go m.acceptLoop(ln)
	m.setRoutes(cfg.routes)
	return nil
}

// addr is where routes are accepted (nil before start).
func (m *routeManager) addr() *net.TCPAddr {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ln == nil {
		return nil
	}
	return m.ln.Addr().(*net.TCPAddr)
}

// shutdown closes the listener, stops the dialers and closes every route.
func (m *routeManager) shutdown() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	close(m.quit)
	ln := m.ln
	dialers := m.dialers
	m.dialers = map[string]*dialer{}
	routes := make([]*route, 0, len(m.all))
	for r := range m.all {
		routes = append(routes, r)
	}
	m.mu.Unlock()
	if ln != nil {
		_ = ln.Close() // shutting down: the accept loop ends either way
	}
	for _, d := range dialers {
		d.stop()
	}
	for _, r := range routes {
		r.close(ServerShutdown)
	}
	m.wg.Wait()
}

// reconfigure applies a reloaded cluster block: credentials, routes and
// no_advertise. The listen address is not reloadable (reload refuses that).
func (m *routeManager) reconfigure(o *conf.Options) error {
	cfg, err := newRouteConfig(o)
	if err != nil {
		return err
	}
	m.mu.Lock()
	old := m.cfg
	cfg.host, cfg.port = old.host, old.port
	m.cfg = cfg
	m.mu.Unlock()
	m.setRoutes(cfg.routes)
	if old.noAdvertise != cfg.noAdvertise {
		m.broadcastInfo()
		m.s.clusterURLsChanged()
	}
	return nil
}

// setRoutes starts a dialer per new configured URL and stops the dialers of
// URLs no longer configured, closing their routes.
func (m *routeManager) setRoutes(urls []*url.URL) {
	want := map[string]*url.URL{}
	for _, u := range urls {
		want[u.String()] = u
	}
	var stopped []*dialer
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	for key, d := range m.dialers {
		if _, ok := want[key]; !ok {
			delete(m.dialers, key)
			stopped = append(stopped, d)
		}
	}
	for key, u := range want {
		if _, ok := m.dialers[key]; ok || m.selfURLs[key] {
			continue
		}
		d := newDialer(m, u, true, "")
		m.dialers[key] = d
		m.wg.Add(1)
		go d.run()
	}
	m.mu.Unlock()
	for _, d := range stopped {
		m.s.logger.Info("route removed from the configuration", "url", redactURL(d.u))
		d.stop()
	}
}

func (m *routeManager) acceptLoop(ln net.Listener) {
	defer m.wg.Done()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, 10*time.Millisecond), time.Second)
			m.s.logger.Error("route accept failed", "err", err.Error(), "retry_in", delay.String())
			time.Sleep(delay)
			continue
		}
		delay = 0
		r := m.newRoute(nc, nil)
		if r == nil {
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			r.run()
		}()
	}
}

// newRoute tracks a new connection; nil (and nc closed) while shutting down or
// in lame duck mode.
func (m *routeManager) newRoute(nc net.Conn, d *dialer) *route {
	r := &route{
		m: m, nc: nc, raw: nc, dialer: d, start: time.Now(), subs: map[string]*remoteSub{},
		flushc: make(chan struct{}, 1), donec: make(chan struct{}),
	}
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		r.host, r.port = a.IP.String(), a.Port
	}
	r.lastActivity.Store(r.start.UnixNano())
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || (m.lameDuck && d == nil) {
		_ = nc.Close() // refused: nothing was sent on it
		return nil
	}
	m.nextRID++
	r.rid = m.nextRID
	m.all[r] = struct{}{}
	return r
}

// info is this server's route INFO.
func (m *routeManager) info() routeInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.infoLocked()
}

// infoLocked is info with m.mu held.
func (m *routeManager) infoLocked() routeInfo {
	o := m.s.getOpts()
	cfg := m.cfg
	in := routeInfo{
		ID: m.s.id, Name: m.s.name, Version: Version, Cluster: cfg.name,
		AuthRequired: cfg.user != "", NoAdvertise: cfg.noAdvertise, LameDuck: m.lameDuck,
	}
	if m.ln != nil {
		in.Port = m.ln.Addr().(*net.TCPAddr).Port
	}
	if !isUnspecifiedHost(cfg.host) {
		in.Host = cfg.host
	}
	if !cfg.noAdvertise {
		in.ClientPort = m.clientPort
		if !isUnspecifiedHost(o.Host) {
			in.ClientHost = o.Host
		}
	}
	for _, r := range m.byID {
		if p, ok := r.peerAddr(); ok {
			in.Peers = append(in.Peers, routePeer{ID: r.remoteID, Host: p.host, Port: p.port})
		}
	}
	return in
}

func isUnspecifiedHost(h string) bool {
	if h == "" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsUnspecified()
}

// register makes r the route to its remote server. Of two connections between
// the same pair of servers, both sides keep the one with the lower token (the
// dialling server's id, then a nonce the dialler chose), so they agree without
// talking, whichever connection each registered first. It reports whether r
// was kept.
//
// On registering, each side sends the other its whole local interest and then
// its INFO on r. A winner that replaces a route already in use waits, as
// pending, for that INFO: only then does it hold the peer's interest, and
// only then does it take over and the old route close, so no message is
// routed by a route that does not yet know what the peer wants.
func (m *routeManager) register(r *route) bool {
	s := m.s
	// Registration and the interest snapshot happen under m.mu, which
	// localInterest also holds while it queues, so every change after the
	// snapshot reaches r after it, in order.
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return false
	}
	var loser *route
	old := m.byID[r.remoteID]
	switch {
	case old == nil:
		m.byID[r.remoteID] = r
		m.snapshotLocked()
	case r.token() < old.token():
		if p := m.pending[r.remoteID]; p != nil {
			if p.token() < r.token() {
				m.mu.Unlock()
				s.logger.Debug("duplicate route closed", "remote_id", r.remoteID, "rid", r.rid)
				r.close(DuplicateRoute)
				return false
			}
			loser = p
		}
		m.pending[r.remoteID] = r
	default:
		m.mu.Unlock()
		s.logger.Debug("duplicate route closed", "remote_id", r.remoteID, "rid", r.rid)
		r.close(DuplicateRoute)
		return false
	}
	r.mu.Lock()
	r.registered = true
	r.mu.Unlock()
	var buf []byte
	for _, in := range m.local {
		buf = appendRouteSub(buf, in.acc, in.subject, in.queue, in.n)
	}
	buf = appendRouteJSON(buf, "INFO", m.infoLocked())
	r.enqueue(buf)
	m.mu.Unlock()

	if loser != nil {
		s.logger.Debug("duplicate route closed", "remote_id", loser.remoteID, "rid", loser.rid)
		loser.close(DuplicateRoute)
	}
	if old != nil {
		return true // it announces itself when it takes over (promote)
	}
	s.logger.Info("route connection registered", "remote_id", r.remoteID, "remote_name", r.remoteName,
		"rid", r.rid, "addr", r.nc.RemoteAddr().String(), "dialled", r.dialer != nil)
	m.broadcastInfo()
	s.clusterURLsChanged()
	return true
}

// promote lets a pending route take over from the one it replaces, once the
// peer's interest has arrived on it (the peer's first INFO after it).
func (m *routeManager) promote(r *route) {
	m.mu.Lock()
	if m.pending[r.remoteID] != r {
		m.mu.Unlock()
		return
	}
	delete(m.pending, r.remoteID)
	old := m.byID[r.remoteID]
	m.byID[r.remoteID] = r
	m.snapshotLocked()
	m.mu.Unlock()
	if old != nil && old != r {
		m.s.logger.Debug("duplicate route closed", "remote_id", old.remoteID, "rid", old.rid)
		old.close(DuplicateRoute)
	}
	m.s.logger.Info("route connection registered", "remote_id", r.remoteID, "remote_name", r.remoteName,
		"rid", r.rid, "addr", r.nc.RemoteAddr().String(), "dialled", r.dialer != nil)
}

// snapshotLocked publishes byID's routes for routeMsg. m.mu held.
func (m *routeManager) snapshotLocked() {
	routes := make([]*route, 0, len(m.byID))
	for _, r := range m.byID {
		routes = append(routes, r)
	}
	m.live.Store(&routes)
}

// unregister forgets r.
func (m *routeManager) unregister(r *route) {
	m.mu.Lock()
	delete(m.all, r)
	if m.pending[r.remoteID] == r {
		delete(m.pending, r.remoteID)
	}
	was := m.byID[r.remoteID] == r
	if was {
		delete(m.byID, r.remoteID)
		// A pending replacement takes over now rather than leave no route.
		if p := m.pending[r.remoteID]; p != nil {
			delete(m.pending, r.remoteID)
			m.byID[r.remoteID] = p
			was = false
		}
		m.snapshotLocked()
	}
	closed := m.closed
	m.mu.Unlock()
	if was && !closed {
		m.s.logger.Info("route connection closed", "remote_id", r.remoteID, "remote_name", r.remoteName,
			"rid", r.rid, "reason", r.reason.String())
		m.broadcastInfo()
		m.s.clusterURLsChanged()
	}
}

// broadcastInfo sends this server's INFO, with its current peers, to every
// registered route.
func (m *routeManager) broadcastInfo() {
	buf := appendRouteJSON(nil, "INFO", m.info())
	for _, r := range m.registered() {
		r.enqueue(buf)
	}
}

func (m *routeManager) registered() []*route {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*route, 0, len(m.byID))
	for _, r := range m.byID {
		out = append(out, r)
	}
	return out
}

// localInterest records a local subscription added (delta 1) or removed (-1)
// and tells every route: RS+ when a subject gains its first subscriber, RS+
// with the new weight whenever a queue group's membership changes, RS- when
// the last subscriber goes.
func (m *routeManager) localInterest(acc string, subject, queue []byte, delta int32) {
	key := remoteKey(acc, subject, queue)
	m.mu.Lock()
	defer m.mu.Unlock()
	in := m.local[key]
	if in == nil {
		if delta <= 0 {
			return
		}
		in = &interest{acc: acc, subject: cloneBytes(subject), queue: cloneBytes(queue)}
		m.local[key] = in
	}
	before := in.n
	in.n += delta
	var buf []byte
	switch {
	case in.n <= 0:
		delete(m.local, key)
		buf = appendRouteUnsub(nil, in.acc, in.subject, in.queue)
	case in.queue != nil:
		buf = appendRouteSub(nil, in.acc, in.subject, in.queue, in.n)
	case before == 0:
		buf = appendRouteSub(nil, in.acc, in.subject, nil, 0)
	default:
		return
	}
	for _, r := range m.byID {
		r.enqueue(buf)
	}
	for _, r := range m.pending {
		r.enqueue(buf)
	}
}

// routeMsg sends a message a local client published to the routes with
// interest: once to each route with a matching plain subscriber, and, for each
// matching queue group that got no local member (localQueue says which did),
// to one route picked by the group's weight there. A route gets the message
// at most once, naming the queue groups it must serve. It reports whether any
// route took the message.
func (m *routeManager) routeMsg(acc string, subject, reply []byte, hdr int, payload []byte, localQueue func(queue []byte) bool) bool {
	type target struct {
		r      *route
		plain  bool
		queues [][]byte
	}
	type group struct {
		queue   []byte
		total   int64
		targets []int
		weights []int64
	}
	var tbuf [8]target
	targets := tbuf[:0]
	var groups []group

	live := m.live.Load()
	if live == nil || len(*live) == 0 {
		return false
	}
	for _, r := range *live {
		sl := r.sublist(acc)
		if sl == nil {
			continue
		}
		res := sl.MatchBytes(subject)
		if len(res.psubs) == 0 && len(res.qsubs) == 0 {
			continue
		}
		ti := len(targets)
		targets = append(targets, target{r: r, plain: len(res.psubs) > 0})
		for _, members := range res.qsubs {
			if len(members) == 0 {
				continue
			}
			q := members[0].queue
			if localQueue != nil && localQueue(q) {
				continue
			}
			w := r.weight(acc, members)
			gi := -1
			for i := range groups {
				if string(groups[i].queue) == string(q) {
					gi = i
					break
				}
			}
			if gi < 0 {
				groups = append(groups, group{queue: q})
				gi = len(groups) - 1
			}
			g := &groups[gi]
			g.total += w
			g.targets = append(g.targets, ti)
			g.weights = append(g.weights, w)
		}
	}

	for _, g := range groups {
		n := rand.Int64N(g.total)
		for i, w := range g.weights {
			if n < w {
				t := &targets[g.targets[i]]
				t.queues = append(t.queues, g.queue)
				break
			}
			n -= w
		}
	}
	sent := false
	for _, t := range targets {
		if !t.plain && len(t.queues) == 0 {
			continue
		}
		if t.r.sendMsg(acc, subject, reply, t.queues, hdr, payload) {
			sent = true
		}
	}
	return sent
}

// numRoutes is the number of registered routes.
func (m *routeManager) numRoutes() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.byID)
}

// numRemoteSubs is the number of remote interests held.
func (m *routeManager) numRemoteSubs() uint32 {
	var n uint32
	for _, r := range m.registered() {
		for _, sl := range r.sublists() {
			n += sl.Count()
		}
	}
	return n
}

// clientURLs are the other servers' client addresses, as learned from their
// INFO, leaving out servers in lame duck mode and those that do not advertise.
func (m *routeManager) clientURLs() []string {
	var out []string
	for _, r := range m.registered() {
		if u := r.clientURL(); u != "" {
			out = append(out, u)
		}
	}
	sort.Strings(out)
	return out
}

// enterLameDuck stops accepting routes and tells the peers, so that they stop
// advertising this server to their clients. Routes already up stay: the
// clients still here keep their cluster-wide interest until they are closed.
func (m *routeManager) enterLameDuck() {
	m.mu.Lock()
	m.lameDuck = true
	m.mu.Unlock()
	m.broadcastInfo()
}

// gossiped starts dialers, with the cluster authorization's credentials, to
// peers a route told us about and we have no route to.
func (m *routeManager) gossiped(from *route, peers []routePeer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.lameDuck {
		return
	}
	if auth.IsBcrypt(m.cfg.password) {
		// A hash cannot be sent as a password: such a cluster relies on its
		// configured routes alone (as nats-server, which needs it plaintext).
		return
	}
	for _, p := range peers {
		if p.ID == m.s.id || m.byID[p.ID] != nil || m.implicit[p.ID] || p.Port == 0 {
			continue
		}
		host := p.Host
		if host == "" {
			host = from.host
		}
		u := &url.URL{Scheme: "nats-route", Host: net.JoinHostPort(host, strconv.Itoa(p.Port))}
		if m.cfg.user != "" {
			u.User = url.UserPassword(m.cfg.user, m.cfg.password)
		}
		m.implicit[p.ID] = true
		d := newDialer(m, u, false, p.ID)
		m.wg.Add(1)
		go d.run()
	}
}

func (m *routeManager) hasRoute(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byID[id] != nil
}

// routeURLs are the configured routes without credentials (host:port), for
// /varz.
func (m *routeManager) routeURLs() []string {
	cfg := m.config()
	out := make([]string, 0, len(cfg.routes))
	for _, u := range cfg.routes {
		out = append(out, u.Host)
	}
	return out
}

// checkAuth verifies a route CONNECT against cluster.authorization.
func (m *routeManager) checkAuth(user, pass string) bool {
	cfg := m.config()
	if cfg.user == "" && cfg.password == "" {
		return true
	}
	userOK := user == cfg.user
	passOK := auth.CheckPassword(cfg.password, pass)
	return userOK && passOK
}

// dialer keeps a route to one URL: it dials (re-resolving the name each time)
// with backoff until connected, runs the route until it closes, and starts
// over. A configured dialer runs until stopped; a gossip dialer gives up after
// a few attempts, or once its route has closed.
type dialer struct {
	m          *routeManager
	u          *url.URL
	configured bool
	peerID     string // gossip dialer: the server it is meant to reach

	mu       sync.Mutex
	stopped  bool
	current  *route
	remoteID string // the server last reached through this URL
	done     chan struct{}
}

func newDialer(m *routeManager, u *url.URL, configured bool, peerID string) *dialer {
	return &dialer{m: m, u: u, configured: configured, peerID: peerID, done: make(chan struct{})}
}

func (d *dialer) stop() {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.stopped = true
	close(d.done)
	cur := d.current
	d.mu.Unlock()
	if cur != nil {
		cur.close(RouteRemoved)
	}
}

// wait sleeps for dur; false when the dialer or the cluster stopped.
func (d *dialer) wait(dur time.Duration) bool {
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-d.done:
		return false
	case <-d.m.quit:
		return false
	}
}

func (d *dialer) run() {
	defer d.m.wg.Done()
	if !d.configured {
		defer func() {
			d.m.mu.Lock()
			delete(d.m.implicit, d.peerID)
			d.m.mu.Unlock()
		}()
	}
	backoff := routeBackoffMin
	attempts := 0
	for {
		d.mu.Lock()
		stopped, rid := d.stopped, d.remoteID
		d.mu.Unlock()
		if stopped {
			return
		}
		// While a route to the server this URL reached is up (the one the other
		// side dialled, kept after a duplicate), there is nothing to dial.
		if rid != "" && d.m.hasRoute(rid) {
			if !d.wait(routeBackoffMax) {
				return
			}
			continue
		}
		if !d.configured {
			// Give the configured routes, which usually reach the same server
			// under its name, a moment first.
			if attempts == 0 && !d.wait(jitter(routeBackoffMax)) {
				return
			}
			if attempts >= routeImplicitRetries || d.m.hasRoute(d.peerID) {
				return
			}
		}
		attempts++
		// Dialling the name each time re-resolves it: pods come back with new
		// addresses.
		nc, err := net.DialTimeout("tcp", d.u.Host, routeDialTimeout)
		if err != nil {
			d.m.s.logger.Debug("route dial failed", "url", redactURL(d.u), "err", err.Error())
			if !d.wait(jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, routeBackoffMax)
			continue
		}
		r := d.m.newRoute(nc, d)
		if r == nil {
			return
		}
		d.mu.Lock()
		d.current = r
		stopped = d.stopped
		d.mu.Unlock()
		if stopped {
			r.close(RouteRemoved)
		}
		r.run()
		d.mu.Lock()
		d.current = nil
		if r.remoteID != "" {
			d.remoteID = r.remoteID
		}
		d.mu.Unlock()
		if r.isSelf {
			d.m.s.logger.Debug("route URL reaches this server, not dialling it again", "url", redactURL(d.u))
			d.m.mu.Lock()
			d.m.selfURLs[d.u.String()] = true
			if d.m.dialers[d.u.String()] == d {
				delete(d.m.dialers, d.u.String())
			}
			d.m.mu.Unlock()
			return
		}
		if r.wasRegistered() {
			backoff = routeBackoffMin
			if !d.configured {
				return
			}
		}
		if !d.wait(jitter(backoff)) {
			return
		}
		backoff = min(2*backoff, routeBackoffMax)
	}
}

func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}

func subKey(subject, queue []byte) string {
	if queue == nil {
		return string(subject)
	}
	return string(subject) + " " + string(queue)
}

// remoteSub is one interest a route told us about.
type remoteSub struct {
	acc    string
	sub    *subscription
	weight int32
}

// route is one route connection.
type route struct {
	m *routeManager
	// raw is the TCP connection; nc is it, or the TLS connection over it
	// once run has upgraded it (route_tls.go). close, from any goroutine,
	// closes raw.
	raw    net.Conn
	nc     net.Conn
	rid    uint64
	dialer *dialer // nil for an accepted route
	start  time.Time
	host   string
	port   int

	// Set by run during the handshake, read-only once registered.
	remoteID, remoteName string
	nonce                string // chosen by the dialling side, sent in CONNECT
	isSelf               bool

	// Remote interest, one Sublist per account: written by run, matched by
	// any publisher. The map is replaced whole when an account first shows
	// up, so routeMsg reads it without a lock.
	sls atomic.Pointer[map[string]*Sublist]

	mu           sync.Mutex
	subs         map[string]*remoteSub
	remote       routeInfo
	registered   bool
	wasReg       bool
	out          []byte
	closed       bool
	reason       ClosedReason
	pingsOut     int
	flushc       chan struct{}
	donec        chan struct{}
	lastActivity atomic.Int64

	inMsgs, outMsgs, inBytes, outBytes atomic.Int64
}

// token orders duplicate connections: the dialling server's id, then the
// dialler's nonce for this connection.
func (r *route) token() string { return r.dialledBy() + "/" + r.nonce }

// dialledBy is the id of the server that dialled this connection.
func (r *route) dialledBy() string {
	if r.dialer != nil {
		return r.m.s.id
	}
	return r.remoteID
}

func (r *route) wasRegistered() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wasReg
}

type peerHostPort struct {
	host string
	port int
}

// peerAddr is where the remote server accepts routes.
func (r *route) peerAddr() (peerHostPort, bool) {
	r.mu.Lock()
	in := r.remote
	r.mu.Unlock()
	if in.Port == 0 {
		return peerHostPort{}, false
	}
	h := in.Host
	if isUnspecifiedHost(h) {
		h = r.host
	}
	return peerHostPort{h, in.Port}, true
}

// clientURL is where the remote server accepts clients, "" when it does not
// advertise or is in lame duck mode.
func (r *route) clientURL() string {
	r.mu.Lock()
	in := r.remote
	r.mu.Unlock()
	if in.NoAdvertise || in.LameDuck || in.ClientPort == 0 {
		return ""
	}
	h := in.ClientHost
	if isUnspecifiedHost(h) {
		h = r.host
	}
	return net.JoinHostPort(h, strconv.Itoa(in.ClientPort))
}

// weight is the number of remote members behind the matched queue
// subscriptions of one group.
func (r *route) weight(acc string, members []*subscription) int64 {
	var w int64
	r.mu.Lock()
	for _, s := range members {
		if rs := r.subs[remoteKey(acc, s.subject, s.queue)]; rs != nil {
			w += int64(rs.weight)
		}
	}
	r.mu.Unlock()
	return max(w, 1)
}

// enqueue appends b to the outbound buffer and wakes the writer. A route that
// cannot keep up is closed.
func (r *route) enqueue(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return false
	}
	if len(r.out)+len(b) > routeMaxPending {
		r.mu.Unlock()
		r.close(SlowConsumerPendingBytes)
		return false
	}
	r.out = append(r.out, b...)
	r.mu.Unlock()
	r.wake()
	return true
}

func (r *route) wake() {
	select {
	case r.flushc <- struct{}{}:
	default:
	}
}

func (r *route) sendMsg(acc string, subject, reply []byte, queues [][]byte, hdr int, payload []byte) bool {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return false
	}
	if len(r.out)+len(payload) > routeMaxPending {
		r.mu.Unlock()
		r.m.s.slowConsumers.Add(1)
		r.close(SlowConsumerPendingBytes)
		return false
	}
	r.out = appendRouteMsgProto(r.out, acc, subject, reply, hdr, len(payload), queues)
	r.out = append(r.out, payload...)
	r.out = append(r.out, '\r', '\n')
	r.mu.Unlock()
	r.outMsgs.Add(1)
	r.outBytes.Add(int64(len(payload)))
	r.m.outMsgs.Add(1)
	r.m.outBytes.Add(int64(len(payload)))
	r.m.s.outMsgs.Add(1)
	r.m.s.outBytes.Add(int64(len(payload)))
	r.wake()
	return true
}

func (r *route) writeLoop() {
	var spare []byte
	for {
		select {
		case <-r.flushc:
		case <-r.donec:
			return
		}
		// Swap buffers: producers append to the spare while this one is
		// written. spare is handed over exactly once, so the two never alias.
		r.mu.Lock()
		if len(r.out) == 0 {
			r.mu.Unlock()
			continue
		}
		buf := r.out
		r.out = spare[:0]
		spare = nil
		r.mu.Unlock()
		if err := r.nc.SetWriteDeadline(time.Now().Add(r.m.s.getOpts().WriteDeadline)); err != nil {
			r.close(WriteError)
			return
		}
		if _, err := r.nc.Write(buf); err != nil {
			r.close(WriteError)
			return
		}
		if cap(buf) <= 1<<20 {
			spare = buf
		}
	}
}

func (r *route) close(reason ClosedReason) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.reason = reason
	close(r.donec)
	r.mu.Unlock()
	_ = r.raw.Close() // the route is gone whatever Close says
}

// writeNow writes b directly; only during the handshake.
func (r *route) writeNow(b []byte) error {
	if err := r.nc.SetWriteDeadline(time.Now().Add(r.m.s.getOpts().WriteDeadline)); err != nil {
		return err
	}
	_, err := r.nc.Write(b)
	return err
}

// run performs the handshake, registers the route and reads from it until it
// closes; then it forgets the route's interest and unregisters it.
func (r *route) run() {
	rr := newRouteReader(r.nc)
	defer func() {
		r.close(ClientClosed)
		r.dropRemoteInterest()
		r.m.unregister(r)
	}()
	cfg := r.m.config()
	if m := r.m.s.routeTLS(); m != nil {
		var ok bool
		if rr, ok = r.upgradeTLS(rr, m); !ok {
			return
		}
	}
	if err := r.nc.SetReadDeadline(time.Now().Add(cfg.authTimeout + time.Second)); err != nil {
		return // closed under us: the deferred close tidies up
	}
	if !r.handshake(rr, cfg) {
		return
	}
	if err := r.nc.SetReadDeadline(time.Time{}); err != nil {
		return
	}
	go r.writeLoop()
	if !r.m.register(r) {
		return
	}
	r.mu.Lock()
	r.wasReg = true
	r.mu.Unlock()
	go r.pingLoop()
	for {
		op, err := rr.next()
		if err != nil {
			if errors.Is(err, errRouteProtocol) {
				r.m.s.logger.Warn("route protocol error", "remote_id", r.remoteID, "err", err.Error())
				r.close(ProtocolViolation)
			} else {
				r.close(ReadError)
			}
			return
		}
		r.lastActivity.Store(time.Now().UnixNano())
		if err := r.process(op); err != nil {
			r.m.s.logger.Warn("route error", "remote_id", r.remoteID, "err", err.Error())
			r.close(ProtocolViolation)
			return
		}
	}
}

// handshake: the accepting side sends INFO first; the dialling side answers
// CONNECT (with the URL's credentials), its own INFO and PING; the accepting
// side checks the credentials and answers PONG, or -ERR and closes.
func (r *route) handshake(rr *routeReader, cfg routeConfig) bool {
	s := r.m.s
	myInfo := appendRouteJSON(nil, "INFO", r.m.info())
	fail := func(msg string, args ...any) bool {
		s.logger.Info("route handshake failed", append([]any{"addr", r.nc.RemoteAddr().String(), "why", msg}, args...)...)
		return false
	}
	readInfo := func() (routeInfo, bool) {
		var in routeInfo
		op, err := rr.next()
		if err != nil || op.kind != routeOpInfo {
			return in, false
		}
		if json.Unmarshal(op.arg, &in) != nil || in.ID == "" {
			return in, false
		}
		return in, true
	}
	if r.dialer != nil {
		in, ok := readInfo()
		if !ok {
			return fail("expected INFO")
		}
		if in.ID == s.id {
			r.isSelf, r.remoteID = true, in.ID
			return false
		}
		if in.TLSRequired {
			// Only a peer with cluster.tls says so in the clear; never send
			// it the route credentials without TLS.
			return fail("the remote requires TLS and cluster.tls is not configured here", "url", redactURL(r.dialer.u))
		}
		if in.Cluster != "" && cfg.name != "" && in.Cluster != cfg.name {
			return fail("remote is in another cluster", "remote_cluster", in.Cluster, "cluster", cfg.name)
		}
		r.remoteID, r.remoteName = in.ID, in.Name
		r.mu.Lock()
		r.remote = in
		r.mu.Unlock()
		r.nonce = newServerID()
		c := routeConnect{ID: s.id, Name: s.name, Cluster: cfg.name, Nonce: r.nonce}
		if u := r.dialer.u; u.User != nil {
			c.User = u.User.Username()
			c.Pass, _ = u.User.Password()
		}
		buf := appendRouteJSON(nil, "CONNECT", c)
		buf = append(buf, myInfo...)
		buf = append(buf, "PING\r\n"...)
		if err := r.writeNow(buf); err != nil {
			return fail("write failed")
		}
		for {
			op, err := rr.next()
			if err != nil {
				return fail("no PONG")
			}
			switch op.kind {
			case routeOpPong:
				return true
			case routeOpErr:
				return fail("refused", "error", string(op.arg), "url", redactURL(r.dialer.u))
			case routeOpInfo:
				r.processInfo(op.arg)
			default:
				return fail("unexpected operation before PONG")
			}
		}
	}

	if err := r.writeNow(myInfo); err != nil {
		return false
	}
	op, err := rr.next()
	if errors.Is(err, io.EOF) {
		return false // a server that dialled itself, or a port probe
	}
	if err != nil || op.kind != routeOpConnect {
		return fail("expected CONNECT")
	}
	var c routeConnect
	if json.Unmarshal(op.arg, &c) != nil {
		return fail("bad CONNECT")
	}
	if !r.m.checkAuth(c.User, c.Pass) {
		s.ext().authFailures.Add(1)
		s.ext().auth.fail(authReasonRoute)
		// Best effort: the route is refused whether the peer hears why.
		_ = r.writeNow([]byte("-ERR '" + errTextAuthViolation + "'\r\n"))
		// The user name is logged; never the password.
		return fail("authorization violation", "user", c.User)
	}
	if c.ID == s.id {
		r.isSelf = true
		return false
	}
	r.nonce = c.Nonce
	if c.Cluster != "" && cfg.name != "" && c.Cluster != cfg.name {
		return fail("remote is in another cluster", "remote_cluster", c.Cluster, "cluster", cfg.name)
	}
	in, ok := readInfo()
	if !ok {
		return fail("expected INFO")
	}
	r.remoteID, r.remoteName = in.ID, in.Name
	r.mu.Lock()
	r.remote = in
	r.mu.Unlock()
	op, err = rr.next()
	if err != nil || op.kind != routeOpPing {
		return fail("expected PING")
	}
	return r.writeNow([]byte("PONG\r\n")) == nil
}

func (r *route) pingLoop() {
	o := r.m.s.getOpts()
	t := time.NewTicker(o.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-r.donec:
			return
		case <-t.C:
		}
		r.mu.Lock()
		r.pingsOut++
		stale := r.pingsOut > o.MaxPingsOut
		r.mu.Unlock()
		if stale {
			r.close(StaleConnection)
			return
		}
		r.enqueue([]byte("PING\r\n"))
	}
}

func (r *route) process(op *routeOp) error {
	switch op.kind {
	case routeOpPing:
		r.enqueue([]byte("PONG\r\n"))
	case routeOpPong:
		r.mu.Lock()
		r.pingsOut = 0
		r.mu.Unlock()
	case routeOpInfo:
		r.processInfo(op.arg)
	case routeOpSub:
		acc, subject, queue, weight, err := parseRemoteSub(op.arg)
		if err != nil {
			return err
		}
		r.processSub(acc, subject, queue, weight)
	case routeOpUnsub:
		acc, subject, queue, err := parseRemoteUnsub(op.arg)
		if err != nil {
			return err
		}
		r.processUnsub(acc, subject, queue)
	case routeOpMsg:
		r.inMsgs.Add(1)
		r.inBytes.Add(int64(len(op.payload)))
		r.m.inMsgs.Add(1)
		r.m.inBytes.Add(int64(len(op.payload)))
		r.m.s.deliverRouted(op.msg.acc, op.msg.subject, op.msg.reply, op.msg.queues, op.msg.hdr, op.payload)
	case routeOpErr:
		return fmt.Errorf("remote sent -ERR %q", op.arg)
	case routeOpConnect:
		return errors.New("unexpected CONNECT")
	}
	return nil
}

func (r *route) processInfo(arg []byte) {
	var in routeInfo
	if err := json.Unmarshal(arg, &in); err != nil || in.ID != r.remoteID {
		return
	}
	r.mu.Lock()
	before := r.remote
	r.remote = in
	registered := r.registered
	r.mu.Unlock()
	if !registered {
		return
	}
	r.m.promote(r)
	if before.LameDuck != in.LameDuck || before.ClientPort != in.ClientPort ||
		before.ClientHost != in.ClientHost || before.NoAdvertise != in.NoAdvertise {
		r.m.s.clusterURLsChanged()
	}
	r.m.gossiped(r, in.Peers)
}

// sublist is the remote interest in account acc, nil when there is none.
func (r *route) sublist(acc string) *Sublist {
	if m := r.sls.Load(); m != nil {
		return (*m)[acc]
	}
	return nil
}

// sublists are the remote interest of every account.
func (r *route) sublists() map[string]*Sublist {
	if m := r.sls.Load(); m != nil {
		return *m
	}
	return nil
}

// sublistFor returns account acc's remote interest, adding it the first
// time. Only run (the route's reader) calls it.
func (r *route) sublistFor(acc string) *Sublist {
	if sl := r.sublist(acc); sl != nil {
		return sl
	}
	next := map[string]*Sublist{acc: NewSublist()}
	for k, v := range r.sublists() {
		next[k] = v
	}
	r.sls.Store(&next)
	return next[acc]
}

// remoteKey keys remote interest: account, subject and queue.
func remoteKey(acc string, subject, queue []byte) string {
	return acc + " " + subKey(subject, queue)
}

func (r *route) processSub(acc, subject, queue []byte, weight int32) {
	key := remoteKey(string(acc), subject, queue)
	r.mu.Lock()
	if rs := r.subs[key]; rs != nil {
		rs.weight = weight
		r.mu.Unlock()
		return
	}
	sub := &subscription{subject: cloneBytes(subject), queue: cloneBytes(queue), sid: []byte(key),
		subjectIsWildcard: !subjectIsLiteral(string(subject))}
	rs := &remoteSub{acc: string(acc), sub: sub, weight: weight}
	r.subs[key] = rs
	r.mu.Unlock()
	if err := r.sublistFor(rs.acc).Insert(sub); err != nil {
		r.mu.Lock()
		delete(r.subs, key)
		r.mu.Unlock()
	}
}

func (r *route) processUnsub(acc, subject, queue []byte) {
	key := remoteKey(string(acc), subject, queue)
	r.mu.Lock()
	rs := r.subs[key]
	delete(r.subs, key)
	r.mu.Unlock()
	if rs != nil {
		if sl := r.sublist(rs.acc); sl != nil {
			sl.Remove(rs.sub)
		}
	}
}

func (r *route) dropRemoteInterest() {
	r.mu.Lock()
	subs := r.subs
	r.subs = map[string]*remoteSub{}
	r.registered = false
	r.mu.Unlock()
	for _, rs := range subs {
		if sl := r.sublist(rs.acc); sl != nil {
			sl.Remove(rs.sub)
		}
	}
}

// remoteSubs is the remote interest, for /routez.
func (r *route) remoteSubs() []*remoteSub {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*remoteSub, 0, len(r.subs))
	for _, rs := range r.subs {
		out = append(out, rs)
	}
	return out
}

// Reasons a route connection is closed, beyond the client ones in errors.go.
const (
	DuplicateRoute ClosedReason = iota + 100
	RouteRemoved
)

func init() {
	closedReasonText[DuplicateRoute] = "Duplicate Route"
	closedReasonText[RouteRemoved] = "Route Removed"
}
