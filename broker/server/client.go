package server

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/natsforge/natsforge/broker/auth"
)

// Read buffer sizing: start small, double while reads fill it, halve after
// several small reads. Halving keeps the memory until the buffer is down to
// a quarter of it, so a busy connection whose reads come and go costs no
// allocation (a new buffer at every turn was, before); one that goes quiet
// gives it back. The largest read is also what one read pass can queue to
// a subscriber before the back-pressure check (see stallMaxWait): 256 KiB
// read passes outran a 10 ms stall, so it stays at nats-server's 64 KiB.
const (
	startReadBufSize   = 512
	minReadBufSize     = 64
	maxReadBufSize     = 64 * 1024
	shortReadsToShrink = 2
)

// clientFlags are guarded by client.mu.
type clientFlags uint8

const (
	flagConnectReceived clientFlags = 1 << iota
	flagExpectConnect               // auth is required: the first op must be CONNECT
	flagFirstPongSent
	flagClosed
	flagNoFlushOnClose
	// flagAnnounced: the connect event went out, the disconnect event will.
	flagAnnounced
)

func (f clientFlags) has(x clientFlags) bool { return f&x != 0 }
func (f *clientFlags) set(x clientFlags)     { *f |= x }

// connectOpts is the CONNECT JSON. Fields absent from it keep the defaults of
// defaultConnectOpts (verbose, pedantic and echo on), as in nats-server.
type connectOpts struct {
	Verbose      bool   `json:"verbose"`
	Pedantic     bool   `json:"pedantic"`
	TLSRequired  bool   `json:"tls_required"`
	Token        string `json:"auth_token,omitempty"`
	Username     string `json:"user,omitempty"`
	Password     string `json:"pass,omitempty"`
	Name         string `json:"name"`
	Lang         string `json:"lang"`
	Version      string `json:"version"`
	Protocol     int    `json:"protocol"`
	Echo         bool   `json:"echo"`
	Headers      bool   `json:"headers"`
	NoResponders bool   `json:"no_responders"`
	JWT          string `json:"jwt,omitempty"`
	Nkey         string `json:"nkey,omitempty"`
	Sig          string `json:"sig,omitempty"`
	Account      string `json:"account,omitempty"`
	AccountNew   bool   `json:"new_account,omitempty"`
}

var defaultConnectOpts = connectOpts{Verbose: true, Pedantic: true, Echo: true}

// client is one client connection.
//
// Goroutines: readLoop owns parseState, pcd and the read buffer; writeLoop
// owns the socket's write side. Everything under mu may be touched by any
// goroutine delivering to this connection. See doc.go for the lock order.
type client struct {
	// Immutable after newConn.
	srv   *Server
	cid   uint64
	nc    net.Conn
	host  string
	port  int
	start time.Time
	mcl   int   // max control line
	mpay  int64 // max payload
	msubs int   // max subscriptions, 0 for no limit
	// tls is what the TLS handshake settled, nil on a plain connection; set
	// before the connection is registered.
	tls *connTLS

	// Owned by the read goroutine.
	parseState
	pcd map[*client]struct{} // connections this read pass queued output to
	// stallTimer bounds waits on slow subscribers (flushClients); read loop only.
	stallTimer *time.Timer
	// localQueues are the queue groups the message being processed reached
	// here; localQueueFn is queueDeliveredHere, bound once.
	localQueues  [][]byte
	localQueueFn func(queue []byte) bool
	// importBuf holds the subject of a stream import's copy (account.go).
	importBuf []byte

	// Statistics, read by monitoring at any time.
	inMsgs, inBytes, outMsgs, outBytes atomic.Int64
	lastActivity                       atomic.Int64 // unix nanos of the last inbound op

	mu      sync.Mutex
	flags   clientFlags
	opts    connectOpts
	echo    bool
	headers bool
	reason  ClosedReason

	user *userAuth // who authenticated; nil without auth
	// authStored is the configured password (or hash) that c's password
	// matched: user.password, or user.previous while a grace window lasts,
	// when authUntil is when that ends (zero otherwise).
	authStored string
	authUntil  time.Time
	perms      *auth.Permissions // nil: everything allowed
	// acc is the connection's account: $G until CONNECT binds a user of
	// another. The read loop reads it without the lock, and only the read
	// loop (authentication) writes it.
	acc *account
	// pubRestricted mirrors perms.RestrictsPublish() for the lock-free
	// check on the publish path; reload may change perms at any time.
	pubRestricted atomic.Bool
	pcache        map[string]bool // publish permission decisions by subject
	replies       map[string]*responsePermit
	subs          map[string]*subscription // by sid
	out           outbound
	pingsOut      int
	rtt           time.Duration
	rttStart      time.Time

	pingTimer *time.Timer
	authTimer *time.Timer
	done      chan struct{} // closed when both loops have ended
}

