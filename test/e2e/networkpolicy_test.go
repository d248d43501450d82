//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// TestNetworkPolicyIsEnforced proves the NetworkPolicy a NatsCluster gets on
// the wire, from pods (the local cluster runs a NetworkPolicy enforcer; what
// root on the node sends, like this test's own connections, it always admits):
// a pod of another namespace, and a pod of the cluster's namespace that is no
// broker, can open 4222 and log in, directly and through the Service, but
// cannot open 6222 or 8222; broker pods still route to each other on 6222 (a
// replaced pod rejoins the mesh); and the operator still reads 8222 (a
// rotation ends with ConfigPropagated True).
func TestNetworkPolicyIsEnforced(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "np", 3)
	waitReady(t, c, nc, 5*time.Minute)
	var policy networkingv1.NetworkPolicy
	waitFor(t, time.Minute, "the NetworkPolicy of "+nc.Name, func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: resources.NetworkPolicyName(nc)}, &policy)
		return err == nil, client.IgnoreNotFound(err)
	})
	pods := brokerPods(t, c, nc)
	addr := func(p corev1.Pod, port int) string { return net.JoinHostPort(p.Status.PodIP, fmt.Sprint(port)) }
	svc := serviceAddr(t, c, nc)

	other := newNamespace(t)
	start := time.Now()
	dialed := []string{addr(pods[0], 4222), addr(pods[0], 6222), addr(pods[0], 8222), addr(pods[1], 6222), addr(pods[2], 8222)}
	outs := runProbes(t,
		probe{other, "dial", append([]string{"dial"}, dialed...)},
		probe{other, "nats-pod", []string{"nats", "--user", "myname", "--pass", "password", addr(pods[0], 4222)}},
		probe{other, "nats-svc", []string{"nats", "--user", "myname", "--pass", "password", svc}},
		probe{ns, "neighbour", append([]string{"dial"}, dialed...)},
	)
	t.Logf("probe pods ran in %s", time.Since(start).Round(time.Millisecond))
	for from, got := range map[string]map[string]string{
		"a pod of namespace " + other:                    dialResults(outs["dial"]),
		"a pod of the cluster's namespace, not a broker": dialResults(outs["neighbour"]),
	} {
		for _, a := range dialed {
			want := "timeout" // dropped by the enforcer
			if strings.HasSuffix(a, ":4222") {
				want = "open"
			}
			if got[a] != want {
				t.Errorf("%s dialing %s: %q, want %q", from, a, got[a], want)
			}
		}
	}
	for _, p := range []string{"nats-pod", "nats-svc"} {
		if !strings.Contains(outs[p], " connected") {
			t.Errorf("probe %s: %q, want a NATS login with myname's password", p, outs[p])
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Routes under enforcement: a replaced broker opens new connections on
	// 6222 to its peers (and they to it), which the enforcer checks against
	// the policy's pod selector.
	if err := c.Delete(context.Background(), &pods[1]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "pod "+pods[1].Name+" replaced", func(ctx context.Context) (bool, error) {
		for _, p := range brokerPods(t, c, nc) {
			if p.Name == pods[1].Name && p.UID != pods[1].UID && isPodReady(&p) {
				return true, nil
			}
		}
		return false, nil
	})
	waitMesh(t, c, nc, 3, 2*time.Minute)

	// The operator reaches 8222: after a rotation it sees every pod serve the
	// new config digest.
	before := nc.Status.ConfigHash
	var s corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: nc.Name + "-myname"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data = map[string][]byte{"password": []byte(fmt.Sprintf("np-%d", time.Now().UnixNano()))}
	start = time.Now()
	if err := c.Update(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	var last string
	waitFor(t, 90*time.Second, "ConfigPropagated True for the rotated config", func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(nc), nc); err != nil {
			return false, err
		}
		cond := meta.FindStatusCondition(nc.Status.Conditions, natsforgev1alpha1.ConditionConfigPropagated)
		if cond != nil {
			last = fmt.Sprintf("%s=%s (%s): %s", cond.Type, cond.Status, cond.Reason, cond.Message)
		}
		ok := nc.Status.ConfigHash != before && cond != nil && cond.Status == metav1.ConditionTrue &&
			cond.ObservedGeneration == nc.Generation
		if !ok {
			return false, fmt.Errorf("config hash %q (was %q); %s", nc.Status.ConfigHash, before, last)
		}
		return true, nil
	})
	t.Logf("rotation propagated (the operator read every pod's /varz on 8222) in %s: %s", time.Since(start).Round(time.Millisecond), last)
}
