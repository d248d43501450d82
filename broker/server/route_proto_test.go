package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"testing/iotest"
)

func TestRoutedMessageControlLinesParseBackToWhatWasSent(t *testing.T) {
	q := func(s ...string) [][]byte {
		var out [][]byte
		for _, x := range s {
			out = append(out, []byte(x))
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		reply  string
		queues [][]byte
		hdr    int
		line   string
	}{
		{"plain", "", nil, -1, "RMSG A foo.bar 5\r\n"},
		{"with a reply", "_INBOX.1", nil, -1, "RMSG A foo.bar _INBOX.1 5\r\n"},
		{"with a reply and queues", "_INBOX.1", q("q1", "q2"), -1, "RMSG A foo.bar + _INBOX.1 q1 q2 5\r\n"},
		{"with queues only", "", q("q1"), -1, "RMSG A foo.bar | q1 5\r\n"},
		{"with headers", "r", q("q1"), 2, "HMSG A foo.bar + r q1 2 5\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := appendRouteMsgProto(nil, "A", []byte("foo.bar"), []byte(tc.reply), tc.hdr, 5, tc.queues)
			if string(line) != tc.line {
				t.Fatalf("got %q, want %q", line, tc.line)
			}
			var pa routeMsgArgs
			arg := line[len("RMSG ") : len(line)-2]
			if err := parseRouteMsgArgs(&pa, arg, tc.hdr >= 0); err != nil {
				t.Fatal(err)
			}
			if string(pa.acc) != "A" || string(pa.subject) != "foo.bar" || string(pa.reply) != tc.reply || pa.size != 5 ||
				pa.hdr != tc.hdr || fmt.Sprintf("%q", pa.queues) != fmt.Sprintf("%q", tc.queues) {
				t.Fatalf("parsed %+v", pa)
			}
		})
	}
}

func TestRouteInterestLinesParseBackToWhatWasSent(t *testing.T) {
	line := appendRouteSub(nil, "A", []byte("foo.>"), []byte("workers"), 3)
	if string(line) != "RS+ A foo.> workers 3\r\n" {
		t.Fatalf("%q", line)
	}
	a, s, q, w, err := parseRemoteSub(line[4 : len(line)-2])
	if err != nil || string(a) != "A" || string(s) != "foo.>" || string(q) != "workers" || w != 3 {
		t.Fatalf("%q %q %q %d %v", a, s, q, w, err)
	}
	line = appendRouteUnsub(nil, "$G", []byte("foo.*"), nil)
	if string(line) != "RS- $G foo.*\r\n" {
		t.Fatalf("%q", line)
	}
	a, s, q, err = parseRemoteUnsub(line[4 : len(line)-2])
	if err != nil || string(a) != "$G" || string(s) != "foo.*" || q != nil {
		t.Fatalf("%q %q %q %v", a, s, q, err)
	}
}

func TestMalformedRouteArgumentsAreProtocolErrors(t *testing.T) {
	var pa routeMsgArgs
	for _, arg := range []string{"A", "A foo", "A foo x", "A foo + 3", "A foo a b 3", "A foo 99999999999"} {
		if err := parseRouteMsgArgs(&pa, []byte(arg), false); !errors.Is(err, errRouteProtocol) {
			t.Errorf("RMSG %q: %v", arg, err)
		}
	}
	if err := parseRouteMsgArgs(&pa, []byte("A foo 6 5"), true); !errors.Is(err, errRouteProtocol) {
		t.Errorf("header larger than message accepted: %v", err)
	}
	for _, arg := range []string{"", "A", "A a q", "A a q 0", "A a q x", "A a b c d e"} {
		if _, _, _, _, err := parseRemoteSub([]byte(arg)); !errors.Is(err, errRouteProtocol) {
			t.Errorf("RS+ %q: %v", arg, err)
		}
	}
	if _, _, _, err := parseRemoteUnsub([]byte("A a b c")); !errors.Is(err, errRouteProtocol) {
		t.Errorf("RS- with 4 fields: %v", err)
	}
}

func FuzzRouteMsgArgs(f *testing.F) {
	f.Add([]byte("A foo + r q1 q2 5"), true)
	f.Fuzz(func(t *testing.T, arg []byte, headers bool) {
		var pa routeMsgArgs
		if parseRouteMsgArgs(&pa, arg, headers) == nil && (pa.size < 0 || pa.hdr > pa.size) {
			t.Fatalf("accepted %q as %+v", arg, pa)
		}
	})
}

func TestRouteReaderReadsAStreamWholeOrByteAtATime(t *testing.T) {
	var b []byte
	b = appendRouteJSON(b, "INFO", routeInfo{ID: "S1", Port: 6222})
	b = appendRouteSub(b, "A", []byte("foo.>"), []byte("workers"), 3)
	b = appendRouteUnsub(b, "A", []byte("foo.*"), nil)
	b = appendRouteMsgProto(b, "A", []byte("foo.bar"), []byte("_INBOX.1"), -1, 5, [][]byte{[]byte("q1")})
	b = append(b, "hello\r\n"...)
	b = appendRouteMsgProto(b, "$G", []byte("foo.bar"), nil, 12, 14, nil)
	b = append(b, "NATS/1.0\r\n\r\nhi\r\n"...)
	b = append(b, "PING\r\nPONG\r\n-ERR 'Authorization Violation'\r\n"...)
	want := []string{
		`1 {"server_id":"S1","server_name":"","port":6222} |   [] 0 `,
		`3 A foo.> workers 3 |   [] 0 `,
		`4 A foo.* |   [] 0 `,
		`5  | A foo.bar _INBOX.1 ["q1"] -1 hello`,
		"5  | $G foo.bar  [] 12 NATS/1.0\r\n\r\nhi",
		`6  |   [] 0 `,
		`7  |   [] 0 `,
		`8 Authorization Violation |   [] 0 `,
	}
	for name, r := range map[string]func() io.Reader{
		"whole":          func() io.Reader { return bytes.NewReader(b) },
		"byte at a time": func() io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
	} {
		t.Run(name, func(t *testing.T) {
			rr := newRouteReader(r())
			var got []string
			for {
				op, err := rr.next()
				if err != nil {
					if err != io.EOF {
						t.Fatal(err)
					}
					break
				}
				got = append(got, fmt.Sprintf("%d %s | %s %s %q %d %s", op.kind, op.arg, bytes.TrimSpace(fmt.Appendf(nil, "%s %s", op.msg.acc, op.msg.subject)), op.msg.reply, op.msg.queues, op.msg.hdr, op.payload))
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
				t.Fatalf("got\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestRouteReaderRefusesAMessageWithoutItsCRLF(t *testing.T) {
	_, err := newRouteReader(bytes.NewReader([]byte("RMSG A foo 3\r\nabcd\r\n"))).next()
	if !errors.Is(err, errRouteProtocol) {
		t.Fatalf("got %v", err)
	}
}
