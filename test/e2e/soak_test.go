//go:build e2e && soak

package e2e

// The soak (make soak; not in CI, not in make e2e: build tag soak). For
// SOAK_DURATION (default 30m) a 3-broker NatsCluster on the local cluster
// carries steady traffic, has a user's password rotated every minute and is
// scaled 3 -> 5 -> 3 every SOAK_SCALE_EVERY (default 10m), while every broker's
// and the operator's RSS and goroutine count are sampled from their
// Prometheus metrics every 15 s. It writes docs/soak.md, docs/soak.png and the
// raw samples (bin/soak-samples.json) and fails on a leak: see soakBounds.

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	natsforgev1alpha1 "github.com/natsforge/natsforge/api/v1alpha1"
)

// soakBounds is what fails the soak, checked on the operator and on every
// broker that lived the whole run, over the steady parts of the run (after
// the warm-up, outside the scale windows):
//   - RSS: a least-squares slope above maxRSSSlope;
//   - goroutines: "growth without bound", a least-squares slope above
//     maxGoroutineSlope and a floor (the lowest count) in the last third of
//     the steady samples more than maxGoroutineRise above the floor of the
//     first third (the floors ignore the short-lived goroutines of a
//     connection that happens to be open at a sample);
//   - the operator pod replaced, or a broker container restarted (a restart
//     would hide a leak).
var soakBounds = struct {
	warmUp            time.Duration // at most; a third of a short run
	maxRSSSlope       float64       // KiB/min
	maxGoroutineSlope float64       // goroutines/min
	maxGoroutineRise  float64       // goroutines
}{2 * time.Minute, 1024, 1, 10}

const (
	soakSampleEvery   = 15 * time.Second
	soakRotateEvery   = time.Minute
	soakScaleTo       = 5
	soakReplicas      = 3
	soakScaleSettle   = 30 * time.Second // after a scale back to 3, still not steady
	soakTokenLifetime = 40 * time.Minute // metricsScraperToken's tokens last an hour
)

