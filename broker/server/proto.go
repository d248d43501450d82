package server

import (
	"encoding/json"
	"fmt"
	"time"
)

// Client protocol version that understands async INFO.
const clientProtoInfo = 1

// processConnect handles CONNECT: options, authentication, then the checks
// nats-server makes in the same order.
func (c *client) processConnect(arg []byte) error {
	c.mu.Lock()
	if c.authTimer != nil {
		c.authTimer.Stop()
		c.authTimer = nil
	}
	if c.isClosed() {
		c.mu.Unlock()
		return errClosed
	}
	opts := c.opts
	if !c.flags.has(flagConnectReceived) {
		opts = defaultConnectOpts
	}
	if err := json.Unmarshal(arg, &opts); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("CONNECT: %w", err)
	}
	c.opts = opts
	c.flags.set(flagConnectReceived)
	c.echo = opts.Echo
	c.headers = opts.Headers
	// No PING while the credentials are checked (a bcrypt comparison, which
	// queues behind others in a connect storm): a client in its handshake
	// waits for the PONG to its own PING and gives up on anything else. The
	// ping cycle restarts once the client is in.
	c.stopPingTimerLocked()
	c.mu.Unlock()

	ok, reason := c.srv.authenticate(c)
	if !ok {
		c.authViolation(reason)
		return errAuthentication
	}
	if c.srv.authConfig().required {
		c.srv.ext().auth.authenticated(time.Since(c.start))
	}
	c.mu.Lock()
	if !c.isClosed() {
		c.setPingTimer(min(firstPingInterval, c.srv.getOpts().PingInterval))
	}
	c.mu.Unlock()
	if opts.AccountNew || opts.Account != "" {
		c.authViolation(authReasonAccount)
		return errAuthentication
	}
	if opts.Protocol < 0 || opts.Protocol > clientProtoInfo {
		c.sendErr(errTextBadClientProtocol)
		c.closeConnection(BadClientProtocolVersion)
		return errClosed
	}
	if opts.NoResponders && !opts.Headers {
		c.sendErr(errTextNoRespondersHeaders)
		c.closeConnection(NoRespondersRequiresHeaders)
		return errClosed
	}
	c.srv.logger.Debug("client connected", "cid", c.cid, "addr", c.nc.RemoteAddr().String(),
		"name", opts.Name, "lang", opts.Lang, "version", opts.Version, "user", c.userName())
	c.announce()
	if opts.Verbose {
		c.sendOK()
	}
	return nil
}

// userName is the authenticated user, "" without auth.
func (c *client) userName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.user == nil {
		return ""
	}
	return c.user.name
}

// authenticateNoAuthUser lets a client that starts with an op other than
// CONNECT in as no_auth_user, when one is configured.
func (c *client) authenticateNoAuthUser() bool {
	ac := c.srv.authConfig()
	if ac.noAuthUser == nil || ac.tlsMap {
		// With verify_and_map the certificate names the user, at CONNECT.
		return false
	}
	c.mu.Lock()
	if c.authTimer != nil {
		c.authTimer.Stop()
		c.authTimer = nil
	}
	c.flags.set(flagConnectReceived)
	c.mu.Unlock()
	c.setUser(ac.noAuthUser)
	c.srv.ext().auth.authenticated(time.Since(c.start))
	c.announce()
	return true
}

// announce sends the connect event of a client that is in, once.
func (c *client) announce() {
	c.mu.Lock()
	first := !c.flags.has(flagAnnounced) && !c.isClosed()
	c.flags.set(flagAnnounced)
	c.mu.Unlock()
	if first {
		c.srv.connectEvent(c)
	}
}

// authViolation tells the client 'Authorization Violation' and closes;
// reason (one of authReasons) is counted for /metrics.
func (c *client) authViolation(reason string) {
	c.mu.Lock()
	user := c.opts.Username
	c.mu.Unlock()
	// The attempted user name is logged; never the password or token.
	c.srv.logger.Info("authorization violation", "cid", c.cid, "addr", c.nc.RemoteAddr().String(), "user", user)
	c.srv.ext().authFailures.Add(1) // for /varz and /metrics (route_info.go)
	c.srv.ext().auth.fail(reason)
	c.sendErr(errTextAuthViolation)
	c.closeConnection(AuthenticationViolation)
	c.srv.authErrorEvent(c, AuthenticationViolation)
}

// authTimeout fires when an auth-required client sent no CONNECT in time.
func (c *client) authTimeout() {
	c.mu.Lock()
	done := c.flags.has(flagConnectReceived) || c.isClosed()
	c.mu.Unlock()
	if done {
		return
	}
	c.sendErr(errTextAuthTimeout)
	c.closeConnection(AuthenticationTimeout)
}

