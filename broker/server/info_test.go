package server

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/conf"
)

func readInfo(t *testing.T, addr string) map[string]any {
	t.Helper()
	r := dialRaw(t, addr)
	l := r.line()
	if !strings.HasPrefix(l, "INFO {") || !strings.HasSuffix(l, "} ") {
		t.Fatalf("INFO line %q", l)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "INFO ")), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestINFOCarriesTheFieldsClientsNeed(t *testing.T) {
	s := runServer(t, &conf.Options{ServerName: "n1"})
	info := readInfo(t, s.Addr().String())
	for _, k := range []string{"server_id", "server_name", "version", "proto", "go", "host", "port", "headers", "max_payload", "client_id", "client_ip"} {
		if _, ok := info[k]; !ok {
			t.Errorf("INFO lacks %q: %v", k, info)
		}
	}
	if info["server_name"] != "n1" || info["headers"] != true || info["proto"] != float64(1) || info["max_payload"] != float64(conf.DefaultMaxPayload) {
		t.Errorf("INFO %v", info)
	}
	for _, k := range []string{"auth_required", "nonce"} {
		if _, ok := info[k]; ok {
			t.Errorf("INFO has %q without auth: %v", k, info)
		}
	}
}

func TestINFOSaysAuthIsRequiredWithoutANonce(t *testing.T) {
	s := runServer(t, &conf.Options{Authorization: &conf.Authorization{User: "u", Password: "p"}})
	info := readInfo(t, s.Addr().String())
	if info["auth_required"] != true {
		t.Errorf("INFO %v", info)
	}
	if _, ok := info["nonce"]; ok {
		t.Errorf("INFO has a nonce: %v", info)
	}
}

func TestRedactConnectHidesPasswordsAndTokens(t *testing.T) {
	in := `{"verbose":false,"user":"alice","pass":"s3cr\"et","auth_token":"tok123","name":"x"}`
	out := string(redactConnect([]byte(in)))
	if strings.Contains(out, "s3cr") || strings.Contains(out, "tok123") || !strings.Contains(out, `"alice"`) {
		t.Fatalf("redacted to %s", out)
	}
}

func TestDefaultPermissionsApplyToUsersWithoutTheirOwn(t *testing.T) {
	s := runServer(t, &conf.Options{Authorization: &conf.Authorization{
		DefaultPermissions: &conf.Permissions{Publish: &conf.SubjectPermission{Allow: []string{"public.>"}}},
		Users: []conf.User{
			{Name: "plain", Password: "pw"},
			{Name: "admin", Password: "pw", Permissions: &conf.Permissions{}},
		},
	}})
	errs := make(chan error, 4)
	plain := connect(t, s.ClientURL(), nats.UserInfo("plain", "pw"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	_ = plain.Publish("private.x", nil)
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), `"private.x"`) {
			t.Fatalf("got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no permissions violation within 5s: a user without permissions of its own published outside the default permissions")
	}
	admin := connect(t, s.ClientURL(), nats.UserInfo("admin", "pw"))
	sub, _ := admin.SubscribeSync("private.x")
	_ = admin.Publish("private.x", []byte("ok"))
	if _, err := sub.NextMsg(2 * time.Second); err != nil {
		t.Fatalf("admin publish: %v", err)
	}
}

func TestAClientAnsweringPingsStaysConnected(t *testing.T) {
	s := runServer(t, &conf.Options{PingInterval: 20 * time.Millisecond, MaxPingsOut: 2})
	nc := connect(t, s.ClientURL())
	// Several ping cycles: the RTT is measured on each PONG.
	for i := 0; i < 5; i++ {
		before := s.Connections(false)[0].RTT
		eventually(t, 2*time.Second, "a ping cycle", func() bool {
			c := s.Connections(false)
			return len(c) == 1 && c[0].RTT != before && c[0].RTT > 0
		})
	}
	if !nc.IsConnected() {
		t.Fatal("disconnected")
	}
}
