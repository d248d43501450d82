package conf

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// MinLameDuckDuration is nats-server's lower bound for lame_duck_duration.
const MinLameDuckDuration = 30 * time.Second

// Validate checks what a single key cannot: ranges, and how options fit
// together. Its rules are nats-server's, so valid Options render to a config
// nats-server accepts. Every problem is reported (errors.Join of *Error, whose
// Key names the option); none carries a password.
func (o *Options) Validate() error {
	v := &validator{}
	v.name("server_name", o.ServerName)
	v.host("host", o.Host)
	v.port("port", o.Port)
	v.host("http", o.HTTPHost)
	v.port("http_port", o.HTTPPort)
	v.monitoringTLS(o)
	v.tls("tls", o.TLS, false)
	v.atLeast("max_payload", o.MaxPayload, 0)
	v.atMost("max_payload", o.MaxPayload, math.MaxInt32)
	v.atLeast("max_control_line", int64(o.MaxControlLine), 0)
	v.atMost("max_control_line", int64(o.MaxControlLine), math.MaxInt32)
	v.atLeast("max_connections", int64(o.MaxConnections), 0)
	v.atMost("max_connections", int64(o.MaxConnections), math.MaxInt32)
	v.atLeast("max_subscriptions", int64(o.MaxSubscriptions), 0)
	v.atMost("max_subscriptions", int64(o.MaxSubscriptions), math.MaxInt32)
	v.atLeast("max_pending", o.MaxPending, 0)
	v.nonNegative("ping_interval", o.PingInterval)
	v.atLeast("ping_max", int64(o.MaxPingsOut), 0)
	v.atMost("ping_max", int64(o.MaxPingsOut), math.MaxInt32)
	v.nonNegative("write_deadline", o.WriteDeadline)
	if o.LameDuckDuration != 0 && o.LameDuckDuration < MinLameDuckDuration {
		v.add("lame_duck_duration", "%v is below nats-server's minimum of %v", o.LameDuckDuration, MinLameDuckDuration)
	}
	v.nonNegative("lame_duck_grace_period", o.LameDuckGracePeriod)

	users := map[string]bool{}
	if a := o.Authorization; a != nil {
		if a.User == "" && a.Password != "" {
			v.add("authorization.password", "a password needs a user")
		}
		if a.Token != "" && (a.User != "" || a.Password != "") {
			v.add("authorization.token", "cannot have both a user/password and a token")
		}
		if len(a.Users) > 0 && a.User != "" {
			v.add("authorization.users", "cannot have both a single user/password and a users list")
		}
		if len(a.Users) > 0 && a.Token != "" {
			v.add("authorization.users", "cannot have both a token and a users list")
		}
		v.nonNegative("authorization.timeout", a.Timeout)
		v.permissions("authorization.default_permissions", a.DefaultPermissions)
		for i, u := range a.Users {
			key := fmt.Sprintf("authorization.users[%d]", i)
			switch {
			case u.Name == "":
				v.add(key+".user", "a user needs a name")
			case users[u.Name]:
				v.add(key+".user", "user %q is listed twice", u.Name)
			}
			users[u.Name] = true
			if u.Password == "" && u.Name != o.NoAuthUser && (o.TLS == nil || !o.TLS.VerifyAndMap) {
				// nats-server lets such a user in on its name alone; here it
				// is a certificate identity, or the no_auth_user.
				v.add(key+".password", "user %q has no password: only tls.verify_and_map (a certificate identity) or no_auth_user can authenticate it", u.Name)
			}
			v.permissions(key+".permissions", u.Permissions)
		}
	}
	v.previousPasswords(o)
	accounts := map[string]bool{}
	for _, a := range o.Accounts {
		at := "accounts." + a.Name
		switch {
		case a.Name == "" || strings.ContainsAny(a.Name, " \t\r\n.*>"):
			v.add(at, "invalid account name %q", a.Name)
		case a.Name == GlobalAccount:
			v.add(at, "%q is a Reserved Account", a.Name)
		case accounts[a.Name]:
			v.add(at, "account %q is listed twice", a.Name)
		}
		accounts[a.Name] = true
		v.permissions(at+".default_permissions", a.DefaultPermissions)
		for i, u := range a.Users {
			key := fmt.Sprintf("%s.users[%d]", at, i)
			switch {
			case u.Name == "":
				v.add(key+".user", "a user needs a name")
			case users[u.Name]:
				v.add(key+".user", "Duplicate user %q detected", u.Name)
			}
			users[u.Name] = true
			if u.Password == "" && u.Name != o.NoAuthUser && (o.TLS == nil || !o.TLS.VerifyAndMap) {
				v.add(key+".password", "user %q has no password: only tls.verify_and_map (a certificate identity) or no_auth_user can authenticate it", u.Name)
			}
			v.permissions(key+".permissions", u.Permissions)
		}
	}
	for _, a := range o.Accounts {
		at := "accounts." + a.Name
		for i, x := range a.Exports {
			key := fmt.Sprintf("%s.exports[%d]", at, i)
			if (x.Stream == "") == (x.Service == "") {
				v.add(key, "an export is a stream or a service")
			}
			v.subjects(key, []string{x.Stream + x.Service}, false)
			for _, n := range x.Accounts {
				if !accounts[n] {
					v.add(key+".accounts", "%q account not defined", n)
				}
			}
		}
		for i, im := range a.Imports {
			key := fmt.Sprintf("%s.imports[%d]", at, i)
			kind, src := "stream", im.Stream
			if im.Service != nil {
				kind, src = "service", im.Service
			}
			switch {
			case (im.Stream == nil) == (im.Service == nil):
				v.add(key, "an import is a stream or a service")
			case !accounts[src.Account]:
				v.add(key+"."+kind+".account", "%q account not defined for %s import", src.Account, kind)
			default:
				for _, x := range o.Accounts {
					if x.Name == src.Account && !x.Authorizes(im.Service != nil, src.Subject, a.Name) {
						v.add(key+"."+kind, "Error adding %s import %q: %s import not authorized", kind, src.Subject, kind)
					}
				}
			}
			if im.Stream != nil && im.To != "" {
				v.add(key+".to", "a stream import with to is %s; use prefix", NotSupported)
			}
			if im.Service != nil && im.Prefix != "" {
				v.add(key+".prefix", "a service import takes to, not prefix")
			}
			if im.Prefix != "" && (!validSubject(im.Prefix) || !subjectIsLiteral(im.Prefix)) {
				v.add(key+".prefix", "invalid prefix %q: a literal subject", im.Prefix)
			}
			if im.To != "" {
				v.subjects(key+".to", []string{im.To}, false)
			}
		}
	}
	if len(o.Accounts) > 0 && o.Authorization != nil && (o.Authorization.User != "" || o.Authorization.Token != "") {
		v.add("accounts", "Can not have a single user/pass or a token and accounts")
	}
	if o.SystemAccount != "" && o.SystemAccount != GlobalAccount && !accounts[o.SystemAccount] {
		v.add("system_account", "system account %q not defined", o.SystemAccount)
	}
	if o.NoAuthUser != "" && !users[o.NoAuthUser] {
		v.add("no_auth_user", "%q is not a user in authorization.users or an account", o.NoAuthUser)
	}

	if c := o.Cluster; c != nil {
		v.name("cluster.name", c.Name)
		if c.Name == "_" {
			v.add("cluster.name", `"_" is reserved by nats-server`)
		}
		v.host("cluster.host", c.Host)
		v.port("cluster.port", c.Port)
		v.tls("cluster.tls", c.TLS, true)
		if a := c.Authorization; a != nil {
			if a.User == "" && a.Password != "" {
				v.add("cluster.authorization.password", "a password needs a user")
			}
			v.nonNegative("cluster.authorization.timeout", a.Timeout)
		}
		seen := map[string]bool{}
		for i, r := range c.Routes {
			key := fmt.Sprintf("cluster.routes[%d]", i)
			u, err := url.Parse(r)
			switch {
			case err != nil || !validRoute(r, u):
				v.add(key, "invalid route URL (expected nats://user:password@host:port)")
			case seen[r]:
				v.add(key, "route %s is listed twice", u.Redacted())
			}
			seen[r] = true
		}
	}
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) add(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) atLeast(key string, n, min int64) {
	if n < min {
		v.add(key, "%d is below %d", n, min)
	}
}

