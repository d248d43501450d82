//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
)

// TestAccountsIsolateTenantsAndTheSystemUserListsEveryBroker: one NatsCluster
// of three brokers carries two accounts. Nothing crosses between them but
// what account A exports and B imports: a stream (seen in B under a prefix)
// and a service (answered in A for B's requests), wherever on the cluster
// the two clients land. The system user the operator generates, with nothing
// but its Secret's nats CLI context, gets every broker from `nats server
// list` and `nats server ping`.
func TestAccountsIsolateTenantsAndTheSystemUserListsEveryBroker(t *testing.T) {
	c := ensureOperator(t)
	ctx := context.Background()
	ns := newNamespace(t)
	users := []natsforgev1alpha1.User{}
	for _, u := range []struct{ name, account string }{{"alice", "A"}, {"bob", "B"}} {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: u.name + "-pw"},
			StringData: map[string]string{"password": u.name + "-secret"}}
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		users = append(users, natsforgev1alpha1.User{Name: u.name, Account: u.account,
			PasswordSecretRef: &natsforgev1alpha1.SecretKeyReference{Name: s.Name, Key: "password"}})
	}
	replicas := int32(3)
	nc := &natsforgev1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenants"},
		Spec: natsforgev1alpha1.NatsClusterSpec{
			Replicas: &replicas,
			Auth:     natsforgev1alpha1.AuthSpec{Users: users},
			Accounts: []natsforgev1alpha1.Account{
				{Name: "A", Exports: []natsforgev1alpha1.AccountExport{{Stream: "a.events.>"}, {Service: "a.svc"}}},
				{Name: "B", Imports: []natsforgev1alpha1.AccountImport{
					{Account: "A", Stream: "a.events.>", Prefix: "fromA"},
					{Account: "A", Service: "a.svc"},
				}},
			},
		},
	}
	if err := c.Create(ctx, nc); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c, nc, 5*time.Minute)

	var sys corev1.Secret
	name := nc.Name + "-system-user"
	waitFor(t, time.Minute, "Secret "+name, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &sys)
		return err == nil, client.IgnoreNotFound(err)
	})
	for _, k := range []string{"username", "password", "url", "ca.crt", "nats-context.json"} {
		if len(sys.Data[k]) == 0 {
			t.Fatalf("Secret %s lacks %s (keys %v)", name, k, keys(sys.Data))
		}
	}
	tlsConfig := secretTLS(t, c, nc, name)
	pods := brokerPods(t, c, nc)
	if len(pods) != 3 {
		t.Fatalf("%d broker pods, want 3", len(pods))
	}
	// alice on the first pod, bob on the last: whatever crosses, crosses a route.
	podURL := func(p corev1.Pod) string { return "tls://" + clientAddr(p) }
	connect := func(user, url string) *nats.Conn {
		t.Helper()
		var conn *nats.Conn
		waitFor(t, 30*time.Second, user+" connected", func(context.Context) (bool, error) {
			var err error
			conn, err = nats.Connect(url, nats.UserInfo(user, user+"-secret"), nats.Secure(tlsConfig), nats.Timeout(3*time.Second), nats.NoReconnect())
			return err == nil, nil
		})
		t.Cleanup(conn.Close)
		return conn
	}
	alice, bob := connect("alice", podURL(pods[0])), connect("bob", podURL(pods[2]))

	// Bob listens on the exported subject in his own account (must stay
	// silent), on the import (must hear), and on a private subject alice
	// also listens to in hers (silent both ways).
	direct, _ := bob.SubscribeSync("a.events.new")
	imported, _ := bob.SubscribeSync("fromA.a.events.new")
	alicePrivate, _ := alice.SubscribeSync("private.>")
	if err := bob.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := alice.Flush(); err != nil {
		t.Fatal(err)
	}
	// The import's interest reaches alice's broker over the route: publish
	// until the first copy arrives.
	start := time.Now()
	waitFor(t, 30*time.Second, "alice's a.events.new in B as fromA.a.events.new", func(context.Context) (bool, error) {
		_ = alice.Publish("a.events.new", []byte("order-1"))
		_ = alice.Flush()
		m, err := imported.NextMsg(500 * time.Millisecond)
		return err == nil && string(m.Data) == "order-1", nil
	})
	t.Logf("stream import across brokers delivered %s after the first publish", time.Since(start).Round(time.Millisecond))
	_ = bob.Publish("private.note", []byte("for B only"))
	for _, conn := range []*nats.Conn{alice, bob} {
		if err := conn.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	// A last round trip through both brokers, then count what must not be there.
	if err := alice.Publish("a.events.new", []byte("marker")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the marker through the import", func(context.Context) (bool, error) {
		m, err := imported.NextMsg(500 * time.Millisecond)
		return err == nil && string(m.Data) == "marker", nil
	})
	if err := bob.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := direct.Pending(); n != 0 {
		t.Errorf("account B's a.events.new received %d of account A's messages: accounts are not isolated", n)
	}
	if n, _, _ := alicePrivate.Pending(); n != 0 {
		t.Errorf("account A's private.> received %d of account B's messages: accounts are not isolated", n)
	}

	// The service: answered by alice in A, for bob's request in B.
	if _, err := alice.Subscribe("a.svc", func(m *nats.Msg) { _ = m.Respond(append([]byte("A answers "), m.Data...)) }); err != nil {
		t.Fatal(err)
	}
	_ = alice.Flush()
	waitFor(t, 30*time.Second, "bob's request answered through the service import", func(context.Context) (bool, error) {
		m, err := bob.Request("a.svc", []byte("bob"), time.Second)
		return err == nil && string(m.Data) == "A answers bob", nil
	})

	// The nats CLI, with the generated context file and its ca.crt.
	dir := t.TempDir()
	for k, f := range map[string]string{"nats-context.json": "system.json", "ca.crt": "ca.crt"} {
		if err := os.WriteFile(filepath.Join(dir, f), sys.Data[k], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bin := envOr("NATSCLI", filepath.Join(repoRoot, "bin", "nats-"+envOr("NATSCLI_VERSION", "v0.5.0")))
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no nats CLI at %s (make e2e builds it): %v", bin, err)
	}
	cli := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--context", filepath.Join(dir, "system.json"), "--timeout", "5s"}, args...)...)
		cmd.Dir = dir // the context names its CA "ca.crt", relative to where it is mounted
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "NO_COLOR=1")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("nats %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}
	// Each broker's name, as its /varz gives it.
	names := map[string]string{}
	for _, p := range pods {
		var v struct {
			Name string `json:"server_name"`
		}
		if err := httpsMonitorGet(ctx, tlsConfig, p.Status.PodIP, "/varz", &v); err != nil || v.Name == "" {
			t.Fatalf("/varz of %s: %v (server_name %q)", p.Name, err, v.Name)
		}
		names[p.Name] = v.Name
	}
	for _, args := range [][]string{{"server", "list", "3"}, {"server", "ping", "3"}} {
		out := cli(args...)
		for pod, n := range names {
			if !strings.Contains(out, n) {
				t.Errorf("nats %s does not name broker pod %s (%s):\n%s", strings.Join(args, " "), pod, n, out)
			}
		}
		if args[1] == "ping" && !strings.Contains(out, "3 replies") {
			t.Errorf("nats server ping: want 3 replies:\n%s", out)
		}
		t.Logf("nats %s:\n%s", strings.Join(args, " "), out)
	}
}
