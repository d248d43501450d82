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
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/auth"
	"github.com/natsforge/natsforge/broker/conf"
)

// specBytes turns fuzz input into choices; when it runs out, every choice is 0.
type specBytes struct{ b []byte }

func (s *specBytes) next() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *specBytes) upTo(n int) int { return int(s.next()) % (n + 1) }

// text takes up to max runes of the input as they are (any bytes, valid
// UTF-8 or not), for names and subject tokens to be filtered by the caller.
func (s *specBytes) text(max int) string {
	n := s.upTo(max)
	if n > len(s.b) {
		n = len(s.b)
	}
	t := string(s.b[:n])
	s.b = s.b[n:]
	return t
}

// userName keeps what the CRD's pattern allows: ^[A-Za-z0-9_][A-Za-z0-9_.-]*$.
func userName(raw string, i int) string {
	var b strings.Builder
	for _, r := range raw {
		if r < utf8.RuneSelf && (r == '_' || r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			b.WriteRune(r)
		}
	}
	name := strings.TrimLeft(b.String(), ".-")
	if len(name) > 50 {
		name = name[:50]
	}
	return fmt.Sprintf("%su%d", name, i) // unique, and never empty
}

// subject keeps what the CRD allows: tokens of anything but whitespace and
// ".", with ">" only as the last token (CEL).
func fuzzSubject(s *specBytes) v1alpha1.Subject {
	var tokens []string
	for range 1 + s.upTo(3) {
		raw := s.text(8)
		var b strings.Builder
		for _, r := range strings.ToValidUTF8(raw, "") {
			if r != '.' && r != ' ' && r != '\t' && r != '\n' && r != '\r' && r != '\f' && r != '\v' {
				b.WriteRune(r)
			}
		}
		t := b.String()
		switch t {
		case "":
			t = "*"
		case ">":
			t = "gt"
		}
		tokens = append(tokens, t)
	}
	if s.next()%4 == 0 {
		tokens = append(tokens, ">")
	}
	return v1alpha1.Subject(strings.Join(tokens, "."))
}

func fuzzSubjectPermission(s *specBytes) *v1alpha1.SubjectPermission {
	if s.next()%3 == 0 {
		return nil
	}
	p := &v1alpha1.SubjectPermission{}
	for range s.upTo(3) {
		p.Allow = append(p.Allow, fuzzSubject(s))
	}
	for range s.upTo(2) {
		p.Deny = append(p.Deny, fuzzSubject(s))
	}
	return p
}

func fuzzPermissions(s *specBytes) *v1alpha1.Permissions {
	if s.next()%2 == 0 {
		return nil
	}
	return &v1alpha1.Permissions{Publish: fuzzSubjectPermission(s), Subscribe: fuzzSubjectPermission(s), AllowResponses: s.next()%2 == 0}
}

// fuzzCluster builds a NatsCluster the API server would admit, and the inputs
// the controller would resolve for it, from the fuzz input. Passwords are
// random, not fuzzed: only their hashes may reach the config.
func fuzzCluster(t *testing.T, data []byte) (*v1alpha1.NatsCluster, ConfigInputs, []string) {
	s := &specBytes{b: data}
	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Name: "fz", Namespace: "ns"}}
	nc.Spec.Replicas = ptr.To(int32(1 + s.upTo(4)))
	nc.Spec.TLS = v1alpha1.TLSSpec{Mode: []v1alpha1.TLSMode{v1alpha1.TLSModeOperator, v1alpha1.TLSModeDisabled}[s.upTo(1)]}
	nc.Spec.Auth.DefaultPermissions = fuzzPermissions(s)
	if s.next()%2 == 0 {
		nc.Spec.Config.MaxPayload = ptr.To(int32(1 + int(s.next())<<12))
	}
	certificateUsers := nc.Spec.TLS.Mode != v1alpha1.TLSModeDisabled && s.next()%5 == 0
	in := ConfigInputs{RoutePassword: "route-password-for-fuzzing", CertificateUsers: certificateUsers}
	var passwords []string
	for i := range s.upTo(4) {
		u := v1alpha1.User{Name: userName(s.text(12), i), Permissions: fuzzPermissions(s)}
		bu := BrokerUser{Name: u.Name, Permissions: u.Permissions}
		if certificateUsers {
			u.TLSIdentity = fmt.Sprintf("CN=%s,O=fuzz", u.Name)
			bu.Name = u.TLSIdentity
		} else {
			pw, err := auth.GeneratePassword()
			if err != nil {
				t.Fatal(err)
			}
			h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
			if err != nil {
				t.Fatal(err)
			}
			bu.PasswordHash = string(h)
			passwords = append(passwords, pw)
		}
		nc.Spec.Auth.Users = append(nc.Spec.Auth.Users, u)
		in.Users = append(in.Users, bu)
	}
	return nc, in, passwords
}

