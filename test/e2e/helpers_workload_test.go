//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/broker/monitor"
)

// Helpers of the workload tests (pod deletion, scaling, rolling changes,
// operator restart): what the broker pods report on 8222, nats.go clients that
// count their disconnects, and waits on the NatsCluster's status.

// clientAddr is a pod's client address (ip:4222).
func clientAddr(p corev1.Pod) string { return net.JoinHostPort(p.Status.PodIP, "4222") }

// monitorGet decodes a broker pod's monitoring endpoint (/varz, /routez) into v.
func monitorGet(ctx context.Context, podIP, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(podIP, "8222")+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s on %s: %s", path, podIP, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// routeHosts are the route hosts (host:port, no credentials) the config of a
// cluster of n pods lists: <name>-<i>.<name>-routes.<ns>.svc:6222.
func routeHosts(nc *natsforgev1alpha1.NatsCluster, n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s-%d.%s-routes.%s.svc:6222", nc.Name, i, nc.Name, nc.Namespace))
	}
	return out
}

// meshState says, for every pod, whether its loaded config lists exactly the
// routes of a cluster of len(pods) pods (/varz cluster.urls) and whether it has
// exactly one route to each other pod, by pod IP (/routez); "" when all do.
func meshState(ctx context.Context, nc *natsforgev1alpha1.NatsCluster, pods []corev1.Pod) string {
	want := routeHosts(nc, len(pods))
	var problems []string
	for _, p := range pods {
		var v monitor.Varz
		if err := monitorGet(ctx, p.Status.PodIP, "/varz", &v); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		var got []string
		for _, u := range v.Cluster.URLs {
			got = append(got, hostOfURL(u))
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			problems = append(problems, fmt.Sprintf("%s config routes %v, want %v", p.Name, got, want))
		}
		var r monitor.Routez
		if err := monitorGet(ctx, p.Status.PodIP, "/routez", &r); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		var peers, wantPeers []string
		for _, rt := range r.Routes {
			peers = append(peers, rt.IP)
		}
		for _, q := range pods {
			if q.Name != p.Name {
				wantPeers = append(wantPeers, q.Status.PodIP)
			}
		}
		slices.Sort(peers)
		slices.Sort(wantPeers)
		if !slices.Equal(peers, wantPeers) {
			problems = append(problems, fmt.Sprintf("%s routes to %v, want %v", p.Name, peers, wantPeers))
		}
	}
	return strings.Join(problems, "; ")
}

// hostOfURL is the host:port of a route URL as /varz reports it.
func hostOfURL(s string) string {
	s = strings.TrimPrefix(s, "nats://")
	if i := strings.LastIndex(s, "@"); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSuffix(s, "/")
}

// waitMesh waits until the cluster has exactly n pods, each configured with the
// routes of n pods and routed to each other pod; it returns the pods.
func waitMesh(t *testing.T, c client.Client, nc *natsforgev1alpha1.NatsCluster, n int, timeout time.Duration) []corev1.Pod {
	t.Helper()
	start := time.Now()
	var pods []corev1.Pod
	var last string
	waitFor(t, timeout, fmt.Sprintf("a full mesh of %d pods", n), func(ctx context.Context) (bool, error) {
		pods = brokerPods(t, c, nc)
		if len(pods) != n {
			last = fmt.Sprintf("%d pods", len(pods))
			return false, fmt.Errorf("%s", last)
		}
		last = meshState(ctx, nc, pods)
		if last != "" {
			return false, fmt.Errorf("%s", last)
		}
		return true, nil
	})
	t.Logf("full mesh of %d pods (config routes and /routez) after %s", n, time.Since(start).Round(time.Millisecond))
	return pods
}

// waitDelivered publishes on fromAddr until a subscriber on toAddr receives the
// message, and returns how long that took. Route interest propagates
// asynchronously, and a route may still be forming (resolvers cache a missing
// peer name for up to 30 s), hence the retries.
func waitDelivered(t *testing.T, fromAddr, toAddr, subject string, timeout time.Duration) time.Duration {
	t.Helper()
	sub, err := connect(toAddr, "myname", "password")
	if err != nil {
		t.Fatalf("subscriber on %s: %v", toAddr, err)
	}
	defer sub.Close()
	s, err := sub.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.Flush()
	pub, err := connect(fromAddr, "myname", "password")
	if err != nil {
		t.Fatalf("publisher on %s: %v", fromAddr, err)
	}
	defer pub.Close()
	start := time.Now()
	for time.Since(start) < timeout {
		_ = pub.Publish(subject, []byte(fromAddr))
		if m, _ := s.NextMsg(200 * time.Millisecond); m != nil {
			return time.Since(start)
		}
	}
	t.Fatalf("a message published on %s did not reach a subscriber on %s within %s", fromAddr, toAddr, timeout)
	return 0
}

