// Package monitor serves the broker's HTTP monitoring endpoints: /healthz, /varz,
// /connz, /routez, /subsz with nats-server's JSON field names, and /metrics in the
// Prometheus text format: prometheus-nats-exporter's gnatsd_* names and labels
// (exporter.go), and natsforge_* only for what the exporter has no name for
// (metrics.go: authentication, reloads by result, certificate expiry).
//
// The package knows nothing of the server's internals: the server implements
// Source and hands out snapshot structs, and this package pages, filters and
// encodes them. Snapshots must never carry credentials.
package monitor

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Paths served, as nats-server's.
const (
	HealthzPath = "/healthz"
	VarzPath    = "/varz"
	ConnzPath   = "/connz"
	RoutezPath  = "/routez"
	SubszPath   = "/subsz"
	MetricsPath = "/metrics"
)

// Default page sizes, as nats-server's.
const (
	DefaultConnListSize = 1024
	DefaultSubListSize  = 1024
)

// Source is what the server exposes to monitoring. Each call returns a fresh
// snapshot the caller owns.
type Source interface {
	// Varz reports general information and counters.
	Varz() *Varz
	// Connz reports every open client connection, or the recently closed
	// ones, or both (opts.State), in any order; the subscription lists are
	// filled only when asked for.
	Connz(opts ConnzOptions) *Connz
	// Routez reports every route connection.
	Routez(opts RoutezOptions) *Routez
	// Subsz reports the subject index's statistics and, when asked for, every
	// subscription.
	Subsz(opts SubszOptions) *Subsz
	// Healthz is nil when the server serves clients (and routes, when
	// clustered); otherwise it says which listener is not up, in
	// nats-server's words. Before Start and in lame duck mode it is not nil,
	// so a readiness probe takes the pod out of its Service.
	Healthz() error
}

// AuthSource is a Source that also counts authentication outcomes; /metrics
// serves them when the server's source is one.
type AuthSource interface {
	AuthStats() AuthStats
}

// Options tune the monitoring server.
type Options struct {
	// UserLabelLimit: per-user series (natsforge_auth_user_failures_total)
	// are served only while fewer users than this are configured; 0 never
	// serves them.
	UserLabelLimit int
}

// ConnzOptions say which connections /connz wants and which optional parts
// to fill.
type ConnzOptions struct {
	Subs       bool      // subscriptions_list
	SubsDetail bool      // subscriptions_list_detail
	State      ConnState // open (the default), closed, or both
}

// ConnState selects open or closed connections, as nats-server's state=.
type ConnState int

// The states, as nats-server's.
const (
	ConnOpen ConnState = iota
	ConnClosed
	ConnAll
)

// RoutezOptions say which optional parts of /routez to fill.
type RoutezOptions struct {
	Subs       bool
	SubsDetail bool
}

// SubszOptions say which optional parts of /subsz to fill.
type SubszOptions struct {
	Subs bool
}

// Server is the monitoring HTTP server.
type Server struct {
	src      Source
	registry *prometheus.Registry
	ln       net.Listener
	http     *http.Server

	mu       sync.Mutex
	reqStats map[string]uint64
}

// New builds a monitoring server over src with its own Prometheus registry
// and default Options.
func New(src Source) *Server { return NewWithOptions(src, Options{}) }

// NewWithOptions builds a monitoring server over src with its own Prometheus
// registry.
func NewWithOptions(src Source, o Options) *Server {
	s := &Server{src: src, registry: prometheus.NewRegistry(), reqStats: map[string]uint64{}}
	s.registry.MustRegister(
		newCollector(src, o),
		newExporterCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return s
}

// Handler returns the HTTP handler serving every endpoint.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(HealthzPath, s.handleHealthz)
	mux.HandleFunc(VarzPath, s.handleVarz)
	mux.HandleFunc(ConnzPath, s.handleConnz)
	mux.HandleFunc(RoutezPath, s.handleRoutez)
	mux.HandleFunc(SubszPath, s.handleSubsz)
	metrics := promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry})
	mux.HandleFunc(MetricsPath, func(w http.ResponseWriter, r *http.Request) {
		s.count(MetricsPath)
		metrics.ServeHTTP(w, r)
	})
	mux.HandleFunc("/", s.handleRoot)
	return mux
}

