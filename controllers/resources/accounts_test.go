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
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// testPassword is testHash's password (PROTOCOL.md's test vector).
const testPassword = "IW@$6v(y1(t@fhPDvf!5^%"

func accountsCluster() (*v1alpha1.NatsCluster, ConfigInputs) {
	nc := sampleCluster()
	nc.Spec.Accounts = []v1alpha1.Account{
		{Name: "A", Exports: []v1alpha1.AccountExport{{Stream: "orders.>"}, {Service: "help", Accounts: []string{"B"}}}},
		{Name: "B", Imports: []v1alpha1.AccountImport{
			{Account: "A", Stream: "orders.>", Prefix: "from_a"}, {Account: "A", Service: "help", To: "a.help"}}},
	}
	in := sampleInputs()
	in.Users = []BrokerUser{
		{Name: "alice", PasswordHash: testHash, Account: "A"},
		{Name: "bob", PasswordHash: testHash, Account: "B"},
		{Name: "carol", PasswordHash: testHash},
	}
	in.SystemUser = &BrokerUser{Name: SystemUserName, PasswordHash: testHash}
	return nc, in
}

func TestAccountsConfigIsReadByNatsServerWithEachUserInItsAccount(t *testing.T) {
	nc, in := accountsCluster()
	b, err := RenderConfig(nc, in)
	if err != nil {
		t.Fatal(err)
	}
	opts := natsServerOptions(t, b)
	got := map[string]string{}
	for _, u := range opts.Users {
		got[u.Username] = "$G"
		if u.Account != nil {
			got[u.Username] = u.Account.Name
		}
	}
	want := map[string]string{"alice": "A", "bob": "B", "carol": "$G", SystemUserName: SystemAccountName}
	for u, a := range want {
		if got[u] != a {
			t.Errorf("nats-server puts %s in %q, want %q (all: %v)", u, got[u], a, got)
		}
	}
	if opts.SystemAccount != SystemAccountName {
		t.Errorf("nats-server's system account %q", opts.SystemAccount)
	}
	// The default permissions reach account users too (written out: an
	// account's users do not take authorization's defaults).
	for _, u := range opts.Users {
		if u.Username == "alice" && (u.Permissions == nil || u.Permissions.Subscribe == nil || u.Permissions.Subscribe.Allow[0] != "PUBLIC.>") {
			t.Errorf("alice's permissions %+v", u.Permissions)
		}
	}
}

func TestTheRenderedAccountsIsolateShareAndAnswerTheSystemUser(t *testing.T) {
	nc, in := accountsCluster()
	nc.Spec.Auth.DefaultPermissions = nil
	url, ca := servedCluster(t, nc, in)
	conn := func(user string) *nats.Conn {
		c, err := nats.Connect(url, asUser(ca), nats.UserInfo(user, testPassword), nats.Timeout(3*time.Second))
		if err != nil {
			t.Fatalf("%s: %v", user, err)
		}
		t.Cleanup(c.Close)
		return c
	}
	alice, bob, carol, sys := conn("alice"), conn("bob"), conn("carol"), conn(SystemUserName)
	imported, _ := bob.SubscribeSync("from_a.orders.>")
	global, _ := carol.SubscribeSync("orders.>")
	if err := bob.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := carol.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := alice.Publish("orders.1", []byte("o")); err != nil {
		t.Fatal(err)
	}
	if err := alice.Flush(); err != nil {
		t.Fatal(err)
	}
	if m, err := imported.NextMsg(2 * time.Second); err != nil || m.Subject != "from_a.orders.1" {
		t.Fatalf("bob through the import: %v %v", m, err)
	}
	if err := carol.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := global.Pending(); n != 0 {
		t.Error("carol, in the global account, got account A's message")
	}
	if _, err := alice.Subscribe("help", func(m *nats.Msg) {
		if err := m.Respond([]byte("ok")); err != nil {
			t.Error(err)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := alice.Flush(); err != nil {
		t.Fatal(err)
	}
	if r, err := bob.Request("a.help", nil, 2*time.Second); err != nil || string(r.Data) != "ok" {
		t.Errorf("bob's request through the service import: %v %v", r, err)
	}
	if _, err := sys.Request("$SYS.REQ.SERVER.PING", nil, 2*time.Second); err != nil {
		t.Errorf("the system user's PING: %v", err)
	}
	if _, err := carol.Request("$SYS.REQ.SERVER.PING", nil, time.Second); err != nats.ErrNoResponders {
		t.Errorf("carol's PING: %v, want no responders", err)
	}
}
