//go:build e2e

package e2e

// Chaos on the local cluster: the operator, the API server, the kubelet and a
// broker fail at awkward moments, Secrets churn, a NatsCluster is replaced
// under its clients. Each test bounds how long the system takes to converge
// and logs what it took. The component restarts use
// hack/local-cluster/restart.sh and the components' pid files: local cluster
// only (make e2e runs the tests as root on its node).

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// TestChaosOperatorKilledBetweenConfigAndAnnotations: the operator dies after
// writing a rotated config Secret and before annotating the pods (the
// annotation is what makes the kubelet refresh the mounted Secret at once).
// Deterministic: a ValidatingAdmissionPolicy of the test's holds the
// operator's pod writes in this namespace, so the operator writes the config
// Secret and then fails on every annotation; the test then kills the operator
// pod (grace period 0: no lease release), lifts the hold, and the new leader
// must bring every pod to the new password.
func TestChaosOperatorKilledBetweenConfigAndAnnotations(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	ctx := context.Background()
	nc := newNatsCluster(t, c, ns, "opkill", 3)
	waitReady(t, c, nc, 5*time.Minute)
	pods := brokerPods(t, c, nc)
	restarts := podRestarts(t, c, nc)

	operator := impersonateOperator(t, c)
	holdOperatorPodWrites(t, ns, operator.user)
	annotation := []byte(`{"metadata":{"annotations":{"` + configHashAnnotation + `":"e2e"}}}`)
	waitFor(t, 30*time.Second, "the hold on the operator's pod writes to be in force", func(ctx context.Context) (bool, error) {
		_, err := operator.CoreV1().Pods(ns).Patch(ctx, pods[0].Name, types.StrategicMergePatchType, annotation,
			metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), holdPolicy), nil
	})

	var config corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: resources.ConfigSecretName(nc)}, &config); err != nil {
		t.Fatal(err)
	}
	next := fmt.Sprintf("after-the-kill-%d", time.Now().UnixNano())
	setPassword(t, c, ns, nc.Name+"-myname", next)
	waitFor(t, time.Minute, "the operator to write the rotated config Secret", func(ctx context.Context) (bool, error) {
		var s corev1.Secret
		err := c.Get(ctx, client.ObjectKeyFromObject(&config), &s)
		return err == nil && string(s.Data["nats.conf"]) != string(config.Data["nats.conf"]), err
	})
	// Between the two writes: the config Secret is new, the pods are not told.
	for _, p := range brokerPods(t, c, nc) {
		if p.Annotations[configHashAnnotation] != annotationOf(pods, p.Name) {
			t.Fatalf("pod %s was annotated despite the hold", p.Name)
		}
		conn, err := connect(clientAddr(p), "myname", "password")
		if err != nil {
			t.Fatalf("pod %s already refuses the old password before the operator annotated it (%v): the kubelet refreshed the Secret on its own; nothing is tested", p.Name, err)
		}
		conn.Close()
	}

	old := operatorPod(t)
	if err := kube.CoreV1().Pods(operatorNamespace).Delete(ctx, old.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	releaseOperatorPodWrites(t, ns)
	var leader corev1.Pod
	waitFor(t, 2*time.Minute, "a new operator pod Ready", func(ctx context.Context) (bool, error) {
		p, ok := readyOperatorPod(ctx, old.UID)
		leader = p
		return ok, nil
	})
	t.Logf("operator %s killed with the config written and no pod annotated; %s Ready after %s", old.Name, leader.Name, time.Since(killed).Round(time.Millisecond))
	waitPassword(t, pods, "myname", "password", next, 2*time.Minute)
	t.Logf("CONVERGED: the new password is enforced on every pod %s after the kill", time.Since(killed).Round(time.Millisecond))
	// By the new leader's doing, not the kubelet's periodic sync (a minute):
	// it annotated every pod.
	waitFor(t, 30*time.Second, "the new leader's annotation on every pod", func(context.Context) (bool, error) {
		for _, p := range brokerPods(t, c, nc) {
			if p.Annotations[configHashAnnotation] == annotationOf(pods, p.Name) {
				return false, fmt.Errorf("%s still has %s=%s", p.Name, configHashAnnotation, p.Annotations[configHashAnnotation])
			}
		}
		return true, nil
	})
	if r := podRestarts(t, c, nc); r != restarts {
		t.Errorf("broker containers restarted (%d -> %d)", restarts, r)
	}
}