// processPub handles the control line of PUB <subject> [reply] <size>.
func (c *client) processPub(arg []byte) error {
	if err := c.parsePubArgs(arg); err != nil {
		return err
	}
	return c.checkPubSizeAndSubject()
}

// parsePubArgs fills c.pa from PUB's arguments, with no other effect.
func (c *client) parsePubArgs(arg []byte) error {
	var a [3][]byte
	args := splitArgs(a[:0], arg)
	if len(args) > 3 {
		return fmt.Errorf("PUB: bad arguments %q", arg)
	}
	c.pa.arg = arg
	switch len(args) {
	case 2:
		c.pa.subject, c.pa.reply, c.pa.szb = args[0], nil, args[1]
	case 3:
		c.pa.subject, c.pa.reply, c.pa.szb = args[0], args[1], args[2]
	default:
		return fmt.Errorf("PUB: bad arguments %q", arg)
	}
	c.pa.size = parseSize(c.pa.szb)
	if c.pa.size < 0 {
		return fmt.Errorf("PUB: bad or missing size %q", arg)
	}
	return nil
}

// processHeaderPub handles the control line of
// HPUB <subject> [reply] <header size> <total size>.
func (c *client) processHeaderPub(arg []byte) error {
	c.mu.Lock()
	headers := c.headers
	c.mu.Unlock()
	if !headers {
		return errHeadersNotSupported
	}
	if err := c.parseHeaderPubArgs(arg); err != nil {
		return err
	}
	return c.checkPubSizeAndSubject()
}

// parseHeaderPubArgs fills c.pa from HPUB's arguments, with no other effect.
func (c *client) parseHeaderPubArgs(arg []byte) error {
	var a [4][]byte
	args := splitArgs(a[:0], arg)
	if len(args) > 4 {
		return fmt.Errorf("HPUB: bad arguments %q", arg)
	}
	c.pa.arg = arg
	switch len(args) {
	case 3:
		c.pa.subject, c.pa.reply, c.pa.hdb, c.pa.szb = args[0], nil, args[1], args[2]
	case 4:
		c.pa.subject, c.pa.reply, c.pa.hdb, c.pa.szb = args[0], args[1], args[2], args[3]
	default:
		return fmt.Errorf("HPUB: bad arguments %q", arg)
	}
	c.pa.hdr = parseSize(c.pa.hdb)
	if c.pa.hdr < 0 {
		return fmt.Errorf("HPUB: bad or missing header size %q", arg)
	}
	c.pa.size = parseSize(c.pa.szb)
	if c.pa.size < 0 {
		return fmt.Errorf("HPUB: bad or missing total size %q", arg)
	}
	if c.pa.hdr > c.pa.size {
		return fmt.Errorf("HPUB: header size larger than total size %q", arg)
	}
	return nil
}

func (c *client) checkPubSizeAndSubject() error {
	if int64(c.pa.size) > c.mpay {
		c.srv.logger.Info("maximum payload exceeded", "cid", c.cid, "size", c.pa.size, "max", c.mpay)
		c.sendErr(errTextMaxPayload)
		c.closeConnection(MaxPayloadExceeded)
		return errMaxPayload
	}
	if c.opts.Pedantic && !IsValidLiteralSubject(string(c.pa.subject)) {
		c.sendErr(errTextInvalidPubSubject)
	}
	return nil
}

// parseSub parses SUB <subject> [queue] <sid>.
func (c *client) parseSub(argo []byte) error {
	// The subscription keeps these bytes: copy them off the read buffer.
	arg := make([]byte, len(argo))
	copy(arg, argo)
	var a [4][]byte
	args := splitArgs(a[:0], arg)
	var subject, queue, sid []byte
	switch len(args) {
	case 2:
		subject, sid = args[0], args[1]
	case 3:
		subject, queue, sid = args[0], args[1], args[2]
	default:
		return fmt.Errorf("SUB: bad arguments %q", arg)
	}
	c.processSub(subject, queue, sid)
	return nil
}

