package server

import "testing"

func TestTheMsgLineLengthIsKnownBeforeTheLineIsBuilt(t *testing.T) {
	for _, tc := range []struct {
		name               string
		headers            bool
		subject, sid, repl string
		hdr, size          int
	}{
		{"plain, empty payload", false, "a", "1", "", 0, 0},
		{"plain, nine bytes", false, "orders.new", "12", "", 0, 9},
		{"plain, ten bytes", false, "orders.new", "12", "", 0, 10},
		{"with a reply", false, "svc.echo", "7", "_INBOX.abc.1", 0, 1 << 20},
		{"with headers", true, "svc.echo", "7", "", 12, 100},
		{"with headers and a reply", true, "a.b.c", "99999", "_INBOX.x", 1000, 1001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := appendMsgLine(nil, tc.headers, []byte(tc.subject), []byte(tc.sid), []byte(tc.repl), tc.hdr, tc.size, true)
			if got := msgLineLen(tc.headers, []byte(tc.subject), []byte(tc.sid), []byte(tc.repl), tc.hdr, tc.size); got != len(line) {
				t.Fatalf("msgLineLen = %d, the line %q is %d bytes", got, line, len(line))
			}
		})
	}
	if got := string(appendMsgLine(nil, true, []byte("a"), []byte("1"), []byte("r"), 12, 30, true)); got != "HMSG a 1 r 12 30\r\n" {
		t.Fatalf("got %q", got)
	}
}
