package server

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// The outbound path: what a connection is sent waits in a list of
// fixed-size blocks until its writer goroutine hands them to the socket in
// one writev. Producers copy each message once, into the free tail of the
// last block; a block never grows, so nothing is copied again however far a
// subscriber falls behind, and written blocks go back to a free list shared
// by all connections. (One contiguous buffer that grows by append, as before,
// copied everything queued on every growth and dropped large buffers after
// each write: with 16 KiB messages that was 40% of the broker's CPU.)
//
// Block sizes: a connection's first block in a write cycle is sized for
// what is queued (512 B for a PONG), later ones grow with the queue, so an
// idle connection holds no large block and a stream is written in 64 KiB
// vectors (over TLS, each block is one tls.Conn.Write of four records).
const (
	outBlockSmall  = 512
	outBlockMedium = 4 << 10
	outBlockLarge  = 64 << 10
	// maxWriteVectors is IOV_MAX on Linux: the most blocks in one writev.
	maxWriteVectors = 1024
)

// The free blocks, by size, shared by all connections: at most 2 MiB of
// small, 4 MiB of medium and 16 MiB of large blocks are kept; past that,
// written blocks are left to the garbage collector.
var (
	outBlocksSmall  = blockPool{size: outBlockSmall, max: 4096}
	outBlocksMedium = blockPool{size: outBlockMedium, max: 1024}
	outBlocksLarge  = blockPool{size: outBlockLarge, max: 256}
)

// blockPool is a bounded stack of free blocks of one size. Unlike a
// sync.Pool it is not emptied by garbage collections: with a sync.Pool,
// every collection dropped the idle blocks and a steady 16 KiB stream
// allocated about 60 bytes per message to replace them (nats-server, which
// pools its blocks that way, allocates over 5 KB per message there).
type blockPool struct {
	mu        sync.Mutex
	free      [][]byte
	size, max int
}

func (p *blockPool) get() []byte {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return b
	}
	p.mu.Unlock()
	return make([]byte, 0, p.size)
}

func (p *blockPool) put(b []byte) {
	p.mu.Lock()
	if len(p.free) < p.max {
		p.free = append(p.free, b[:0])
	}
	p.mu.Unlock()
}

// getOutBlock returns an empty block for about n bytes: the smallest size
// that holds n, or the largest.
func getOutBlock(n int) []byte {
	switch {
	case n <= outBlockSmall:
		return outBlocksSmall.get()
	case n <= outBlockMedium:
		return outBlocksMedium.get()
	default:
		return outBlocksLarge.get()
	}
}

// putOutBlock returns a block from getOutBlock to its pool.
func putOutBlock(b []byte) {
	switch cap(b) {
	case outBlockSmall:
		outBlocksSmall.put(b)
	case outBlockMedium:
		outBlocksMedium.put(b)
	case outBlockLarge:
		outBlocksLarge.put(b)
	}
}

// Back-pressure, as nats-server applies it: once a connection's pending bytes
// pass three quarters of max_pending, publishers whose read pass queued to it
// wait for its writer, at most stallMaxWait per connection and stallTotalWait
// per read pass, before reading more. A subscriber that reads slower than a
// publisher writes then slows the publisher down (through TCP) instead of
// being cut off; one that stops reading still reaches max_pending and is cut
// off, and a publisher never waits on it for more than those few milliseconds.
const (
	stallMaxWait   = 5 * time.Millisecond
	stallTotalWait = 10 * time.Millisecond
	// One socket write is at most an eighth of max_pending (within these
	// bounds), so the pending count, and with it the stall gate, follows the
	// subscriber's progress through a long queue.
	minWriteChunk = 16 << 10
	maxWriteChunk = 1 << 20
)

// outbound is what a connection has queued for its writer. Producers append
// under client.mu and wake the writer through signal; wv and wvBase belong to
// the writer alone.
type outbound struct {
	nb       net.Buffers // queued blocks, filled in order; the last may have room
	queued   int         // bytes in nb
	spare    net.Buffers // an empty list, nb's next turn while the writer has nb
	inflight int         // bytes handed to the writer and not yet written
	line     []byte      // a control line that does not fit the last block
	mp       int64       // max pending bytes
	wdl      time.Duration
	signal   chan struct{}
	// stall is open while pending is above 3/4 of mp; the writer closes it
	// once pending is back under half (see stallMaxWait).
	stall chan struct{}

	// wv is one writev's vector. net.Buffers.WriteTo consumes it (and nils
	// what it wrote), so the blocks themselves are kept in the writer's list
	// and wvBase keeps wv's capacity for the next write.
	wv, wvBase net.Buffers
}

