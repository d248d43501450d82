package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/natsforge/natsforge/broker/conf"
)

func hashOf(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), 4)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func writeTestFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTheBinaryTakesAPreviousPasswordFromItsOwnFileUntilValidUntil(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfg, prev := filepath.Join(dir, "nats.conf"), filepath.Join(dir, "previous_passwords.conf")
	writeTestFile(t, cfg, "authorization {\n  users = [\n    { user: alice, password: \""+hashOf(t, "new-pw")+"\" }\n    { user: bob, password: \""+hashOf(t, "bob-pw")+"\" }\n  ]\n}\n")
	b, err := conf.RenderPreviousPasswords([]conf.PreviousPassword{
		{User: "alice", Password: hashOf(t, "old-pw"), ValidUntil: time.Now().Add(time.Hour)},
		{User: "bob", Password: hashOf(t, "bob-old-pw"), ValidUntil: time.Now().Add(-time.Minute)},
	})
	if err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, prev, string(b))
	addr, _ := startBroker(t, bin, "-c", cfg, "--previous_passwords", prev)

	for _, pw := range []string{"new-pw", "old-pw"} {
		nc, err := nats.Connect("nats://"+addr, nats.UserInfo("alice", pw), nats.NoReconnect())
		if err != nil {
			t.Fatalf("alice with %s: %v", pw, err)
		}
		nc.Close()
	}
	if _, err := nats.Connect("nats://"+addr, nats.UserInfo("bob", "bob-old-pw"), nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("bob's expired previous password: %v", err)
	}
}

func TestAPreviousPasswordsFileThatDoesNotLoadStopsTheBrokerNamingFileLineAndKey(t *testing.T) {
	dir := t.TempDir()
	cfg, prev := filepath.Join(dir, "nats.conf"), filepath.Join(dir, "previous_passwords.conf")
	writeTestFile(t, cfg, "authorization {\n  users = [\n    { user: alice, password: \""+hashOf(t, "new-pw")+"\" }\n  ]\n}\n")
	for _, tc := range []struct{ name, body, want string }{
		{"plaintext", "previous_passwords: [\n  { user: alice, password: \"hunter2\", valid_until: \"2030-01-01T00:00:00Z\" }\n]\n",
			prev + ":2: previous_passwords[0].password: must be a bcrypt hash"},
		{"a user not in the config", "previous_passwords: [\n  { user: mallory, password: \"" + hashOf(t, "x") + "\", valid_until: \"2030-01-01T00:00:00Z\" }\n]\n",
			`previous_passwords[0].user: "mallory" is not a user in authorization.users`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeTestFile(t, prev, tc.body)
			var errOut bytes.Buffer
			if code := run([]string{"-c", cfg, "--previous_passwords", prev, "-a", "127.0.0.1", "-p", "-1"}, &errOut); code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut.String())
			}
			if !strings.Contains(errOut.String(), tc.want) || strings.Contains(errOut.String(), "hunter2") {
				t.Fatalf("stderr %q, want it to contain %q and no password", errOut.String(), tc.want)
			}
		})
	}
}
