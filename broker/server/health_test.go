package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/monitor"
)

// healthz is one /healthz answer: what a probe and a person read from it.
type healthz struct {
	code        int
	contentType string
	body        string
}

func getHealthz(t testing.TB, h http.Handler) healthz {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	b, _ := io.ReadAll(rec.Body)
	return healthz{rec.Code, rec.Header().Get("Content-Type"), string(b)}
}

// sortedFailures makes nats-server's list of failed listeners comparable: it
// joins them in map order, so "server, route" and "route, server" are the same
// answer.
func sortedFailures(h healthz) healthz {
	head, list, ok := strings.Cut(h.body, "after 1ms: ")
	if !ok {
		return h
	}
	list, tail, _ := strings.Cut(list, `"`)
	parts := strings.Split(list, ", ")
	sort.Strings(parts)
	h.body = head + "after 1ms: " + strings.Join(parts, ", ") + `"` + tail
	return h
}

func oracleHealthz(t testing.TB, o *natsserver.Options) healthz {
	t.Helper()
	s, err := natsserver.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	return sortedFailures(getHealthz(t, http.HandlerFunc(s.HandleHealthz)))
}

func TestHealthzFailsBeforeTheListenersAreUpAsNatsServerDoes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ours    *conf.Options
		oracle  *natsserver.Options
		failing string
	}{
		{"single server", &conf.Options{Host: "127.0.0.1", Port: RandomPort},
			&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}, "server"},
		{"clustered", clusterOpts("a", RandomPort, nil),
			func() *natsserver.Options {
				o := &natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}
				o.Cluster.Name, o.Cluster.Host, o.Cluster.Port = "test", "127.0.0.1", -1
				return o
			}(), "route, server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.ours, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := sortedFailures(getHealthz(t, monitor.New(s).Handler()))
			want := oracleHealthz(t, tc.oracle)
			if got != want {
				t.Fatalf("before start:\n ours        %+v\n nats-server %+v", got, want)
			}
			if got.code < 400 || !strings.Contains(got.body, tc.failing) {
				t.Fatalf("a probe would pass, or the answer does not name %q: %+v", tc.failing, got)
			}
			if err := s.Start(); err != nil {
				t.Fatal(err)
			}
			defer s.Shutdown()
			if up := getHealthz(t, monitor.New(s).Handler()); up.code != http.StatusOK || up.body != `{"status":"ok"}` {
				t.Fatalf("once started: %+v", up)
			}
		})
	}
}

func TestHealthzFailsInLameDuckModeAsNatsServerDoes(t *testing.T) {
	const duration, grace = 1500 * time.Millisecond, time.Second
	oracle, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		LameDuckDuration: duration, LameDuckGracePeriod: grace})
	if err != nil {
		t.Fatal(err)
	}
	go oracle.Start()
	if !oracle.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(oracle.Shutdown)
	oracleHTTP := http.HandlerFunc(oracle.HandleHealthz)

	s := runServer(t, &conf.Options{LameDuckDuration: duration, LameDuckGracePeriod: grace})
	ours := monitor.New(s).Handler()

	if got, want := getHealthz(t, ours), getHealthz(t, oracleHTTP); got != want || got.code != http.StatusOK {
		t.Fatalf("while serving:\n ours        %+v\n nats-server %+v", got, want)
	}
	// A connected client keeps both servers in lame duck mode for the grace
	// period instead of shutting down at once.
	connectTo(t, oracle.ClientURL())
	connectTo(t, s.ClientURL())
	go oracle.LameDuckShutdown()
	go s.LameDuckShutdown()
	waitUntil(t, 5*time.Second, "both servers in lame duck mode", func() bool {
		return s.InLameDuckMode() && getHealthz(t, oracleHTTP).code != http.StatusOK
	})
	got, want := getHealthz(t, ours), getHealthz(t, oracleHTTP)
	if got != want {
		t.Fatalf("in lame duck mode:\n ours        %+v\n nats-server %+v", got, want)
	}
	if got.code < 400 {
		t.Fatalf("a readiness probe would pass in lame duck mode: %+v", got)
	}
	t.Logf("in lame duck mode both answer %d %s", got.code, got.body)
}
