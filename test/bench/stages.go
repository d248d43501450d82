//go:build bench

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/natsforge/natsforge/api/v1alpha1"
	"github.com/natsforge/natsforge/controllers/resources"
)

// Where a rotation's time goes, read from the logs the components write
// anyway, each line timed by the container runtime (kubectl logs
// --timestamps; one clock, this machine's):
//
//	operator: "config Secret written" (with its reconcile's start and the
//	          moment it had rendered the config) and
//	          "pod annotated with the new config" (one per pod)
//	broker:   "config file changed on disk, reloading" (the kubelet has
//	          written the mounted Secret) and "config reloaded"
//
// A rotation's lines are the first of each kind between its Secret edit and
// the next rotation's.

// logLine is one timestamped line.
type logLine struct {
	at   time.Time
	text string
}

// podLog reads a container's log since since, each line with its runtime
// timestamp.
func (e *clusterEnv) podLog(ctx context.Context, ns, pod, container string, since time.Time) ([]logLine, error) {
	st := metav1.NewTime(since)
	b, err := e.kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, Timestamps: true, SinceTime: &st}).Do(ctx).Raw()
	if err != nil {
		return nil, fmt.Errorf("log of %s/%s: %w", ns, pod, err)
	}
	var out []logLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ts, text, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			continue
		}
		out = append(out, logLine{at, text})
	}
	return out, sc.Err()
}

var (
	reReconcileStarted = regexp.MustCompile(`"?reconcileStarted"?[:=]"?([0-9][0-9TZ:.+-]+)`)
	reRendered         = regexp.MustCompile(`"?rendered"?[:=]"?([0-9][0-9TZ:.+-]+)`)
)

// first returns the first line in [from, to) containing all of words, or
// nil.
func first(lines []logLine, from, to time.Time, words ...string) *logLine {
	for i := range lines {
		l := &lines[i]
		if l.at.Before(from) || !l.at.Before(to) {
			continue
		}
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l.text, w)
		}
		if ok {
			return l
		}
	}
	return nil
}

// stages fills in each rotation's stage times from the operator's and the
// brokers' logs.
func (e *clusterEnv) stages(ctx context.Context, rs []*rotation, nc *v1alpha1.NatsCluster, pods []corev1.Pod, since time.Time) error {
	if len(rs) == 0 {
		return nil
	}
	op, err := e.operatorPod(ctx)
	if err != nil {
		return err
	}
	opLog, err := e.podLog(ctx, op.Namespace, op.Name, "manager", since)
	if err != nil {
		return err
	}
	brokerLogs := map[string][]logLine{}
	for _, p := range pods {
		if brokerLogs[p.Name], err = e.podLog(ctx, p.Namespace, p.Name, resources.BrokerContainerName, since); err != nil {
			return err
		}
	}
	// The operator's lines of this cluster: controller-runtime names its
	// namespace (random, made by the bench) in each reconcile's logger.
	ours := nc.Namespace
	missing := 0
	for i, r := range rs {
		to := time.Now()
		if i+1 < len(rs) {
			to = rs[i+1].Edit
		}
		since := func(t time.Time) float64 { return t.Sub(r.Edit).Seconds() }
		r.ReconcileStarted, r.Rendered, r.ConfigWritten = math.NaN(), math.NaN(), math.NaN()
		if l := first(opLog, r.Edit, to, "config Secret written", ours); l != nil {
			r.ConfigWritten = since(l.at)
			if m := reReconcileStarted.FindStringSubmatch(l.text); m != nil {
				if t, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
					r.ReconcileStarted = since(t)
				}
			}
			if m := reRendered.FindStringSubmatch(l.text); m != nil {
				if t, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
					r.Rendered = since(t)
				}
			}
		} else {
			missing++
		}
		for _, p := range pods {
			ps := r.Pods[p.Name]
			if ps == nil {
				continue
			}
			if l := first(opLog, r.Edit, to, "pod annotated with the new config", ours, fmt.Sprintf(`"pod":"%s"`, p.Name)); l != nil {
				ps.Annotated = since(l.at)
			}
			if l := first(brokerLogs[p.Name], r.Edit, to, "config file changed on disk"); l != nil {
				ps.FileSeen = since(l.at)
			}
			if l := first(brokerLogs[p.Name], r.Edit, to, "config reloaded"); l != nil {
				ps.Reloaded = since(l.at)
			}
		}
	}
	if missing > 0 {
		logf("  %d of %d rotations left no \"config Secret written\" line in the operator's log (an operator without it, or the log rotated)", missing, len(rs))
	}
	return nil
}

// stage is one step of a rotation and how long it took in each sample.
type stage struct {
	name, short, what string
	secs              []float64
}

// stageBreakdown turns rotations into per-stage durations: per rotation for
// the operator's stages, per rotation and pod for the others.
func stageBreakdown(rs []*rotation) []stage {
	st := []stage{
		{name: "operator reaction", short: "react", what: "Secret edit to the start of the reconcile that wrote the config (the watch event, the queue)"},
		{name: "hash and render", short: "hash", what: "reconcile start to the config rendered (reading the Secrets, one bcrypt, rendering)"},
		{name: "config Secret written", short: "write", what: "rendered to the config Secret written (its parts, the manifest)"},
		{name: "pod annotated", short: "annotate", what: "config Secret written to the pod's annotation patched (the workload phase, the patches)"},
		{name: "kubelet refresh", short: "kubelet", what: "pod annotated to the broker seeing the mounted config change"},
		{name: "broker reload", short: "reload", what: "config change seen to the broker's \"config reloaded\""},
		{name: "old password refused", short: "refused", what: "reloaded to a probe's fresh connection with the old password refused (one bcrypt on the broker, never cached for a failure)"},
		{name: "new password accepted", short: "accepted", what: "old refused to the same probe's next connection, with the new password, accepted (one bcrypt on the broker)"},
	}
	for _, r := range rs {
		st[0].secs = append(st[0].secs, r.ReconcileStarted)
		st[1].secs = append(st[1].secs, r.Rendered-r.ReconcileStarted)
		st[2].secs = append(st[2].secs, r.ConfigWritten-r.Rendered)
		for _, ps := range r.Pods {
			st[3].secs = append(st[3].secs, ps.Annotated-r.ConfigWritten)
			st[4].secs = append(st[4].secs, ps.FileSeen-ps.Annotated)
			st[5].secs = append(st[5].secs, ps.Reloaded-ps.FileSeen)
			st[6].secs = append(st[6].secs, ps.OldRefused-ps.Reloaded)
			st[7].secs = append(st[7].secs, ps.Enforced-ps.OldRefused)
		}
	}
	return st
}