// TestChaosAPIServerRestartDuringRotation: kube-apiserver is killed (SIGKILL)
// right after a password Secret is edited, while the operator rotates, and
// starts again; the rotation completes, on every pod, with no pod restarted
// or replaced.
func TestChaosAPIServerRestartDuringRotation(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "apirestart", 3)
	waitReady(t, c, nc, 5*time.Minute)
	pods := waitMesh(t, c, nc, 3, 2*time.Minute)
	restarts := podRestarts(t, c, nc)

	next := fmt.Sprintf("across-the-restart-%d", time.Now().UnixNano())
	setPassword(t, c, ns, nc.Name+"-myname", next)
	start := time.Now()
	restartComponent(t, "kube-apiserver", true)
	waitAPIServer(t, 2*time.Minute)
	t.Logf("kube-apiserver restarted and ready %s after the edit", time.Since(start).Round(time.Millisecond))
	waitPassword(t, pods, "myname", "password", next, 3*time.Minute)
	t.Logf("CONVERGED: rotation enforced on every pod %s after the edit (the API server restarted meanwhile)", time.Since(start).Round(time.Millisecond))
	waitCondition(t, c, nc, natsforgev1alpha1.ConditionConfigPropagated, metav1.ConditionTrue, natsforgev1alpha1.ReasonConfigCurrent, 2*time.Minute)
	t.Logf("status: ConfigPropagated True %s after the edit", time.Since(start).Round(time.Millisecond))
	assertSamePods(t, c, nc, pods, restarts)
}

// TestChaosKubeletRestart: the kubelet stops and comes back; the brokers keep
// serving (containerd keeps them running), connected clients see no
// disconnect and every message of a stream across two pods arrives, and the
// NatsCluster reports Ready again once the kubelet has probed its pods anew.
func TestChaosKubeletRestart(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "kubelet", 3)
	waitReady(t, c, nc, 5*time.Minute)
	pods := waitMesh(t, c, nc, 3, 2*time.Minute)
	restarts := podRestarts(t, c, nc)

	var clients []*watchedConn
	for _, p := range pods {
		clients = append(clients, connectWatched(t, "myname", "password", natsURL(clientAddr(p))))
	}
	s := startStream(t, clients[1], clients[2], "chaos.kubelet")

	start := time.Now()
	restartComponent(t, "kubelet", false)
	waitFor(t, time.Minute, "the kubelet's /healthz", func(ctx context.Context) (bool, error) {
		return httpOK(ctx, "http://127.0.0.1:10248/healthz"), nil
	})
	t.Logf("kubelet restarted, healthy after %s", time.Since(start).Round(time.Millisecond))
	// Ready again means: the node heartbeats after the restart, and every
	// broker pod's readiness was set by the new kubelet.
	waitFor(t, 2*time.Minute, "every broker pod Ready as seen by the new kubelet", func(ctx context.Context) (bool, error) {
		for _, p := range brokerPods(t, c, nc) {
			cond := podCondition(&p, corev1.PodReady)
			if cond == nil || cond.Status != corev1.ConditionTrue || p.Status.ContainerStatuses[0].Started == nil {
				return false, nil
			}
		}
		node, err := kube.CoreV1().Nodes().Get(ctx, pods[0].Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue && cond.LastHeartbeatTime.After(start), nil
			}
		}
		return false, nil
	})
	waitReady(t, c, nc, 2*time.Minute)
	t.Logf("CONVERGED: node and NatsCluster Ready %s after the kubelet restart", time.Since(start).Round(time.Millisecond))

	sent, got, missing := s.stop(t)
	t.Logf("stream across the restart: %d published, %d received", sent, got)
	if missing > 0 {
		t.Errorf("%d of %d messages of a stream between two brokers were lost across the kubelet restart", missing, sent)
	}
	for i, w := range clients {
		if d := w.disconnects.Load(); d != 0 || !w.IsConnected() {
			t.Errorf("client of %s: %d disconnects (connected %v)", pods[i].Name, d, w.IsConnected())
		}
	}
	assertSamePods(t, c, nc, pods, restarts)
}

