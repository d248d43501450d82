package conf

import (
	"bytes"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Render writes o as a config file that Parse reads back to the same Options
// and that nats-server accepts. The output is deterministic: keys in a fixed
// order, unset (zero) fields left out, every string double-quoted and escaped
// (so a bcrypt hash is never read as a $variable), durations as strings.
//
// Render refuses Options that Validate refuses.
func Render(o *Options) ([]byte, error) {
	if o == nil {
		return nil, fmt.Errorf("conf: Render of nil Options")
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	w := &writer{}
	w.str("server_name", o.ServerName)
	w.str("host", o.Host)
	w.int("port", int64(o.Port))
	if o.HTTPHost != "" {
		w.str("http", net.JoinHostPort(o.HTTPHost, strconv.Itoa(o.HTTPPort)))
	} else {
		w.int("http_port", int64(o.HTTPPort))
	}
	if o.HTTPSHost != "" {
		w.str("https", net.JoinHostPort(o.HTTPSHost, strconv.Itoa(o.HTTPSPort)))
	} else {
		w.int("https_port", int64(o.HTTPSPort))
	}
	w.int("max_payload", o.MaxPayload)
	w.int("max_control_line", int64(o.MaxControlLine))
	w.int("max_connections", int64(o.MaxConnections))
	w.int("max_subscriptions", int64(o.MaxSubscriptions))
	w.int("max_pending", o.MaxPending)
	w.duration("ping_interval", o.PingInterval)
	w.int("ping_max", int64(o.MaxPingsOut))
	w.duration("write_deadline", o.WriteDeadline)
	w.duration("lame_duck_duration", o.LameDuckDuration)
	w.duration("lame_duck_grace_period", o.LameDuckGracePeriod)
	w.bool("debug", o.Debug)
	w.bool("trace", o.Trace)
	w.str("no_auth_user", o.NoAuthUser)
	w.tls("tls", o.TLS)
	if a := o.Authorization; a != nil {
		w.open("authorization")
		w.str("user", a.User)
		w.str("password", a.Password)
		w.str("token", a.Token)
		w.seconds("timeout", a.Timeout)
		w.permissions("default_permissions", a.DefaultPermissions)
		w.users(a.Users)
		w.close()
	}
	w.accounts(o.Accounts)
	w.str("system_account", o.SystemAccount)
	if c := o.Cluster; c != nil {
		w.open("cluster")
		w.str("name", c.Name)
		w.str("host", c.Host)
		w.int("port", int64(c.Port))
		if a := c.Authorization; a != nil {
			w.open("authorization")
			w.str("user", a.User)
			w.str("password", a.Password)
			w.seconds("timeout", a.Timeout)
			w.close()
		}
		w.strings("routes", c.Routes)
		w.bool("no_advertise", c.NoAdvertise)
		w.tls("tls", c.TLS)
		w.close()
	}
	return w.buf.Bytes(), nil
}

type writer struct {
	buf   bytes.Buffer
	depth int
}

func (w *writer) line(s string) {
	for range w.depth {
		w.buf.WriteString("  ")
	}
	w.buf.WriteString(s)
	w.buf.WriteByte('\n')
}

func (w *writer) open(key string) {
	w.line(key + " {")
	w.depth++
}

func (w *writer) close() {
	w.depth--
	w.line("}")
}

func (w *writer) str(key, v string) {
	if v != "" {
		w.line(key + ": " + quote(v))
	}
}

func (w *writer) int(key string, v int64) {
	if v != 0 {
		w.line(key + ": " + strconv.FormatInt(v, 10))
	}
}

func (w *writer) bool(key string, v bool) {
	if v {
		w.line(key + ": true")
	}
}

func (w *writer) duration(key string, v time.Duration) {
	if v != 0 {
		w.line(key + ": " + quote(v.String()))
	}
}

// seconds writes a timeout as a number of seconds, exactly (no float rounding).
func (w *writer) seconds(key string, v time.Duration) {
	if v != 0 {
		w.line(key + ": " + formatSeconds(v))
	}
}

func formatSeconds(d time.Duration) string {
	sign := ""
	u := uint64(d)
	if d < 0 {
		sign, u = "-", -u
	}
	s := sign + strconv.FormatUint(u/uint64(time.Second), 10)
	if frac := u % uint64(time.Second); frac != 0 {
		f := fmt.Sprintf("%09d", frac)
		for f[len(f)-1] == '0' {
			f = f[:len(f)-1]
		}
		s += "." + f
	}
	return s
}

func (w *writer) strings(key string, vs []string) {
	if len(vs) == 0 {
		return
	}
	w.line(key + ": [")
	w.depth++
	for _, v := range vs {
		w.line(quote(v))
	}
	w.depth--
	w.line("]")
}

func (w *writer) permissions(key string, p *Permissions) {
	if p == nil {
		return
	}
	w.open(key)
	w.subjectPermission("publish", p.Publish)
	w.subjectPermission("subscribe", p.Subscribe)
	w.bool("allow_responses", p.AllowResponses)
	w.close()
}

func (w *writer) subjectPermission(key string, sp *SubjectPermission) {
	if sp == nil || len(sp.Allow) == 0 && len(sp.Deny) == 0 {
		return
	}
	w.open(key)
	w.strings("allow", sp.Allow)
	w.strings("deny", sp.Deny)
	w.close()
}

// quote double-quotes s with nats-server's escapes. Bytes outside printable
// ASCII are written as \xHH, so any byte string reads back unchanged.
func quote(s string) string {
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c < 0x20 || c >= 0x7f:
			b = append(b, fmt.Sprintf(`\x%02x`, c)...)
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '"'))
}

func (w *writer) users(users []User) {
	if len(users) == 0 {
		return
	}
	w.line("users: [")
	w.depth++
	for _, u := range users {
		w.line("{")
		w.depth++
		w.str("user", u.Name)
		w.str("password", u.Password)
		w.permissions("permissions", u.Permissions)
		w.close()
	}
	w.depth--
	w.line("]")
}

// accounts writes accounts {}, each account under its quoted name.
func (w *writer) accounts(accounts []Account) {
	if len(accounts) == 0 {
		return
	}
	w.open("accounts")
	for _, a := range accounts {
		w.open(quote(a.Name))
		w.users(a.Users)
		w.permissions("default_permissions", a.DefaultPermissions)
		if len(a.Exports) > 0 {
			w.line("exports: [")
			w.depth++
			for _, x := range a.Exports {
				w.line("{")
				w.depth++
				w.str("stream", x.Stream)
				w.str("service", x.Service)
				w.strings("accounts", x.Accounts)
				w.close()
			}
			w.depth--
			w.line("]")
		}
		if len(a.Imports) > 0 {
			w.line("imports: [")
			w.depth++
			for _, im := range a.Imports {
				w.line("{")
				w.depth++
				kind, src := "stream", im.Stream
				if im.Service != nil {
					kind, src = "service", im.Service
				}
				w.line(kind + ": { account: " + quote(src.Account) + ", subject: " + quote(src.Subject) + " }")
				w.str("prefix", im.Prefix)
				w.str("to", im.To)
				w.close()
			}
			w.depth--
			w.line("]")
		}
		w.close()
	}
	w.close()
}
