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
	"strings"
	"testing"
	"time"

	"github.com/natsforge/natsforge/broker/conf"
)

const (
	hashNew = "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq"
	hashOld = "$2a$11$DoVmwh1Ic.e3VprNsLnwAu5n1WjvQ6FhZoq05biQhXF6TKE58GGUW"
)

func TestPreviousPasswordsFileCarriesOnlyTheUsersInAGraceWindow(t *testing.T) {
	until := time.Date(2026, 12, 1, 3, 4, 5, 0, time.UTC)
	in := ConfigInputs{RoutePassword: "r", Users: []BrokerUser{
		{Name: "alice", PasswordHash: hashNew, PreviousPasswordHash: hashOld, PreviousValidUntil: until},
		{Name: "bob", PasswordHash: hashNew},
	}}
	b, err := RenderPreviousPasswords(sampleCluster(), in)
	if err != nil {
		t.Fatal(err)
	}
	got, err := conf.ParsePreviousPasswords(b, PreviousPasswordsPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].User != "alice" || got[0].Password != hashOld || !got[0].ValidUntil.Equal(until) {
		t.Fatalf("previous passwords %+v, want alice's until %v only", got, until)
	}
	config, err := RenderConfig(sampleCluster(), in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(config), hashOld) {
		t.Fatal("the previous hash is in nats.conf, which nats-server reads")
	}

	// No window open: a file with an empty list, which the broker reads.
	in.Users[0].PreviousPasswordHash = ""
	b, err = RenderPreviousPasswords(sampleCluster(), in)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := conf.ParsePreviousPasswords(b, PreviousPasswordsPath); err != nil || len(got) != 0 {
		t.Fatalf("with no window: %v, %v", got, err)
	}
}
