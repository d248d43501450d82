package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natsforge/natsforge/broker/internal/logbuf"
)

// buildBinary compiles natsforge-broker into a temporary directory.
func buildBinary(t *testing.T) string { return goBuild(t, "natsforge-broker", ".") }

// buildNATSServer compiles nats-server (the go.mod version) into a temporary
// directory.
func buildNATSServer(t *testing.T) string {
	return goBuild(t, "nats-server", "github.com/nats-io/nats-server/v2")
}

// goBuild compiles pkg into a temporary directory as name.
func goBuild(t *testing.T, name, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build %s: %v", pkg, err)
	}
	return bin
}

var listenLine = regexp.MustCompile(`listening for client connections" addr=(\S+)`)

// startBroker runs the binary and returns its client address once it listens.
func startBroker(t *testing.T, bin string, args ...string) (addr string, logs *logbuf.Buffer) {
	t.Helper()
	addr, logs, _ = startBrokerProcess(t, bin, args...)
	return addr, logs
}

// startBrokerProcess is startBroker that also returns the process, to signal.
func startBrokerProcess(t *testing.T, bin string, args ...string) (addr string, logs *logbuf.Buffer, cmd *exec.Cmd) {
	t.Helper()
	return startListening(t, "broker", listenLine, bin, append([]string{"-a", "127.0.0.1", "-p", "-1"}, args...)...)
}

