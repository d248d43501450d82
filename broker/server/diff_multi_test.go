package server

import (
	"fmt"
	"strings"
	"testing"

	"github.com/natsforge/natsforge/broker/conf"
)

// Differential tests over several connections: each step sends on one
// connection, then that connection and after it every other does a PING/PONG
// round trip. The sender's PONG means its ops were processed, and so that
// what they delivered is queued ahead of the other connections' PONGs.

type multiStep struct {
	conn  int
	input string
}

type multiCase struct {
	name  string
	opts  *conf.Options
	conns []string // CONNECT lines
	steps []multiStep
}

var multiCases = []multiCase{
	{
		name:  "a message reaches subscribers on other connections with its reply",
		conns: []string{quiet, quiet, quiet},
		steps: []multiStep{{0, "SUB a.* 1\r\n"}, {1, "SUB a.b 7\r\n"}, {2, "PUB a.b r.1 2\r\nhi\r\n"}},
	},
	{
		name:  "echo off still receives other connections' messages",
		conns: []string{`CONNECT {"verbose":false,"echo":false}` + "\r\n", quiet},
		steps: []multiStep{{0, "SUB e 1\r\n"}, {0, "PUB e 1\r\nx\r\n"}, {1, "PUB e 1\r\ny\r\n"}},
	},
	{
		name:  "a subscriber without headers gets MSG, one with headers HMSG",
		conns: []string{quiet, quietHeaders, quietHeaders},
		steps: []multiStep{{0, "SUB h 1\r\n"}, {1, "SUB h 2\r\n"}, {2, "HPUB h 18 20\r\nNATS/1.0\r\nA: B\r\n\r\nhi\r\n"}},
	},
	{
		name:  "auto-unsubscribe counts deliveries from every publisher",
		conns: []string{quiet, quiet, quiet},
		steps: []multiStep{{0, "SUB u 1\r\nUNSUB 1 2\r\n"}, {1, "PUB u 1\r\na\r\n"}, {2, "PUB u 1\r\nb\r\n"}, {1, "PUB u 1\r\nc\r\n"}},
	},
	{
		name:  "a request with a responder elsewhere gets no 503",
		conns: []string{quietHeaders, quiet},
		steps: []multiStep{{1, "SUB svc 1\r\n"}, {0, "SUB _INBOX.x 1\r\nPUB svc _INBOX.x 1\r\nq\r\n"}, {1, "PUB _INBOX.x 1\r\na\r\n"}},
	},
	{
		name:  "a wildcard subscriber is not sent a subject its user may not subscribe to",
		opts:  authOpts,
		conns: []string{`CONNECT {"verbose":false,"user":"alice","pass":"secret"}` + "\r\n", `CONNECT {"verbose":false,"user":"bob","pass":"IW@$6v(y1(t@fhPDvf!5^%"}` + "\r\n"},
		steps: []multiStep{{0, "SUB orders.* 1\r\n"}, {1, "PUB orders.hidden 1\r\nx\r\nPUB orders.open 1\r\ny\r\n"}},
	},
}

func runMulti(t *testing.T, addr string, tc multiCase) []string {
	t.Helper()
	conns := make([]*rawConn, len(tc.conns))
	for i, c := range tc.conns {
		conns[i] = dialRaw(t, addr)
		conns[i].line() // INFO
		conns[i].send(c + "PING\r\n")
		conns[i].expect("PONG")
	}
	var out []string
	for si, st := range tc.steps {
		conns[st.conn].send(st.input)
		order := []int{st.conn}
		for i := range conns {
			if i != st.conn {
				order = append(order, i)
			}
		}
		for _, i := range order {
			c := conns[i]
			c.send("PING\r\n")
			for {
				l := c.line()
				if l == "PONG" {
					break
				}
				if infoLine.MatchString(l+" ") || strings.HasPrefix(l, "INFO {") {
					l = "INFO {masked}"
				}
				out = append(out, fmt.Sprintf("step %d conn %d %s", si, i, l))
			}
		}
	}
	return out
}

func TestMultiConnectionExchangesMatchNatsServer(t *testing.T) {
	for _, tc := range multiCases {
		t.Run(tc.name, func(t *testing.T) {
			got := runMulti(t, runServer(t, tc.opts).Addr().String(), tc)
			want := runMulti(t, runOracle(t, tc.opts).Addr().String(), tc)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("\n ours:        %q\n nats-server: %q", got, want)
			}
			if len(got) == 0 {
				t.Error("nothing was delivered")
			}
		})
	}
}