// TestChaosBrokerSIGKILLUnderTraffic: 3 publishers and 3 subscribers, one of
// each on every broker, each publisher a numbered stream to every subscriber;
// one broker process is SIGKILLed. Every client it had reconnects to another
// broker within a bound, no publisher is left without a server, and once every
// subscriber's interest has reached the surviving brokers (a fence message),
// every message published is delivered to every subscriber. Core NATS is at
// most once: what was lost in flight is counted and reported. The killed
// broker restarts and rejoins: routes to both survivors, and the interest
// they held before it came back, so that a publisher on it reaches every
// subscriber.
func TestChaosBrokerSIGKILLUnderTraffic(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "sigkill", 3)
	waitReady(t, c, nc, 5*time.Minute)
	pods := waitMesh(t, c, nc, 3, 2*time.Minute)
	var urls []string
	for _, p := range pods {
		urls = append(urls, natsURL(clientAddr(p)))
	}
	// Client i starts on pod i, then knows the other two.
	order := func(i int) []string { return append(slices.Clone(urls[i:]), urls[:i]...) }
	var pubs, subs []*watchedConn
	for i := range pods {
		subs = append(subs, connectWatched(t, "myname", "password", order(i)...))
	}
	for i := range pods {
		pubs = append(pubs, connectWatched(t, "myname", "password", order(i)...))
	}
	traffic := startNumberedTraffic(t, pubs, subs, "chaos.sigkill")
	// Interest that exists before the kill, for the restarted broker to
	// learn from the survivors when its routes come back.
	const rejoinSubject = "chaos.sigkill.rejoin"
	var rejoin []*nats.Subscription
	for _, s := range subs {
		sub, err := s.SubscribeSync(rejoinSubject)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		rejoin = append(rejoin, sub)
	}

	victim := pods[0]
	pid := containerProcess(t, &victim, resources.BrokerContainerName, "natsforge-broker")
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The victim's clients (publisher 0 and subscriber 0) reconnect elsewhere.
	waitFor(t, 30*time.Second, "every client of the killed broker reconnected elsewhere", func(context.Context) (bool, error) {
		for _, w := range []*watchedConn{pubs[0], subs[0]} {
			if w.reconnects.Load() == 0 || !w.IsConnected() || w.ConnectedUrl() == urls[0] {
				return false, nil
			}
		}
		return true, nil
	})
	reconnected := time.Since(killed)
	t.Logf("CONVERGED: the killed broker's clients reconnected to other brokers %s after SIGKILL (longest outage: publisher %s, subscriber %s)",
		reconnected.Round(time.Millisecond), pubs[0].longestOutage().Round(time.Millisecond), subs[0].longestOutage().Round(time.Millisecond))
	for i, w := range append(slices.Clone(pubs), subs...) {
		if !w.IsConnected() {
			t.Errorf("client %d has no server", i)
		}
	}
	traffic.fence(t, time.Minute)
	t.Logf("fence passed %s after SIGKILL", time.Since(killed).Round(time.Millisecond))
	traffic.finish(t)
	// The killed broker's container restarts and rejoins the mesh.
	waitMesh(t, c, nc, 3, 2*time.Minute)
	t.Logf("the killed broker restarted and rejoined the mesh %s after SIGKILL", time.Since(killed).Round(time.Millisecond))
	// Rejoined means interest too: the survivors tell the restarted broker
	// what their clients subscribed to before it came back (every client is
	// on a survivor now), and a publisher on it reaches every subscriber.
	pub, err := connect(clientAddr(victim), "myname", "password")
	if err != nil {
		t.Fatalf("a publisher on the restarted broker %s: %v", victim.Name, err)
	}
	defer pub.Close()
	heard := make([]bool, len(rejoin))
	waitFor(t, 30*time.Second, "a publisher on the restarted broker reaching every subscriber", func(context.Context) (bool, error) {
		if err := pub.Publish(rejoinSubject, nil); err != nil {
			return false, err
		}
		_ = pub.Flush()
		var deaf []string
		for i, s := range rejoin {
			if !heard[i] {
				m, _ := s.NextMsg(100 * time.Millisecond)
				heard[i] = m != nil
			}
			if !heard[i] {
				deaf = append(deaf, fmt.Sprintf("subscriber %d (on %s)", i, subs[i].ConnectedAddr()))
			}
		}
		if len(deaf) > 0 {
			return false, fmt.Errorf("not heard by %s", strings.Join(deaf, ", "))
		}
		return true, nil
	})
	t.Logf("a publisher on the restarted broker reaches every subscriber %s after SIGKILL", time.Since(killed).Round(time.Millisecond))
}

