//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
)

// The workload tests: what happens to a running cluster and its clients when a
// pod goes, when it scales, when its pods roll, and when the operator restarts or
// goes. This file sorts after the others on purpose: its last test uninstalls
// the operator (a later test installs it again).

// TestBrokerPodDeleted: a deleted broker pod is recreated by the StatefulSet and
// rejoins the route mesh (messages flow both ways between it and the other pods,
// over pod IPs); a nats.go client that was on it reconnects elsewhere with its
// subscription, and a client on another pod sees no disconnect.
func TestBrokerPodDeleted(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "del", 3)
	waitReady(t, c, nc, 5*time.Minute)
	pods := waitMesh(t, c, nc, 3, 3*time.Minute)
	victim, others := pods[1], []corev1.Pod{pods[0], pods[2]}
	svc := serviceAddr(t, c, nc)

	// A client on the victim that knows the other pods and the Service, as an
	// application with the Service URL learns them; one on another pod.
	onVictim := connectWatched(t, "myname", "password",
		natsURL(clientAddr(victim)), natsURL(clientAddr(others[0])), natsURL(clientAddr(others[1])), natsURL(svc))
	if got := onVictim.ConnectedAddr(); got != clientAddr(victim) {
		t.Fatalf("client connected to %s, want the victim %s", got, clientAddr(victim))
	}
	sub, err := onVictim.SubscribeSync("e2e.deleted")
	if err != nil {
		t.Fatal(err)
	}
	_ = onVictim.Flush()
	onOther := connectWatched(t, "myname", "password", natsURL(clientAddr(others[0])), natsURL(svc))

	start := time.Now()
	if err := kube.CoreV1().Pods(ns).Delete(context.Background(), victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var recreated *corev1.Pod
	waitFor(t, 3*time.Minute, "pod "+victim.Name+" recreated and Ready", func(ctx context.Context) (bool, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, victim.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		recreated = p
		return p.UID != victim.UID && isPodReady(p), nil
	})
	t.Logf("%s deleted: recreated and Ready after %s (old ip %s, new ip %s)", victim.Name,
		time.Since(start).Round(time.Millisecond), victim.Status.PodIP, recreated.Status.PodIP)

	waitFor(t, 2*time.Minute, "the client of the deleted pod to reconnect", func(context.Context) (bool, error) {
		return onVictim.reconnects.Load() > 0 && onVictim.IsConnected(), nil
	})
	t.Logf("client of %s: told of lame duck %d time(s), %d disconnect(s), reconnected to %s; longest outage %s",
		victim.Name, onVictim.lameDucks.Load(), onVictim.disconnects.Load(), onVictim.ConnectedAddr(),
		onVictim.longestOutage().Round(time.Millisecond))

	// The recreated pod rejoins the mesh: every pod lists and has a route to
	// every other, and messages flow both ways over the pods' IPs.
	pods = waitMesh(t, c, nc, 3, 3*time.Minute)
	for _, p := range pods {
		if p.Name == victim.Name {
			continue
		}
		d1 := waitDelivered(t, clientAddr(p), clientAddr(*recreated), "e2e.rejoin.in."+p.Name, 90*time.Second)
		d2 := waitDelivered(t, clientAddr(*recreated), clientAddr(p), "e2e.rejoin.out."+p.Name, 90*time.Second)
		t.Logf("%s -> recreated %s after %s; back after %s", p.Name, victim.Name, d1.Round(time.Millisecond), d2.Round(time.Millisecond))
	}

	// The reconnected client got its subscription back on its new server.
	waitFor(t, time.Minute, "the reconnected client's subscription to receive", func(context.Context) (bool, error) {
		if err := onOther.Publish("e2e.deleted", []byte("after")); err != nil {
			return false, err
		}
		m, _ := sub.NextMsg(200 * time.Millisecond)
		return m != nil, nil
	})
	if d := onOther.disconnects.Load(); d != 0 {
		t.Errorf("the client on %s saw %d disconnects while %s was deleted", others[0].Name, d, victim.Name)
	}
	waitCurrent(t, c, nc, 3, 2*time.Minute)
}

