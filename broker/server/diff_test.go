package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/natsforge/natsforge/broker/conf"
)

// Differential tests: the same raw protocol exchange against our broker and
// against nats-server, replies compared byte for byte after masking what
// legitimately differs (the INFO JSON: ids, versions, ports).

var infoLine = regexp.MustCompile(`^INFO \{.*\} $`)

// transcript sends input (plus a closing PING unless the server is expected
// to close) and returns everything the server sent after its first INFO, one
// line per element, INFO JSON masked.
func transcript(t *testing.T, addr, input string, closes bool) []string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = nc.Close() }()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(nc)
	first, err := br.ReadString('\n')
	if err != nil || !infoLine.MatchString(strings.TrimSuffix(first, "\r\n")) {
		t.Fatalf("first line %q, %v", first, err)
	}
	pongs := 0
	if !closes {
		input += "PING\r\n"
		pongs = strings.Count(strings.ToUpper(input), "PING\r\n")
	}
	if _, err := nc.Write([]byte(input)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		l, err := br.ReadString('\n')
		if l != "" {
			if infoLine.MatchString(strings.TrimSuffix(l, "\r\n")) {
				l = "INFO {masked} \r\n"
			}
			out = append(out, l)
			if l == "PONG\r\n" && !closes {
				if pongs--; pongs == 0 {
					return out
				}
			}
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("timed out; so far %q", out)
			}
			if !closes {
				t.Fatalf("connection closed (%v); so far %q", err, out)
			}
			if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
				t.Fatalf("read: %v", err)
			}
			return append(out, "<closed>")
		}
	}
}

type diffCase struct {
	name   string
	opts   *conf.Options
	input  string
	closes bool
	errs   []string // -ERR texts the transcript must hold, verbatim
}

const quiet = `CONNECT {"verbose":false,"pedantic":false}` + "\r\n"
const quietHeaders = `CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"protocol":1}` + "\r\n"

var authOpts = &conf.Options{
	Authorization: &conf.Authorization{
		Users: []conf.User{
			{Name: "alice", Password: "secret", Permissions: &conf.Permissions{
				Publish:   &conf.SubjectPermission{Allow: []string{"orders.>", "_INBOX.>"}, Deny: []string{"orders.secret"}},
				Subscribe: &conf.SubjectPermission{Allow: []string{"replies.>", "orders.*", "work q1"}, Deny: []string{"orders.hidden"}},
			}},
			{Name: "bob", Password: "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq"},
			{Name: "svc", Password: "svc", Permissions: &conf.Permissions{
				Subscribe: &conf.SubjectPermission{Allow: []string{"requests"}}, AllowResponses: true}},
		},
	},
}