// write copies data into the queued blocks. Lock held.
func (o *outbound) write(data []byte) {
	for len(data) > 0 {
		if n := len(o.nb); n > 0 {
			last := o.nb[n-1]
			if free := cap(last) - len(last); free > 0 {
				k := min(free, len(data))
				o.nb[n-1] = append(last, data[:k]...)
				o.queued += k
				data = data[k:]
				continue
			}
		}
		o.nb = append(o.nb, getOutBlock(len(data)+o.queued))
	}
}

// room is the free space in the last queued block. Lock held.
func (o *outbound) room() []byte {
	if n := len(o.nb); n > 0 {
		return o.nb[n-1]
	}
	return nil
}

// release returns the blocks in nb to their pools and empties it. Lock held.
func (o *outbound) release() {
	for i, b := range o.nb {
		putOutBlock(b)
		o.nb[i] = nil
	}
	o.nb = o.nb[:0]
	o.queued = 0
}

// pending is the number of bytes queued but not yet written. Lock held.
func (c *client) pending() int64 { return int64(c.out.queued + c.out.inflight) }

// queueOutbound appends data for the writer. If that takes the connection
// past its pending limit it is cut off as a slow consumer. Lock held.
func (c *client) queueOutbound(data ...[]byte) bool {
	if c.isClosed() {
		return false
	}
	n := 0
	for _, d := range data {
		n += len(d)
	}
	if c.pending()+int64(n) > c.out.mp {
		c.markSlowConsumer(SlowConsumerPendingBytes)
		return false
	}
	for _, d := range data {
		c.out.write(d)
	}
	c.gateIfBehind()
	return true
}

// queueMsg appends a MSG (HMSG with headers) and its payload for the writer,
// building the control line straight into the last block when it fits (the
// hot path has no scratch line to clear and copy per delivery). Like
// queueOutbound, it cuts the connection off when that would pass its pending
// limit. Lock held.
func (c *client) queueMsg(withHeaders bool, subject, sid, reply []byte, hdrLen int, payload []byte) bool {
	if c.isClosed() {
		return false
	}
	ll := msgLineLen(withHeaders, subject, sid, reply, hdrLen, len(payload))
	if c.pending()+int64(ll+len(payload)+2) > c.out.mp {
		c.markSlowConsumer(SlowConsumerPendingBytes)
		return false
	}
	o := &c.out
	if len(o.nb) == 0 {
		o.nb = append(o.nb, getOutBlock(ll+len(payload)+2))
	}
	if last := o.room(); cap(last)-len(last) >= ll {
		o.nb[len(o.nb)-1] = appendMsgLine(last, withHeaders, subject, sid, reply, hdrLen, len(payload), true)
		o.queued += ll
	} else {
		o.line = appendMsgLine(o.line[:0], withHeaders, subject, sid, reply, hdrLen, len(payload), true)
		o.write(o.line)
	}
	o.write(payload)
	o.write(crlf)
	c.gateIfBehind()
	return true
}

var crlf = []byte("\r\n")

// gateIfBehind opens the stall gate when pending passes 3/4 of max_pending.
// Lock held.
func (c *client) gateIfBehind() {
	if c.out.stall == nil && c.pending() > c.out.mp/4*3 {
		c.out.stall = make(chan struct{})
	}
}

// releaseStall closes the stall gate once pending is under half of
// max_pending, or for good when the connection is closed. Lock held.
func (c *client) releaseStall() {
	if c.out.stall != nil && (c.isClosed() || c.pending() <= c.out.mp/2) {
		close(c.out.stall)
		c.out.stall = nil
	}
}

// signalWriter wakes the writer goroutine without blocking.
func (c *client) signalWriter() {
	select {
	case c.out.signal <- struct{}{}:
	default:
	}
}

