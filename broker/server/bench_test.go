package server

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/natsforge/natsforge/broker/conf"
)

// BenchmarkPubSubOneToOne: one publisher to one subscriber through the
// server, over raw TCP so that the allocations reported are the server's
// (both ends of the benchmark allocate nothing per message), against
// nats-server in-process in the same run. The two servers alternate round by
// round, the order flipping every round as the bench harness does, so that a
// change in the machine's load falls on both: compare the rounds side by
// side rather than -count repeats (which would run one server's repeats back
// to back).
//
//	go test -run '^$' -bench PubSubOneToOne -benchtime 2000000x -rounds 3 ./broker/server/
func BenchmarkPubSubOneToOne(b *testing.B) {
	for _, size := range []int{16, 16 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			addrs := map[string]string{
				"natsforge":   runServer(b, nil).Addr().String(),
				"nats-server": runOracle(b, nil).Addr().String(),
			}
			for _, round := range alternatingRounds(*benchRounds, "natsforge", "nats-server") {
				b.Run(round.name, func(b *testing.B) { benchPubSub(b, addrs[round.target], size) })
			}
		})
	}
}

var benchRounds = flag.Int("rounds", 3, "rounds of the benchmarks that alternate natsforge and nats-server")

// benchRound is one sub-benchmark of an alternating comparison.
type benchRound struct{ name, target string }

// alternatingRounds lists rounds × targets, a first then b in odd rounds
// and b then a in even ones: round-1/a, round-1/b, round-2/b, round-2/a, ...
func alternatingRounds(rounds int, a, b string) []benchRound {
	var out []benchRound
	for r := 1; r <= rounds; r++ {
		first, second := a, b
		if r%2 == 0 {
			first, second = b, a
		}
		out = append(out,
			benchRound{fmt.Sprintf("round-%d/%s", r, first), first},
			benchRound{fmt.Sprintf("round-%d/%s", r, second), second})
	}
	return out
}

func TestComparedBenchmarksAlternateTheServersRoundByRound(t *testing.T) {
	var got []string
	for _, r := range alternatingRounds(3, "natsforge", "nats-server") {
		got = append(got, r.name)
	}
	want := []string{"round-1/natsforge", "round-1/nats-server", "round-2/nats-server", "round-2/natsforge",
		"round-3/natsforge", "round-3/nats-server"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("rounds %v, want %v", got, want)
	}
}