// TestChaosFiftyEditsOfOnePassword: one password Secret edited 50 times in
// 10 s. The last password wins on every pod and the operator hashes far fewer
// than 50 passwords (edits that arrive while a reconcile runs coalesce).
func TestChaosFiftyEditsOfOnePassword(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	nc := newNatsCluster(t, c, ns, "churn", 3)
	waitReady(t, c, nc, 5*time.Minute)
	pods := brokerPods(t, c, nc)
	token := metricsScraperToken(t)
	op := operatorPod(t)
	bcrypts := func() float64 {
		var n float64
		waitFor(t, 30*time.Second, "the operator's metrics", func(ctx context.Context) (bool, error) {
			m, err := scrapeMetrics(ctx, op.Status.PodIP, token)
			if err != nil {
				return false, err
			}
			v, ok := m["natsforge_bcrypt_operations_total"]
			n = v
			return ok, fmt.Errorf("no natsforge_bcrypt_operations_total")
		})
		return n
	}
	before := bcrypts()

	start := time.Now()
	var passwords []string
	for i := 1; i <= 50; i++ {
		passwords = append(passwords, fmt.Sprintf("edit-%02d-%d", i, time.Now().UnixNano()))
		setPassword(t, c, ns, nc.Name+"-myname", passwords[i-1])
		time.Sleep(time.Until(start.Add(time.Duration(i) * 200 * time.Millisecond))) // the edits' pace, 5 a second
	}
	edited := time.Now()
	t.Logf("50 edits in %s", edited.Sub(start).Round(time.Millisecond))
	final := passwords[49]
	waitPassword(t, pods, "myname", "password", final, 2*time.Minute)
	t.Logf("CONVERGED: the last password enforced on every pod %s after the last edit", time.Since(edited).Round(time.Millisecond))
	// The last password only: not the one before it, nor earlier ones.
	for _, p := range pods {
		for _, stale := range []string{passwords[48], passwords[24], passwords[0]} {
			if conn, err := connect(clientAddr(p), "myname", stale); err == nil {
				conn.Close()
				t.Errorf("pod %s accepts the superseded password %s", p.Name, stale[:7])
			}
		}
	}
	waitCondition(t, c, nc, natsforgev1alpha1.ConditionConfigPropagated, metav1.ConditionTrue, natsforgev1alpha1.ReasonConfigCurrent, time.Minute)
	after := bcrypts()
	n := after - before
	t.Logf("operator bcrypt operations for 50 edits: %.0f", n)
	// The operator hashes a quiet cluster's first change at once and then at
	// most one a second (its hash pacing): about 11 for 10 s of edits.
	if n > 20 || n < 1 {
		t.Errorf("the operator hashed %.0f times for 50 edits of one password, want at least 1 and at most 20 (one a second)", n)
	}
}