// Registry is the Prometheus registry behind /metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Start listens on addr ("host:port"; port 0 picks one) and serves in the
// background.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("monitoring listener on %s: %w", addr, err)
	}
	s.ln = ln
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // the listener is gone; Shutdown reports nothing more useful
		}
	}()
	return nil
}

// StartTLS is Start serving HTTPS with cfg (https_port): every endpoint,
// /metrics included, and plain HTTP on the port is refused.
func (s *Server) StartTLS(addr string, cfg *tls.Config) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("monitoring listener on %s: %w", addr, err)
	}
	s.ln = ln
	s.http = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, TLSConfig: cfg}
	go func() {
		_ = s.http.Serve(tls.NewListener(ln, cfg))
	}()
	return nil
}

// Addr is the address the server listens on, once started.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Shutdown stops the server, waiting for in-flight requests until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.http == nil {
		return nil
	}
	return s.http.Shutdown(ctx)
}

// HTTPReqStats returns how many requests each endpoint has served.
func (s *Server) HTTPReqStats() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.reqStats))
	for k, v := range s.reqStats {
		out[k] = v
	}
	return out
}

func (s *Server) count(path string) {
	s.mu.Lock()
	s.reqStats[path]++
	s.mu.Unlock()
}

func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	s.count("/")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	var page strings.Builder
	page.WriteString("<html><body>")
	for _, p := range []string{VarzPath, ConnzPath, RoutezPath, SubszPath, HealthzPath, MetricsPath} {
		fmt.Fprintf(&page, "<a href=%q>%s</a><br/>", "."+p, p)
	}
	page.WriteString("</body></html>")
	// A failed write means the client has gone: nobody to tell.
	_, _ = io.WriteString(w, page.String())
}

// HealthStatus is the /healthz document, as nats-server's.
type HealthStatus struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// handleHealthz answers as nats-server's does when its listeners are not all
// up (before start, in lame duck mode): 500 and {"status":"error","error":...}.
// Kubernetes probes fail on any status from 400, so readiness goes false
// while a pod hands its clients over. The body is compact JSON, not
// indented, as nats-server writes it.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	s.count(HealthzPath)
	hs, code := HealthStatus{Status: "ok"}, http.StatusOK
	if err := s.src.Healthz(); err != nil {
		hs, code = HealthStatus{Status: "error", Error: err.Error()}, http.StatusInternalServerError
	}
	b, _ := json.Marshal(hs)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func (s *Server) handleVarz(w http.ResponseWriter, r *http.Request) {
	s.count(VarzPath)
	v := s.src.Varz()
	v.HTTPReqStats = s.HTTPReqStats()
	writeJSON(w, r, v)
}

func (s *Server) handleConnz(w http.ResponseWriter, r *http.Request) {
	s.count(ConnzPath)
	// The parameters in nats-server's order, so the first bad one is the
	// one it names; the messages are nats-server's.
	q := query{w: w, r: r}
	cq := ConnzQuery{Sort: SortOpt(r.URL.Query().Get("sort"))}
	cq.Auth = q.bool("auth")
	cq.Subs, cq.SubsDetail = q.subs()
	cq.Offset = q.int("offset")
	cq.Limit = q.int("limit")
	cq.CID = q.uint64("cid")
	cq.State = q.state()
	if q.err != nil {
		return
	}
	c, err := BuildConnz(s.src, cq)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	writeJSON(w, r, c)
}

