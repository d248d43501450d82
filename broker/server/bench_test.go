package server

import (
	"bufio"
	"bytes"
	"net"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/natsforge/natsforge/broker/conf"
)

// BenchmarkPubSubOneToOne: one publisher to one subscriber through the
// server, 16-byte payloads, over raw TCP so that the allocations reported are
// the server's (both ends of the benchmark allocate nothing per message). The
// same shape runs against nats-server in-process, in the same run.
//
//	go test -run '^$' -bench PubSubOneToOne -benchtime 2000000x -count 3 ./broker/server/
func BenchmarkPubSubOneToOne(b *testing.B) {
	b.Run("natsforge", func(b *testing.B) {
		benchPubSub(b, runServer(b, nil).Addr().String())
	})
	b.Run("nats-server", func(b *testing.B) {
		benchPubSub(b, runOracle(b, nil).Addr().String())
	})
}

// benchDial opens a raw client, sends CONNECT and setup, and waits for PONG.
func benchDial(b *testing.B, addr, setup string) (net.Conn, *bufio.Reader) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	br := bufio.NewReaderSize(nc, 64<<10)
	if _, err := br.ReadString('\n'); err != nil {
		b.Fatal(err)
	}
	if _, err := nc.Write([]byte(`CONNECT {"verbose":false,"pedantic":false}` + "\r\n" + setup + "PING\r\n")); err != nil {
		b.Fatal(err)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if strings.HasPrefix(l, "PONG") {
			return nc, br
		}
	}
}

func benchPubSub(b *testing.B, addr string) {
	const payload = "0123456789abcdef"
	pubLine := "PUB bench.subject 16\r\n" + payload + "\r\n"
	msgLine := "MSG bench.subject 1 16\r\n" + payload + "\r\n"

	_, subR := benchDial(b, addr, "SUB bench.subject 1\r\n")
	pub, _ := benchDial(b, addr, "")

	const batchMsgs = 1000
	batch := []byte(strings.Repeat(pubLine, batchMsgs))
	// Flow control: the publisher stays within a window of the subscriber,
	// so that neither server cuts the subscriber off as a slow consumer.
	const window = 200_000
	var received atomic.Int64

	want := int64(b.N) * int64(len(msgLine))
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		var got int64
		for got < want {
			n, err := subR.Read(buf)
			got += int64(n)
			received.Store(got / int64(len(msgLine)))
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	sent := 0
	for sent < b.N {
		n := min(batchMsgs, b.N-sent)
		for int64(sent)-received.Load() > window {
			runtime.Gosched()
		}
		if _, err := pub.Write(batch[:n*len(pubLine)]); err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// TestTheHotPathAllocatesNothingPerMessage runs PUB to MSG through one
// connection's parser with a subscriber on it and counts allocations: in
// the global account, and across accounts through a stream import (with a
// prefix), and in an account that imports a service, on another subject.
func TestTheHotPathAllocatesNothingPerMessage(t *testing.T) {
	accounts := &conf.Options{Accounts: []conf.Account{
		{Name: "A", Users: []conf.User{{Name: "a", Password: "a"}},
			Exports: []conf.Export{{Stream: "orders.>"}, {Service: "help"}}},
		{Name: "B", Users: []conf.User{{Name: "b", Password: "b"}}, Imports: []conf.Import{
			{Stream: &conf.ImportSource{Account: "A", Subject: "orders.>"}, Prefix: "from_a"},
			{Service: &conf.ImportSource{Account: "A", Subject: "help"}, To: "a.help"},
		}},
	}}
	for _, tc := range []struct {
		name              string
		opts              *conf.Options
		pubUser, subUser  string
		pub, sub, deliver string
	}{
		{"in the global account", nil, "", "", "PUB foo 16\r\n", "SUB foo 1\r\n", "MSG foo 1 16"},
		{"through a stream import", accounts, "a", "b", "PUB orders.x 16\r\n", "SUB from_a.orders.x 1\r\n", "MSG from_a.orders.x 1 16"},
		{"in an account that imports a service", accounts, "b", "b", "PUB foo 16\r\n", "SUB foo 1\r\n", "MSG foo 1 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := runServer(t, tc.opts)
			conn := func(user, setup string) *client {
				a, p := net.Pipe()
				t.Cleanup(func() { a.Close(); p.Close() })
				c := s.newConn(a)
				connect := `CONNECT {"verbose":false,"pedantic":false,"user":"` + user + `","pass":"` + user + `"}` + "\r\n"
				if err := c.parse([]byte(connect + setup)); err != nil {
					t.Fatal(err)
				}
				return c
			}
			sub := conn(tc.subUser, tc.sub)
			pub := conn(tc.pubUser, "")
			in := []byte(tc.pub + "0123456789abcdef\r\n")
			deliver := []byte(tc.deliver)
			run := func() {
				if err := pub.parse(in); err != nil {
					t.Fatal(err)
				}
				pub.flushClients()
				sub.mu.Lock()
				ok := bytes.HasPrefix(sub.out.buf, deliver)
				sub.out.buf = sub.out.buf[:0] // what the writer would do
				sub.mu.Unlock()
				if !ok {
					t.Fatalf("not delivered as %s", deliver)
				}
			}
			run() // warm the match cache and the buffers
			if n := testing.AllocsPerRun(10000, run); n != 0 {
				t.Fatalf("%v allocations per message", n)
			}
		})
	}
}