// watchedConn is a nats.go connection that reconnects forever and counts what
// happens to it.
type watchedConn struct {
	*nats.Conn
	disconnects, reconnects, lameDucks atomic.Int32

	mu           sync.Mutex
	disconnected time.Time     // when the current outage began; zero while connected
	longest      time.Duration // longest outage so far
	lameDuckFrom []string      // the server ids that announced lame duck mode to it
}

// connectWatched connects to the first of urls (nats://host:port, in order)
// that answers; on a disconnect nats.go moves on through the list and the
// servers the cluster advertises.
func connectWatched(t *testing.T, user, pass string, urls ...string) *watchedConn {
	t.Helper()
	w := &watchedConn{}
	conn, err := nats.Connect(strings.Join(urls, ","),
		nats.UserInfo(user, pass), nats.Timeout(3*time.Second), nats.DontRandomize(),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond), nats.ReconnectJitter(0, 0),
		nats.DisconnectErrHandler(func(*nats.Conn, error) {
			w.disconnects.Add(1)
			w.mu.Lock()
			w.disconnected = time.Now()
			w.mu.Unlock()
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			w.reconnects.Add(1)
			w.mu.Lock()
			if !w.disconnected.IsZero() {
				w.longest = max(w.longest, time.Since(w.disconnected))
			}
			w.disconnected = time.Time{}
			w.mu.Unlock()
		}),
		nats.LameDuckModeHandler(func(c *nats.Conn) {
			w.lameDucks.Add(1)
			// The server that said so: it closes the connection only after
			// its grace period, long after this callback.
			w.mu.Lock()
			w.lameDuckFrom = append(w.lameDuckFrom, c.ConnectedServerId())
			w.mu.Unlock()
		}),
	)
	if err != nil {
		t.Fatalf("connect to %v: %v", urls, err)
	}
	w.Conn = conn
	t.Cleanup(conn.Close)
	return w
}

// longestOutage is the longest time the connection spent without a server.
func (w *watchedConn) longestOutage() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.disconnected.IsZero() {
		return max(w.longest, time.Since(w.disconnected))
	}
	return w.longest
}

// lameDuckServers are the ids of the servers that announced lame duck mode
// to the connection.
func (w *watchedConn) lameDuckServers() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lameDuckFrom)
}

func natsURL(addr string) string { return "nats://" + addr }

// updateNatsCluster applies change to the latest NatsCluster, retrying on conflicts.
func updateNatsCluster(t *testing.T, c client.Client, nc *natsforgev1alpha1.NatsCluster, change func(*natsforgev1alpha1.NatsCluster)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(nc), nc); err != nil {
			return err
		}
		change(nc)
		return c.Update(context.Background(), nc)
	})
	if err != nil {
		t.Fatalf("update NatsCluster %s: %v", nc.Name, err)
	}
}

// waitCurrent waits until the NatsCluster's status describes its latest spec
// (observedGeneration) and is Ready with want ready replicas, and the
// StatefulSet runs want pods of its current revision.
func waitCurrent(t *testing.T, c client.Client, nc *natsforgev1alpha1.NatsCluster, want int32, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	var last string
	waitFor(t, timeout, fmt.Sprintf("NatsCluster %s Ready with %d pods", nc.Name, want), func(ctx context.Context) (bool, error) {
		if err := c.Get(ctx, client.ObjectKeyFromObject(nc), nc); err != nil {
			return false, err
		}
		var sts appsv1.StatefulSet
		if err := c.Get(ctx, client.ObjectKeyFromObject(nc), &sts); err != nil {
			return false, err
		}
		st := sts.Status
		last = fmt.Sprintf("status generation %d/%d, ready %v, readyReplicas %d; statefulset replicas %d, ready %d, updated %d, revision %s/%s",
			nc.Status.ObservedGeneration, nc.Generation, meta.IsStatusConditionTrue(nc.Status.Conditions, natsforgev1alpha1.ConditionReady),
			nc.Status.ReadyReplicas, st.Replicas, st.ReadyReplicas, st.UpdatedReplicas, st.CurrentRevision, st.UpdateRevision)
		ok := nc.Status.ObservedGeneration == nc.Generation &&
			meta.IsStatusConditionTrue(nc.Status.Conditions, natsforgev1alpha1.ConditionReady) &&
			nc.Status.ReadyReplicas == want &&
			sts.Spec.Replicas != nil && *sts.Spec.Replicas == want &&
			st.ObservedGeneration == sts.Generation && st.Replicas == want && st.ReadyReplicas == want &&
			st.UpdatedReplicas == want && st.CurrentRevision == st.UpdateRevision
		if !ok {
			return false, fmt.Errorf("%s", last)
		}
		return true, nil
	})
	t.Logf("NatsCluster %s Ready with %d pods after %s (%s)", nc.Name, want, time.Since(start).Round(time.Millisecond), last)
}

// isPodReady: the pod's Ready condition is true and it is not being deleted.
func isPodReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