func (v *validator) atMost(key string, n, max int64) {
	if n > max {
		v.add(key, "%d is above %d", n, max)
	}
}

func (v *validator) port(key string, p int) {
	if p < 0 || p > 65535 {
		v.add(key, "port %d is out of range 0-65535", p)
	}
}

// host accepts what survives "host:port" and back (IPv6 literals included).
func (v *validator) host(key, h string) {
	if h == "" {
		return
	}
	got, _, err := net.SplitHostPort(net.JoinHostPort(h, "1"))
	if err != nil || got != h || strings.ContainsAny(h, " \t\r\n\"'\\/[]{}#,;=") {
		v.add(key, "invalid host %q", h)
	}
}

// name is a server or cluster name: nats-server refuses spaces.
func (v *validator) name(key, n string) {
	if strings.ContainsAny(n, " \t\r\n") {
		v.add(key, "%q contains whitespace", n)
	}
}

func (v *validator) nonNegative(key string, d time.Duration) {
	if d < 0 {
		v.add(key, "%v is negative", d)
	}
}

func (v *validator) permissions(key string, p *Permissions) {
	if p == nil {
		return
	}
	if sp := p.Publish; sp != nil {
		v.subjects(key+".publish.allow", sp.Allow, false)
		v.subjects(key+".publish.deny", sp.Deny, false)
	}
	if sp := p.Subscribe; sp != nil {
		v.subjects(key+".subscribe.allow", sp.Allow, true)
		v.subjects(key+".subscribe.deny", sp.Deny, true)
	}
}