// TestChaosNatsClusterRecreatedWithSameName: a NatsCluster and its password
// Secret are deleted and created again under the same names with another
// password, while clients keep trying both passwords through the Service's
// name. Once the new cluster's pods serve, the old password is never
// accepted, by any pod or through the Service.
func TestChaosNatsClusterRecreatedWithSameName(t *testing.T) {
	c := ensureOperator(t)
	ns := newNamespace(t)
	ctx := context.Background()
	nc := newNatsCluster(t, c, ns, "again", 3)
	waitReady(t, c, nc, 5*time.Minute)
	oldPods := brokerPods(t, c, nc)

	// Retrying clients, through the Service's DNS name (a new ClusterIP after
	// the re-creation), with both passwords.
	host := net.JoinHostPort(serviceName(nc), "4222")
	type attempt struct {
		at   time.Time
		pass string
		ok   bool
	}
	var mu sync.Mutex
	var attempts []attempt
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, pass := range []string{"password", "second-life"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				conn, err := connect(host, "myname", pass, nats.Timeout(time.Second))
				if err == nil {
					conn.Close()
				}
				mu.Lock()
				attempts = append(attempts, attempt{time.Now(), pass, err == nil})
				mu.Unlock()
			}
		}()
	}

	succeeded := func(pass string, after time.Time) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range attempts {
			if a.ok && a.pass == pass && a.at.After(after) {
				return true
			}
		}
		return false
	}
	waitFor(t, time.Minute, "a retrying client through the Service with the old password", func(context.Context) (bool, error) {
		return succeeded("password", time.Time{}), nil
	})

	start := time.Now()
	if err := c.Delete(ctx, nc); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: nc.Name + "-myname"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the NatsCluster gone", func(ctx context.Context) (bool, error) {
		err := c.Get(ctx, client.ObjectKeyFromObject(nc), &natsforgev1alpha1.NatsCluster{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	// At once, while the garbage collector may still be removing the old
	// children (config Secret, StatefulSet, pods in lame duck).
	if err := c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: nc.Name + "-myname"},
		StringData: map[string]string{"password": "second-life"}}); err != nil {
		t.Fatal(err)
	}
	replica := int32(3)
	again := &natsforgev1alpha1.NatsCluster{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: nc.Name},
		Spec: natsforgev1alpha1.NatsClusterSpec{Replicas: &replica, TLS: nc.Spec.TLS, Auth: natsforgev1alpha1.AuthSpec{
			Users: []natsforgev1alpha1.User{{Name: "myname",
				PasswordSecretRef: &natsforgev1alpha1.SecretKeyReference{Name: nc.Name + "-myname", Key: "password"}}}}},
	}
	if err := c.Create(ctx, again); err != nil {
		t.Fatal(err)
	}
	recreated := time.Now()
	t.Logf("deleted and re-created under the same name in %s", recreated.Sub(start).Round(time.Millisecond))
	waitReady(t, c, again, 5*time.Minute)
	var newPods []corev1.Pod
	waitFor(t, 2*time.Minute, "three broker pods of the new cluster", func(context.Context) (bool, error) {
		newPods = brokerPods(t, c, again)
		return len(newPods) == 3, nil
	})
	replaced := 0
	for _, p := range newPods {
		if !slices.ContainsFunc(oldPods, func(o corev1.Pod) bool { return o.UID == p.UID }) {
			replaced++
		}
	}
	t.Logf("the new cluster runs %d new pods of 3", replaced)
	waitPassword(t, newPods, "myname", "password", "second-life", time.Minute)
	t.Logf("CONVERGED: the new cluster serves only the new password on every pod %s after the re-creation", time.Since(recreated).Round(time.Millisecond))
	served := time.Now()
	// The retrying clients get through with the new password via the Service
	// (its name resolves anew once the DNS cache lets go of the old Service
	// or its absence, up to 30 s), and keep trying both for a while.
	waitFor(t, time.Minute, "a retrying client through the Service with the new password", func(context.Context) (bool, error) {
		return succeeded("second-life", served), nil
	})
	t.Logf("CONVERGED: retrying clients through the Service log in with the new password %s after the re-creation", time.Since(recreated).Round(time.Millisecond))
	time.Sleep(3 * time.Second) // more attempts with both passwords against the new cluster, not a wait for a condition
	close(stop)
	wg.Wait()
	var oldAfter, oldBefore, newOK int
	for _, a := range attempts {
		switch {
		case a.ok && a.pass == "password" && a.at.After(served):
			oldAfter++
		case a.ok && a.pass == "password":
			oldBefore++
		case a.ok:
			newOK++
		}
	}
	t.Logf("retrying clients: %d attempts; old password accepted %d times before the new cluster served (old pods), %d after; new password accepted %d times",
		len(attempts), oldBefore, oldAfter, newOK)
	if oldAfter > 0 {
		t.Errorf("the old password was accepted %d times through the Service after the re-created cluster served", oldAfter)
	}
}

// --- helpers of the chaos tests ---

// setPassword writes pass into the Secret's "password" key.
func setPassword(t *testing.T, c client.Client, ns, name, pass string) {
	t.Helper()
	var s corev1.Secret
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data = map[string][]byte{"password": []byte(pass)}
	if err := c.Update(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
}

// waitPassword waits until every pod refuses user's old password and accepts
// the new one.
func waitPassword(t *testing.T, pods []corev1.Pod, user, old, next string, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "the new password, and only it, on every pod", func(context.Context) (bool, error) {
		for _, p := range pods {
			if conn, err := connect(clientAddr(p), user, old); err == nil {
				conn.Close()
				return false, fmt.Errorf("%s accepts the old password", p.Name)
			}
			conn, err := connect(clientAddr(p), user, next)
			if err != nil {
				return false, fmt.Errorf("%s: new password: %v", p.Name, err)
			}
			conn.Close()
		}
		return true, nil
	})
}