// responsePermit is an allow_responses grant: the reply subject of a received
// message that may be published to n more times until expires.
type responsePermit struct {
	n       int
	expires time.Time
}

// isClosed reports whether closeConnection has run. Lock held.
func (c *client) isClosed() bool { return c.flags.has(flagClosed) }

// enqueueProto queues a protocol line and wakes the writer. Lock held.
func (c *client) enqueueProto(proto []byte) {
	if c.queueOutbound(proto) {
		c.signalWriter()
	}
}

// sendProto queues a protocol line.
func (c *client) sendProto(proto []byte) {
	c.mu.Lock()
	c.enqueueProto(proto)
	c.mu.Unlock()
}

// sendErr sends -ERR '<text>'.
func (c *client) sendErr(text string) {
	if c.srv.trace {
		c.traceOut("-ERR", []byte(text))
	}
	c.sendProto([]byte("-ERR '" + text + "'\r\n"))
}

func (c *client) sendOK() {
	if c.srv.trace {
		c.traceOut("+OK", nil)
	}
	c.sendProto(okProto)
}

var (
	okProto   = []byte("+OK\r\n")
	pingProto = []byte("PING\r\n")
	pongProto = []byte("PONG\r\n")
)

// readLoop reads and parses until the connection ends.
func (c *client) readLoop() {
	defer c.srv.wg.Done()
	buf := make([]byte, startReadBufSize)
	short := 0
	for {
		n, err := c.nc.Read(buf)
		if n > 0 {
			c.lastActivity.Store(time.Now().UnixNano())
			perr := c.parse(buf[:n])
			c.flushClients()
			if perr != nil {
				if !errors.Is(perr, errClosed) && !errors.Is(perr, errAuthentication) && !errors.Is(perr, errMaxPayload) {
					c.srv.logger.Debug("protocol violation", "cid", c.cid, "err", perr.Error())
					c.closeConnection(ProtocolViolation)
				}
				return
			}
			// Resize for the traffic we see.
			switch {
			case n == len(buf) && len(buf) < maxReadBufSize:
				if size := len(buf) * 2; cap(buf) >= size {
					buf = buf[:size]
				} else {
					buf = make([]byte, size)
				}
				short = 0
			case n < len(buf)/2 && len(buf) > minReadBufSize:
				if short++; short > shortReadsToShrink {
					if size := len(buf) / 2; size >= cap(buf)/4 {
						buf = buf[:size]
					} else {
						buf = make([]byte, size)
					}
					short = 0
				}
			default:
				short = 0
			}
		}
		if err != nil {
			reason := ClientClosed
			var ne net.Error
			if errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) {
				reason = ReadError
			}
			c.closeConnection(reason)
			return
		}
		c.mu.Lock()
		closed := c.isClosed()
		c.mu.Unlock()
		if closed {
			return
		}
	}
}