// TestScaleWithClients: scaling 3 -> 5 -> 3 with a client on each of the first
// three pods: the StatefulSet and the NatsCluster's readiness follow, every pod's
// loaded config lists the routes of the new size and has a route to each other
// pod (/varz, /routez), messages reach the clients from the new pods, and the
// clients on the pods that stay see no disconnect.
func TestScaleWithClients(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "scale", 3)
	waitReady(t, c, nc, 5*time.Minute)
	pods := waitMesh(t, c, nc, 3, 3*time.Minute)

	var disconnects atomic.Int32
	var subs []*nats.Subscription
	for _, p := range pods {
		conn, err := connect(clientAddr(p), "myname", "password",
			nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
				if err != nil { // nil: closed by the test itself
					disconnects.Add(1)
					t.Logf("client on %s disconnected: %v", p.Name, err)
				}
			}))
		if err != nil {
			t.Fatalf("client on %s: %v", p.Name, err)
		}
		t.Cleanup(conn.Close)
		s, err := conn.SubscribeSync("e2e.scale")
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.Flush()
		subs = append(subs, s)
	}
	uids := map[string]string{}
	for _, p := range pods {
		uids[p.Name] = string(p.UID)
	}

	for _, n := range []int32{5, 3} {
		start := time.Now()
		updateNatsCluster(t, c, nc, func(nc *natsforgev1alpha1.NatsCluster) { nc.Spec.Replicas = &n })
		waitCurrent(t, c, nc, n, 5*time.Minute)
		// Removed pods go through lame duck; wait until they are gone.
		waitFor(t, 3*time.Minute, fmt.Sprintf("exactly %d broker pods", n), func(ctx context.Context) (bool, error) {
			var sts appsv1.StatefulSet
			if err := c.Get(ctx, client.ObjectKeyFromObject(nc), &sts); err != nil {
				return false, err
			}
			list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
				LabelSelector: labels.SelectorFromSet(sts.Spec.Selector.MatchLabels).String()})
			if err != nil {
				return false, err
			}
			return len(list.Items) == int(n), nil
		})
		t.Logf("scaled to %d: StatefulSet and NatsCluster Ready, extra pods gone after %s", n, time.Since(start).Round(time.Millisecond))
		pods = waitMesh(t, c, nc, int(n), 3*time.Minute)
		t.Logf("scaled to %d: full mesh %s after the change", n, time.Since(start).Round(time.Millisecond))
		var pdb policyv1.PodDisruptionBudget
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(nc), &pdb); err != nil {
			t.Fatal(err)
		}
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != int(n/2+1) {
			t.Errorf("scaled to %d: PodDisruptionBudget minAvailable %v, want %d", n, pdb.Spec.MinAvailable, n/2+1)
		}

		// A message published on the last pod reaches the three clients.
		last := pods[len(pods)-1]
		pub, err := connect(clientAddr(last), "myname", "password")
		if err != nil {
			t.Fatal(err)
		}
		got := make([]bool, len(subs))
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) && slicesCount(got) < len(got) {
			_ = pub.Publish("e2e.scale", []byte(last.Name))
			for i, s := range subs {
				if m, _ := s.NextMsg(50 * time.Millisecond); m != nil {
					got[i] = true
				}
			}
		}
		pub.Close()
		if slicesCount(got) < len(got) {
			t.Fatalf("scaled to %d: a message published on %s reached %d of the %d clients within a minute", n, last.Name, slicesCount(got), len(got))
		}
	}
	for _, p := range pods {
		if uids[p.Name] != string(p.UID) {
			t.Errorf("pod %s was replaced while scaling", p.Name)
		}
	}
	if d := disconnects.Load(); d != 0 {
		t.Errorf("clients on the pods that stayed saw %d disconnects while scaling 3 -> 5 -> 3", d)
	}
}