func (s *Server) handleRoutez(w http.ResponseWriter, r *http.Request) {
	s.count(RoutezPath)
	q := query{w: w, r: r}
	var rq RoutezQuery
	rq.Subs, rq.SubsDetail = q.subs()
	if q.err != nil {
		return
	}
	writeJSON(w, r, BuildRoutez(s.src, rq))
}

func (s *Server) handleSubsz(w http.ResponseWriter, r *http.Request) {
	s.count(SubszPath)
	q := query{w: w, r: r}
	sq := SubszQuery{Subs: q.bool("subs")}
	sq.Offset = q.int("offset")
	sq.Limit = q.int("limit")
	if q.err != nil {
		return
	}
	sq.Test = r.URL.Query().Get("test")
	sz, err := BuildSubsz(s.src, sq)
	if err != nil {
		badRequest(w, err.Error())
		return
	}
	writeJSON(w, r, sz)
}

func page[T any](items []T, offset, limit int) []T {
	if offset < 0 {
		offset = 0
	}
	if offset >= len(items) {
		return nil
	}
	items = items[offset:]
	if limit < len(items) {
		items = items[:limit]
	}
	return items
}

// writeJSON writes v indented, as nats-server does, honouring ?callback= (JSONP).
func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if cb := r.URL.Query().Get("callback"); cb != "" {
		w.Header().Set("Content-Type", "application/javascript")
		b = fmt.Appendf(nil, "%s(%s)", cb, b)
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	// A failed write means the client has gone: nobody to tell.
	_, _ = w.Write(b)
}

// query decodes query parameters as nats-server does, answering 400 on the first
// bad one.
type query struct {
	w   http.ResponseWriter
	r   *http.Request
	err error
}

func (q *query) fail(param, kind string, err error) {
	if q.err != nil {
		return
	}
	q.err = err
	badRequest(q.w, fmt.Sprintf("Error decoding %s for '%s': %v", kind, param, err))
}

// badRequest answers 400 with msg as the body, as nats-server does.
func badRequest(w http.ResponseWriter, msg string) {
	w.WriteHeader(http.StatusBadRequest)
	_, _ = w.Write([]byte(msg))
}

func (q *query) uint64(param string) uint64 {
	str := q.r.URL.Query().Get(param)
	if str == "" {
		return 0
	}
	v, err := strconv.ParseUint(str, 10, 64)
	if err != nil {
		q.fail(param, "uint64", err)
	}
	return v
}

// state decodes state=open|closed|any|all.
func (q *query) state() ConnState {
	str := q.r.URL.Query().Get("state")
	switch strings.ToLower(str) {
	case "", "open":
		return ConnOpen
	case "closed":
		return ConnClosed
	case "any", "all":
		return ConnAll
	}
	if q.err == nil {
		q.err = fmt.Errorf("Error decoding state for %s", str) //nolint:staticcheck // ST1005: nats-server's exact text, compared in the tests
		badRequest(q.w, q.err.Error())
	}
	return ConnOpen
}

// validLiteralSubject is nats-server's IsValidLiteralSubject: no empty token
// and no wildcard token.
func validLiteralSubject(subject string) bool {
	for _, t := range strings.Split(subject, ".") {
		if t == "" || t == "*" || t == ">" {
			return false
		}
	}
	return true
}

func (q *query) bool(param string) bool {
	str := q.r.URL.Query().Get(param)
	if str == "" {
		return false
	}
	v, err := strconv.ParseBool(str)
	if err != nil {
		q.fail(param, "boolean", err)
	}
	return v
}

func (q *query) int(param string) int {
	str := q.r.URL.Query().Get(param)
	if str == "" {
		return 0
	}
	v, err := strconv.Atoi(str)
	if err != nil {
		q.fail(param, "int", err)
	}
	return v
}

// subs decodes subs=1 (lists) and subs=detail (detailed lists).
func (q *query) subs() (subs, detail bool) {
	if strings.EqualFold(q.r.URL.Query().Get("subs"), "detail") {
		return false, true
	}
	return q.bool("subs"), false
}