// startListening runs bin (our broker or nats-server), stops it when the test
// ends (SIGINT, then SIGKILL after 5 s), and returns the client address its
// log announces on a line matching listen.
func startListening(t *testing.T, what string, listen *regexp.Regexp, bin string, args ...string) (addr string, logs *logbuf.Buffer, cmd *exec.Cmd) {
	t.Helper()
	logs = &logbuf.Buffer{}
	cmd = exec.Command(bin, args...)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := listen.FindStringSubmatch(logs.String()); m != nil {
			return m[1], logs, cmd
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not start; logs:\n%s", what, logs.String())
	return "", nil, nil
}

func TestTheBinaryRequiresTheUserAndPasswordFromItsFlags(t *testing.T) {
	bin := buildBinary(t)
	addr, logs := startBroker(t, bin, "--user", "myname", "--pass", "password")

	nc, err := nats.Connect("nats://myname:password@" + addr)
	if err != nil {
		t.Fatalf("connect with the right password: %v", err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("greet")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("greet", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(2 * time.Second); err != nil || string(m.Data) != "hi" {
		t.Fatalf("got %v, %v", m, err)
	}

	if _, err := nats.Connect("nats://myname:wrong@"+addr, nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("wrong password: got %v, want %v", err, nats.ErrAuthorization)
	}
	if _, err := nats.Connect("nats://"+addr, nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("no password: got %v, want %v", err, nats.ErrAuthorization)
	}
	if strings.Contains(logs.String(), "password") || strings.Contains(logs.String(), "wrong") {
		t.Fatalf("a password reached the logs:\n%s", logs.String())
	}
}

func TestTheBinaryServesAConfigHoldingAHashMadeByPasswd(t *testing.T) {
	bin := buildBinary(t)
	const password = `IW@$6v(y1(t@fhPDvf!5^%`
	cmd := exec.Command(bin, "passwd", "-p", "--cost", "4")
	cmd.Stdin = strings.NewReader(password + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("passwd: %v", err)
	}
	hash := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "bcrypt hash:"))
	if !strings.HasPrefix(hash, "$2a$04$") {
		t.Fatalf("passwd printed %q", out)
	}

	dir := t.TempDir()
	cfg := filepath.Join(dir, "nats.conf")
	body := "authorization {\n  users = [\n    { user: alice, password: \"" + hash + "\" }\n  ]\n}\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, logs := startBroker(t, bin, "-c", cfg, "-V")

	nc, err := nats.Connect("nats://"+addr, nats.UserInfo("alice", password))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	nc.Close()
	if _, err := nats.Connect("nats://"+addr, nats.UserInfo("alice", hash), nats.NoReconnect()); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("the hash as password: got %v, want %v", err, nats.ErrAuthorization)
	}
	// The trace shows CONNECT, with the password redacted.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "[REDACTED]") {
		if time.Now().After(deadline) {
			t.Fatalf("no redacted CONNECT trace in logs:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if l := logs.String(); strings.Contains(l, password) || strings.Contains(l, hash) || strings.Contains(l, hash[7:]) {
		t.Fatalf("a password or hash reached the logs:\n%s", l)
	}
}

func TestPasswdWithoutPromptPrintsAGeneratedPasswordAndItsHash(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runPasswd([]string{"--cost", "4"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	sc := bufio.NewScanner(&out)
	var pass, hash string
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "pass: "); ok {
			pass = v
		}
		if v, ok := strings.CutPrefix(sc.Text(), "bcrypt hash: "); ok {
			hash = v
		}
	}
	if len(pass) < 20 || !strings.HasPrefix(hash, "$2a$04$") {
		t.Fatalf("output %q", out.String())
	}
}

func TestPasswdRejectsAnEmptyPasswordFromAPipe(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := runPasswd([]string{"-p", "--cost", "4"}, strings.NewReader("\n"), &out, &errOut); code == 0 {
		t.Fatalf("accepted an empty password: %s", out.String())
	}
}

func TestVersionFlagPrintsTheVersion(t *testing.T) {
	bin := buildBinary(t)
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "natsforge-broker: v") {
		t.Fatalf("%q, %v", out, err)
	}
}

func TestHelpPrintsTheFlagsAndExitsCleanly(t *testing.T) {
	var errOut bytes.Buffer
	if code := run([]string{"-h"}, &errOut); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, f := range []string{"-p", "-a", "-user", "-pass", "-c", "-m", "-D", "-V", "-v"} {
		if !strings.Contains(errOut.String(), f) {
			t.Errorf("usage lacks %s:\n%s", f, errOut.String())
		}
	}
}

func TestAUserWithoutAPasswordIsAConfigurationError(t *testing.T) {
	var errOut bytes.Buffer
	if code := run([]string{"--user", "myname", "-p", "-1"}, &errOut); code == 0 {
		t.Fatal("started without --pass")
	}
	if strings.Contains(errOut.String(), "listening") {
		t.Fatalf("it listened:\n%s", errOut.String())
	}
}

func TestTheBrokerReportsItsOwnVersionApartFromTheNATSServerVersionClientsReadFeaturesFrom(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "natsforge-broker")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.8.7", "-o", bin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--version").Output()
	if want := "natsforge-broker: v9.8.7 (reports nats-server version 2.10.0 to clients)\n"; err != nil || string(out) != want {
		t.Fatalf("--version: %q, %v; want %q", out, err, want)
	}
	addr, logs := startBroker(t, bin, "-m", "-1")
	if !strings.Contains(logs.String(), `msg="starting natsforge broker" natsforge_version=9.8.7 version=2.10.0`) {
		t.Errorf("the start banner does not name both versions:\n%s", logs.String())
	}
	m := monitorLine.FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no monitoring address:\n%s", logs.String())
	}
	v := getVarz(t, m[1])
	if v["natsforge_version"] != "9.8.7" || v["version"] != "2.10.0" {
		t.Errorf("/varz natsforge_version %v, version %v", v["natsforge_version"], v["version"])
	}
	// What clients decide from the version they see still works.
	nc, err := nats.Connect("nats://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if nc.ConnectedServerVersion() != "2.10.0" || !nc.HeadersSupported() {
		t.Errorf("nats.go sees version %q, headers %v", nc.ConnectedServerVersion(), nc.HeadersSupported())
	}
	if _, err := nc.Request("nobody.here", nil, 2*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("a request to no one: %v, want no responders", err)
	}
}

// TestMonitoringBindsWhereClientsDoUnlessToldOtherwise: as nats-server, an
// unset http host is the client listener's (-a), so brokers on different
// loopback addresses can share a monitoring port.
func TestMonitoringBindsWhereClientsDoUnlessToldOtherwise(t *testing.T) {
	bin := buildBinary(t)
	_, logs := startBroker(t, bin, "-a", "127.0.0.2", "-m", "-1")
	var addr string
	waitFor(t, 5*time.Second, "the monitoring listen line", func() bool {
		m := monitorLine.FindStringSubmatch(logs.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})
	if !strings.HasPrefix(addr, "127.0.0.2:") {
		t.Fatalf("monitoring listens on %s, want 127.0.0.2", addr)
	}
}
