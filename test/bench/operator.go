//go:build bench

package main

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/natsforge/natsforge/api/v1alpha1"
)

// opCost is the bcrypt cost of the operator rows' clusters: the lowest the
// API allows, so that creating 200 x 20 users takes seconds, not minutes.
// A resync of unchanged users costs no bcrypt at any cost; a changed
// password costs one hash at the cluster's cost (the report gives cost 11).
const opCost = 6

// operatorRows times the reconciler against a real kube-apiserver and etcd
// (envtest): a pass over every NatsCluster when nothing changed, and when one
// password changed, with the bcrypt operations each pass cost.
func (h *harness) operatorRows() []*row {
	c := h.cfg
	name := func(s string) string {
		return fmt.Sprintf("operator: %s, %d NatsClusters x %d users", s, c.clusters, c.users)
	}
	rows := []*row{
		{group: "operator", metric: metric{name: name("first reconcile (creates everything)"), unit: "ms"}},
		{group: "operator", metric: metric{name: name("resync, nothing changed"), unit: "ms"}},
		{group: "operator", metric: metric{name: "operator: bcrypt operations in that unchanged resync", unit: "ops"}, aimNote: "= 0"},
		{group: "operator", metric: metric{name: "operator: API writes in that unchanged resync", unit: "writes"}, aimNote: "= 0"},
		{group: "operator", metric: metric{name: name("resync, one password changed"), unit: "ms"}},
		{group: "operator", metric: metric{name: "operator: bcrypt operations in that one-change resync", unit: "ops"}, aimNote: "= 1"},
	}
	note := fmt.Sprintf("envtest (kube-apiserver and etcd from bin/k8s); the reconciler from controllers/ reads through a manager's cache as the operator does, "+
		"Secrets straight from the API server; Reconcile is called for every cluster in turn (one worker); bcrypt cost %d; "+
		"bcrypt operations are read from the controller's natsforge_bcrypt_operations_total counter, API writes counted by wrapping its client; no pods run, so no digest probes", opCost)
	for _, r := range rows {
		r.oursOnly = true
		r.note = note
	}
	logf("operator rows (%d clusters x %d users, %d runs)", c.clusters, c.users, c.opRuns)
	if err := h.measureOperator(rows); err != nil {
		logf("  operator: %v", err)
		h.errlog = append(h.errlog, "operator: "+err.Error())
		for _, r := range rows {
			if len(r.ours) == 0 {
				r.missing = err.Error()
			}
		}
	}
	for _, i := range []int{2, 3, 5} {
		want := 0.0
		if i == 5 {
			want = 1
		}
		if len(finite(rows[i].ours)) > 0 {
			rows[i].verdictNote = "yes"
			for _, v := range rows[i].ours {
				if v != want {
					rows[i].verdictNote = "**no**"
				}
			}
		}
	}
	return rows
}