func TestSoak(t *testing.T) {
	duration, err := time.ParseDuration(envOr("SOAK_DURATION", "30m"))
	if err != nil {
		t.Fatalf("SOAK_DURATION: %v", err)
	}
	scaleEvery, err := time.ParseDuration(envOr("SOAK_SCALE_EVERY", "10m"))
	if err != nil {
		t.Fatalf("SOAK_SCALE_EVERY: %v", err)
	}
	run := &soakRun{
		Duration: duration.String(), ScaleEvery: scaleEvery.String(), Commit: envOr("SOAK_COMMIT", "unknown"),
		WarmUp: min(soakBounds.warmUp, duration/3).Seconds(),
	}
	c := ensureOperator(t)
	ns := newNamespace(t)
	ctx := context.Background()

	// myname carries the traffic; rotor's password is the one rotated, so
	// the traffic's clients are never the ones a rotation disconnects.
	rotorSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "soak-rotor"},
		StringData: map[string]string{"password": "rotation-0"}}
	if err := c.Create(ctx, rotorSecret); err != nil {
		t.Fatal(err)
	}
	nc := newNatsCluster(t, c, ns, "soak", soakReplicas, natsforgev1alpha1.User{Name: "rotor",
		PasswordSecretRef: &natsforgev1alpha1.SecretKeyReference{Name: rotorSecret.Name, Key: "password"}})
	waitReady(t, c, nc, 5*time.Minute)
	pods := waitMesh(t, c, nc, soakReplicas, 3*time.Minute)
	restarts := podRestarts(t, c, nc)
	operator := operatorPod(t)
	var sts appsv1.StatefulSet
	if err := c.Get(ctx, client.ObjectKeyFromObject(nc), &sts); err != nil {
		t.Fatal(err)
	}

	var token atomic.Pointer[string]
	refreshToken := func() time.Time {
		tok := metricsScraperToken(t)
		token.Store(&tok)
		return time.Now()
	}
	tokenAt := refreshToken()

	// Traffic: one stream from each broker to the next.
	var streams []*stream
	var conns []*watchedConn
	for i := range pods {
		pub := connectWatched(t, "myname", "password", natsURL(clientAddr(pods[i])))
		sub := connectWatched(t, "myname", "password", natsURL(clientAddr(pods[(i+1)%len(pods)])))
		conns = append(conns, pub, sub)
		streams = append(streams, startStream(t, pub, sub, fmt.Sprintf("soak.%s.to.%s", pods[i].Name, pods[(i+1)%len(pods)].Name)))
	}

	start := time.Now()
	run.Start = start.UTC()
	sampler := &soakSampler{run: run, start: start, ns: ns, token: &token,
		selector: labels.SelectorFromSet(sts.Spec.Selector.MatchLabels).String(), done: make(chan struct{})}
	sampler.wg.Add(1)
	go sampler.loop()

	// Whatever happens below, the report is written from what was measured.
	finished := false
	defer func() {
		sampler.stop()
		run.Finished = finished && !t.Failed()
		run.Elapsed = time.Since(start).Seconds()
		if !finished {
			run.Failures = append(run.Failures, fmt.Sprintf("the soak stopped after %s, before its end", time.Since(start).Round(time.Second)))
		}
		writeSoakReport(t, run)
	}()

	end := start.Add(duration)
	nextRotation, nextScale := start.Add(soakRotateEvery), start.Add(scaleEvery)
	password, rotations := "rotation-0", 0
	for {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		switch {
		case now.Sub(tokenAt) > soakTokenLifetime:
			tokenAt = refreshToken()
		case !now.Before(nextScale):
			// A rotation due meanwhile follows the scale.
			run.Scales = append(run.Scales, soakScale(t, c, nc, start))
			nextScale = nextScale.Add(scaleEvery)
		case !now.Before(nextRotation):
			rotations++
			next := fmt.Sprintf("rotation-%d-%d", rotations, time.Now().UnixNano())
			current := brokerPods(t, c, nc)
			began := time.Now()
			setPassword(t, c, ns, rotorSecret.Name, next)
			waitPassword(t, current, "rotor", password, next, 2*time.Minute)
			password = next
			run.Rotations = append(run.Rotations, soakRotation{At: began.Sub(start).Seconds(), Seconds: time.Since(began).Seconds()})
			for !nextRotation.After(time.Now()) {
				nextRotation = nextRotation.Add(soakRotateEvery)
			}
		default:
			// The schedule's next event, not a condition to poll for.
			time.Sleep(time.Until(slices.MinFunc([]time.Time{nextRotation, nextScale, end}, time.Time.Compare)))
		}
	}
	sampler.stop()
	t.Logf("soak of %s done: %d rotations, %d scale events, %d samples", duration, len(run.Rotations), len(run.Scales), len(run.Samples))

	for i, s := range streams {
		sent, got := s.drain(30 * time.Second)
		pub, sub := conns[2*i], conns[2*i+1]
		run.Traffic = append(run.Traffic, soakTraffic{
			Stream: fmt.Sprintf("%s -> %s", pods[i].Name, pods[(i+1)%len(pods)].Name),
			Sent:   sent, Received: got, Lost: sent - got,
			Disconnects: int(pub.disconnects.Load() + sub.disconnects.Load()),
		})
	}

	// What lived the whole run: the same operator pod, and the first brokers
	// with no container restart.
	if now := operatorPod(t); now.UID != operator.UID {
		run.Failures = append(run.Failures, fmt.Sprintf("the operator pod was replaced (%s -> %s)", operator.Name, now.Name))
	}
	if r := podRestarts(t, c, nc); r != restarts {
		run.Failures = append(run.Failures, fmt.Sprintf("broker containers restarted (%d -> %d)", restarts, r))
	}
	whole := map[string]bool{string(operator.UID): true}
	for _, p := range brokerPods(t, c, nc) {
		if slices.ContainsFunc(pods, func(q corev1.Pod) bool { return q.UID == p.UID }) {
			whole[string(p.UID)] = true
		}
	}
	run.assess(whole)
	finished = true
	for _, f := range run.Failures {
		t.Error(f)
	}
}