// subjects checks subjects as nats-server does; subscribe permissions may
// also be "subject queue".
func (v *validator) subjects(key string, subjects []string, queue bool) {
	for i, s := range subjects {
		if validSubject(s) {
			continue
		}
		if f := strings.Fields(s); queue && len(f) == 2 && validSubject(f[0]) && validSubject(f[1]) {
			continue
		}
		v.add(key+"["+strconv.Itoa(i)+"]", "invalid subject %q", s)
	}
}

// validSubject is nats-server's IsValidSubject: non-empty tokens separated by
// '.', no whitespace, '>' only as the last token, wildcards only as whole tokens.
func validSubject(s string) bool {
	if s == "" || strings.ContainsAny(s, " \t\r\n\f") {
		return false
	}
	tokens := strings.Split(s, ".")
	for i, t := range tokens {
		if t == "" {
			return false
		}
		if len(t) > 1 && strings.ContainsAny(t, "*>") {
			continue // nats-server allows "foo*" as a literal token
		}
		if t == ">" && i != len(tokens)-1 {
			return false
		}
	}
	return true
}

// validRoute wants nats://[user:password@]host:port and nothing more (no
// spaces or control characters, which nats-server would trim or escape).
func validRoute(raw string, u *url.URL) bool {
	for _, r := range raw {
		if r <= ' ' || r == 0x7f || unicode.IsSpace(r) {
			return false
		}
	}
	switch u.Scheme {
	case "nats", "nats-route", "tls":
	default:
		return false
	}
	if u.Hostname() == "" || u.Port() == "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return false
	}
	p, err := strconv.Atoi(u.Port())
	return err == nil && p > 0 && p <= 65535
}
