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

package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"golang.org/x/crypto/bcrypt"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/conf"
)

// accountUsers maps each account of o (the global one as "$G") to its user names.
func accountUsers(o *conf.Options) map[string][]string {
	m := map[string][]string{}
	if o.Authorization != nil {
		for _, u := range o.Authorization.Users {
			m[conf.GlobalAccount] = append(m[conf.GlobalAccount], u.Name)
		}
	}
	for _, a := range o.Accounts {
		m[a.Name] = []string{}
		for _, u := range a.Users {
			m[a.Name] = append(m[a.Name], u.Name)
		}
	}
	return m
}

func TestAccountsUsersAndTheSystemUserAreRenderedAndReported(t *testing.T) {
	needAPIServer(t)
	ns := "accounts"
	nc := &v1alpha1.NatsCluster{}
	nc.Namespace, nc.Name = ns, "tenants"
	nc.Spec.Auth = v1alpha1.AuthSpec{BcryptCost: testCost, Users: []v1alpha1.User{
		{Name: "alice", Account: "A"}, {Name: "bob", Account: "B"}, {Name: "carol"},
	}}
	nc.Spec.Accounts = []v1alpha1.Account{
		{Name: "A", Exports: []v1alpha1.AccountExport{{Stream: "orders.>"}, {Service: "help", Accounts: []string{"B"}}}},
		{Name: "B", Imports: []v1alpha1.AccountImport{
			{Account: "A", Stream: "orders.>", Prefix: "from_a"}, {Account: "A", Service: "help", To: "a.help"}}},
	}
	if err := k8s.Create(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), nc) })

	var o *conf.Options
	eventually(t, timeout, func() error {
		var err error
		if o, _, err = brokerConfig(nc); err != nil {
			return err
		}
		got := fmt.Sprint(accountUsers(o))
		if want := "map[$G:[carol] A:[alice] B:[bob] SYS:[_sys]]"; got != want || o.SystemAccount != "SYS" {
			return fmt.Errorf("users by account %s, system account %q; want %s, SYS", got, o.SystemAccount, want)
		}
		return nil
	})
	// The config is what the broker (and nats-server) reads: the imports
	// are authorized by the exports.
	var b conf.Account
	for _, a := range o.Accounts {
		if a.Name == "B" {
			b = a
		}
	}
	if len(b.Imports) != 2 || b.Imports[0].Prefix != "from_a" || b.Imports[1].To != "a.help" || b.Imports[1].Service == nil {
		t.Errorf("B's imports %+v", b.Imports)
	}

	// The system user's Secret: its password verifies the SYS user's hash,
	// and the nats CLI context carries the same credentials.
	s := &corev1.Secret{}
	eventually(t, timeout, func() error {
		return k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "tenants-system-user"}, s)
	})
	var sysHash string
	for _, a := range o.Accounts {
		if a.Name == "SYS" {
			sysHash = a.Users[0].Password
		}
	}
	if string(s.Data["username"]) != "_sys" || bcrypt.CompareHashAndPassword([]byte(sysHash), s.Data["password"]) != nil {
		t.Errorf("system user Secret username %q; its password verifies the config's hash: %v", s.Data["username"],
			bcrypt.CompareHashAndPassword([]byte(sysHash), s.Data["password"]))
	}
	var ctx struct{ URL, User, Password, CA string }
	if err := json.Unmarshal(s.Data["nats-context.json"], &ctx); err != nil || ctx.User != "_sys" ||
		ctx.Password != string(s.Data["password"]) || ctx.URL != "tls://tenants.accounts.svc:4222" || ctx.CA != "ca.crt" || len(s.Data["ca.crt"]) == 0 {
		t.Errorf("nats-context.json %s (%v); url %s", s.Data["nats-context.json"], err, s.Data["url"])
	}

	// Status counts each account's users; the system user is not a spec user.
	eventually(t, timeout, func() error {
		got := getCluster(t, nc)
		if fmt.Sprint(got.Status.Accounts) != "[{A 1} {B 1} {SYS 1}]" || got.Status.ResolvedUsers != 3 || len(got.Status.Users) != 3 {
			return fmt.Errorf("status accounts %v, resolvedUsers %d, users %d", got.Status.Accounts, got.Status.ResolvedUsers, len(got.Status.Users))
		}
		return nil
	})

	// A NatsUser joins an account of the cluster; one naming an account the
	// cluster has not, or the system user's name, is refused.
	dave := createNatsUser(t, ns, "dave", v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: nc.Name}, Account: "A"})
	eve := createNatsUser(t, ns, "eve", v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: nc.Name}, Account: "Z"})
	sys := createNatsUser(t, ns, "sys", v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: nc.Name}, Username: "_sys"})
	waitForNatsUser(t, eve, v1alpha1.NatsUserAccountNotFound)
	waitForNatsUser(t, sys, v1alpha1.NatsUserNameConflict)
	eventually(t, timeout, func() error {
		o, _, err := brokerConfig(nc)
		if err != nil {
			return err
		}
		if got := fmt.Sprint(accountUsers(o)["A"]); got != "[alice dave]" {
			return fmt.Errorf("account A's users %s, want [alice dave] (NatsUser %s)", got, dave.Name)
		}
		return nil
	})

	// Off: SYS leaves the config and its Secret is deleted.
	updateCluster(t, nc, func(c *v1alpha1.NatsCluster) { c.Spec.SystemAccount.Enabled = ptr.To(false) })
	eventually(t, timeout, func() error {
		o, _, err := brokerConfig(nc)
		if err != nil {
			return err
		}
		if _, ok := accountUsers(o)["SYS"]; ok || o.SystemAccount != "" {
			return fmt.Errorf("the system account is still configured")
		}
		err = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "tenants-system-user"}, &corev1.Secret{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("the system user's Secret: %v", err)
		}
		return nil
	})
}