// benchDialAs opens a raw client, sends CONNECT with the fields auth
// (`"user":"u","pass":"p"`, or none) and setup, and waits for PONG. The
// caller closes it when its run ends: testing calls a benchmark function
// more than once (b.N = 1 first), and a subscriber left over from an earlier
// call would still be sent every message, unread, until cut off.
func benchDialAs(b *testing.B, addr, auth, setup string) (net.Conn, *bufio.Reader) {
	if auth != "" {
		auth = "," + auth
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	if _, err := br.ReadString('\n'); err != nil {
		b.Fatal(err)
	}
	if _, err := nc.Write([]byte(`CONNECT {"verbose":false,"pedantic":false` + auth + `}` + "\r\n" + setup + "PING\r\n")); err != nil {
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

func benchPubSub(b *testing.B, addr string, size int) {
	benchPubSubAs(b, addr, size, "", "", "bench.subject", "bench.subject")
}

// BenchmarkPubSubThroughAStreamImport: as BenchmarkPubSubOneToOne (16 B),
// with the publisher in account A and the subscriber in account B, which
// imports A's stream under a prefix; the servers alternate round by round.
//
//	go test -run '^$' -bench PubSubThroughAStreamImport -benchtime 2000000x -rounds 3 ./broker/server/
func BenchmarkPubSubThroughAStreamImport(b *testing.B) {
	accounts := `accounts {
  A { users: [ { user: a, password: a } ], exports: [ { stream: "bench.>" } ] }
  B { users: [ { user: b, password: b } ], imports: [ { stream: { account: A, subject: "bench.>" }, prefix: "from_a" } ] }
}
`
	path := filepath.Join(b.TempDir(), "import.conf")
	if err := os.WriteFile(path, []byte("host: 127.0.0.1\nport: -1\n"+accounts), 0o600); err != nil {
		b.Fatal(err)
	}
	o, _, err := conf.Parse([]byte(accounts), "import.conf")
	if err != nil {
		b.Fatal(err)
	}
	no, err := natsserver.ProcessConfigFile(path)
	if err != nil {
		b.Fatal(err)
	}
	no.NoLog, no.NoSigs = true, true
	oracle, err := natsserver.NewServer(no)
	if err != nil {
		b.Fatal(err)
	}
	go oracle.Start()
	if !oracle.ReadyForConnections(30 * time.Second) {
		b.Fatal("nats-server did not start")
	}
	b.Cleanup(oracle.Shutdown)
	addrs := map[string]string{"natsforge": runServer(b, o).Addr().String(), "nats-server": oracle.Addr().String()}
	for _, round := range alternatingRounds(*benchRounds, "natsforge", "nats-server") {
		b.Run(round.name, func(b *testing.B) {
			benchPubSubAs(b, addrs[round.target], 16, `"user":"a","pass":"a"`, `"user":"b","pass":"b"`, "bench.subject", "from_a.bench.subject")
		})
	}
}

// benchPubSubAs publishes size-byte messages on pubSubject as the CONNECT
// credentials pubAuth and receives them on subSubject as subAuth ("" for
// none).
func benchPubSubAs(b *testing.B, addr string, size int, pubAuth, subAuth, pubSubject, subSubject string) {
	payload := strings.Repeat("x", size)
	pubLine := fmt.Sprintf("PUB %s %d\r\n%s\r\n", pubSubject, size, payload)
	msgLine := fmt.Sprintf("MSG %s 1 %d\r\n%s\r\n", subSubject, size, payload)

	sub, subR := benchDialAs(b, addr, subAuth, "SUB "+subSubject+" 1\r\n")
	defer func() { _ = sub.Close() }()
	pub, _ := benchDialAs(b, addr, pubAuth, "")
	defer func() { _ = pub.Close() }()

	batchMsgs := min(1000, max(1, (64<<10)/len(pubLine)))
	batch := []byte(strings.Repeat(pubLine, batchMsgs))
	// Flow control: the publisher stays within a window (8 MiB) of the
	// subscriber, so that neither server cuts the subscriber off as a slow
	// consumer.
	window := int64(max(1, (8<<20)/len(msgLine)))
	var received atomic.Int64

	// A warm-up of a few windows' worth first, outside the timer, so that
	// what the servers allocate once (buffers and pools grown to what the
	// window keeps in flight) is not reported as allocations per message.
	warm := 4 * int(window)
	var want atomic.Int64 // bytes the subscriber reads in all; set before the timed part
	want.Store(math.MaxInt64)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		var got int64
		for got < want.Load() {
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

	sent := 0
	publish := func(total int) {
		for sent < total {
			n := min(batchMsgs, total-sent)
			for int64(sent)-received.Load() > window {
				runtime.Gosched()
			}
			if _, err := pub.Write(batch[:n*len(pubLine)]); err != nil {
				b.Fatal(err)
			}
			sent += n
		}
	}
	await := func() {
		for received.Load() < int64(sent) {
			runtime.Gosched()
		}
	}
	publish(warm)
	await()
	// A long-running broker's block pool holds what its busiest moments
	// needed; a short warm-up may not reach that, so fill ours to what this
	// load can keep in flight: the window, plus a write in progress.
	fillOutBlocks(int(window)*len(msgLine) + maxWriteChunk)
	want.Store(int64(sent+b.N) * int64(len(msgLine)))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	publish(sent + b.N)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.SetBytes(int64(size))
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
				t.Cleanup(func() { _, _ = a.Close(), p.Close() }) // a pipe: nothing to flush
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
				ok := len(sub.out.nb) > 0 && bytes.HasPrefix(sub.out.nb[0], deliver)
				sub.out.release() // what the writer would do
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

// TestTheHotPathAllocatesNoBytesPerMessageAtAnySize publishes every payload
// size of the bench sweep to one subscriber, four, and a queue group of four
// (each its own connection), whole in one read and split across 16 KiB
// reads (a TLS record's worth), and requires no allocation and not one byte
// allocated per message. AllocsPerRun rounds down to whole allocations (an
// allocation every other message reads as 0), so the bytes are counted too,
// as a benchmark's B/op does: over n messages, fewer than n bytes in all.
func TestTheHotPathAllocatesNoBytesPerMessageAtAnySize(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	for _, shape := range []struct {
		name string
		subs []string
	}{
		{"1 sub", []string{"SUB foo 1\r\n"}},
		{"4 subs", slices.Repeat([]string{"SUB foo 1\r\n"}, 4)},
		{"queue of 4", slices.Repeat([]string{"SUB foo q 1\r\n"}, 4)},
	} {
		for _, size := range []int{16, 128, 1 << 10, 4 << 10, 16 << 10, 64 << 10} {
			for _, read := range []int{0, 16 << 10} {
				if read != 0 && size < read {
					continue
				}
				name := fmt.Sprintf("%s/%dB", shape.name, size)
				if read != 0 {
					name += "/split"
				}
				t.Run(name, func(t *testing.T) {
					s := runServer(t, nil)
					var subs []*client
					for _, sub := range shape.subs {
						sc := hotPathConn(t, s)
						if err := sc.parse([]byte(sub)); err != nil {
							t.Fatal(err)
						}
						subs = append(subs, sc)
					}
					pub := hotPathConn(t, s)
					in := fmt.Appendf(nil, "PUB foo %d\r\n%s\r\n", size, strings.Repeat("x", size))
					reads := [][]byte{in}
					if read != 0 {
						reads = nil
						for rest := in; len(rest) > 0; rest = rest[min(read, len(rest)):] {
							reads = append(reads, rest[:min(read, len(rest))])
						}
					}
					delivered := 0
					run := func() {
						for _, r := range reads {
							if err := pub.parse(r); err != nil {
								t.Fatal(err)
							}
						}
						pub.flushClients()
						for _, sc := range subs {
							sc.mu.Lock()
							if sc.out.queued > 0 {
								delivered++
							}
							sc.out.release() // what the writer would do
							sc.mu.Unlock()
						}
					}
					// Warm the match cache, the pools and every member's lists.
					for range 100 {
						run()
					}
					// Three tries: an allocation per message fails every one,
					// while some other goroutine of the test binary allocating
					// meanwhile spoils one at most now and then.
					const n = 2000
					var allocs, bytes uint64
					for range 3 {
						delivered = 0
						if allocs, bytes = allocsAndBytes(n, run); allocs == 0 && bytes < n {
							break
						}
					}
					if allocs != 0 || bytes >= n {
						t.Fatalf("%d allocations and %d bytes in %d messages", allocs, bytes, n)
					}
					want := n * len(subs)
					if shape.name == "queue of 4" {
						want = n
					}
					if delivered != want {
						t.Fatalf("%d deliveries, want %d", delivered, want)
					}
				})
			}
		}
	}
}

// fillOutBlocks makes the pool of large outbound blocks hold at least n
// bytes' worth.
func fillOutBlocks(n int) {
	var bs [][]byte
	for range (n + outBlockLarge - 1) / outBlockLarge {
		bs = append(bs, outBlocksLarge.get())
	}
	for _, b := range bs {
		outBlocksLarge.put(b)
	}
}

// hotPathConn is a connection of s on one end of a pipe, CONNECTed, with no
// loops running: the test plays the read loop and the writer.
func hotPathConn(t *testing.T, s *Server) *client {
	a, p := net.Pipe()
	t.Cleanup(func() { _, _ = a.Close(), p.Close() }) // a pipe: nothing to flush
	c := s.newConn(a)
	if err := c.parse([]byte(`CONNECT {"verbose":false,"pedantic":false}` + "\r\n")); err != nil {
		t.Fatal(err)
	}
	return c
}

// allocsAndBytes runs f n times and returns the allocations and the bytes
// allocated meanwhile, in all, on one P as testing.AllocsPerRun does.
func allocsAndBytes(n int, f func()) (allocs, bytes uint64) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		f()
	}
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs, after.TotalAlloc - before.TotalAlloc
}