var diffCases = []diffCase{
	{name: "verbose connect acknowledges every op", input: `CONNECT {}` + "\r\nSUB foo 1\r\nPUB foo 5\r\nhello\r\nUNSUB 1\r\n"},
	{name: "a publish reaches a subscription on the same connection", input: quiet + "SUB foo 1\r\nPUB foo 5\r\nhello\r\n"},
	{name: "a publish carries its reply subject", input: quiet + "SUB foo 1\r\nPUB foo bar 2\r\nhi\r\n"},
	{name: "ops are case insensitive and split by tabs", input: quiet + "sub\tfoo\t 1\r\npub foo\t2\r\nhi\r\nping\r\n"},
	{name: "wildcards match one token or the rest", input: quiet + "SUB a.* 1\r\nSUB a.> 2\r\nSUB > 3\r\nPUB a.b 1\r\nx\r\nPUB a.b.c 1\r\ny\r\n"},
	{name: "an empty payload is delivered", input: quiet + "SUB foo 1\r\nPUB foo 0\r\n\r\n"},
	{name: "the first ping after connect with protocol 1 also gets INFO", input: `CONNECT {"verbose":false,"protocol":1}` + "\r\nPING\r\n"},
	{name: "a ping before connect gets a pong", input: "PING\r\n"},
	{name: "an unknown op closes the connection", input: quiet + "FOO\r\n", closes: true, errs: []string{errTextUnknownOp}},
	{name: "a misspelled op closes the connection", input: quiet + "PUX foo 1\r\n", closes: true, errs: []string{errTextUnknownOp}},
	{name: "a client sending MSG closes the connection", input: quiet + "MSG foo 1 2\r\n", closes: true},
	{name: "a payload without its CRLF closes the connection", input: quiet + "PUB foo 2\r\nhiX\r\n", closes: true, errs: []string{errTextUnknownOp}},
	{name: "PUB without a size closes silently", input: quiet + "PUB foo\r\n", closes: true},
	{name: "PUB with a bad size closes silently", input: quiet + "PUB foo bar baz\r\n", closes: true},
	{name: "a payload over max_payload closes the connection", input: quiet + "PUB foo 2000000\r\n", closes: true, errs: []string{errTextMaxPayload}},
	{name: "a payload over a configured max_payload closes the connection", opts: &conf.Options{MaxPayload: 8}, input: quiet + "PUB foo 9\r\n", closes: true, errs: []string{errTextMaxPayload}},
	{name: "a control line over max_control_line closes the connection", opts: &conf.Options{MaxControlLine: 64}, input: quiet + "SUB " + strings.Repeat("a", 100) + " 1\r\n", closes: true, errs: []string{errTextMaxControlLine}},
	{name: "a subscription to an invalid subject is refused and the connection stays", input: quiet + "SUB foo..bar 1\r\nSUB foo.>.bar 2\r\nSUB >x 3\r\n", errs: []string{errTextInvalidSubject}},
	{name: "pedantic publish to a wildcard subject is refused", input: `CONNECT {"verbose":false,"pedantic":true}` + "\r\nSUB foo.* 1\r\nPUB foo.* 1\r\nx\r\n", errs: []string{errTextInvalidPubSubject}},
	{name: "a protocol version past 1 closes the connection", input: `CONNECT {"protocol":2}` + "\r\n", closes: true, errs: []string{errTextBadClientProtocol}},
	{name: "no responders without headers closes the connection", input: `CONNECT {"no_responders":true}` + "\r\n", closes: true, errs: []string{errTextNoRespondersHeaders}},
	{name: "a request nobody receives gets a 503 status", input: quietHeaders + "SUB _INBOX.1 1\r\nPUB service _INBOX.1 2\r\nhi\r\n"},
	{name: "a header publish is delivered with its headers", input: quietHeaders + "SUB foo 1\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"},
	{name: "HPUB without headers support closes silently", input: quiet + "HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", closes: true},
	{name: "HPUB with a header size over the total closes silently", input: quietHeaders + "HPUB foo 14 12\r\n", closes: true},
	{name: "echo off keeps a connection's own messages from it", input: `CONNECT {"verbose":false,"echo":false}` + "\r\nSUB foo 1\r\nPUB foo 1\r\nx\r\n"},
	{name: "UNSUB with a max delivers that many then stops", input: quiet + "SUB foo 1\r\nUNSUB 1 2\r\nPUB foo 1\r\na\r\nPUB foo 1\r\nb\r\nPUB foo 1\r\nc\r\n"},
	{name: "UNSUB of an unknown sid is acknowledged", input: `CONNECT {}` + "\r\nUNSUB 99\r\n"},
	{name: "a duplicate sid keeps the first subscription", input: quiet + "SUB foo 1\r\nSUB bar 1\r\nPUB foo 1\r\na\r\nPUB bar 1\r\nb\r\n"},
	{name: "a queue group of one receives", input: quiet + "SUB foo q 1\r\nPUB foo 1\r\na\r\n"},
	{name: "max_subscriptions refuses one more and keeps the connection", opts: &conf.Options{MaxSubscriptions: 1}, input: quiet + "SUB a 1\r\nSUB b 2\r\nPUB b 1\r\nx\r\nPUB a 1\r\ny\r\n", errs: []string{errTextMaxSubscriptions}},
	{name: "a client sending -ERR is closed", input: quiet + "-ERR 'boom'\r\n", closes: true},
	{name: "a client sending +OK is ignored", input: quiet + "+OK\r\n"},
	{name: "bad CONNECT JSON closes silently", input: "CONNECT {bad\r\n", closes: true},

	{name: "tls_required in CONNECT on a plain server is accepted", input: `CONNECT {"verbose":false,"tls_required":true}` + "\r\n"},
	{name: "an account in CONNECT is an authorization violation", input: `CONNECT {"account":"A"}` + "\r\n", closes: true},
	{name: "a second CONNECT is accepted", input: `CONNECT {"verbose":false}` + "\r\n" + `CONNECT {"verbose":true}` + "\r\nSUB a 1\r\n"},
	{name: "CONNECT without JSON closes silently", input: "CONNECT\r\n", closes: true},
	{name: "UNSUB without a sid closes silently", input: quiet + "UNSUB\r\n", closes: true},
	{name: "SUB without a sid closes silently", input: quiet + "SUB foo\r\n", closes: true},
	{name: "SUB with too many arguments closes silently", input: quiet + "SUB foo q 1 2\r\n", closes: true},
	{name: "PUB with too many arguments closes silently", input: quiet + "PUB foo a b 1\r\nx\r\n", closes: true},
	{name: "PING with trailing text still gets PONG", input: quiet + "PING extra\r\n"},
	{name: "a payload of exactly max_payload is accepted", opts: &conf.Options{MaxPayload: 4}, input: quiet + "SUB f 1\r\nPUB f 4\r\nabcd\r\n"},
	{name: "HPUB with an empty header block is delivered", input: quietHeaders + "SUB h 1\r\nHPUB h 0 2\r\nhi\r\n"},
	{name: "a publish to a subject with an empty token reaches nobody", input: quiet + "SUB > 1\r\nPUB foo. 1\r\nx\r\nPUB .foo 1\r\ny\r\n"},
	{name: "a subject of many tokens matches", input: quiet + "SUB " + strings.Repeat("t.", 40) + "> 1\r\nPUB " + strings.Repeat("t.", 40) + "end 1\r\nx\r\n"},
	{name: "verbose mode acknowledges a refused subscription only with the error", input: `CONNECT {}` + "\r\nSUB a..b 1\r\n"},
	{name: "verbose pedantic publish to a wildcard subject errs and acknowledges", input: `CONNECT {}` + "\r\nPUB a.> 1\r\nx\r\n"},

	{name: "auth: an op before CONNECT is an authorization violation", opts: authOpts, input: "PING\r\n", closes: true, errs: []string{errTextAuthViolation}},
	{name: "auth: a wrong password is an authorization violation", opts: authOpts, input: `CONNECT {"user":"alice","pass":"nope"}` + "\r\n", closes: true, errs: []string{errTextAuthViolation}},
	{name: "auth: an unknown user is an authorization violation", opts: authOpts, input: `CONNECT {"user":"mallory","pass":"secret"}` + "\r\n", closes: true},
	{name: "auth: no credentials is an authorization violation", opts: authOpts, input: `CONNECT {}` + "\r\n", closes: true},
	{name: "auth: the bcrypt hash itself is not the password", opts: authOpts, input: `CONNECT {"user":"bob","pass":"$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq"}` + "\r\n", closes: true, errs: []string{errTextAuthViolation}},
	{name: "auth: the right bcrypt password connects", opts: authOpts, input: `CONNECT {"verbose":false,"user":"bob","pass":"IW@$6v(y1(t@fhPDvf!5^%"}` + "\r\nSUB x 1\r\nPUB x 1\r\na\r\n"},
	{name: "auth: permissions refuse and the connection stays", opts: authOpts, input: `CONNECT {"verbose":false,"user":"alice","pass":"secret"}` + "\r\n" +
		"SUB forbidden 1\r\nSUB orders.hidden 2\r\nSUB work q2 3\r\nSUB work q1 4\r\nSUB orders.* 5\r\n" +
		"PUB orders.new 1\r\na\r\nPUB orders.secret 1\r\nb\r\nPUB elsewhere 1\r\nc\r\nPUB orders.hidden 1\r\nd\r\n", errs: []string{`Permissions Violation for Subscription to "forbidden"`, `Permissions Violation for Subscription to "work" using queue "q2"`, `Permissions Violation for Publish to "orders.secret"`, `Permissions Violation for Publish to "elsewhere"`}},
	{name: "auth: in verbose mode a refused publish or subscription gets only the error", opts: authOpts, input: `CONNECT {"user":"alice","pass":"secret"}` + "\r\n" +
		"PUB elsewhere 1\r\nx\r\nSUB forbidden 1\r\nPUB orders.a 1\r\ny\r\n", errs: []string{`Permissions Violation for Publish to "elsewhere"`}},
	{name: "auth: a no_responders request with publish permission denied gets only the error", opts: authOpts, input: `CONNECT {"verbose":false,"headers":true,"no_responders":true,"user":"alice","pass":"secret"}` + "\r\n" +
		"SUB _INBOX.a 1\r\nPUB elsewhere _INBOX.a 1\r\nx\r\nPUB orders.x _INBOX.a 1\r\ny\r\n"},
	{name: "auth: allow_responses permits exactly one reply", opts: authOpts, input: `CONNECT {"verbose":false,"user":"svc","pass":"svc"}` + "\r\n" +
		"SUB requests 1\r\nPUB requests reply.1 1\r\nq\r\nPUB reply.1 1\r\na\r\nPUB reply.1 1\r\nb\r\nPUB other 1\r\nc\r\n"},
	// nats-server compares a bcrypt no_auth_user's hash with itself and
	// refuses; we let such a user in (see TestNoAuthUserWithABcryptPasswordIsLetIn).
	{name: "auth: no_auth_user lets a client in without CONNECT", opts: &conf.Options{NoAuthUser: "alice", Authorization: authOpts.Authorization}, input: "SUB orders.x 1\r\nPUB orders.x 1\r\na\r\nSUB forbidden 2\r\n"},
	{name: "auth: no_auth_user applies to a CONNECT without credentials", opts: &conf.Options{NoAuthUser: "alice", Authorization: authOpts.Authorization}, input: `CONNECT {"verbose":false}` + "\r\nSUB forbidden 2\r\n"},
	{name: "auth: a token is checked", opts: &conf.Options{Authorization: &conf.Authorization{Token: "tok"}}, input: `CONNECT {"verbose":false,"auth_token":"tok"}` + "\r\n"},
	{name: "auth: a wrong token is an authorization violation", opts: &conf.Options{Authorization: &conf.Authorization{Token: "tok"}}, input: `CONNECT {"verbose":false,"auth_token":"bad"}` + "\r\n", closes: true},
	{name: "auth: single user auth checks the name", opts: &conf.Options{Authorization: &conf.Authorization{User: "myname", Password: "password"}}, input: `CONNECT {"user":"other","pass":"password"}` + "\r\n", closes: true},
	{name: "auth: the auth timeout closes a silent client", opts: &conf.Options{Authorization: &conf.Authorization{User: "u", Password: "p", Timeout: 100 * time.Millisecond}}, input: "", closes: true, errs: []string{errTextAuthTimeout}},
	{name: "stale: a client that never answers PING is closed", opts: &conf.Options{PingInterval: 50 * time.Millisecond, MaxPingsOut: 2}, input: "", closes: true, errs: []string{errTextStale}},
}

func TestRawExchangesMatchNatsServer(t *testing.T) {
	for _, tc := range diffCases {
		t.Run(tc.name, func(t *testing.T) {
			ours := runServer(t, tc.opts)
			oracle := runOracle(t, tc.opts)
			got := transcript(t, ours.Addr().String(), tc.input, tc.closes)
			want := transcript(t, oracle.Addr().String(), tc.input, tc.closes)
			if strings.Join(got, "") != strings.Join(want, "") {
				t.Errorf("input %q\n ours:        %q\n nats-server: %q", tc.input, got, want)
			}
			for _, e := range tc.errs {
				if !slices.Contains(got, "-ERR '"+e+"'\r\n") {
					t.Errorf("no -ERR '%s' in %q", e, got)
				}
			}
		})
	}
}