func slicesCount(b []bool) (n int) {
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

// TestRollingChange: a resources change rolls the pods one at a time: polling
// the pods all along, never more than one of the three is not ready (and so
// never all are down); a nats.go client with a subscription is told of lame
// duck, moves to another server and keeps receiving what is published on every
// pod after the roll; a publisher keeps publishing throughout.
func TestRollingChange(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "roll", 3)
	waitReady(t, c, nc, 5*time.Minute)
	pods := waitMesh(t, c, nc, 3, 3*time.Minute)
	svc := serviceAddr(t, c, nc)
	urls := func(first int) []string {
		var out []string
		for i := range pods {
			out = append(out, natsURL(clientAddr(pods[(first+i)%len(pods)])))
		}
		return append(out, natsURL(svc))
	}

	// The subscriber starts on the pod the StatefulSet rolls first (the highest
	// ordinal), the publisher on the one it rolls last.
	var received atomic.Int64
	var seen sync.Map
	subConn := connectWatched(t, "myname", "password", urls(2)...)
	if _, err := subConn.Subscribe("e2e.roll.>", func(m *nats.Msg) {
		received.Add(1)
		seen.Store(string(m.Data), true)
	}); err != nil {
		t.Fatal(err)
	}
	_ = subConn.Flush()
	pubConn := connectWatched(t, "myname", "password", urls(0)...)
	var published atomic.Int64
	stopPub := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		for i := 0; ; i++ {
			select {
			case <-stopPub:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if pubConn.Publish("e2e.roll.stream", []byte(strconv.Itoa(i))) == nil {
				published.Add(1)
			}
		}
	}()
	defer func() {
		select {
		case <-stopPub:
		default:
			close(stopPub)
		}
		<-pubDone
	}()
	waitFor(t, time.Minute, "the subscriber to receive the stream", func(context.Context) (bool, error) {
		return received.Load() > 0, nil
	})

	// Watch the pods while they roll.
	var sts appsv1.StatefulSet
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(nc), &sts); err != nil {
		t.Fatal(err)
	}
	oldRevision := sts.Status.UpdateRevision
	selector := labels.SelectorFromSet(sts.Spec.Selector.MatchLabels).String()
	type sample struct {
		at       time.Duration
		ready    int
		notReady []string
	}
	var (
		mu          sync.Mutex
		samples     int
		maxNotReady int
		minReady    = 3
		worst       sample
		transitions []sample
	)
	// The poller reads the name from its own copy: waitCurrent below decodes
	// into nc meanwhile, and a sample taken mid-decode saw an empty name (and
	// so three pods "not ready").
	clusterName := nc.Name
	start := time.Now()
	pollCtx, stopPoll := context.WithCancel(context.Background())
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		prev := "-"
		uids := map[string]string{}
		for pollCtx.Err() == nil {
			list, err := kube.CoreV1().Pods(ns).List(pollCtx, metav1.ListOptions{LabelSelector: selector})
			if err == nil {
				ready := map[string]bool{}
				var replaced []string
				for i := range list.Items {
					p := &list.Items[i]
					if isPodReady(p) {
						ready[p.Name] = true
					}
					if old, ok := uids[p.Name]; ok && old != string(p.UID) {
						replaced = append(replaced, p.Name)
					}
					uids[p.Name] = string(p.UID)
				}
				s := sample{at: time.Since(start), ready: len(ready)}
				for i := range 3 {
					if name := fmt.Sprintf("%s-%d", clusterName, i); !ready[name] {
						s.notReady = append(s.notReady, name)
					}
				}
				mu.Lock()
				samples++
				if len(s.notReady) > maxNotReady {
					maxNotReady, worst = len(s.notReady), s
				}
				minReady = min(minReady, s.ready)
				for _, name := range replaced {
					transitions = append(transitions, sample{at: s.at, ready: -1, notReady: []string{name}})
				}
				if key := fmt.Sprint(s.notReady); key != prev {
					transitions = append(transitions, s)
					prev = key
				}
				mu.Unlock()
			}
			select {
			case <-pollCtx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	requests := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")}
	updateNatsCluster(t, c, nc, func(nc *natsforgev1alpha1.NatsCluster) {
		nc.Spec.Resources = corev1.ResourceRequirements{Requests: requests}
	})
	waitFor(t, time.Minute, "a new StatefulSet revision", func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKeyFromObject(nc), &sts)
		return err == nil && sts.Status.UpdateRevision != oldRevision, err
	})
	waitCurrent(t, c, nc, 3, 10*time.Minute)
	stopPoll()
	<-pollDone
	rolled := time.Since(start)

	mu.Lock()
	for _, s := range transitions {
		if s.ready < 0 {
			t.Logf("  +%s: %s recreated", s.at.Round(time.Millisecond), s.notReady[0])
			continue
		}
		t.Logf("  +%s: %d ready (not ready: %v)", s.at.Round(time.Millisecond), s.ready, s.notReady)
	}
	t.Logf("roll took %s; %d polls; at most %d pod(s) not ready at once (%v at +%s); at least %d ready",
		rolled.Round(time.Millisecond), samples, maxNotReady, worst.notReady, worst.at.Round(time.Millisecond), minReady)
	if maxNotReady > 1 {
		t.Errorf("%d pods were not ready at once (%v at +%s), want at most one", maxNotReady, worst.notReady, worst.at.Round(time.Millisecond))
	}
	if minReady == 0 {
		t.Errorf("there was a moment with no ready broker pod")
	}
	mu.Unlock()

	pods = waitMesh(t, c, nc, 3, 3*time.Minute)
	for _, p := range pods {
		if p.Labels[appsv1.StatefulSetRevisionLabel] != sts.Status.UpdateRevision {
			t.Errorf("pod %s is of revision %s, want %s", p.Name, p.Labels[appsv1.StatefulSetRevisionLabel], sts.Status.UpdateRevision)
		}
		for _, ctr := range p.Spec.Containers {
			for name, q := range requests {
				if got := ctr.Resources.Requests[name]; got.Cmp(q) != 0 {
					t.Errorf("pod %s container %s requests %s %s, want %s", p.Name, ctr.Name, name, got.String(), q.String())
				}
			}
		}
	}

	// The subscriber moved servers with its subscription: a message published
	// on every pod after the roll reaches it, and the stream goes on.
	for _, p := range pods {
		pub, err := connect(clientAddr(p), "myname", "password")
		if err != nil {
			t.Fatalf("publisher on %s: %v", p.Name, err)
		}
		payload := "after-roll-" + p.Name
		waitFor(t, time.Minute, "a message published on "+p.Name+" after the roll to reach the subscriber", func(context.Context) (bool, error) {
			if err := pub.Publish("e2e.roll.check", []byte(payload)); err != nil {
				return false, err
			}
			_ = pub.Flush()
			_, ok := seen.Load(payload)
			return ok, nil
		})
		pub.Close()
	}
	before := received.Load()
	waitFor(t, 30*time.Second, "the stream to keep reaching the subscriber", func(context.Context) (bool, error) {
		return received.Load() > before+10, nil
	})
	close(stopPub)
	<-pubDone
	t.Logf("subscriber: told of lame duck %d time(s), %d disconnect(s), %d reconnect(s), longest outage %s, now on %s",
		subConn.lameDucks.Load(), subConn.disconnects.Load(), subConn.reconnects.Load(),
		subConn.longestOutage().Round(time.Millisecond), subConn.ConnectedAddr())
	t.Logf("publisher: %d disconnect(s), longest outage %s; %d published, %d received on the stream and checks (core NATS drops what is published while a subscriber moves)",
		pubConn.disconnects.Load(), pubConn.longestOutage().Round(time.Millisecond), published.Load(), received.Load())
	if subConn.lameDucks.Load() == 0 {
		t.Errorf("the subscriber was never told its server entered lame duck mode")
	}
	if !subConn.IsConnected() || !pubConn.IsConnected() {
		t.Errorf("a client is left without a server: subscriber connected %v, publisher connected %v", subConn.IsConnected(), pubConn.IsConnected())
	}
	if d := max(subConn.longestOutage(), pubConn.longestOutage()); d > 30*time.Second {
		t.Errorf("a client was without a server for %s", d)
	}
}

