package server

import (
	"bytes"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/natsforge/natsforge/broker/conf"
)

// parseHarness runs the parser of one unconnected client over chunks, each
// copied into the same reused read buffer (then scribbled over, so anything
// the parser kept pointing into it would show), and returns what the client
// was sent and whether parsing stopped with an error.
func parseHarness(t testing.TB, s *Server, chunks [][]byte) (string, bool) {
	t.Helper()
	a, b := net.Pipe()
	defer func() { _ = a.Close() }()
	defer func() { _ = b.Close() }()
	c := s.newConn(a)
	buf := make([]byte, 0, 1<<16)
	failed := false
	for _, ch := range chunks {
		buf = append(buf[:0], ch...)
		err := c.parse(buf)
		c.flushClients()
		for i := range buf {
			buf[i] = 'X'
		}
		if err != nil {
			failed = true
			break
		}
	}
	c.mu.Lock()
	out := string(c.out.queuedBytes())
	c.mu.Unlock()
	out = canonicalOutput(out)
	// Take the client's subscriptions out of the shared index.
	c.closeConnection(ClientClosed)
	return out, failed
}

// canonicalOutput orders the lines of out: several subscriptions matching one
// publish are served in the index's (map) order, which is not part of the
// protocol.
func canonicalOutput(out string) string {
	lines := strings.SplitAfter(out, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "")
}

// splits cuts in into pieces at the given sizes, cycling through them.
func splitAt(in []byte, sizes func() int) [][]byte {
	var out [][]byte
	for len(in) > 0 {
		n := min(max(sizes(), 1), len(in))
		out = append(out, in[:n])
		in = in[n:]
	}
	return out
}

var parserSessions = []string{
	"PING\r\nPONG\r\n",
	`CONNECT {"verbose":false,"pedantic":false,"headers":true}` + "\r\nSUB foo 1\r\nSUB foo.* q 2\r\nPUB foo 5\r\nhello\r\nPUB foo.bar reply 0\r\n\r\nPING\r\n",
	`CONNECT {"verbose":true}` + "\r\nsub a 1\r\nPuB a 3\r\nabc\r\nunsub 1\r\npub a 1\r\nz\r\n",
	`CONNECT {"verbose":false,"headers":true}` + "\r\nSUB h 9\r\nHPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\nHPUB h r 18 20\r\nNATS/1.0\r\nA: B\r\n\r\nhi\r\n",
	`CONNECT {"verbose":false}` + "\r\nSUB big 1\r\nPUB big 10000\r\n" + strings.Repeat("B", 10000) + "\r\nPUB big 3000\r\n" + strings.Repeat("s", 3000) + "\r\n",
	`CONNECT {"verbose":false}` + "\r\nSUB\tt\t 1\r\nPUB   t \t 2\r\nok\r\nUNSUB 1 1\r\n+OK\r\nPING\r\n",
	`CONNECT {"verbose":false}` + "\r\nSUB x 1\r\nPUB x 2\r\nokX\r\n",
	`CONNECT {"verbose":false}` + "\r\nSUB " + strings.Repeat("y", 5000) + " 1\r\n",
	`CONNECT {"verbose":false}` + "\r\nPUB x 2000000\r\n",
	`CONNECT {"verbose":false}` + "\r\nFOO\r\n",
}

func TestParserOutputDoesNotDependOnHowTheInputIsSplit(t *testing.T) {
	s := runServer(t, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, session := range parserSessions {
		in := []byte(session)
		whole, wholeFailed := parseHarness(t, s, [][]byte{in})
		if whole == "" && !wholeFailed {
			t.Fatalf("session %q produced nothing", session)
		}
		byteByByte, bbFailed := parseHarness(t, s, splitAt(in, func() int { return 1 }))
		if byteByByte != whole || bbFailed != wholeFailed {
			t.Errorf("byte by byte differs for %q:\n whole %q (%v)\n bytes %q (%v)", session, whole, wholeFailed, byteByByte, bbFailed)
		}
		for i := 0; i < 50; i++ {
			got, failed := parseHarness(t, s, splitAt(in, func() int { return rng.IntN(40) + 1 }))
			if got != whole || failed != wholeFailed {
				t.Fatalf("random split differs for %q:\n whole %q\n split %q", session, whole, got)
			}
		}
	}
}

func TestParserDeliversWhatWasPublished(t *testing.T) {
	s := runServer(t, nil)
	in := `CONNECT {"verbose":false,"headers":true}` + "\r\nSUB foo 1\r\nSUB h 2\r\nPUB foo bar 5\r\nhello\r\nHPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n"
	want := "MSG foo 1 bar 5\r\nhello\r\nHMSG h 2 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPONG\r\n"
	for name, chunks := range map[string][][]byte{
		"whole":        {[]byte(in)},
		"byte by byte": splitAt([]byte(in), func() int { return 1 }),
	} {
		got, failed := parseHarness(t, s, chunks)
		if got != canonicalOutput(want) || failed {
			t.Errorf("%s: got %q (failed %v), want %q", name, got, failed, want)
		}
	}
}

func TestParserKeepsALargeSplitPayloadIntact(t *testing.T) {
	s := runServer(t, &conf.Options{MaxPayload: 1 << 20})
	payload := bytes.Repeat([]byte("0123456789"), 50000)
	in := []byte(`CONNECT {"verbose":false}` + "\r\nSUB p 1\r\nPUB p 500000\r\n" + string(payload) + "\r\n")
	got, failed := parseHarness(t, s, splitAt(in, func() int { return 4096 }))
	want := canonicalOutput("MSG p 1 500000\r\n" + string(payload) + "\r\n")
	if failed || got != want {
		t.Fatalf("failed %v, got %d bytes, want %d", failed, len(got), len(want))
	}
}

func TestArgumentsSplitOnBlanksAndSizesAreDecimalOnly(t *testing.T) {
	var a [4][]byte
	args := splitArgs(a[:0], []byte(" foo\t bar  12 "))
	if len(args) != 3 || string(args[0]) != "foo" || string(args[1]) != "bar" || string(args[2]) != "12" {
		t.Fatalf("got %q", args)
	}
	for in, want := range map[string]int{"0": 0, "123": 123, "999999999": 999999999, "1000000000": -1, "": -1, "1a": -1, "-1": -1} {
		if got := parseSize([]byte(in)); got != want {
			t.Errorf("parseSize(%q) = %d, want %d", in, got, want)
		}
	}
}

// FuzzParser feeds arbitrary input whole and in random splits: the parser must
// not panic, and the split must not change what the client is sent.
func FuzzParser(f *testing.F) {
	for _, s := range parserSessions {
		f.Add([]byte(s), uint64(7))
	}
	f.Add([]byte("HPUB foo 3 2\r\n"), uint64(1))
	f.Add([]byte("PUB foo 999999999\r\n"), uint64(3))
	f.Add([]byte("-ERR 'x'\r\n"), uint64(3))
	s, err := New(&conf.Options{Host: "127.0.0.1", Port: RandomPort, MaxPayload: 1 << 16, MaxControlLine: 256}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		whole, wholeFailed := parseHarness(t, s, [][]byte{in})
		rng := rand.New(rand.NewPCG(seed, seed>>7))
		split, splitFailed := parseHarness(t, s, splitAt(in, func() int { return rng.IntN(16) + 1 }))
		if whole != split || wholeFailed != splitFailed {
			t.Fatalf("input %q\n whole %q (%v)\n split %q (%v)", in, whole, wholeFailed, split, splitFailed)
		}
	})
}
