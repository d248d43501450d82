package conf

import (
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// nats-server is the oracle here: a config Render writes is mounted into
// broker pods, and must mean the same to nats-server's own parser.

// natsServerReads feeds b to nats-server's ProcessConfigFile and returns what
// it read, translated into our Options (only the fields we model).
func natsServerReads(t *testing.T, b []byte) *Options {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := natsserver.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server rejects the rendered config: %v\n%s", err, b)
	}
	return fromNATSOptions(n)
}

// natsServerReadsString is natsServerReads without a file (for fuzzing).
func natsServerReadsString(b []byte) (*Options, error) {
	n := &natsserver.Options{}
	if err := n.ProcessConfigString(string(b)); err != nil {
		if w, ok := err.(interface{ Errors() []error }); !ok || len(w.Errors()) > 0 {
			return nil, err
		}
	}
	return fromNATSOptions(n), nil
}

func fromNATSOptions(n *natsserver.Options) *Options {
	o := &Options{
		ServerName:          n.ServerName,
		Host:                n.Host,
		Port:                n.Port,
		HTTPHost:            n.HTTPHost,
		HTTPPort:            n.HTTPPort,
		MaxPayload:          int64(n.MaxPayload),
		MaxControlLine:      int(n.MaxControlLine),
		MaxConnections:      n.MaxConn,
		MaxSubscriptions:    n.MaxSubs,
		MaxPending:          n.MaxPending,
		PingInterval:        n.PingInterval,
		MaxPingsOut:         n.MaxPingsOut,
		WriteDeadline:       n.WriteDeadline,
		LameDuckDuration:    n.LameDuckDuration,
		LameDuckGracePeriod: n.LameDuckGracePeriod,
		Debug:               n.Debug,
		Trace:               n.Trace,
		NoAuthUser:          n.NoAuthUser,
	}
	if n.HTTPSPort != 0 {
		// nats-server keeps one monitoring host for http and https.
		o.HTTPSHost, o.HTTPSPort, o.HTTPHost = n.HTTPHost, n.HTTPSPort, ""
	}
	if n.TLSConfig != nil {
		o.TLS = fromNATSTLS(n.TLSConfig, n.TLSTimeout, n.TLSMap, n.TLSHandshakeFirst)
	}
	if n.Username != "" || n.Password != "" || n.Authorization != "" || n.AuthTimeout != 0 || n.Users != nil {
		o.Authorization = &Authorization{
			User:     n.Username,
			Password: n.Password,
			Token:    n.Authorization,
			Timeout:  seconds(n.AuthTimeout),
		}
		for _, u := range n.Users {
			if u.Account != nil && u.Account.Name != GlobalAccount {
				continue // below, in its account
			}
			o.Authorization.Users = append(o.Authorization.Users, User{
				Name:        u.Username,
				Password:    u.Password,
				Permissions: fromNATSPermissions(u.Permissions),
			})
		}
	}
	// Exports and imports live in unexported fields of nats-server's
	// accounts: only names and users are compared (accounts_test.go checks
	// imports by behaviour, in the broker's tests).
	for _, a := range n.Accounts {
		acc := Account{Name: a.Name}
		for _, u := range n.Users {
			if u.Account == a {
				acc.Users = append(acc.Users, User{Name: u.Username, Password: u.Password, Permissions: fromNATSPermissions(u.Permissions)})
			}
		}
		o.Accounts = append(o.Accounts, acc)
	}
	slices.SortFunc(o.Accounts, func(a, b Account) int { return strings.Compare(a.Name, b.Name) })
	if n.SystemAccount != "" && n.SystemAccount != "$SYS" {
		o.SystemAccount = n.SystemAccount
	}
	if o.Authorization != nil && len(o.Authorization.Users) == 0 && o.Authorization.User == "" && o.Authorization.Token == "" && o.Authorization.Timeout == 0 && o.Authorization.Password == "" {
		o.Authorization = nil
	}
	c := n.Cluster
	if c.Name != "" || c.Host != "" || c.Port != 0 || c.Username != "" || c.Password != "" || c.AuthTimeout != 0 || len(n.Routes) > 0 || c.NoAdvertise || c.TLSConfig != nil {
		o.Cluster = &Cluster{Name: c.Name, Host: c.Host, Port: c.Port, NoAdvertise: c.NoAdvertise}
		if c.TLSConfig != nil {
			o.Cluster.TLS = fromNATSTLS(c.TLSConfig, c.TLSTimeout, c.TLSMap, false)
		}
		if c.Username != "" || c.Password != "" || c.AuthTimeout != 0 {
			o.Cluster.Authorization = &ClusterAuthorization{User: c.Username, Password: c.Password, Timeout: seconds(c.AuthTimeout)}
		}
		for _, r := range n.Routes {
			o.Cluster.Routes = append(o.Cluster.Routes, r.String())
		}
	}
	return o
}