// TestOperatorRestartAndDeletion: a restarted operator, once it has reconciled,
// has rewritten nothing (every owned object and the NatsCluster keep their
// resourceVersion, pods are not replaced); deleting the NatsCluster lets the
// garbage collector remove everything it owns; `helm uninstall` leaves no
// operator object behind.
func TestOperatorRestartAndDeletion(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "op", 1, natsforgev1alpha1.User{Name: "app"})
	waitCurrent(t, c, nc, 1, 5*time.Minute)
	waitFor(t, 2*time.Minute, "ConfigPropagated", func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(nc), nc); err != nil {
			return false, err
		}
		return meta.IsStatusConditionTrue(nc.Status.Conditions, natsforgev1alpha1.ConditionConfigPropagated), nil
	})

	owned := []client.Object{
		&appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "op"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "op"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "op-routes"}},
		&policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "op"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "op-config"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "op-route-credentials"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "op-fingerprint-key"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "op-user-app"}},
	}
	versions := func() map[string]string {
		out := map[string]string{}
		for _, o := range append([]client.Object{nc}, owned...) {
			o.SetNamespace(ns)
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(o), o); err != nil {
				t.Fatalf("%T %s: %v", o, o.GetName(), err)
			}
			out[fmt.Sprintf("%T %s", o, o.GetName())] = o.GetResourceVersion()
		}
		return out
	}
	for _, o := range owned[1:] {
		o.SetNamespace(ns)
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(o), o); err != nil {
			t.Fatalf("%T %s: %v", o, o.GetName(), err)
		}
		if !metav1.IsControlledBy(o, nc) {
			t.Errorf("%T %s is not controlled by the NatsCluster", o, o.GetName())
		}
	}
	brokerBefore := brokerPods(t, c, nc)
	before := versions()
	// A client of the broker is not disturbed by the operator's restart.
	client0 := connectWatched(t, "myname", "password", natsURL(clientAddr(brokerBefore[0])))

	// Restart the operator.
	operatorSelector := "app.kubernetes.io/name=natsforge,app.kubernetes.io/component=operator"
	list, err := kube.CoreV1().Pods(operatorNamespace).List(context.Background(), metav1.ListOptions{LabelSelector: operatorSelector})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("operator pods: %d, %v; want one", len(list.Items), err)
	}
	old := list.Items[0]
	start := time.Now()
	if err := kube.CoreV1().Pods(operatorNamespace).Delete(context.Background(), old.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var operator corev1.Pod
	waitFor(t, 3*time.Minute, "a new operator pod Ready", func(ctx context.Context) (bool, error) {
		list, err := kube.CoreV1().Pods(operatorNamespace).List(ctx, metav1.ListOptions{LabelSelector: operatorSelector})
		if err != nil {
			return false, err
		}
		for _, p := range list.Items {
			if p.UID != old.UID && isPodReady(&p) {
				operator = p
				return true, nil
			}
		}
		return false, nil
	})
	t.Logf("operator %s deleted: %s Ready after %s", old.Name, operator.Name, time.Since(start).Round(time.Millisecond))
	waitFor(t, 2*time.Minute, "the new operator to hold the leader lease", func(ctx context.Context) (bool, error) {
		var lease coordinationv1.Lease
		if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: "natsforge-operator.natsforge.io"}, &lease); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return lease.Spec.HolderIdentity != nil && strings.HasPrefix(*lease.Spec.HolderIdentity, operator.Name), nil
	})
	t.Logf("new operator leads after %s", time.Since(start).Round(time.Millisecond))
	last := waitReconciledAll(t, operator)
	t.Logf("new operator has reconciled every NatsCluster after %s (%s)", time.Since(start).Round(time.Millisecond), last)
	after := versions()
	for k, v := range before {
		if after[k] != v {
			t.Errorf("the restarted operator rewrote %s (resourceVersion %s -> %s)", k, v, after[k])
		}
	}
	for i, p := range brokerPods(t, c, nc) {
		if i >= len(brokerBefore) || p.UID != brokerBefore[i].UID {
			t.Errorf("broker pod %s was replaced across the operator restart", p.Name)
			continue
		}
		if a, b := brokerBefore[i].Annotations[configHashAnnotation], p.Annotations[configHashAnnotation]; a != b {
			t.Errorf("broker pod %s: %s changed across the operator restart (%s -> %s)", p.Name, configHashAnnotation, a, b)
		}
	}
	if d := client0.disconnects.Load(); d != 0 || !client0.IsConnected() {
		t.Errorf("a broker client saw %d disconnects across the operator restart (connected: %v)", d, client0.IsConnected())
	}

	// Delete the NatsCluster: the garbage collector removes what it owns.
	start = time.Now()
	if err := c.Delete(context.Background(), nc); err != nil {
		t.Fatal(err)
	}
	for _, o := range owned {
		waitFor(t, 3*time.Minute, fmt.Sprintf("%T %s to be garbage-collected", o, o.GetName()), func(ctx context.Context) (bool, error) {
			err := c.Get(ctx, client.ObjectKeyFromObject(o), o)
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		})
	}
	t.Logf("NatsCluster deleted: its %d owned objects gone after %s", len(owned), time.Since(start).Round(time.Millisecond))
	waitFor(t, 3*time.Minute, "the broker pods to be gone", func(ctx context.Context) (bool, error) {
		list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=op"})
		return err == nil && len(list.Items) == 0, err
	})
	t.Logf("NatsCluster deleted: broker pods gone after %s", time.Since(start).Round(time.Millisecond))
	var user corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "op-myname"}, &user); err != nil {
		t.Errorf("the user's own Secret op-myname: %v (it is not the operator's to delete)", err)
	}

	if envOr("E2E_INSTALL", "helm") == "none" {
		t.Log("E2E_INSTALL=none: the operator was not installed by this suite; not uninstalling it")
		return
	}
	helmUninstall(t)
}

