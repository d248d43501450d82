package controllers

import (
	"crypto/tls"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// MetricsOptions serve the operator's metrics on addr ("0" turns them off).
// When secure, as kubebuilder v4 scaffolds: HTTPS (a self-signed certificate
// controller-runtime makes at start-up), and only to callers the API server
// authenticates (a TokenReview of their bearer token) and authorizes for GET
// on the non-resource URL /metrics (a SubjectAccessReview), so the operator
// needs tokenreviews and subjectaccessreviews create, and a scraper the
// metrics-reader ClusterRole. HTTP/2 stays off unless http2 is set: its
// stream reset and rapid reset attacks (CVE-2023-44487, CVE-2023-39325) reach
// any endpoint that serves it.
func MetricsOptions(addr string, secure, http2 bool) metricsserver.Options {
	o := metricsserver.Options{BindAddress: addr, SecureServing: secure}
	if !secure {
		return o
	}
	o.FilterProvider = filters.WithAuthenticationAndAuthorization
	if !http2 {
		o.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	}
	return o
}

// The operator's own metrics, on controller-runtime's registry (served by
// the manager's metrics server, see MetricsOptions) beside its
// controller_runtime_* and workqueue_* series. Per-cluster labels
// (namespace, natscluster) are bounded by the number of NatsClusters; no
// metric is labelled per user.
var (
	// rotationPropagation is what the operator exists for: how long a
	// change of the config or certificates takes to be served by every
	// broker.
	rotationPropagation = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "natsforge_rotation_propagation_seconds",
		Help: "Time from the reconcile that first saw a changed config or certificate (a password Secret edited, a user added, a certificate renewed) to every ready broker pod serving it, as their /varz config_digest and tls_cert_sha256 report.",
		// From a kubelet that refreshes the mounted Secret at once (about a
		// second) to one that waits for its periodic sync (a minute or more).
		Buckets: []float64{0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 90, 120, 300},
	})
	reconciles = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "natsforge_reconciles_total",
		Help: "NatsCluster reconciles by result: success, or error (a phase failed; the error names it in the log and the Ready condition).",
	}, []string{"result"})
	usersByState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "natsforge_users",
		Help: "Users of each NatsCluster by state: status.users[].reason (Resolved, Generated, Certificate, or why not: SecretMissing, KeyMissing, InvalidPassword, InvalidTLSIdentity, ...).",
	}, []string{"namespace", "natscluster", "state"})
	certificateExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "natsforge_certificate_expiry_timestamp_seconds",
		Help: "When a NatsCluster's certificate expires (Unix time): certificate=server is the one the brokers serve to clients, ca the operator's CA (tls.mode Operator).",
	}, []string{"namespace", "natscluster", "certificate"})
)

func init() {
	metrics.Registry.MustRegister(rotationPropagation, reconciles, usersByState, certificateExpiry)
	for _, result := range []string{"success", "error"} {
		reconciles.WithLabelValues(result) // present from the start, at 0
	}
}

// rotationClock times rotations per cluster: a rotation starts when a
// reconcile computes a config hash (or certificate hash) other than the one
// the cluster had, and ends at the first reconcile that finds every ready pod
// serving it. The first target seen after the operator starts (or a cluster
// is created) is not a rotation: nothing is timed until it changes.
type rotationClock struct {
	mu    sync.Mutex
	marks map[types.NamespacedName]rotationMark
}

type rotationMark struct {
	target string    // config hash / TLS hash the pods should serve
	seen   time.Time // when the change was first seen; zero when not timing
}

func newRotationClock() *rotationClock {
	return &rotationClock{marks: map[types.NamespacedName]rotationMark{}}
}

// observe is called once per reconcile that asked the pods; it returns the
// rotation's duration when this reconcile saw it complete. A nil clock (a
// reconciler not set up with a manager) times nothing.
func (c *rotationClock) observe(key types.NamespacedName, target string, began, now time.Time, p propagation) (time.Duration, bool) {
	if c == nil {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m, known := c.marks[key]
	switch {
	case !known:
		m = rotationMark{target: target}
	case m.target != target:
		m = rotationMark{target: target, seen: began}
	}
	var took time.Duration
	done := !m.seen.IsZero() && p.asked > 0 && p.current == p.asked
	if done {
		took, m.seen = now.Sub(m.seen), time.Time{}
	}
	c.marks[key] = m
	return took, done
}

func (c *rotationClock) forget(key types.NamespacedName) {
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.marks, key)
	c.mu.Unlock()
}

// recordMetrics updates the operator's metrics from one reconcile.
func (r *NatsClusterReconciler) recordMetrics(key types.NamespacedName, rq *request) {
	result := "success"
	if rq.failure != nil {
		result = "error"
	}
	reconciles.WithLabelValues(result).Inc()

	if rq.propagation.observed && rq.configHash != "" {
		began := rq.renderedAt
		if began.IsZero() {
			began = rq.now
		}
		if took, done := r.rotations.observe(key, rq.configHash+"/"+rq.tls.hash, began, r.now(), rq.propagation); done {
			rotationPropagation.Observe(took.Seconds())
		}
	}
	cluster := map[string]string{"namespace": key.Namespace, "natscluster": key.Name}
	if rq.users != nil {
		usersByState.DeletePartialMatch(cluster)
		for _, u := range userStatuses(rq.original.Status.Users, rq.users, rq.records, metav1.NewTime(rq.now)) {
			state := string(u.Reason)
			if state == "" {
				state = "Unknown"
			}
			usersByState.WithLabelValues(key.Namespace, key.Name, state).Inc()
		}
	}
	if rq.tls.observed {
		certificateExpiry.DeletePartialMatch(cluster)
		if rq.tls.serving != nil {
			certificateExpiry.WithLabelValues(key.Namespace, key.Name, "server").Set(float64(rq.tls.serving.NotAfter.Unix()))
		}
		if rq.tls.ca != nil {
			certificateExpiry.WithLabelValues(key.Namespace, key.Name, "ca").Set(float64(rq.tls.ca.Cert.NotAfter.Unix()))
		}
	}
}

// forgetMetrics drops a deleted cluster's series.
func (r *NatsClusterReconciler) forgetMetrics(key types.NamespacedName) {
	r.rotations.forget(key)
	cluster := map[string]string{"namespace": key.Namespace, "natscluster": key.Name}
	usersByState.DeletePartialMatch(cluster)
	certificateExpiry.DeletePartialMatch(cluster)
}
