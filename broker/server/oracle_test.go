package server

import (
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/natsforge/natsforge/broker/conf"
)

// runOracle starts nats-server in-process with the equivalent of opts, as the
// reference the differential tests compare against.
func runOracle(t testing.TB, opts *conf.Options) *natsserver.Server {
	t.Helper()
	o := &natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}
	if opts != nil {
		o.MaxPayload = int32(opts.MaxPayload)
		o.MaxControlLine = int32(opts.MaxControlLine)
		o.MaxConn = opts.MaxConnections
		o.MaxSubs = opts.MaxSubscriptions
		o.MaxPending = opts.MaxPending
		o.PingInterval = opts.PingInterval
		o.MaxPingsOut = opts.MaxPingsOut
		o.WriteDeadline = opts.WriteDeadline
		o.NoAuthUser = opts.NoAuthUser
		if a := opts.Authorization; a != nil {
			o.Username, o.Password, o.Authorization = a.User, a.Password, a.Token
			o.AuthTimeout = a.Timeout.Seconds()
			for _, u := range a.Users {
				perms := u.Permissions
				if perms == nil {
					perms = a.DefaultPermissions
				}
				o.Users = append(o.Users, &natsserver.User{Username: u.Name, Password: u.Password,
					Permissions: oraclePerms(perms)})
			}
		}
		if tc := opts.TLS; tc != nil {
			cfg, err := natsserver.GenTLSConfig(&natsserver.TLSConfigOpts{CertFile: tc.CertFile, KeyFile: tc.KeyFile,
				CaFile: tc.CAFile, Verify: tc.Verify || tc.VerifyAndMap, Map: tc.VerifyAndMap})
			if err != nil {
				t.Fatalf("nats-server tls: %v", err)
			}
			o.TLSConfig, o.TLSMap, o.TLSHandshakeFirst = cfg, tc.VerifyAndMap, tc.HandshakeFirst
			o.TLSVerify = tc.Verify || tc.VerifyAndMap
			o.TLSTimeout = 2
		}
	}
	s, err := natsserver.NewServer(o)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(s.Shutdown)
	return s
}

func oraclePerms(p *conf.Permissions) *natsserver.Permissions {
	if p == nil {
		return nil
	}
	sp := func(s *conf.SubjectPermission) *natsserver.SubjectPermission {
		if s == nil {
			return nil
		}
		return &natsserver.SubjectPermission{Allow: s.Allow, Deny: s.Deny}
	}
	out := &natsserver.Permissions{Publish: sp(p.Publish), Subscribe: sp(p.Subscribe)}
	if p.AllowResponses {
		out.Response = &natsserver.ResponsePermission{MaxMsgs: 1, Expires: 2 * time.Minute}
		if out.Publish == nil {
			out.Publish = &natsserver.SubjectPermission{}
		}
		if out.Publish.Allow == nil {
			out.Publish.Allow = []string{}
		}
	}
	return out
}
