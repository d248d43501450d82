package controllers

import (
	"crypto/tls"

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
