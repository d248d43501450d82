package server

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// serverExt is the state reload, lame duck and monitoring keep per server,
// beside the core's Server (kept apart so the core's struct stays its own).
type serverExt struct {
	authFailures atomic.Int64
	auth         authStats // by reason, per user, latency (authstats.go)
	cpu          cpuSampler

	mu              sync.Mutex
	lameDuck        bool
	configFile      string
	configDigest    string
	reloads         int64
	reloadErrors    int64
	lastReloadError string
	lastReloadTime  time.Time // of the last refused reload
	watcher         *configWatcher
	overrides       ConfigOverrides
	reloadMu        sync.Mutex // serialises reloads
	// Certificate file reload (tls_reload.go).
	tlsFailing      bool // lastReloadError is a certificate reload's
	tlsWatched      []string
	tlsWatchers     []*configWatcher
	tlsWatchStopped bool
}

var serverExts sync.Map // *Server -> *serverExt

// ext is s's serverExt.
func (s *Server) ext() *serverExt {
	if e, ok := serverExts.Load(s); ok {
		return e.(*serverExt)
	}
	e, _ := serverExts.LoadOrStore(s, &serverExt{})
	return e.(*serverExt)
}

func init() {
	infoExtras = append(infoExtras, addClusterInfo)
}

// routes is the server's route manager, nil without a cluster.
func (s *Server) routes() *routeManager {
	if m, ok := s.getCluster().(*routeManager); ok {
		return m
	}
	return nil
}

// addClusterInfo adds connect_urls and ldm to a client INFO: this server's
// client URL (unless it is in lame duck mode or listens on every address)
// and those its peers advertise, unless no_advertise is set.
func addClusterInfo(s *Server, info *serverInfo) {
	e := s.ext()
	e.mu.Lock()
	ldm := e.lameDuck
	e.mu.Unlock()
	info.LameDuckMode = ldm
	m := s.routes()
	if m == nil || m.config().noAdvertise {
		return
	}
	var urls []string
	if !ldm && !isUnspecifiedHost(info.Host) {
		urls = append(urls, net.JoinHostPort(info.Host, strconv.Itoa(info.Port)))
	}
	urls = append(urls, m.clientURLs()...)
	info.ConnectURLs = urls
}

// clusterURLsChanged tells every client that understands async INFO about
// the cluster's current client URLs, so nats.go fails over by itself.
func (s *Server) clusterURLsChanged() {
	if m := s.routes(); m != nil && m.config().noAdvertise {
		return
	}
	s.sendAsyncInfo()
}

// sendAsyncInfo sends a fresh INFO to every client that sent CONNECT with
// protocol 1 or more.
func (s *Server) sendAsyncInfo() {
	s.forEachClient(func(c *client) {
		c.mu.Lock()
		ok := c.flags.has(flagConnectReceived) && c.opts.Protocol >= clientProtoInfo && !c.isClosed()
		c.mu.Unlock()
		if ok {
			c.sendProto(s.clientInfo(c, false))
		}
	})
}
