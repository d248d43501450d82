package server

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/natsforge/natsforge/broker/monitor"
)

// Why a client or route was refused, the reason label of
// natsforge_auth_failures_total. The set is fixed, so the label's cardinality
// is bounded whatever clients send.
const (
	authReasonUnknownUser   = "unknown_user"           // CONNECT named no configured user
	authReasonBadPassword   = "bad_password"           // a configured user, the wrong password
	authReasonBadToken      = "bad_token"              // authorization { token } did not match
	authReasonCertificate   = "certificate_not_mapped" // verify_and_map: no user has the certificate's identity
	authReasonNoCredentials = "no_credentials"         // an op before CONNECT, and no no_auth_user
	authReasonAccount       = "account_not_allowed"    // CONNECT asked for an account
	authReasonRoute         = "route"                  // a route's CONNECT had the wrong credentials
)

var authReasons = []string{authReasonUnknownUser, authReasonBadPassword, authReasonBadToken,
	authReasonCertificate, authReasonNoCredentials, authReasonAccount, authReasonRoute}

// authLatencyBuckets are the upper bounds (seconds) of the connect to
// authenticated histogram: a cached check is sub-millisecond, a bcrypt
// comparison at cost 10-12 tens to hundreds of milliseconds, and a storm
// queues them.
var authLatencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// authStats counts authentication outcomes. Everything is an atomic written
// once per connection attempt (never per message) and read at scrape time,
// so neither the hot path nor CONNECT pays for a metrics library.
type authStats struct {
	failures [7]atomic.Uint64 // by authReasons index

	// userFailures counts bad_password failures of each configured user (a
	// name an attacker types into CONNECT never becomes a key: unknown users
	// count under unknown_user only). Whether the per-user series are
	// served is the monitoring side's choice (its user label limit).
	userFailures sync.Map // string -> *atomic.Uint64

	latencyCounts [15]atomic.Uint64 // per bucket, the last for +Inf; not cumulative
	latencySumNs  atomic.Int64
}

func (a *authStats) fail(reason string) {
	for i, r := range authReasons {
		if r == reason {
			a.failures[i].Add(1)
			return
		}
	}
}

func (a *authStats) failUser(user string) {
	n, _ := a.userFailures.LoadOrStore(user, new(atomic.Uint64))
	n.(*atomic.Uint64).Add(1)
}

// authenticated records how long a connection took from being accepted (after
// its TLS handshake) to being let in.
func (a *authStats) authenticated(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(authLatencyBuckets) && s > authLatencyBuckets[i] {
		i++
	}
	a.latencyCounts[i].Add(1)
	a.latencySumNs.Add(int64(d))
}

// AuthStats reports authentication counters for /metrics (monitor.AuthSource).
func (s *Server) AuthStats() monitor.AuthStats {
	e := s.ext()
	st := monitor.AuthStats{
		Failures:     make(map[string]uint64, len(authReasons)),
		UserFailures: map[string]uint64{},
		Users:        len(s.authConfig().users),
	}
	for i, r := range authReasons {
		st.Failures[r] = e.auth.failures[i].Load()
	}
	ac := s.authConfig()
	e.auth.userFailures.Range(func(k, v any) bool {
		// Only users configured now: a removed user's series ends.
		if _, ok := ac.users[k.(string)]; ok {
			st.UserFailures[k.(string)] = v.(*atomic.Uint64).Load()
		}
		return true
	})
	st.BcryptVerifications = s.verifier.Comparisons()
	st.CacheHits, st.CacheMisses = s.verifier.CacheHits(), s.verifier.CacheMisses()
	st.Latency = monitor.Histogram{Buckets: make(map[float64]uint64, len(authLatencyBuckets))}
	var cum uint64
	for i, le := range authLatencyBuckets {
		cum += e.auth.latencyCounts[i].Load()
		st.Latency.Buckets[le] = cum
	}
	st.Latency.Count = cum + e.auth.latencyCounts[len(authLatencyBuckets)].Load()
	st.Latency.Sum = time.Duration(e.auth.latencySumNs.Load()).Seconds()
	return st
}
