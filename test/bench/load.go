//go:build bench

package main

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// connect opens a nats.go connection that never reconnects: a benchmark
// connection that drops is a failed run, not something to hide.
func connect(url string, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{
		nats.NoReconnect(),
		nats.Timeout(30 * time.Second),
		nats.Name("natsforge-bench"),
	}, extra...)
	opts = append(opts, tlsOption(url)...)
	return nats.Connect(url, opts...)
}

// publishFor publishes payload to subject as fast as the client can for d,
// then flushes (a PING round trip: the server has read everything). It
// returns the number sent and the time taken, flush included.
func publishFor(nc *nats.Conn, subject string, payload []byte, d time.Duration) (int, time.Duration, error) {
	start := time.Now()
	deadline := start.Add(d)
	n := 0
	for time.Now().Before(deadline) {
		for range 256 {
			if err := nc.Publish(subject, payload); err != nil {
				return n, 0, err
			}
		}
		n += 256
	}
	if err := nc.FlushTimeout(time.Minute); err != nil {
		return n, 0, fmt.Errorf("flush: %w", err)
	}
	return n, time.Since(start), nil
}

// pubOnly measures one publisher with no subscribers: msgs/s, and how many
// were sent.
func pubOnly(url string, size int, d time.Duration) (float64, int64, error) {
	nc, err := connect(url)
	if err != nil {
		return 0, 0, err
	}
	defer nc.Close()
	n, el, err := publishFor(nc, "bench.pub", make([]byte, size), d)
	if err != nil {
		return 0, 0, err
	}
	return float64(n) / el.Seconds(), int64(n), nil
}

// counter counts deliveries to a set of subscriptions and remembers
// asynchronous errors (a slow consumer, a dropped connection).
type counter struct {
	n    atomic.Int64
	mu   sync.Mutex
	errs []string
}

func (c *counter) noteErr(format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) < 4 {
		c.errs = append(c.errs, fmt.Sprintf(format, a...))
	}
}

func (c *counter) options() []nats.Option {
	return []nats.Option{
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { c.noteErr("async: %v", err) }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { c.noteErr("disconnected: %v", err) }),
	}
}

// fanIn is one publisher (on pubURL) to nsubs subscribers (on subURL), all
// plain or all in one queue group. It returns deliveries per second over all
// subscribers, from the first publish to the last delivery, and how many.
func fanIn(pubURL, subURL string, size, nsubs int, queue bool, d time.Duration) (float64, int64, error) {
	return fanInOn(pubURL, subURL, "bench.fan", "bench.fan", size, nsubs, queue, d)
}

// fanInOn is fanIn publishing on pubSubject while the subscribers listen on
// subSubject (which differ through a stream import's prefix).
func fanInOn(pubURL, subURL, pubSubject, subSubject string, size, nsubs int, queue bool, d time.Duration) (float64, int64, error) {
	subject := subSubject
	var cnt counter
	var conns []*nats.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for range nsubs {
		nc, err := connect(subURL, cnt.options()...)
		if err != nil {
			return 0, 0, err
		}
		conns = append(conns, nc)
		cb := func(*nats.Msg) { cnt.n.Add(1) }
		var sub *nats.Subscription
		if queue {
			sub, err = nc.QueueSubscribe(subject, "workers", cb)
		} else {
			sub, err = nc.Subscribe(subject, cb)
		}
		if err != nil {
			return 0, 0, err
		}
		// The client must not drop what the server delivers.
		if err := sub.SetPendingLimits(-1, -1); err != nil {
			return 0, 0, err
		}
		if err := nc.Flush(); err != nil {
			return 0, 0, err
		}
	}
	pub, err := connect(pubURL, cnt.options()...)
	if err != nil {
		return 0, 0, err
	}
	conns = append(conns, pub)
	payload := make([]byte, size)
	if pubURL != subURL {
		// Through a cluster: wait until the subscribers' interest has crossed
		// the route, then forget the probes.
		if err := awaitInterest(pub, pubSubject, &cnt, 10*time.Second); err != nil {
			return 0, 0, err
		}
	}

	start := time.Now()
	n, _, err := publishFor(pub, pubSubject, payload, d)
	if err != nil {
		return 0, 0, err
	}
	want := int64(n)
	if !queue {
		want *= int64(nsubs)
	}
	last, lastN := time.Now(), int64(-1)
	for {
		got := cnt.n.Load()
		now := time.Now()
		if got >= want {
			return float64(got) / now.Sub(start).Seconds(), got, nil
		}
		if got != lastN {
			last, lastN = now, got
		} else if now.Sub(last) > 3*time.Second {
			cnt.mu.Lock()
			defer cnt.mu.Unlock()
			return 0, 0, fmt.Errorf("delivered %d of %d (%.1f%%) %v", got, want, 100*float64(got)/float64(want), cnt.errs)
		}
		time.Sleep(time.Millisecond)
	}
}

// awaitInterest publishes probes until one is delivered, then lets stragglers
// arrive and resets the count.
func awaitInterest(pub *nats.Conn, subject string, cnt *counter, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for cnt.n.Load() == 0 {
		if time.Now().After(deadline) {
			return errors.New("no subscriber interest crossed the route within " + timeout.String())
		}
		if err := pub.Publish(subject, []byte("probe")); err != nil {
			return err
		}
		_ = pub.Flush()
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cnt.n.Store(0)
	return nil
}

// reqReplyResult is one request/reply run.
type reqReplyResult struct {
	p50, p99 time.Duration
	rate     float64 // requests per second, all clients together
}

// reqReply runs nclients requesters, each on its own connection doing one
// request at a time, against two responders in a queue group, for d.
func reqReply(url string, nclients int, d time.Duration) (reqReplyResult, error) {
	const subject = "bench.req"
	var conns []*nats.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for range 2 {
		nc, err := connect(url)
		if err != nil {
			return reqReplyResult{}, err
		}
		conns = append(conns, nc)
		if _, err := nc.QueueSubscribe(subject, "responders", func(m *nats.Msg) { _ = m.Respond(m.Data) }); err != nil {
			return reqReplyResult{}, err
		}
		if err := nc.Flush(); err != nil {
			return reqReplyResult{}, err
		}
	}
	clients := make([]*nats.Conn, nclients)
	payload := make([]byte, 16)
	for i := range clients {
		nc, err := connect(url)
		if err != nil {
			return reqReplyResult{}, err
		}
		conns = append(conns, nc)
		clients[i] = nc
		// The first request sets up the client's reply subscription.
		if _, err := nc.Request(subject, payload, 10*time.Second); err != nil {
			return reqReplyResult{}, fmt.Errorf("warm-up request: %w", err)
		}
	}

	lat := make([][]time.Duration, nclients)
	errs := make([]error, nclients)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for i, nc := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, 1<<14)
			for {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				if _, err := nc.Request(subject, payload, 10*time.Second); err != nil {
					errs[i] = err
					break
				}
				l = append(l, time.Since(t0))
			}
			lat[i] = l
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return reqReplyResult{}, err
	}
	all := slices.Concat(lat...)
	if len(all) == 0 {
		return reqReplyResult{}, errors.New("no request completed")
	}
	slices.Sort(all)
	return reqReplyResult{
		p50:  all[len(all)/2],
		p99:  all[len(all)*99/100],
		rate: float64(len(all)) / el.Seconds(),
	}, nil
}