// annotationOf is the config-hash annotation the named pod had in pods.
func annotationOf(pods []corev1.Pod, name string) string {
	for _, p := range pods {
		if p.Name == name {
			return p.Annotations[configHashAnnotation]
		}
	}
	return ""
}

// assertSamePods fails unless the cluster still runs the same pods (UIDs) with
// no more container restarts than before.
func assertSamePods(t *testing.T, c client.Client, nc *natsforgev1alpha1.NatsCluster, before []corev1.Pod, restarts int32) {
	t.Helper()
	now := brokerPods(t, c, nc)
	if len(now) != len(before) {
		t.Errorf("%d broker pods, had %d", len(now), len(before))
		return
	}
	for i := range now {
		if now[i].UID != before[i].UID {
			t.Errorf("broker pod %s was replaced", now[i].Name)
		}
	}
	if r := podRestarts(t, c, nc); r != restarts {
		t.Errorf("broker containers restarted (%d -> %d)", restarts, r)
	}
}

// restartComponent restarts a local cluster component
// (hack/local-cluster/restart.sh), stopping it with SIGKILL when kill is set,
// else with SIGTERM.
func restartComponent(t *testing.T, name string, kill bool) {
	t.Helper()
	componentPid(t, name) // fails clearly off the local cluster
	args := []string{name}
	if kill {
		args = []string{"--kill", name}
	}
	out, err := exec.Command(filepath.Join(repoRoot, "hack", "local-cluster", "restart.sh"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("restart %s: %v\n%s", name, err, out)
	}
	t.Logf("%s", strings.TrimSpace(string(out)))
}

// waitAPIServer waits for the API server's /readyz.
func waitAPIServer(t *testing.T, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "kube-apiserver /readyz", func(ctx context.Context) (bool, error) {
		_, err := kube.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil, nil
	})
}

func httpOK(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func podCondition(p *corev1.Pod, typ corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == typ {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

const operatorSelector = "app.kubernetes.io/name=natsforge,app.kubernetes.io/component=operator"

// operatorPod is the one running operator pod.
func operatorPod(t *testing.T) corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	waitFor(t, time.Minute, "one Ready operator pod", func(ctx context.Context) (bool, error) {
		p, ok := readyOperatorPod(ctx, "")
		pod = p
		return ok, nil
	})
	return pod
}

// readyOperatorPod is a Ready operator pod other than the one of uid not.
func readyOperatorPod(ctx context.Context, not types.UID) (corev1.Pod, bool) {
	list, err := kube.CoreV1().Pods(operatorNamespace).List(ctx, metav1.ListOptions{LabelSelector: operatorSelector})
	if err != nil {
		return corev1.Pod{}, false
	}
	for _, p := range list.Items {
		if p.UID != not && isPodReady(&p) {
			return p, true
		}
	}
	return corev1.Pod{}, false
}

// operatorClient is a clientset that acts as the operator's ServiceAccount.
type operatorClient struct {
	*kubernetes.Clientset
	user string
}

func impersonateOperator(t *testing.T, c client.Client) operatorClient {
	t.Helper()
	user := operatorUser(t, c)
	cfg := rest.CopyConfig(restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + operatorNamespace, "system:authenticated"}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return operatorClient{cs, user}
}

// operatorUser is the user name of the operator's ServiceAccount.
func operatorUser(t *testing.T, c client.Client) string {
	t.Helper()
	var deploy appsv1.DeploymentList
	if err := c.List(context.Background(), &deploy, client.InNamespace(operatorNamespace)); err != nil || len(deploy.Items) != 1 {
		t.Fatalf("the operator's Deployment in %s: %v (%d found)", operatorNamespace, err, len(deploy.Items))
	}
	return fmt.Sprintf("system:serviceaccount:%s:%s", operatorNamespace, deploy.Items[0].Spec.Template.Spec.ServiceAccountName)
}

const holdPolicy = "e2e-hold-operator-pod-writes"

// holdOperatorPodWrites denies user's pod updates in ns (a
// ValidatingAdmissionPolicy of the test's own, removed at cleanup).
func holdOperatorPodWrites(t *testing.T, ns, user string) {
	t.Helper()
	ctx := context.Background()
	fail := admissionregistrationv1.Fail
	inNS := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}}
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: holdPolicy},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: &fail,
			MatchConstraints: &admissionregistrationv1.MatchResources{
				NamespaceSelector: inNS,
				ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
				}}},
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{Name: "operator", Expression: "request.userInfo.username == '" + user + "'"}},
			Validations:     []admissionregistrationv1.Validation{{Expression: "false", Message: "e2e: the operator's pod writes are held"}},
		},
	}
	if _, err := kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: holdPolicy},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        holdPolicy,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources:    &admissionregistrationv1.MatchResources{NamespaceSelector: inNS},
		},
	}
	if _, err := kube.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { releaseOperatorPodWrites(t, ns) })
}

