package server

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// processInboundClientMsg routes a complete PUB/HPUB (msg is headers, payload
// and the trailing CRLF) to every interested subscription, here and (through
// the cluster) on other servers.
//
// Hot path: no allocations once the subject's match result is cached and the
// subscribers' outbound buffers have grown to their working size.
func (c *client) processInboundClientMsg(msg []byte) {
	payload := msg[:len(msg)-2]
	c.inMsgs.Add(1)
	c.inBytes.Add(int64(len(payload)))
	c.srv.inMsgs.Add(1)
	c.srv.inBytes.Add(int64(len(payload)))

	if c.pubRestricted.Load() && !c.pubAllowed(c.pa.subject) {
		c.pubPermissionViolation(c.pa.subject)
		return
	}
	if c.opts.Verbose {
		c.sendOK()
	}
	a := c.acc
	r := a.sl.MatchBytes(c.pa.subject)
	c.localQueues = c.localQueues[:0]
	delivered := c.processMsgResults(r, payload)
	if cl := c.srv.getCluster(); cl != nil {
		if cl.routeMsg(a.name, c.pa.subject, c.pa.reply, c.pa.hdr, payload, c.localQueueFn) {
			delivered = true
		}
	}
	if im := a.imp.Load(); im != nil && c.crossAccounts(a, im, payload) {
		delivered = true
	}
	if !delivered && len(c.pa.reply) > 0 {
		c.sendNoResponders()
	}
}

// queueDeliveredHere reports whether the message being processed reached a
// member of queue group queue on this server (for cluster.routeMsg).
func (c *client) queueDeliveredHere(queue []byte) bool {
	for _, q := range c.localQueues {
		if string(q) == string(queue) {
			return true
		}
	}
	return false
}

// deliverRouted delivers a message that came over a route in account acc to
// local subscriptions: every plain subscriber, and one member of each queue
// group named in queues. payload excludes the trailing CRLF; hdr is the
// header length, -1 without headers. Safe for concurrent use.
func (s *Server) deliverRouted(acc, subject, reply []byte, queues [][]byte, hdr int, payload []byte) {
	s.inMsgs.Add(1)
	s.inBytes.Add(int64(len(payload)))
	a := s.lookupAccount(string(acc))
	if a == nil {
		return
	}
	s.deliverLocal(a, subject, reply, queues, hdr, payload)
	if isServiceReply(subject) {
		s.routedServiceResponse(a, subject, hdr, payload)
	}
}

// deliverLocal delivers a message in account a to its local subscriptions.
func (s *Server) deliverLocal(a *account, subject, reply []byte, queues [][]byte, hdr int, payload []byte) {
	r := a.sl.MatchBytes(subject)
	for _, sub := range r.psubs {
		deliverMsg(nil, sub, subject, reply, hdr, payload)
	}
	for _, qsubs := range r.qsubs {
		if len(qsubs) == 0 || !containsQueue(queues, qsubs[0].queue) {
			continue
		}
		start := rand.IntN(len(qsubs))
		for i := 0; i < len(qsubs); i++ {
			if deliverMsg(nil, qsubs[(start+i)%len(qsubs)], subject, reply, hdr, payload) {
				break
			}
		}
	}
}

func containsQueue(queues [][]byte, q []byte) bool {
	for _, x := range queues {
		if string(x) == string(q) {
			return true
		}
	}
	return false
}

// pubAllowed checks publish permissions through the per-connection cache, then
// any allow_responses grant for the subject.
func (c *client) pubAllowed(subject []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.perms == nil {
		return true
	}
	allowed, ok := c.pcache[string(subject)]
	if !ok {
		allowed = c.perms.CanPublish(string(subject))
		if len(c.pcache) >= maxPermCacheSize {
			clear(c.pcache)
		}
		c.pcache[string(subject)] = allowed
	}
	if allowed || c.replies == nil {
		return allowed
	}
	p := c.replies[string(subject)]
	if p == nil {
		return false
	}
	if time.Now().After(p.expires) {
		delete(c.replies, string(subject))
		return false
	}
	if p.n--; p.n <= 0 {
		delete(c.replies, string(subject))
	}
	return true
}

const maxPermCacheSize = 128

// processMsgResults delivers the message being processed to the plain
// subscribers in r and to one member of each queue group, recording the
// groups served in c.localQueues. It reports whether anyone got it.
func (c *client) processMsgResults(r *SublistResult, payload []byte) bool {
	subject, reply, hdr := c.pa.subject, c.pa.reply, c.pa.hdr
	delivered := false
	for _, sub := range r.psubs {
		if deliverMsg(c, sub, subject, reply, hdr, payload) {
			delivered = true
		}
	}
	for _, qsubs := range r.qsubs {
		if len(qsubs) == 0 {
			continue
		}
		// Start at a random member and take the first that accepts.
		start := rand.IntN(len(qsubs))
		for i := 0; i < len(qsubs); i++ {
			if deliverMsg(c, qsubs[(start+i)%len(qsubs)], subject, reply, hdr, payload) {
				delivered = true
				c.localQueues = append(c.localQueues, qsubs[0].queue)
				break
			}
		}
	}
	return delivered
}