func seconds(f float64) time.Duration { return time.Duration(math.Round(f * float64(time.Second))) }

func fromNATSPermissions(p *natsserver.Permissions) *Permissions {
	if p == nil {
		return nil
	}
	sp := func(s *natsserver.SubjectPermission) *SubjectPermission {
		if s == nil || len(s.Allow) == 0 && len(s.Deny) == 0 {
			return nil
		}
		c := &SubjectPermission{Allow: s.Allow, Deny: s.Deny}
		if len(c.Allow) == 0 {
			// allow_responses gives nats-server an empty (deny-all) publish
			// allow list; we keep that meaning in AllowResponses itself.
			c.Allow = nil
		}
		return c
	}
	return &Permissions{Publish: sp(p.Publish), Subscribe: sp(p.Subscribe), AllowResponses: p.Response != nil}
}

// asNATSServerSeesIt is what nats-server should read from Render(o): users
// without permissions of their own get the default permissions, the default
// permissions themselves are not kept, and route URLs are normalized.
func asNATSServerSeesIt(o *Options) *Options {
	c := *o
	if o.HTTPSHost != "" && o.HTTPSPort == 0 {
		c.HTTPHost, c.HTTPSHost = o.HTTPSHost, ""
	}
	c.TLS = asNATSServerSeesTLS(o.TLS, false)
	if a := o.Authorization; a != nil {
		ca := *a
		ca.DefaultPermissions = nil
		ca.Users = nil
		for _, u := range a.Users {
			if u.Permissions == nil {
				u.Permissions = a.DefaultPermissions
			}
			ca.Users = append(ca.Users, u)
		}
		c.Authorization = &ca
		if reflect.DeepEqual(ca, Authorization{}) {
			c.Authorization = nil
		}
	}
	c.Accounts = nil
	for _, a := range o.Accounts {
		ca := Account{Name: a.Name}
		for _, u := range a.Users {
			if u.Permissions == nil {
				u.Permissions = a.DefaultPermissions
			}
			ca.Users = append(ca.Users, u)
		}
		c.Accounts = append(c.Accounts, ca)
	}
	slices.SortFunc(c.Accounts, func(a, b Account) int { return strings.Compare(a.Name, b.Name) })
	if o.Cluster != nil {
		cc := *o.Cluster
		cc.TLS = asNATSServerSeesTLS(o.Cluster.TLS, true)
		cc.Routes = nil
		for _, r := range o.Cluster.Routes {
			u, _ := url.Parse(r)
			cc.Routes = append(cc.Routes, u.String())
		}
		if ca := cc.Authorization; ca != nil && *ca == (ClusterAuthorization{}) {
			cc.Authorization = nil
		}
		c.Cluster = &cc
		if reflect.DeepEqual(cc, Cluster{}) {
			c.Cluster = nil
		}
	}
	return &c
}

func TestNATSServerAcceptsRenderedConfigsAndReadsTheSameOptions(t *testing.T) {
	for name, o := range map[string]*Options{
		"every field": fullOptions(),
		"operator":    operatorOptions(),
		"single user": {Port: 4222, Authorization: &Authorization{User: "me", Password: "$2a$11$abcdefghijklmnopqrstuu5/Jx0Zx2OvvBzDy1l4wl6ZkbUdvXHGi"}},
		"token":       {Authorization: &Authorization{Token: `t0k$n"\`}},
		"cluster":     {Cluster: &Cluster{Name: "C1", Port: 6222, Routes: []string{"nats://a:b@h:6222"}}},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := Render(o)
			if err != nil {
				t.Fatal(err)
			}
			got, want := natsServerReads(t, b), asNATSServerSeesIt(o)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("nats-server read differently:\n%s\nfrom\n%s", diff(got, want), b)
			}
		})
	}
}

func TestNATSServerReadsRandomRenderedConfigsAsWeDo(t *testing.T) {
	n := 300
	if testing.Short() {
		n = 30
	}
	for seed := range uint64(n) {
		o := randomOptions(rand.New(rand.NewPCG(seed, 7)))
		b, err := Render(o)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		got, want := natsServerReads(t, b), asNATSServerSeesIt(o)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d: nats-server read differently:\n%s\nfrom\n%s", seed, diff(got, want), b)
		}
	}
}