// waitReconciledAll waits until the operator pod, since it started, has
// reconciled every NatsCluster: the controller starts its workers once its
// cache has synced, with every NatsCluster already queued, so one reconcile
// done and an idle queue mean every one of them has been. It returns the
// metrics it saw.
func waitReconciledAll(t *testing.T, operator corev1.Pod) string {
	t.Helper()
	var last string
	scraperToken := metricsScraperToken(t)
	waitFor(t, 2*time.Minute, "operator "+operator.Name+" to reconcile every NatsCluster", func(ctx context.Context) (bool, error) {
		m, err := scrapeMetrics(ctx, operator.Status.PodIP, scraperToken)
		if err != nil {
			return false, err
		}
		reconciles, ok1 := m["controller_runtime_reconcile_total{natscluster}"]
		depth, ok2 := m["workqueue_depth{natscluster}"]
		unfinished, ok3 := m["workqueue_unfinished_work_seconds{natscluster}"]
		last = fmt.Sprintf("reconciles %v, queue depth %v, unfinished work %vs", reconciles, depth, unfinished)
		if !ok1 || !ok2 || !ok3 {
			return false, fmt.Errorf("metrics lack the natscluster controller's: %s", last)
		}
		return reconciles >= 1 && depth == 0 && unfinished == 0, nil
	})
	return last
}

