/*
Copyright 2026 The natsforge Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package controllers

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/natsforge/natsforge/controllers/pki"
	"github.com/natsforge/natsforge/controllers/resources"
)

// BrokerState is what one broker pod's /varz says about it.
type BrokerState struct {
	// ConfigDigest is config_digest: the digest of the config file it has
	// loaded.
	ConfigDigest string
	// Routes is routes: how many other brokers it has a registered route to
	// (one per peer server, duplicates not counted).
	Routes int
	// TLSCertSHA256 is tls_cert_sha256: the SHA-256 (hex) of the DER of the
	// certificate it serves to clients; empty without TLS.
	TLSCertSHA256 string
}

// DigestProber asks one broker pod which config and certificate it has
// loaded and how many peers it has routes to. trust is nil when the cluster
// runs without TLS (plain HTTP monitoring); otherwise the pod serves HTTPS.
type DigestProber interface {
	Varz(ctx context.Context, pod *corev1.Pod, trust *BrokerTrust) (BrokerState, error)
}

// BrokerTrust is what a broker's monitoring certificate is checked against.
type BrokerTrust struct {
	// CA is the cluster's CA bundle: the certificate must chain to it.
	CA *x509.CertPool
	// Pinned, when CA is nil, is the SHA-256 of the one certificate trusted:
	// the last good one, while the CA is unknown (a Secret of mode Secrets
	// went missing and the brokers keep serving what they had).
	Pinned string
}

// HTTPDigestProber reads config_digest, tls_cert_sha256 and routes from a
// pod's http://<podIP>:8222/varz, or https:// when the cluster serves TLS.
type HTTPDigestProber struct {
	// Client makes the requests; nil means a client with a 2s timeout.
	Client *http.Client
	// Port is the monitoring port; 0 means 8222.
	Port int
}

// Varz implements DigestProber.
func (p HTTPDigestProber) Varz(ctx context.Context, pod *corev1.Pod, trust *BrokerTrust) (BrokerState, error) {
	hc := p.Client
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Second}
	}
	port := p.Port
	if port == 0 {
		port = resources.MonitorPort
	}
	scheme := "http"
	if trust != nil {
		scheme = "https"
		hc = withTrust(hc, *trust, podServerName(pod))
	}
	u := scheme + "://" + net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)) + "/varz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return BrokerState{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return BrokerState{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return BrokerState{}, fmt.Errorf("/varz answered %s", resp.Status)
	}
	var varz struct {
		ConfigDigest  string `json:"config_digest"`
		Routes        int    `json:"routes"`
		TLSCertSHA256 string `json:"tls_cert_sha256"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&varz); err != nil {
		return BrokerState{}, fmt.Errorf("decode /varz: %w", err)
	}
	return BrokerState{ConfigDigest: varz.ConfigDigest, Routes: varz.Routes, TLSCertSHA256: varz.TLSCertSHA256}, nil
}

// withTrust is hc over TLS that trusts only what trust says. The pod is
// dialled by its IP, which no certificate names, so the chain is verified
// against the CA without a host name (in mode Secrets the operator cannot know
// the names a user's certificate carries); serverName is still sent, for SNI.
func withTrust(hc *http.Client, trust BrokerTrust, serverName string) *http.Client {
	cfg := &tls.Config{
		ServerName:         serverName,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by VerifyConnection below: chain to the CA (or the pin), any name
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the broker presented no certificate")
			}
			if trust.CA == nil {
				if trust.Pinned == "" || pki.Fingerprint(cs.PeerCertificates[0]) != trust.Pinned {
					return errors.New("the broker's certificate is not the last one known to be good, and the CA is unknown")
				}
				return nil
			}
			ca := trust.CA
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: ca, Intermediates: inter})
			return err
		},
	}
	c := *hc
	c.Transport = &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	return &c
}

// podServerName is the pod's stable route name, which the operator's server
// certificate carries.
func podServerName(pod *corev1.Pod) string {
	return pod.Name + "." + pod.Labels[resources.LabelInstance] + "-routes." + pod.Namespace + ".svc"
}

// propagation is what the ready broker pods said about the config they serve
// and their routes.
type propagation struct {
	observed bool     // the phase ran
	asked    int      // ready pods with an address
	current  int      // of those, the ones serving the current config
	stale    []string // "<pod>: <why>", sorted
	// certificate is the fingerprint of the certificate every pod should
	// serve; "" when there is none or it is not known.
	certificate string
	// routes is, for each asked pod that answered, how many peers it has
	// routes to; unreachable names the asked pods that did not answer.
	routes      map[string]int
	unreachable []string // sorted
	// digests is, for each asked pod that answered, the config it serves.
	digests map[string]string
	// behind names the pods that answered with an older config or an
	// older certificate (nudge.go nudges them).
	behind map[string]bool
}

// pending tells whether some pod that answered serves an older config: it
// is asked again soon. Pods that did not answer are asked with a back-off.
func (p propagation) pending() bool {
	return p.observed && p.current+len(p.unreachable) < p.asked
}

// propagateConfig makes the kubelet refresh the mounted config at once, by
// bumping an annotation on every broker pod that has not yet been told about
// the current config, then asks each ready pod which config it serves and how
// many peers it has routes to, and nudges the kubelet again for a pod that
// has served an older config for too long (nudge.go).
func (r *NatsClusterReconciler) propagateConfig(ctx context.Context, rq *request) error {
	nc := rq.cluster
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(nc.Namespace), client.MatchingLabels(resources.SelectorLabels(nc))); err != nil {
		return fmt.Errorf("list pods: %w", err)
	}
	var ready []*corev1.Pod
	for i := range pods.Items {
		pod := &pods.Items[i]
		if !pod.DeletionTimestamp.IsZero() {
			continue
		}
		if pod.Annotations[resources.AnnotationConfigHash] != rq.configHash ||
			(rq.tls.hash != "" && pod.Annotations[resources.AnnotationTLSHash] != rq.tls.hash) {
			patch := client.MergeFrom(pod.DeepCopy())
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[resources.AnnotationConfigHash] = rq.configHash
			if rq.tls.hash != "" {
				pod.Annotations[resources.AnnotationTLSHash] = rq.tls.hash
			}
			if err := r.Client.Patch(ctx, pod, patch); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("annotate pod %s: %w", pod.Name, err)
			}
			logf.FromContext(ctx).Info("pod annotated with the new config", "pod", pod.Name, "configHash", rq.configHash)
		}
		if pod.Status.PodIP != "" && podReady(pod) {
			ready = append(ready, pod)
		}
	}
	var trust *BrokerTrust
	if rq.tls.enabled {
		trust = &BrokerTrust{CA: x509.NewCertPool()}
		if rq.tls.caPEM == nil || !trust.CA.AppendCertsFromPEM(rq.tls.caPEM) {
			// Mode Secrets with its Secret gone: the CA is not known, the
			// brokers keep serving the last good certificate.
			trust.CA = nil
			if st := rq.original.Status.TLS; st != nil {
				trust.Pinned = st.CertificateSHA256
			}
		}
	}
	want := ""
	if rq.tls.serving != nil {
		want = pki.Fingerprint(rq.tls.serving)
	}
	rq.propagation = r.askPods(ctx, ready, rq.configHash, trust, want)
	logf.FromContext(ctx).V(1).Info("config propagation", "configHash", rq.configHash,
		"readyPods", rq.propagation.asked, "current", rq.propagation.current, "stale", rq.propagation.stale,
		"routes", rq.propagation.routes, "unreachable", rq.propagation.unreachable)
	return r.nudgeStalePods(ctx, rq, ready)
}

// askPods asks every pod, in parallel, for its config digest, the
// certificate it serves and its route count. A pod serves the current config
// when both its digest is want and, with TLS, its certificate is
// wantCertificate.
func (r *NatsClusterReconciler) askPods(ctx context.Context, pods []*corev1.Pod, want string, trust *BrokerTrust, wantCertificate string) propagation {
	p := propagation{observed: true, asked: len(pods), certificate: wantCertificate}
	if r.Digests == nil || len(pods) == 0 {
		return p
	}
	states := make([]BrokerState, len(pods))
	errs := make([]error, len(pods))
	var g errgroup.Group
	g.SetLimit(8)
	for i, pod := range pods {
		g.Go(func() error {
			states[i], errs[i] = r.Digests.Varz(ctx, pod, trust)
			return nil
		})
	}
	_ = g.Wait()
	p.routes = make(map[string]int, len(pods))
	p.digests = make(map[string]string, len(pods))
	p.behind = map[string]bool{}
	for i, pod := range pods {
		if errs[i] == nil {
			p.digests[pod.Name] = strings.TrimPrefix(states[i].ConfigDigest, "sha256:")
		}
		switch {
		case errs[i] != nil:
			p.stale = append(p.stale, pod.Name+": unreachable: "+errs[i].Error())
			p.unreachable = append(p.unreachable, pod.Name)
			continue
		case strings.TrimPrefix(states[i].ConfigDigest, "sha256:") != want:
			p.stale = append(p.stale, pod.Name+": serves an older config")
			p.behind[pod.Name] = true
		case wantCertificate != "" && states[i].TLSCertSHA256 != wantCertificate:
			p.stale = append(p.stale, pod.Name+": serves an older certificate")
			p.behind[pod.Name] = true
		default:
			p.current++
		}
		p.routes[pod.Name] = states[i].Routes
	}
	sort.Strings(p.stale)
	sort.Strings(p.unreachable)
	return p
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