func releaseOperatorPodWrites(t *testing.T, _ string) {
	ctx := context.Background()
	for _, err := range []error{
		kube.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(ctx, holdPolicy, metav1.DeleteOptions{}),
		kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(ctx, holdPolicy, metav1.DeleteOptions{}),
	} {
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("lifting the hold: %v", err)
		}
	}
}

// stream is a publisher on one broker sending numbered messages to a
// subscriber on another, every 20 ms, until stop.
type stream struct {
	sent, got atomic.Int64
	seen      sync.Map
	done      chan struct{}
	wg        sync.WaitGroup
	pub       *watchedConn
}

func startStream(t *testing.T, pub, sub *watchedConn, subject string) *stream {
	t.Helper()
	s := &stream{done: make(chan struct{}), pub: pub}
	if _, err := sub.Subscribe(subject, func(m *nats.Msg) {
		if _, dup := s.seen.LoadOrStore(string(m.Data), true); !dup {
			s.got.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	// Interest crosses the route asynchronously: the stream starts once a
	// probe message arrives.
	probe, err := sub.SubscribeSync(subject + ".probe")
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.Flush()
	waitFor(t, 30*time.Second, "the stream's route interest", func(context.Context) (bool, error) {
		_ = pub.Publish(subject+".probe", nil)
		m, _ := probe.NextMsg(200 * time.Millisecond)
		return m != nil, nil
	})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := 1; ; n++ {
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
			if pub.Publish(subject, []byte(strconv.Itoa(n))) == nil {
				s.sent.Add(1)
			}
		}
	}()
	return s
}

// stop ends the stream and waits (bounded) for what was sent to arrive.
func (s *stream) stop(t *testing.T) (sent, got, missing int64) {
	t.Helper()
	close(s.done)
	s.wg.Wait()
	_ = s.pub.Flush()
	waitFor(t, 10*time.Second, "the stream's last messages", func(context.Context) (bool, error) {
		return s.got.Load() >= s.sent.Load(), nil
	})
	return s.sent.Load(), s.got.Load(), s.sent.Load() - s.got.Load()
}

// numberedTraffic is every publisher sending numbered messages ("i n", n
// from 1) on one subject every 10 ms to every subscriber, each of which
// records what it received from whom (fanIn). Core NATS is at most once: the
// test sets a fence once its disturbance is over (fence), and from there on
// nothing may be lost; before it, what was lost in flight is only counted
// (finish).
type numberedTraffic struct {
	pubs    []*watchedConn
	streams []*fanIn
	seq     []atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
	marks   []int64 // the fence: each publisher's first number that must arrive
}

// startNumberedTraffic subscribes every subscriber, starts the publishers and
// waits until every subscriber hears every publisher. The publishers stop at
// the test's end at the latest.
func startNumberedTraffic(t *testing.T, pubs, subs []*watchedConn, subject string) *numberedTraffic {
	t.Helper()
	tr := &numberedTraffic{pubs: pubs, seq: make([]atomic.Int64, len(pubs)), stop: make(chan struct{})}
	for i, s := range subs {
		tr.streams = append(tr.streams, subscribeFanIn(t, s, fmt.Sprintf("sub%d", i), subject, len(pubs)))
	}
	for _, s := range subs {
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range pubs {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-tr.stop:
					return
				case <-tick.C:
				}
				n := tr.seq[i].Add(1)
				// nats.go buffers while reconnecting; what it cannot send is
				// an error here, and the sequence number is lost, counted.
				_ = p.Publish(subject, []byte(fmt.Sprintf("%d %d", i, n)))
			}
		}()
	}
	t.Cleanup(tr.halt)
	waitFor(t, 30*time.Second, "every subscriber receiving every publisher", func(context.Context) (bool, error) {
		for _, s := range tr.streams {
			if !s.hearsAll() {
				return false, nil
			}
		}
		return true, nil
	})
	return tr
}

