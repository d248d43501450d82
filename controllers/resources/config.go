/*
Copyright 2026 The natsforge Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package resources

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"time"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/conf"
)

// LameDuckGracePeriod is how long a stopping broker waits, after it stops
// accepting, before it starts closing clients (nats-server's default).
const LameDuckGracePeriod = conf.DefaultLameDuckGracePeriod

// DefaultLameDuckDuration applies when spec.config.lameDuckDuration is unset.
const DefaultLameDuckDuration = 30 * time.Second

// LockedUser is the only user of a config in which no user could be resolved.
// Its password hash has no known preimage (it was made from random bytes that
// were thrown away), so nobody can connect: a cluster whose Secrets are all
// missing fails closed instead of running without authentication.
var LockedUser = BrokerUser{
	Name:         "natsforge-no-resolved-users",
	PasswordHash: "$2a$11$DoVmwh1Ic.e3VprNsLnwAu5n1WjvQ6FhZoq05biQhXF6TKE58GGUW",
}

// BrokerUser is a user as it goes into the broker config.
type BrokerUser struct {
	// Name is the user name, or for a certificate user its tlsIdentity: the
	// name verify_and_map looks the client certificate up by.
	Name string
	// PasswordHash is the bcrypt hash of the user's password; never plaintext.
	// It is empty for a certificate user.
	PasswordHash string
	Permissions  *v1alpha1.Permissions
	// PreviousPasswordHash is, during a rotation grace window, the hash the
	// brokers still accept until PreviousValidUntil (the previous-passwords
	// file); empty otherwise.
	PreviousPasswordHash string
	PreviousValidUntil   time.Time
}

// ConfigInputs are what the controller resolves before the config is rendered.
type ConfigInputs struct {
	// Users are the resolved users, in spec order. Unresolved users are left out.
	Users []BrokerUser
	// RoutePassword is the generated route password (plaintext: route URLs dial
	// with it).
	RoutePassword string
	// CertificateUsers is set when the users are certificate users
	// (tlsIdentity): the client listener then maps every client to a user by
	// its certificate (verify_and_map).
	CertificateUsers bool
}

// BrokerOptions is the broker configuration for nc.
func BrokerOptions(nc *v1alpha1.NatsCluster, in ConfigInputs) *conf.Options {
	c := nc.Spec.Config
	o := &conf.Options{
		Port:                ClientPort,
		LameDuckDuration:    LameDuckDuration(nc),
		LameDuckGracePeriod: LameDuckGracePeriod,
		Debug:               c.Debug,
		Trace:               c.Trace,
	}
	// Monitoring is HTTPS, with the client certificate, whenever TLS is on.
	if TLSEnabled(nc) {
		o.HTTPSPort = MonitorPort
		o.TLS = ClientTLS(nc, in.CertificateUsers)
	} else {
		o.HTTPPort = MonitorPort
	}
	if c.MaxPayload != nil {
		o.MaxPayload = int64(*c.MaxPayload)
	}
	if c.MaxConnections != nil {
		o.MaxConnections = int(*c.MaxConnections)
	}
	if c.PingInterval != nil {
		o.PingInterval = c.PingInterval.Duration
	}
	if c.WriteDeadline != nil {
		o.WriteDeadline = c.WriteDeadline.Duration
	}

	users := in.Users
	if len(users) == 0 {
		users = []BrokerUser{LockedUser}
	}
	auth := &conf.Authorization{DefaultPermissions: permissions(nc.Spec.Auth.DefaultPermissions)}
	for _, u := range users {
		auth.Users = append(auth.Users, conf.User{
			Name:        u.Name,
			Password:    u.PasswordHash,
			Permissions: permissions(u.Permissions),
		})
	}
	o.Authorization = auth

	o.Cluster = &conf.Cluster{
		Name: nc.Name,
		Port: ClusterPort,
		// Plaintext on purpose: a route learned by gossip dials with these.
		Authorization: &conf.ClusterAuthorization{User: RouteUser, Password: in.RoutePassword},
		Routes:        RouteURLs(nc, in.RoutePassword),
	}
	if TLSEnabled(nc) {
		o.Cluster.TLS = RouteTLS()
	}
	return o
}

// LameDuckDuration is spec.config.lameDuckDuration with its default applied.
func LameDuckDuration(nc *v1alpha1.NatsCluster) time.Duration {
	if d := nc.Spec.Config.LameDuckDuration; d != nil && d.Duration > 0 {
		return d.Duration
	}
	return DefaultLameDuckDuration
}

// RouteURLs lists every broker pod's stable route address, with the route
// credentials: nats://route:PW@<name>-<i>.<name>-routes.<ns>.svc:6222. They
// stay nats:// with TLS on: a route negotiates TLS after the server's INFO,
// as in nats-server.
func RouteURLs(nc *v1alpha1.NatsCluster, password string) []string {
	n := Replicas(nc)
	urls := make([]string, 0, n)
	for i := range n {
		u := url.URL{
			Scheme: "nats",
			User:   url.UserPassword(RouteUser, password),
			Host:   fmt.Sprintf("%s.%s.%s.svc:%d", PodName(nc, i), RoutesServiceName(nc), nc.Namespace, ClusterPort),
		}
		urls = append(urls, u.String())
	}
	return urls
}

// ClientURL is the address applications connect to, with a user's
// credentials: tls://user:password@<name>.<ns>.svc:4222 (nats:// without TLS).
func ClientURL(nc *v1alpha1.NatsCluster, user, password string) string {
	scheme := "nats"
	if TLSEnabled(nc) {
		scheme = "tls"
	}
	u := url.URL{
		Scheme: scheme,
		User:   url.UserPassword(user, password),
		Host:   fmt.Sprintf("%s.%s.svc:%d", ClientServiceName(nc), nc.Namespace, ClientPort),
	}
	return u.String()
}

// RenderConfig renders nc's broker config file and loads it back through the
// broker's own start-up check (conf.Load: unknown and unsupported keys,
// validation), so that a config the broker would refuse is never written.
func RenderConfig(nc *v1alpha1.NatsCluster, in ConfigInputs) ([]byte, error) {
	o := BrokerOptions(nc, in)
	b, err := conf.Render(o)
	if err != nil {
		return nil, fmt.Errorf("render broker config: %w", err)
	}
	back, warnings, err := conf.Load(b, ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("the broker would refuse the rendered config: %w", err)
	}
	if len(warnings) > 0 {
		return nil, fmt.Errorf("the broker warns about the rendered config: %s", warnings[0].String())
	}
	again, err := conf.Render(back)
	if err != nil || !bytes.Equal(again, b) {
		return nil, fmt.Errorf("rendered broker config does not read back to the same options")
	}
	return b, nil
}

// ConfigDigest is the hex SHA-256 of a config file's bytes, as the broker
// reports it in /varz config_digest.
func ConfigDigest(config []byte) string {
	sum := sha256.Sum256(config)
	return hex.EncodeToString(sum[:])
}

func permissions(p *v1alpha1.Permissions) *conf.Permissions {
	if p == nil {
		return nil
	}
	return &conf.Permissions{
		Publish:        subjectPermission(p.Publish),
		Subscribe:      subjectPermission(p.Subscribe),
		AllowResponses: p.AllowResponses,
	}
}

func subjectPermission(p *v1alpha1.SubjectPermission) *conf.SubjectPermission {
	if p == nil || (len(p.Allow) == 0 && len(p.Deny) == 0) {
		return nil
	}
	return &conf.SubjectPermission{Allow: subjects(p.Allow), Deny: subjects(p.Deny)}
}

func subjects(in []v1alpha1.Subject) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}
