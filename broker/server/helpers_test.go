package server

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/conf"
)

// runServer starts a broker on a random port and stops it when the test ends.
func runServer(t testing.TB, opts *conf.Options) *Server {
	t.Helper()
	o := conf.Options{}
	if opts != nil {
		o = *opts
	}
	o.Host = "127.0.0.1"
	o.Port = RandomPort
	s, err := New(&o, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawConn is a raw TCP protocol session.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = nc.Close() }) // the test has read what it needed
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := r.nc.Write([]byte(s)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// line reads one CRLF-terminated line (without the CRLF).
func (r *rawConn) line() string {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	l, err := r.br.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read line: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// expect reads a line and checks it.
func (r *rawConn) expect(want string) {
	r.t.Helper()
	if got := r.line(); got != want {
		r.t.Fatalf("got %q, want %q", got, want)
	}
}

// expectClosed checks the server closes the connection with nothing more.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	_ = r.nc.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, err := r.br.ReadByte()
	if err == nil {
		rest, _ := r.br.Peek(r.br.Buffered())
		r.t.Fatalf("expected close, got more data: %q", string(b)+string(rest))
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		r.t.Fatalf("connection still open")
	}
}

// queuedBytes is what the connection has queued for its writer, in one
// slice. Lock held.
func (o *outbound) queuedBytes() []byte { return bytes.Join(o.nb, nil) }

// noErr fails the test at once on err: for the client calls whose failure
// would make the rest of a test meaningless (a Flush, a Publish).
func noErr(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// respond answers m from a subscription's handler, which runs on the
// client's goroutine: a failure is an Error, not a Fatal.
func respond(t testing.TB, m *nats.Msg, data []byte) {
	if err := m.Respond(data); err != nil {
		t.Error(err)
	}
}
