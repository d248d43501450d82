package server

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The test of done for the system account: the real nats CLI (natscli,
// pinned in the Makefile and built by hack/natscli.sh), as a system user,
// gets an answer from every broker of a three-broker cluster, as it does
// from nats-server.

// natsCLI is the pinned nats CLI binary. Without it the test fails (make
// test builds it), unless -short.
func natsCLI(t *testing.T) string {
	t.Helper()
	path := os.Getenv("NATSCLI")
	if path == "" {
		_, file, _, _ := runtime.Caller(0)
		version := os.Getenv("NATSCLI_VERSION")
		if version == "" {
			version = "v0.5.0"
		}
		path = filepath.Join(filepath.Dir(file), "..", "..", "bin", "nats-"+version)
	}
	if _, err := os.Stat(path); err != nil {
		if testing.Short() {
			t.Skipf("no nats CLI at %s (-short)", path)
		}
		t.Fatalf("no nats CLI at %s: run make test, or hack/natscli.sh, to build it", path)
	}
	return path
}

// runCLI runs the nats CLI with a home of its own (no saved contexts).
func runCLI(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	home := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--server", url, "--timeout", "5s"}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+home, "NO_COLOR=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("nats %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func TestTheNatsCLIsServerCommandsGetEveryBrokerAsFromNATSServer(t *testing.T) {
	bin := natsCLI(t)
	forBoth(t, 3, systemAccounts, func(t *testing.T, ac *accountsCluster) {
		var names []string
		for i, p := range ac.ports {
			names = append(names, fmt.Sprintf("srv-%d", p))
			// A client on each broker, for the connections report.
			connectTo(t, ac.url(i, "b"), nats.Name(fmt.Sprintf("probe-%d", i)))
		}
		url := ac.url(0, "sys")
		// The CLI asks once: wait until every broker's $SYS interest has
		// crossed the routes and a ping gets every answer.
		sys := connectTo(t, url, nats.Name("ping-wait")) // the 5th connection of the report below
		eventually(t, 10*time.Second, "every broker answering $SYS.REQ.SERVER.PING", func() bool {
			inbox := nats.NewInbox()
			sub, err := sys.SubscribeSync(inbox)
			if err != nil {
				return false
			}
			defer func() { _ = sub.Unsubscribe() }()
			if err := sys.PublishRequest("$SYS.REQ.SERVER.PING", inbox, nil); err != nil {
				return false
			}
			n := 0
			for ; n < len(ac.ports); n++ {
				if _, err := sub.NextMsg(time.Second); err != nil {
					break
				}
			}
			return n == len(ac.ports)
		})
		contains := func(cmd, out string, want ...string) {
			t.Helper()
			for _, w := range want {
				if !strings.Contains(out, w) {
					t.Errorf("nats %s lacks %q:\n%s", cmd, w, out)
				}
			}
		}
		out := runCLI(t, bin, url, "server", "ping", "3")
		contains("server ping", out, append([]string{"3 replies"}, names...)...)
		out = runCLI(t, bin, url, "server", "list", "3")
		contains("server list", out, append([]string{"│ acc     │          3 │"}, names...)...)
		for _, n := range names {
			out = runCLI(t, bin, url, "server", "info", n)
			contains("server info "+n, out, "Server information for "+n, "Connection Details", "Cluster:")
		}
		out = runCLI(t, bin, url, "server", "report", "connections")
		contains("server report connections", out, "probe-0", "probe-1", "probe-2", "Totals for 5 connections")
		for _, n := range names {
			contains("server report connections", out, "│ "+n)
		}
		out = runCLI(t, bin, url, "server", "check", "connection")
		contains("server check connection", out, "OK Connection")
	})
}
