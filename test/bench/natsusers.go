//go:build bench

package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// natsUserRows time one NatsCluster with many NatsUsers (generated
// passwords) against envtest: the cold reconcile that creates every
// credentials Secret and hashes every password, a resync (no bcrypt, no
// write), one password changed among them, and the memory it takes.
func (h *harness) natsUserRows() []*row {
	n := h.cfg.natsUsers
	name := func(s string) string { return fmt.Sprintf("operator: %s, 1 NatsCluster x %d NatsUsers", s, n) }
	rows := []*row{
		{group: "operator", metric: metric{name: name("cold reconcile (creates every credentials Secret, hashes every password)"), unit: "ms"}},
		{group: "operator", metric: metric{name: name("resync, nothing changed"), unit: "ms"}},
		{group: "operator", metric: metric{name: "operator: bcrypt operations in that NatsUser resync", unit: "ops"}, aimNote: "= 0"},
		{group: "operator", metric: metric{name: "operator: API writes in that NatsUser resync", unit: "writes"}, aimNote: "= 0"},
		{group: "operator", metric: metric{name: name("one password changed: Secret edit to config Secret written"), unit: "ms"}},
		{group: "operator", metric: metric{name: name("operator Go heap in use after GC"), unit: "MiB"}},
		{group: "operator", metric: metric{name: name("bench process RSS (operator cache, reconciler and harness)"), unit: "MiB"}},
	}
	note := fmt.Sprintf("envtest (kube-apiserver and etcd from bin/k8s); the reconciler from controllers/ reads NatsUsers, pods and Secret metadata through a manager's cache "+
		"as the operator does, Secret data straight from the API server (generated credentials Secrets listed per namespace, 500 a page); Reconcile called directly (one worker), "+
		"bcrypt cost %d; API writes counted by wrapping its client. No pods run under envtest: the one-change row ends when the config Secret (and its parts) are written, "+
		"before the kubelet and the brokers, which e2e and the rotation rows measure; the config of %d users is delivered in parts (broker/conf/parts.go). "+
		"Memory is read after the resyncs: the Go heap after a forced GC, and VmRSS of the whole bench process", opCost, n)
	for _, r := range rows {
		r.oursOnly = true
		r.note = note
	}
	logf("NatsUser rows (1 cluster x %d NatsUsers, %d runs)", n, h.cfg.opRuns)
	if err := h.measureNatsUsers(rows); err != nil {
		logf("  natsusers: %v", err)
		h.errlog = append(h.errlog, "natsusers: "+err.Error())
		for _, r := range rows {
			if len(r.ours) == 0 {
				r.missing = err.Error()
			}
		}
	}
	for _, i := range []int{2, 3} {
		if len(finite(rows[i].ours)) > 0 {
			rows[i].verdictNote = "yes"
			for _, v := range rows[i].ours {
				if v != 0 {
					rows[i].verdictNote = "**no**"
				}
			}
		}
	}
	return rows
}

func (h *harness) measureNatsUsers(rows []*row) error {
	n, runs := h.cfg.natsUsers, h.cfg.opRuns
	const ns = "bench-natsusers"
	ctx, e, err := startOperatorEnv(ns)
	if err != nil {
		return err
	}
	defer e.stop()
	direct, mgr, rec, writes := e.direct, e.mgr, e.rec, e.writes
	// The operator's informers: NatsUsers, and Secrets by metadata.
	secretMeta := &metav1.PartialObjectMetadata{}
	secretMeta.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "Secret"})
	if _, err := mgr.GetCache().GetInformer(ctx, secretMeta); err != nil {
		return err
	}

	nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "many"}}
	nc.Spec.Auth.BcryptCost = opCost
	if err := direct.Create(ctx, nc); err != nil {
		return err
	}
	logf("  creating %d NatsUsers", n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			return direct.Create(gctx, &v1alpha1.NatsUser{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("user-%05d", i)},
				Spec:       v1alpha1.NatsUserSpec{ClusterRef: v1alpha1.ClusterReference{Name: nc.Name}},
			})
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	req := reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)}
	// The cache has seen every NatsUser before the cold reconcile starts.
	waitCached := func() error {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var list v1alpha1.NatsUserList
			if err := mgr.GetClient().List(ctx, &list, client.InNamespace(ns)); err != nil {
				return err
			}
			if len(list.Items) == n {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the cache holds %d of %d NatsUsers", len(list.Items), n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err := waitCached(); err != nil {
		return err
	}
	var lastWrites int64
	pass := func() (time.Duration, float64, error) {
		ops, w := bcryptOps(), writes.Load()
		start := time.Now()
		if _, err := rec.Reconcile(ctx, req); err != nil {
			return 0, 0, err
		}
		lastWrites = writes.Load() - w
		return time.Since(start), bcryptOps() - ops, nil
	}
	settle := func() error {
		time.Sleep(time.Second) // the pass's status writes reach the cache
		_, _, err := pass()
		time.Sleep(time.Second)
		return err
	}

	d, ops, err := pass()
	if err != nil {
		return err
	}
	rows[0].ours = append(rows[0].ours, ms(d))
	logf("  cold reconcile: %v, %v bcrypt operations, %d API writes", d.Round(time.Millisecond), ops, lastWrites)
	if err := settle(); err != nil {
		return err
	}
	for run := range runs {
		d, ops, err := pass()
		if err != nil {
			return err
		}
		rows[1].ours = append(rows[1].ours, ms(d))
		rows[2].ours = append(rows[2].ours, ops)
		rows[3].ours = append(rows[3].ours, float64(lastWrites))
		logf("  resync %d: %v, %v bcrypt operations, %d API writes", run, d.Round(time.Millisecond), ops, lastWrites)
	}
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	rows[5].ours = append(rows[5].ours, float64(m.HeapInuse)/(1<<20))
	rows[6].ours = append(rows[6].ours, rssMiB())
	logf("  memory: heap in use %.0f MiB, RSS %.0f MiB", float64(m.HeapInuse)/(1<<20), rssMiB())

	for run := range runs {
		s := &corev1.Secret{}
		key := client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("user-%05d-user-credentials", (run*3571)%n)}
		if err := direct.Get(ctx, key, s); err != nil {
			return err
		}
		s.Data["password"] = []byte(fmt.Sprintf("rotated-%d", run))
		start := time.Now()
		if err := direct.Update(ctx, s); err != nil {
			return err
		}
		_, ops, err := pass()
		if err != nil {
			return err
		}
		d := time.Since(start)
		rows[4].ours = append(rows[4].ours, ms(d))
		logf("  one changed %d: %v, %v bcrypt operations, %d API writes", run, d.Round(time.Millisecond), ops, lastWrites)
		if err := settle(); err != nil {
			return err
		}
	}
	return nil
}

// rssMiB is this process's VmRSS in MiB.
func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return math.NaN()
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				return kb / 1024
			}
		}
	}
	return math.NaN()
}