// FuzzRenderConfig renders random admissible NatsClusters and checks what
// the operator would write: our broker and nats-server both accept it and
// read the same users and permissions, it reads back to the same options, and
// no user's plaintext password is in it.
func FuzzRenderConfig(f *testing.F) {
	f.Add([]byte{})
	// Three replicas with TLS; default publish permissions allowing a"b}c#d
	// and x\y.'z.> and denying {$a}; users alice and b-b, b-b subscribing
	// to "€é;" only: quotes, braces, comments, escapes and variables in
	// subjects, which the config format must quote.
	f.Add([]byte("\x02\x00\x01\x01\x02\x00\x07a\"b}c#d\x01\x01\x03x\\y\x02'z\x00\x01\x00\x04{$a}\x01\x00\x01\x01\x01" +
		"\x02\x05alice\x00\x03b-b\x01\x00\x01\x01\x00\x06\xe2\x82\xac\xc3\xa9;\x01\x00\x00"))
	// The same without TLS, and one certificate user.
	f.Add([]byte("\x00\x01\x00\x01\x01\x01\x00\x01\x00\x03CN=\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		nc, in, passwords := fuzzCluster(t, data)
		b, err := RenderConfig(nc, in)
		if err != nil {
			t.Fatalf("an admissible spec did not render: %v", err)
		}
		for _, pw := range passwords {
			if bytes.Contains(b, []byte(pw)) {
				t.Fatalf("a user's plaintext password is in the rendered config:\n%s", b)
			}
		}
		ours, _, err := conf.Load(b, ConfigPath)
		if err != nil {
			t.Fatalf("our broker refuses what the operator renders: %v\n%s", err, b)
		}
		again, err := conf.Render(ours)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("the config does not round-trip (%v):\n%s\n---\n%s", err, b, again)
		}
		theirs := natsServerOptions(t, b)
		if len(theirs.Users) != len(ours.Authorization.Users) {
			t.Fatalf("nats-server read %d users, we read %d:\n%s", len(theirs.Users), len(ours.Authorization.Users), b)
		}
		for i, u := range ours.Authorization.Users {
			tu := theirs.Users[i]
			if tu.Username != u.Name || tu.Password != u.Password {
				t.Fatalf("user %d: nats-server read %q, we read %q:\n%s", i, tu.Username, u.Name, b)
			}
			if got, want := fmt.Sprint(subjectsOf(tu.Permissions)), fmt.Sprint(ourSubjects(effective(u.Permissions, ours.Authorization.DefaultPermissions))); got != want {
				t.Fatalf("user %q permissions: nats-server read %s, we read %s:\n%s", u.Name, got, want, b)
			}
		}
	})
}

func effective(p, def *conf.Permissions) *conf.Permissions {
	if p != nil {
		return p
	}
	return def
}

// subjectsOf lists the subjects of nats-server's permissions in a fixed order.
func subjectsOf(p *natsserver.Permissions) [4][]string {
	var out [4][]string
	if p == nil {
		return out
	}
	if p.Publish != nil {
		out[0], out[1] = p.Publish.Allow, p.Publish.Deny
	}
	if p.Subscribe != nil {
		out[2], out[3] = p.Subscribe.Allow, p.Subscribe.Deny
	}
	return out
}

func ourSubjects(p *conf.Permissions) [4][]string {
	var out [4][]string
	if p == nil {
		return out
	}
	if p.Publish != nil {
		out[0], out[1] = p.Publish.Allow, p.Publish.Deny
	}
	if p.Subscribe != nil {
		out[2], out[3] = p.Subscribe.Allow, p.Subscribe.Deny
	}
	return out
}