func (h *harness) measureOperator(rows []*row) error {
	c := h.cfg
	const ns = "bench"
	ctx, e, err := startOperatorEnv(ns)
	if err != nil {
		return err
	}
	defer e.stop()
	direct, rec, writes := e.direct, e.rec, e.writes

	logf("  creating %d NatsClusters and their password Secrets", c.clusters)
	var reqs []reconcile.Request
	for i := range c.clusters {
		name := fmt.Sprintf("c%03d", i)
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-passwords"}, Data: map[string][]byte{}}
		nc := &v1alpha1.NatsCluster{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		nc.Spec.Auth.BcryptCost = opCost
		for u := range c.users {
			key := fmt.Sprintf("user-%02d", u)
			sec.Data[key] = []byte(fmt.Sprintf("password-%s-%s", name, key))
			nc.Spec.Auth.Users = append(nc.Spec.Auth.Users, v1alpha1.User{Name: key,
				PasswordSecretRef: &v1alpha1.SecretKeyReference{Name: sec.Name, Key: key}})
		}
		if err := direct.Create(ctx, sec); err != nil {
			return err
		}
		if err := direct.Create(ctx, nc); err != nil {
			return fmt.Errorf("create NatsCluster: %w", err)
		}
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(nc)})
	}

	var lastWrites int64
	pass := func() (time.Duration, float64, error) {
		ops, w := bcryptOps(), writes.Load()
		start := time.Now()
		for _, req := range reqs {
			if _, err := rec.Reconcile(ctx, req); err != nil {
				return 0, 0, fmt.Errorf("reconcile %s: %w", req.Name, err)
			}
		}
		lastWrites = writes.Load() - w
		return time.Since(start), bcryptOps() - ops, nil
	}
	// settle lets the cache catch up with the pass's own writes, then runs a
	// pass that writes what the last one observed (status), untimed.
	settle := func() error {
		time.Sleep(500 * time.Millisecond)
		_, _, err := pass()
		time.Sleep(500 * time.Millisecond)
		return err
	}

	d, ops, err := pass()
	if err != nil {
		return err
	}
	rows[0].ours = append(rows[0].ours, ms(d))
	logf("  first pass: %v, %v bcrypt operations", d.Round(time.Millisecond), ops)
	if err := settle(); err != nil {
		return err
	}
	for run := range c.opRuns {
		d, ops, err := pass()
		if err != nil {
			return err
		}
		rows[1].ours = append(rows[1].ours, ms(d))
		rows[2].ours = append(rows[2].ours, ops)
		rows[3].ours = append(rows[3].ours, float64(lastWrites))
		logf("  unchanged pass %d: %v, %v bcrypt operations, %d API writes", run, d.Round(time.Millisecond), ops, lastWrites)
	}
	for run := range c.opRuns {
		time.Sleep(500 * time.Millisecond) // the last pass's writes reach the cache
		sec := &corev1.Secret{}
		key := client.ObjectKey{Namespace: ns, Name: fmt.Sprintf("c%03d-passwords", run%c.clusters)}
		if err := direct.Get(ctx, key, sec); err != nil {
			return err
		}
		sec.Data["user-00"] = []byte(fmt.Sprintf("rotated-%d", run))
		if err := direct.Update(ctx, sec); err != nil {
			return err
		}
		d, ops, err := pass()
		if err != nil {
			return err
		}
		rows[4].ours = append(rows[4].ours, ms(d))
		rows[5].ours = append(rows[5].ours, ops)
		logf("  one-changed pass %d: %v, %v bcrypt operations, %d API writes", run, d.Round(time.Millisecond), ops, lastWrites)
		if err := settle(); err != nil {
			return err
		}
	}
	return nil
}

// countingClient counts the reconciler's writes to the API server.
type countingClient struct {
	client.Client
	writes *atomic.Int64
}

func (c countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.writes.Add(1)
	return c.Client.Create(ctx, obj, opts...)
}

func (c countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.writes.Add(1)
	return c.Client.Update(ctx, obj, opts...)
}

func (c countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.writes.Add(1)
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c countingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.writes.Add(1)
	return c.Client.Delete(ctx, obj, opts...)
}

func (c countingClient) Status() client.SubResourceWriter {
	return countingStatus{c.Client.Status(), c.writes}
}

type countingStatus struct {
	client.SubResourceWriter
	writes *atomic.Int64
}

func (c countingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	c.writes.Add(1)
	return c.SubResourceWriter.Update(ctx, obj, opts...)
}

func (c countingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	c.writes.Add(1)
	return c.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

// stopEnv holds the running envtest, for the signal handler to stop.
var stopEnv atomic.Value

// stopEnvtest stops the envtest API server and etcd if they run.
func stopEnvtest() {
	if env, _ := stopEnv.Load().(*envtest.Environment); env != nil {
		_ = env.Stop()
	}
}

// bcryptOps reads the controller's counter of bcrypt hashes from the
// controller-runtime metrics registry it registers with.
func bcryptOps() float64 {
	mfs, err := metrics.Registry.Gather()
	if err != nil {
		return math.NaN()
	}
	for _, mf := range mfs {
		if mf.GetName() != "natsforge_bcrypt_operations_total" {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
		return sum
	}
	return math.NaN()
}