// helmUninstall uninstalls the release and checks that none of its objects is
// left; a later test installs it again.
func helmUninstall(t *testing.T) {
	t.Helper()
	installOnce = sync.Once{}
	start := time.Now()
	cmd := exec.Command(helmBin(), "uninstall", "natsforge", "--namespace", operatorNamespace, "--wait", "--timeout", "3m")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfigPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	t.Logf("helm uninstall took %s", time.Since(start).Round(time.Millisecond))

	release := metav1.ListOptions{LabelSelector: "app.kubernetes.io/instance=natsforge,app.kubernetes.io/managed-by=Helm"}
	var left []string
	waitFor(t, 2*time.Minute, "no operator object left", func(ctx context.Context) (bool, error) {
		left = nil
		add := func(kind string, n int, err error, names func(i int) string) error {
			if err != nil {
				return err
			}
			for i := range n {
				left = append(left, kind+" "+names(i))
			}
			return nil
		}
		deps, err := kube.AppsV1().Deployments("").List(ctx, release)
		if err := add("Deployment", len(deps.Items), err, func(i int) string { return deps.Items[i].Namespace + "/" + deps.Items[i].Name }); err != nil {
			return false, err
		}
		sas, err := kube.CoreV1().ServiceAccounts("").List(ctx, release)
		if err := add("ServiceAccount", len(sas.Items), err, func(i int) string { return sas.Items[i].Namespace + "/" + sas.Items[i].Name }); err != nil {
			return false, err
		}
		svcs, err := kube.CoreV1().Services("").List(ctx, release)
		if err := add("Service", len(svcs.Items), err, func(i int) string { return svcs.Items[i].Namespace + "/" + svcs.Items[i].Name }); err != nil {
			return false, err
		}
		crs, err := kube.RbacV1().ClusterRoles().List(ctx, release)
		if err := add("ClusterRole", len(crs.Items), err, func(i int) string { return crs.Items[i].Name }); err != nil {
			return false, err
		}
		crbs, err := kube.RbacV1().ClusterRoleBindings().List(ctx, release)
		if err := add("ClusterRoleBinding", len(crbs.Items), err, func(i int) string { return crbs.Items[i].Name }); err != nil {
			return false, err
		}
		vaps, err := kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().List(ctx, release)
		if err := add("ValidatingAdmissionPolicy", len(vaps.Items), err, func(i int) string { return vaps.Items[i].Name }); err != nil {
			return false, err
		}
		vapbs, err := kube.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().List(ctx, release)
		if err := add("ValidatingAdmissionPolicyBinding", len(vapbs.Items), err, func(i int) string { return vapbs.Items[i].Name }); err != nil {
			return false, err
		}
		roles, err := kube.RbacV1().Roles("").List(ctx, release)
		if err := add("Role", len(roles.Items), err, func(i int) string { return roles.Items[i].Namespace + "/" + roles.Items[i].Name }); err != nil {
			return false, err
		}
		rbs, err := kube.RbacV1().RoleBindings("").List(ctx, release)
		if err := add("RoleBinding", len(rbs.Items), err, func(i int) string { return rbs.Items[i].Namespace + "/" + rbs.Items[i].Name }); err != nil {
			return false, err
		}
		pods, err := kube.CoreV1().Pods(operatorNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=operator"})
		if err := add("Pod", len(pods.Items), err, func(i int) string { return pods.Items[i].Namespace + "/" + pods.Items[i].Name }); err != nil {
			return false, err
		}
		// And by name, whatever their labels.
		for _, o := range []struct {
			kind string
			get  func() error
		}{
			{"Deployment natsforge", func() error {
				_, err := kube.AppsV1().Deployments(operatorNamespace).Get(ctx, "natsforge", metav1.GetOptions{})
				return err
			}},
			{"ServiceAccount natsforge", func() error {
				_, err := kube.CoreV1().ServiceAccounts(operatorNamespace).Get(ctx, "natsforge", metav1.GetOptions{})
				return err
			}},
			{"ClusterRole natsforge-manager", func() error {
				_, err := kube.RbacV1().ClusterRoles().Get(ctx, "natsforge-manager", metav1.GetOptions{})
				return err
			}},
			{"ClusterRoleBinding natsforge-manager", func() error {
				_, err := kube.RbacV1().ClusterRoleBindings().Get(ctx, "natsforge-manager", metav1.GetOptions{})
				return err
			}},
			{"Role natsforge-leader-election", func() error {
				_, err := kube.RbacV1().Roles(operatorNamespace).Get(ctx, "natsforge-leader-election", metav1.GetOptions{})
				return err
			}},
			{"RoleBinding natsforge-leader-election", func() error {
				_, err := kube.RbacV1().RoleBindings(operatorNamespace).Get(ctx, "natsforge-leader-election", metav1.GetOptions{})
				return err
			}},
		} {
			if err := o.get(); err == nil {
				left = append(left, o.kind+" (by name)")
			} else if !apierrors.IsNotFound(err) {
				return false, err
			}
		}
		return len(left) == 0, fmt.Errorf("left: %v", left)
	})
	t.Logf("helm uninstall: no operator object left after %s", time.Since(start).Round(time.Millisecond))
	// What stays, on purpose: the CRD (crds.keep) and the namespace helm created.
}

// configHashAnnotation is the pod annotation by which the operator tells a pod
// which config to load (resources.AnnotationConfigHash).
const configHashAnnotation = "natsforge.io/config-hash"