// soakScale scales the cluster to soakScaleTo brokers and back, each step
// waited for (Ready with that many pods, a full mesh), and returns its window.
func soakScale(t *testing.T, c client.Client, nc *natsforgev1alpha1.NatsCluster, start time.Time) soakWindow {
	t.Helper()
	began := time.Now()
	up, down := int32(soakScaleTo), int32(soakReplicas)
	updateNatsCluster(t, c, nc, func(nc *natsforgev1alpha1.NatsCluster) { nc.Spec.Replicas = &up })
	waitCurrent(t, c, nc, up, 5*time.Minute)
	waitMesh(t, c, nc, soakScaleTo, 3*time.Minute)
	scaledUp := time.Since(began)
	downAt := time.Now()
	updateNatsCluster(t, c, nc, func(nc *natsforgev1alpha1.NatsCluster) { nc.Spec.Replicas = &down })
	waitCurrent(t, c, nc, down, 5*time.Minute)
	waitMesh(t, c, nc, soakReplicas, 3*time.Minute)
	w := soakWindow{From: began.Sub(start).Seconds(), To: time.Since(start).Seconds(),
		Up: scaledUp.Seconds(), Down: time.Since(downAt).Seconds()}
	t.Logf("scaled %d -> %d in %s and back in %s", soakReplicas, soakScaleTo, scaledUp.Round(time.Second), time.Since(downAt).Round(time.Second))
	return w
}

// drain ends the stream and waits (at most timeout) for what was sent to
// arrive, without failing: the soak reports what was lost.
func (s *stream) drain(timeout time.Duration) (sent, got int64) {
	close(s.done)
	s.wg.Wait()
	_ = s.pub.Flush()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for s.got.Load() < s.sent.Load() && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	return s.sent.Load(), s.got.Load()
}

// soakSampler reads every broker pod's and the operator's RSS and goroutine
// count every soakSampleEvery, until stop.
type soakSampler struct {
	run      *soakRun
	start    time.Time
	ns       string
	selector string
	token    *atomic.Pointer[string]

	mu   sync.Mutex // guards run.Samples and run.ScrapeErrors
	done chan struct{}
	wg   sync.WaitGroup
}

func (s *soakSampler) loop() {
	defer s.wg.Done()
	tick := time.NewTicker(soakSampleEvery)
	defer tick.Stop()
	for {
		s.sample()
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
	}
}

// stop ends the loop (idempotent).
func (s *soakSampler) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	s.wg.Wait()
}

func (s *soakSampler) sample() {
	ctx := context.Background()
	at := time.Since(s.start).Seconds()
	var got []soakSample
	var errs []string
	record := func(pod corev1.Pod, m map[string]float64, err error) {
		rss, ok1 := m["process_resident_memory_bytes"]
		gr, ok2 := m["go_goroutines"]
		switch {
		case err != nil:
			errs = append(errs, fmt.Sprintf("%.0fs %s: %v", at, pod.Name, err))
		case !ok1 || !ok2:
			errs = append(errs, fmt.Sprintf("%.0fs %s: no process_resident_memory_bytes or go_goroutines", at, pod.Name))
		default:
			got = append(got, soakSample{At: at, Pod: pod.Name, UID: string(pod.UID), RSS: rss, Goroutines: gr})
		}
	}
	list, err := kube.CoreV1().Pods(s.ns).List(ctx, metav1.ListOptions{LabelSelector: s.selector})
	if err != nil {
		errs = append(errs, fmt.Sprintf("%.0fs broker pods: %v", at, err))
	} else {
		for _, p := range list.Items {
			if p.Status.PodIP == "" || p.DeletionTimestamp != nil || !isPodReady(&p) {
				continue
			}
			m, err := brokerMetrics(ctx, p.Status.PodIP)
			record(p, m, err)
		}
	}
	if op, ok := readyOperatorPod(ctx, ""); ok {
		m, err := scrapeMetrics(ctx, op.Status.PodIP, *s.token.Load())
		op.Name = "operator"
		record(op, m, err)
	} else {
		errs = append(errs, fmt.Sprintf("%.0fs: no Ready operator pod", at))
	}
	s.mu.Lock()
	s.run.Samples = append(s.run.Samples, got...)
	s.run.ScrapeErrors = append(s.run.ScrapeErrors, errs...)
	s.mu.Unlock()
}

// soakOutput is where make soak asks for a report file (SOAK_MD, SOAK_PNG,
// SOAK_SAMPLES), by default under the repository.
func soakOutput(env, def string) string {
	return envOr(env, filepath.Join(repoRoot, def))
}