// halt stops the publishers (once) and waits for them.
func (tr *numberedTraffic) halt() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	tr.wg.Wait()
}

// fence marks each publisher's next number as the point from which nothing
// may be lost, and waits until every subscriber has received it: from then
// on every subscriber's interest has reached the broker of every publisher.
func (tr *numberedTraffic) fence(t *testing.T, timeout time.Duration) {
	t.Helper()
	tr.marks = make([]int64, len(tr.pubs))
	for i := range tr.pubs {
		tr.marks[i] = tr.seq[i].Load() + 1
	}
	tr.waitPast(t, tr.marks, timeout, "every subscriber past every publisher's fence")
}

func (tr *numberedTraffic) waitPast(t *testing.T, marks []int64, timeout time.Duration, what string) {
	t.Helper()
	waitFor(t, timeout, what, func(context.Context) (bool, error) {
		for _, s := range tr.streams {
			for i := range tr.pubs {
				if s.highest(i) < marks[i] {
					return false, nil
				}
			}
		}
		return true, nil
	})
}

// finish lets a few more seconds of traffic flow past the fence, stops the
// publishers, waits for their last messages, logs what each subscriber lost
// before the fence and fails on anything lost after it. It returns how many
// messages were lost in flight before the fence, all subscribers together.
func (tr *numberedTraffic) finish(t *testing.T) (lostInFlight int) {
	t.Helper()
	if tr.marks == nil {
		t.Fatal("numberedTraffic.finish before fence")
	}
	time.Sleep(2 * time.Second) // traffic to count, not a wait for a condition
	tr.halt()
	for _, p := range tr.pubs {
		_ = p.Flush()
	}
	last := make([]int64, len(tr.pubs))
	for i := range tr.pubs {
		last[i] = tr.seq[i].Load()
	}
	tr.waitPast(t, last, 30*time.Second, "every subscriber to receive each publisher's last message")
	for si, s := range tr.streams {
		for i := range tr.pubs {
			before, after := s.missing(i, 1, tr.marks[i]-1), s.missing(i, tr.marks[i], last[i])
			lostInFlight += before
			t.Logf("subscriber %d from publisher %d: %d published, %d lost in flight before the fence, %d after", si, i, last[i], before, after)
			if after > 0 {
				t.Errorf("subscriber %d lost %d of publisher %d's messages published after the fence (%d..%d)", si, after, i, tr.marks[i], last[i])
			}
		}
	}
	return lostInFlight
}

// fanIn records, per publisher, which sequence numbers a subscriber received.
type fanIn struct {
	mu   sync.Mutex
	seen []map[int64]bool
	high []int64
}

func subscribeFanIn(t *testing.T, w *watchedConn, name, subject string, publishers int) *fanIn {
	t.Helper()
	f := &fanIn{}
	for range publishers {
		f.seen = append(f.seen, map[int64]bool{})
		f.high = append(f.high, 0)
	}
	if _, err := w.Subscribe(subject, func(m *nats.Msg) {
		var i int
		var n int64
		if _, err := fmt.Sscanf(string(m.Data), "%d %d", &i, &n); err != nil || i < 0 || i >= publishers {
			return
		}
		f.mu.Lock()
		f.seen[i][n] = true
		f.high[i] = max(f.high[i], n)
		f.mu.Unlock()
	}); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return f
}

func (f *fanIn) hearsAll() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.high {
		if h == 0 {
			return false
		}
	}
	return true
}

func (f *fanIn) highest(i int) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.high[i]
}

// missing counts the numbers of publisher i in [from, to] never received.
func (f *fanIn) missing(i int, from, to int64) (n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := from; k <= to; k++ {
		if !f.seen[i][k] {
			n++
		}
	}
	return n
}
