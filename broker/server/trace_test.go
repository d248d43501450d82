package server

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/internal/logbuf"
)

// runTracingServer runs a server requiring user/password with protocol
// tracing into the returned buffer.
func runTracingServer(t *testing.T, opts *conf.Options) (*Server, *logbuf.Buffer) {
	t.Helper()
	logs := &logbuf.Buffer{}
	o := *opts
	o.Host, o.Port, o.Trace = "127.0.0.1", RandomPort, true
	s, err := New(&o, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: LevelTrace})))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s, logs
}

func TestEverySpellingOfThePasswordThatAuthenticatesIsRedactedInTheTrace(t *testing.T) {
	const user, pass, token = "alice", "Sup3rSecretPw", "T0kenSecret99"
	s, logs := runTracingServer(t, &conf.Options{Authorization: &conf.Authorization{Users: []conf.User{{Name: user, Password: pass}}}})
	for _, key := range []string{`pass`, `PASS`, `Pass`, `pASS`, `p\u0061ss`, `\u0070\u0061\u0073\u0073`, `P\u0041SS`} {
		// Each spelling authenticates (that is why it must be redacted),
		// and so does a password written with escapes.
		for _, value := range []string{pass, `Sup3r\u0053ecretPw`} {
			c := dialRaw(t, s.Addr().String())
			c.line() // INFO
			c.send(`CONNECT {"verbose":false,"user":"` + user + `","` + key + `":"` + value + `"}` + "\r\nPING\r\n")
			c.expect("PONG")
		}
	}
	// A token, spelled in capitals, and a duplicate key (the last one counts).
	c := dialRaw(t, s.Addr().String())
	c.line()
	c.send(`CONNECT {"verbose":false,"user":"` + user + `","pass":"decoy","PASS":"` + pass + `","AUTH_TOKEN":"` + token + `"}` + "\r\nPING\r\n")
	c.expect("PONG")
	eventually(t, 2e9, "the CONNECT traces", func() bool { return strings.Count(logs.String(), "<<- CONNECT") == 15 })
	for _, secret := range []string{pass, "Sup3r", "SecretPw", token, "decoy"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("the trace shows %q:\n%s", secret, logs.String())
		}
	}
	if !strings.Contains(logs.String(), `\"user\":\"alice\"`) || !strings.Contains(logs.String(), `[REDACTED]`) {
		t.Errorf("the trace lost the user or the redaction mark:\n%s", logs.String())
	}
}

func TestRedactionHidesAFieldThatRepeatsThePassword(t *testing.T) {
	out := string(redactConnect([]byte(`{"user":"alice","pass":"hunter22","name":"app-hunter22"}`)))
	if strings.Contains(out, "hunter22") || !strings.Contains(out, `"user":"alice"`) {
		t.Errorf("redacted to %s", out)
	}
}

func TestACONNECTThatDoesNotDecodeIsNotShown(t *testing.T) {
	out := string(redactConnect([]byte(`{"pass":"hunter22","verbose":"nope"}`)))
	if strings.Contains(out, "hunter22") || !strings.Contains(out, "not shown") {
		t.Errorf("redacted to %s", out)
	}
}

// FuzzTheCONNECTTraceNeverShowsASecret: whatever the CONNECT, no secret
// authentication decodes from it (pass, auth_token, sig, jwt, nkey) appears
// in any string the trace shows, nor, when it is made of letters and digits
// and is not part of the trace's own structure, anywhere in the trace.
func FuzzTheCONNECTTraceNeverShowsASecret(f *testing.F) {
	for _, s := range []string{
		`{"verbose":false,"user":"alice","pass":"Sup3rSecretPw"}`,
		`{"PASS":"Sup3rSecretPw"}`,
		`{"p\u0061ss":"Sup3rSecretPw"}`,
		`{"pass":"S\u0075p3rSecretPw","pass":"x"}`,
		`{"Auth_Token":"T0kenSecret99","name":"T0kenSecret99"}`,
		`{"sig":"abcd1234","jwt":"eyJhbGciOi","nkey":"UABCDEFG"}`,
		`{"user":"pw12345","pass":"pw12345","lang":"go","version":"1.2"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, arg []byte) {
		var o connectOpts
		if json.Unmarshal(arg, &o) != nil {
			if out := redactConnect(arg); !bytes.HasPrefix(out, []byte("[")) {
				t.Fatalf("an undecodable CONNECT is shown: %s", out)
			}
			return
		}
		out := redactConnect(arg)
		var shown map[string]any
		if err := json.Unmarshal(out, &shown); err != nil {
			t.Fatalf("the trace is not JSON: %s", out)
		}
		// The structure alone: every string field empty.
		skeleton, _ := json.Marshal(&connectOpts{Verbose: o.Verbose, Pedantic: o.Pedantic, TLSRequired: o.TLSRequired,
			Protocol: o.Protocol, Echo: o.Echo, Headers: o.Headers, NoResponders: o.NoResponders, AccountNew: o.AccountNew,
			Password: redacted, Token: redacted, Sig: redacted, JWT: redacted, Nkey: redacted})
		for _, secret := range []string{o.Password, o.Token, o.Sig, o.JWT, o.Nkey} {
			if secret == "" || strings.Contains(redacted, secret) {
				continue
			}
			for k, v := range shown {
				if s, ok := v.(string); ok && strings.Contains(s, secret) {
					t.Fatalf("field %q shows the secret %q: %s", k, secret, out)
				}
			}
			if isAlnum(secret) && !bytes.Contains(skeleton, []byte(secret)) && bytes.Contains(out, []byte(secret)) {
				t.Fatalf("the trace shows the secret %q: %s", secret, out)
			}
		}
	})
}

func isAlnum(s string) bool {
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