// markSlowConsumer cuts off a consumer that cannot keep up, without flushing
// (nothing more would get through). Lock held; the caller (or the writer) must
// then run finishClose.
func (c *client) markSlowConsumer(reason ClosedReason) {
	if c.isClosed() {
		return
	}
	c.srv.slowConsumers.Add(1)
	c.srv.logger.Warn("slow consumer, disconnecting", "cid", c.cid,
		"reason", reason.String(), "pending", c.pending())
	c.flags.set(flagNoFlushOnClose)
	c.markClosedLocked(reason)
	// Unblock a writer stuck in Write and the reader; teardown happens in
	// finishClose, which must not run under this lock.
	_ = c.nc.Close()
	// Counted: the caller is a read or write loop, so the count is not zero.
	c.srv.wg.Add(1)
	go func() {
		defer c.srv.wg.Done()
		c.finishClose()
	}()
}

// closeConnection ends the connection: pending output (say, a -ERR) is flushed
// by the writer, subscriptions are removed, the server forgets the client.
func (c *client) closeConnection(reason ClosedReason) {
	c.mu.Lock()
	if c.isClosed() {
		c.mu.Unlock()
		return
	}
	c.markClosedLocked(reason)
	c.mu.Unlock()
	c.finishClose()
}

// markClosedLocked flags the connection closed and stops its timers. Lock held.
func (c *client) markClosedLocked(reason ClosedReason) {
	c.flags.set(flagClosed)
	c.reason = reason
	c.stopPingTimerLocked()
	if c.authTimer != nil {
		c.authTimer.Stop()
		c.authTimer = nil
	}
	c.signalWriter()
}

// finishClose removes the connection's subscriptions and unregisters it. It
// runs once per connection, after markClosedLocked, without locks held.
func (c *client) finishClose() {
	// Snapshot for /connz?state=closed while the subscriptions are still
	// there; only the first finishClose records it.
	closed := c.monitorInfo(time.Now(), true)
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	reason := c.reason
	c.mu.Unlock()
	if subs == nil {
		return // already finished
	}
	stop := time.Now()
	closed.Stop, closed.Reason = &stop, reason.String()
	closed.Uptime, closed.Idle = uptime(stop.Sub(closed.Start)), uptime(stop.Sub(closed.LastActivity))
	closed.Pending = 0
	for _, sub := range subs {
		if c.acc.sl.Remove(sub) {
			c.srv.localInterestChanged(sub, -1)
		}
	}
	c.srv.removeConn(c, reason)
	c.mu.Lock()
	announced := c.flags.has(flagAnnounced)
	c.mu.Unlock()
	if announced {
		c.srv.disconnectEvent(c, reason)
	}
	// Listed as closed once no longer listed as open.
	c.srv.closed.add(closed)
}

// setPingTimer arms the next ping. Lock held.
func (c *client) setPingTimer(d time.Duration) {
	if c.isClosed() || d <= 0 {
		return
	}
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	c.pingTimer = time.AfterFunc(d, c.processPingTimer)
}

// stopPingTimerLocked stops the ping cycle. Lock held.
func (c *client) stopPingTimerLocked() {
	if c.pingTimer != nil {
		c.pingTimer.Stop()
		c.pingTimer = nil
	}
}

// firstPingInterval: nats-server pings a new client within two seconds so
// that it learns the RTT (and catches dead peers) early.
const firstPingInterval = 2 * time.Second

// processPingTimer sends a PING, or cuts the connection off with
// 'Stale Connection' when too many went unanswered.
func (c *client) processPingTimer() {
	opts := c.srv.getOpts()
	c.mu.Lock()
	c.pingTimer = nil
	if c.isClosed() {
		c.mu.Unlock()
		return
	}
	if c.pingsOut+1 > opts.MaxPingsOut {
		c.mu.Unlock()
		c.srv.logger.Debug("stale connection, closing", "cid", c.cid)
		c.sendErr(errTextStale)
		c.closeConnection(StaleConnection)
		return
	}
	c.pingsOut++
	c.rttStart = time.Now()
	if c.srv.trace {
		c.traceOut("PING", nil)
	}
	c.enqueueProto(pingProto)
	c.setPingTimer(opts.PingInterval)
	c.mu.Unlock()
}
