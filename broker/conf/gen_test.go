package conf

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"
)

// randomOptions returns valid Options with every kind of awkward string a
// user or the operator could put in them.
func randomOptions(r *rand.Rand) *Options {
	o := &Options{}
	maybe := func() bool { return r.IntN(2) == 0 }
	if maybe() {
		o.ServerName = randomName(r)
	}
	if maybe() {
		o.Host = randomHost(r)
	}
	if maybe() {
		o.Port = r.IntN(65536)
	}
	if maybe() {
		o.HTTPHost = randomHost(r)
	}
	if maybe() {
		o.HTTPPort = r.IntN(65536)
	}
	if maybe() {
		o.MaxPayload = r.Int64N(1 << 31)
	}
	if maybe() {
		o.MaxControlLine = r.IntN(1 << 31)
	}
	if maybe() {
		o.MaxConnections = r.IntN(1 << 31)
	}
	if maybe() {
		o.MaxSubscriptions = r.IntN(1 << 31)
	}
	if maybe() {
		o.MaxPending = r.Int64()
	}
	if maybe() {
		o.PingInterval = randomDuration(r)
	}
	if maybe() {
		o.MaxPingsOut = r.IntN(100)
	}
	if maybe() {
		o.WriteDeadline = randomDuration(r)
	}
	if maybe() {
		o.LameDuckDuration = MinLameDuckDuration + randomDuration(r)
	}
	if maybe() {
		o.LameDuckGracePeriod = randomDuration(r)
	}
	o.Debug, o.Trace = maybe(), maybe()
	if maybe() {
		o.Authorization = randomAuthorization(r)
		if us := o.Authorization.Users; len(us) > 0 && maybe() {
			o.NoAuthUser = us[r.IntN(len(us))].Name
		}
	}
	if maybe() {
		o.Cluster = randomCluster(r)
	}
	if maybe() {
		o.TLS = randomTLS(r, false)
		if o.HTTPHost == "" && o.HTTPPort == 0 && maybe() {
			o.HTTPSPort = 1 + r.IntN(65535)
			if maybe() {
				o.HTTPSHost = randomHost(r)
			}
		}
	}
	if o.Cluster != nil && maybe() {
		o.Cluster.TLS = randomTLS(r, true)
	}
	return o
}

func randomAuthorization(r *rand.Rand) *Authorization {
	a := &Authorization{}
	switch r.IntN(4) {
	case 0:
		a.User, a.Password = "u"+randomString(r), randomPassword(r)
	case 1:
		a.Token = randomPassword(r)
	case 2:
		seen := map[string]bool{}
		for range 1 + r.IntN(4) {
			u := User{Name: randomString(r), Password: randomPassword(r)}
			if u.Name == "" || seen[u.Name] {
				continue
			}
			if u.Password == "" {
				u.Password = "pw" // a user without one needs verify_and_map (see Validate)
			}
			seen[u.Name] = true
			if r.IntN(2) == 0 {
				u.Permissions = randomPermissions(r)
			}
			a.Users = append(a.Users, u)
		}
	}
	if r.IntN(2) == 0 {
		a.Timeout = randomDuration(r)
	}
	if r.IntN(2) == 0 {
		a.DefaultPermissions = randomPermissions(r)
	}
	return a
}

func randomPermissions(r *rand.Rand) *Permissions {
	p := &Permissions{AllowResponses: r.IntN(2) == 0}
	p.Publish = randomSubjectPermission(r, false)
	p.Subscribe = randomSubjectPermission(r, true)
	return p
}

func randomSubjectPermission(r *rand.Rand, queue bool) *SubjectPermission {
	if r.IntN(3) == 0 {
		return nil
	}
	sp := &SubjectPermission{}
	list := func() []string {
		var out []string
		for range r.IntN(3) {
			s := randomSubject(r)
			if queue && r.IntN(4) == 0 {
				s += " " + randomSubject(r)
			}
			out = append(out, s)
		}
		return out
	}
	sp.Allow, sp.Deny = list(), list()
	if len(sp.Allow) == 0 && len(sp.Deny) == 0 {
		return nil
	}
	return sp
}

func randomCluster(r *rand.Rand) *Cluster {
	c := &Cluster{NoAdvertise: r.IntN(2) == 0}
	if r.IntN(2) == 0 {
		if c.Name = randomName(r); c.Name == "_" {
			c.Name = "" // reserved by nats-server
		}
	}
	if r.IntN(2) == 0 {
		c.Host = randomHost(r)
	}
	if r.IntN(2) == 0 {
		c.Port = r.IntN(65536)
	}
	user, pass := randomString(r), randomPassword(r)
	if user != "" && r.IntN(2) == 0 {
		c.Authorization = &ClusterAuthorization{User: user, Password: pass}
		if r.IntN(2) == 0 {
			c.Authorization.Timeout = randomDuration(r)
		}
	}
	for i := range r.IntN(4) {
		u := url.URL{Scheme: "nats", User: url.UserPassword(user, pass), Host: fmt.Sprintf("c-%d.routes:%d", i, 1+r.IntN(65535))}
		c.Routes = append(c.Routes, u.String())
	}
	return c
}

// awkward are fragments that mean something to the config syntax.
var awkward = []string{
	`"`, `'`, `\`, `$`, `$2a$`, `$VAR`, `#`, `//`, `{`, `}`, `[`, `]`, `,`, `;`, `:`, `=`,
	" ", "\t", "\n", "\r", "\x00", "\x7f", "\xff", "é", "日本", `\x41`, "include", "true", "no", "1MB", "-1",
}

func randomString(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(8) {
		if r.IntN(3) == 0 {
			b.WriteString(awkward[r.IntN(len(awkward))])
		} else {
			b.WriteByte("abcxyzABC0189._-@/"[r.IntN(18)])
		}
	}
	return b.String()
}

func randomPassword(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return "$2" + string("abxy"[r.IntN(4)]) + "$11$" + strings.Repeat("./AZaz09"[r.IntN(8):][:1], 53)
	}
	return randomString(r)
}

func randomName(r *rand.Rand) string {
	return strings.NewReplacer(" ", "_", "\t", "_", "\n", "_", "\r", "_").Replace(randomString(r))
}

func randomHost(r *rand.Rand) string {
	hosts := []string{"0.0.0.0", "127.0.0.1", "::", "::1", "fe80::1", "localhost", "nats.example.com", "c1-0.c1-routes"}
	return hosts[r.IntN(len(hosts))]
}

func randomSubject(r *rand.Rand) string {
	tokens := []string{"foo", "bar", "*", "orders", "_INBOX", "a-b", "$SYS", "é", "x>", "*y"}
	n := 1 + r.IntN(4)
	var parts []string
	for range n {
		parts = append(parts, tokens[r.IntN(len(tokens))])
	}
	if r.IntN(3) == 0 {
		parts = append(parts, ">")
	}
	return strings.Join(parts, ".")
}

func randomDuration(r *rand.Rand) time.Duration {
	switch r.IntN(3) {
	case 0:
		return time.Duration(r.IntN(600)) * time.Second
	case 1:
		return time.Duration(r.Int64N(int64(time.Hour)))
	}
	return time.Duration(r.IntN(1000)) * time.Millisecond
}