// flushClients wakes the writers of every connection this read pass queued
// messages to. Delivery itself only appends under the target's lock; waking
// once per read pass instead of once per message keeps the hot path cheap.
//
// Then, if any of them is falling behind (its stall gate is open), it waits
// for their writers, bounded by stallMaxWait and stallTotalWait, before the
// read loop reads more from this publisher.
func (c *client) flushClients() {
	var budget time.Duration
	for t := range c.pcd {
		t.signalWriter()
		delete(c.pcd, t)
		if budget >= stallTotalWait {
			continue
		}
		t.mu.Lock()
		gate := t.out.stall
		t.mu.Unlock()
		if gate != nil {
			budget += c.stallOn(gate, min(stallMaxWait, stallTotalWait-budget))
		}
	}
}

// stallOn waits until gate closes or limit passes, and says how long it waited.
func (c *client) stallOn(gate chan struct{}, limit time.Duration) time.Duration {
	start := time.Now()
	if c.stallTimer == nil {
		c.stallTimer = time.NewTimer(limit)
	} else {
		c.stallTimer.Reset(limit)
	}
	select {
	case <-gate:
		c.stallTimer.Stop()
	case <-c.stallTimer.C:
	}
	return time.Since(start)
}

// writeLoop drains the queued blocks into the socket: it takes the whole
// list at once (producers start a new one meanwhile) and writes it with
// writev, an eighth of max_pending at a time.
func (c *client) writeLoop() {
	defer c.srv.wg.Done()
	for {
		c.mu.Lock()
		for len(c.out.nb) == 0 && !c.isClosed() {
			c.mu.Unlock()
			<-c.out.signal
			c.mu.Lock()
		}
		if c.isClosed() {
			// Flush what is left (typically the -ERR explaining the close)
			// unless the peer is the reason we are closing.
			if !c.flags.has(flagNoFlushOnClose) && len(c.out.nb) > 0 {
				_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
				c.out.wv = append(c.out.wvBase[:0], c.out.nb...)
				_, _ = c.out.wv.WriteTo(c.nc)
			}
			c.out.release()
			c.out.spare = nil
			c.releaseStall()
			c.mu.Unlock()
			_ = c.nc.Close()
			return
		}
		w := c.out.nb
		c.out.nb, c.out.spare = c.out.spare, nil
		c.out.inflight, c.out.queued = c.out.queued, 0
		wdl := c.out.wdl
		chunk := int(min(max(c.out.mp/8, minWriteChunk), maxWriteChunk))
		c.mu.Unlock()

		err := c.writeBlocks(w, wdl, chunk)
		for i, b := range w {
			if b != nil { // not yet returned: a write failed
				putOutBlock(b)
				w[i] = nil
			}
		}

		c.mu.Lock()
		c.out.inflight = 0
		c.releaseStall()
		c.out.spare = w[:0]
		c.mu.Unlock()
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.mu.Lock()
				c.markSlowConsumer(SlowConsumerWriteDeadline)
				c.mu.Unlock()
				c.finishClose()
			} else {
				c.closeConnection(WriteError)
			}
		}
	}
}

// writeBlocks writes w to the socket in writevs of at most chunk bytes (and
// at least one block), each under the write deadline, so that the pending
// count and the stall gate follow the subscriber's progress. Each block goes
// back to its pool as soon as it is written (and its place in w is nilled):
// blocks written early in a long list are not held while the rest is.
// Writer only.
func (c *client) writeBlocks(w net.Buffers, wdl time.Duration, chunk int) error {
	for i := 0; i < len(w); {
		j, n := i+1, len(w[i])
		for j < len(w) && j-i < maxWriteVectors && n+len(w[j]) <= chunk {
			n += len(w[j])
			j++
		}
		c.out.wv = append(c.out.wvBase[:0], w[i:j]...)
		c.out.wvBase = c.out.wv
		_ = c.nc.SetWriteDeadline(time.Now().Add(wdl))
		if _, err := c.out.wv.WriteTo(c.nc); err != nil {
			return err
		}
		for k := i; k < j; k++ {
			putOutBlock(w[k])
			w[k] = nil
		}
		i = j
		if i < len(w) {
			c.mu.Lock()
			c.out.inflight -= n
			c.releaseStall()
			c.mu.Unlock()
		}
	}
	return nil
}