// appendMsgLine appends the control line of a MSG (HMSG with headers):
// subject, sid, the reply subject if any, the header size with headers, and
// the total size; withCRLF ends it with CRLF.
func appendMsgLine(b []byte, withHeaders bool, subject, sid, reply []byte, hdrLen, size int, withCRLF bool) []byte {
	if withHeaders {
		b = append(b, "HMSG "...)
	} else {
		b = append(b, "MSG "...)
	}
	b = append(b, subject...)
	b = append(b, ' ')
	b = append(b, sid...)
	b = append(b, ' ')
	if len(reply) > 0 {
		b = append(b, reply...)
		b = append(b, ' ')
	}
	if withHeaders {
		b = strconv.AppendInt(b, int64(hdrLen), 10)
		b = append(b, ' ')
	}
	b = strconv.AppendInt(b, int64(size), 10)
	if withCRLF {
		b = append(b, '\r', '\n')
	}
	return b
}

// msgLineLen is len(appendMsgLine(nil, ..., true)), without building it.
func msgLineLen(withHeaders bool, subject, sid, reply []byte, hdrLen, size int) int {
	n := len("MSG ") + len(subject) + 1 + len(sid) + 1 + decimalLen(size) + 2
	if withHeaders {
		n += 1 + decimalLen(hdrLen) + 1
	}
	if len(reply) > 0 {
		n += len(reply) + 1
	}
	return n
}

// decimalLen is the number of digits of n >= 0 in decimal.
func decimalLen(n int) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// deliverMsg queues one message for one subscription and reports whether it
// was queued. pub is the publishing client, nil for a message from a route.
// payload excludes the trailing CRLF; hdrLen is -1 without headers.
func deliverMsg(pub *client, sub *subscription, subject, reply []byte, hdrLen int, payload []byte) bool {
	client := sub.client
	if client == nil {
		if sub.internal != nil {
			sub.internal(subject, reply, hdrLen, payload)
			return true
		}
		return false
	}
	// A connection with echo off does not get its own messages.
	if client == pub && !pub.echo {
		return false
	}
	srv := client.srv

	client.mu.Lock()
	if client.isClosed() {
		client.mu.Unlock()
		return false
	}
	if client.perms != nil && sub.subjectIsWildcard && client.perms.HasSubscribeDeny() &&
		client.perms.DeniesDelivery(string(subject), string(sub.queue)) {
		client.mu.Unlock()
		return false
	}
	var removeSub bool
	sub.nm++
	if sub.max > 0 {
		if sub.nm > sub.max {
			// Raced with the delivery that reached max.
			client.mu.Unlock()
			return false
		}
		if sub.nm == sub.max {
			client.unsubscribeLocked(sub)
			removeSub = true
		}
	}

	// A subscriber that did not ask for headers gets a plain MSG without them.
	withHeaders := hdrLen > 0 && client.headers
	if hdrLen > 0 && !client.headers {
		payload = payload[hdrLen:]
	}
	size := len(payload)

	if client.replies != nil && len(reply) > 0 {
		client.grantResponse(reply)
	}
	ok := client.queueMsg(withHeaders, subject, sub.sid, reply, hdrLen, payload)
	if ok && pub == nil {
		client.signalWriter()
	}
	client.mu.Unlock()

	if removeSub && client.acc.sl.Remove(sub) {
		srv.localInterestChanged(sub, -1)
	}
	if !ok {
		return false
	}
	if srv.trace {
		client.traceOut("MSG", appendMsgLine(nil, withHeaders, subject, sub.sid, reply, hdrLen, size, false))
	}
	client.outMsgs.Add(1)
	client.outBytes.Add(int64(size))
	srv.outMsgs.Add(1)
	srv.outBytes.Add(int64(size))
	if pub != nil {
		// Woken once at the end of the publisher's read pass.
		pub.pcd[client] = struct{}{}
	}
	return true
}

// grantResponse lets this connection publish once to reply (allow_responses).
// Lock held.
func (c *client) grantResponse(reply []byte) {
	if len(c.replies) >= maxResponsePermits {
		now := time.Now()
		for k, p := range c.replies {
			if now.After(p.expires) {
				delete(c.replies, k)
			}
		}
		if len(c.replies) >= maxResponsePermits {
			clear(c.replies)
		}
	}
	c.replies[string(reply)] = &responsePermit{
		n:       c.perms.ResponseMaxMsgs,
		expires: time.Now().Add(c.perms.ResponseExpires),
	}
}

const maxResponsePermits = 4096

// sendNoResponders answers a request nobody received with a 503 status on the
// requester's reply subscription, when it asked for that (no_responders).
func (c *client) sendNoResponders() {
	c.mu.Lock()
	noResponders := c.opts.NoResponders
	c.mu.Unlock()
	if !noResponders {
		return
	}
	r := c.acc.sl.MatchBytes(c.pa.reply)
	var sid []byte
	for _, sub := range r.psubs {
		if sub.client == c {
			sid = sub.sid
			break
		}
	}
	if sid == nil {
		return
	}
	// Exactly nats-server's bytes: a 503 status and a Nats-Subject header.
	hdrLen := len("NATS/1.0 503\r\nNats-Subject: \r\n\r\n") + len(c.pa.subject)
	b := make([]byte, 0, 64+2*len(c.pa.reply)+len(c.pa.subject))
	b = append(b, "HMSG "...)
	b = append(b, c.pa.reply...)
	b = append(b, ' ')
	b = append(b, sid...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(hdrLen), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(hdrLen), 10)
	b = append(b, "\r\nNATS/1.0 503\r\nNats-Subject: "...)
	b = append(b, c.pa.subject...)
	b = append(b, "\r\n\r\n\r\n"...)
	c.mu.Lock()
	c.queueOutbound(b)
	c.mu.Unlock()
	c.pcd[c] = struct{}{}
}