// processSub adds a subscription. Failures are reported to the client and do
// not close the connection.
func (c *client) processSub(subject, queue, sid []byte) {
	sub := &subscription{client: c, subject: subject, queue: queue, sid: sid,
		subjectIsWildcard: !subjectIsLiteral(string(subject))}

	c.mu.Lock()
	if c.isClosed() || c.subs == nil {
		c.mu.Unlock()
		return
	}
	if !c.perms.CanSubscribe(string(subject), string(queue)) {
		c.mu.Unlock()
		c.subPermissionViolation(sub)
		return
	}
	if c.msubs > 0 && len(c.subs) >= c.msubs {
		c.mu.Unlock()
		c.srv.logger.Info("maximum subscriptions exceeded", "cid", c.cid)
		c.sendErr(errTextMaxSubscriptions)
		return
	}
	existing := c.subs[string(sid)]
	var err error
	if existing == nil {
		c.subs[string(sid)] = sub
		if err = c.acc.sl.Insert(sub); err != nil {
			delete(c.subs, string(sid))
		}
	}
	verbose := c.opts.Verbose
	c.mu.Unlock()

	if err != nil {
		c.sendErr(errTextInvalidSubject)
		return
	}
	if verbose {
		c.sendOK()
	}
	if existing == nil {
		c.srv.localInterestChanged(sub, 1)
	}
}

func (c *client) subPermissionViolation(sub *subscription) {
	var text string
	if sub.queue != nil {
		text = fmt.Sprintf(errTextQueueSubViolationFmt, sub.subject, sub.queue)
	} else {
		text = fmt.Sprintf(errTextSubViolationFmt, sub.subject)
	}
	c.srv.logger.Info("subscription permission violation", "cid", c.cid, "user", c.userName(),
		"subject", string(sub.subject), "queue", string(sub.queue))
	c.sendErr(text)
}

func (c *client) pubPermissionViolation(subject []byte) {
	c.srv.logger.Info("publish permission violation", "cid", c.cid, "user", c.userName(),
		"subject", string(subject))
	c.sendErr(fmt.Sprintf(errTextPubViolationFmt, subject))
}

// processUnsub handles UNSUB <sid> [max]: with max, the subscription ends
// after max deliveries in total.
func (c *client) processUnsub(arg []byte) error {
	var a [3][]byte
	args := splitArgs(a[:0], arg)
	var sid []byte
	max := int64(-1)
	switch len(args) {
	case 1:
		sid = args[0]
	case 2:
		sid = args[0]
		max = int64(parseSize(args[1]))
	default:
		return fmt.Errorf("UNSUB: bad arguments %q", arg)
	}
	var unsub bool
	c.mu.Lock()
	sub, ok := c.subs[string(sid)]
	if ok {
		if max > 0 && max > sub.nm {
			sub.max = max
		} else {
			sub.max = 0
			unsub = true
			delete(c.subs, string(sid))
		}
	}
	verbose := c.opts.Verbose
	c.mu.Unlock()
	if verbose {
		c.sendOK()
	}
	if unsub && c.acc.sl.Remove(sub) {
		c.srv.localInterestChanged(sub, -1)
	}
	return nil
}

// unsubscribeLocked drops sub after its last allowed delivery. Lock held; the
// caller removes it from the sublist after unlocking.
func (c *client) unsubscribeLocked(sub *subscription) {
	if c.subs != nil && c.subs[string(sub.sid)] == sub {
		delete(c.subs, string(sub.sid))
	}
}

// processPing answers PONG; the first PING after CONNECT from a client that
// speaks protocol 1 also gets an async INFO, as nats-server sends.
func (c *client) processPing() {
	c.mu.Lock()
	if c.isClosed() {
		c.mu.Unlock()
		return
	}
	if c.srv.trace {
		c.traceOut("PONG", nil)
	}
	c.enqueueProto(pongProto)
	sendInfo := false
	if c.flags.has(flagConnectReceived) && !c.flags.has(flagFirstPongSent) {
		c.flags.set(flagFirstPongSent)
		sendInfo = c.opts.Protocol >= clientProtoInfo
	}
	c.mu.Unlock()
	if sendInfo {
		c.sendProto(c.srv.clientInfo(c, true))
	}
}

func (c *client) processPong() {
	c.mu.Lock()
	c.pingsOut = 0
	if !c.rttStart.IsZero() {
		c.rtt = time.Since(c.rttStart)
	}
	c.mu.Unlock()
}

// processInfo: a client's INFO is checked for JSON and ignored.
func (c *client) processInfo(arg []byte) error {
	var v map[string]any
	if err := json.Unmarshal(arg, &v); err != nil {
		return fmt.Errorf("INFO: %w", err)
	}
	return nil
}

// processErr: a peer that sends -ERR is closed, as nats-server does.
func (c *client) processErr(arg []byte) {
	c.srv.logger.Info("client sent an error", "cid", c.cid, "err", string(arg))
	c.closeConnection(ParseError)
}
