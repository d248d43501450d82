package server

import (
	"sync"
	"time"
)

// Previous passwords: during a rotation grace window a user has a second
// bcrypt hash, good until a time (conf.PreviousPassword, from the file only
// natsforge-broker reads). authenticate accepts it until then and records on
// the client that it did (client.authStored, client.authUntil). When the
// window ends, the clients that authenticated with it get
// 'User Authentication Expired' and are closed, as nats-server closes a
// connection whose credentials expire.
//
// One timer per server does that, armed at the earliest end of a window in
// the current authorization (at start and on every reload); when it fires it
// sweeps the clients and arms itself for the next one. Nothing on the connect
// or message path looks at a clock for it, and with no window open there is
// no timer at all.

// passwordExpiry is the server's one grace-window timer. Its mu is a leaf:
// taken with no other lock held and released before the sweep locks anything.
type passwordExpiry struct {
	mu      sync.Mutex
	timer   *time.Timer
	stopped bool // Shutdown ran: arm no more
}

var passwordExpiries sync.Map // *Server -> *passwordExpiry

func (s *Server) passwordExpiry() *passwordExpiry {
	if e, ok := passwordExpiries.Load(s); ok {
		return e.(*passwordExpiry)
	}
	e, _ := passwordExpiries.LoadOrStore(s, &passwordExpiry{})
	return e.(*passwordExpiry)
}

func init() {
	startHooks = append(startHooks, func(s *Server) error {
		s.armPasswordExpiry(s.authConfig())
		return nil
	})
	shutdownHooks = append(shutdownHooks, func(s *Server) {
		e := s.passwordExpiry()
		e.mu.Lock()
		e.stopped = true
		if e.timer != nil {
			e.timer.Stop()
			e.timer = nil
		}
		e.mu.Unlock()
	})
}

// acceptsPrevious tells whether u's previous password is still good at now.
func (u *userAuth) acceptsPrevious(now time.Time) bool {
	return u.previous != "" && now.Before(u.previousUntil)
}

// nextPreviousExpiry is the earliest end of a grace window after now in ac,
// zero when none is open.
func (ac *authConfig) nextPreviousExpiry(now time.Time) time.Time {
	var next time.Time
	for _, u := range ac.users {
		if u.acceptsPrevious(now) && (next.IsZero() || u.previousUntil.Before(next)) {
			next = u.previousUntil
		}
	}
	return next
}

// armPasswordExpiry (re)arms the timer for ac's next window end, or stops it
// when ac has none open.
func (s *Server) armPasswordExpiry(ac *authConfig) {
	next := ac.nextPreviousExpiry(time.Now())
	e := s.passwordExpiry()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	if e.stopped || next.IsZero() {
		return
	}
	e.timer = time.AfterFunc(time.Until(next), s.expirePreviousPasswords)
}

// expirePreviousPasswords closes every client whose previous password's
// window has ended, then arms the timer for the next window end.
func (s *Server) expirePreviousPasswords() {
	now := time.Now()
	expired := 0
	s.forEachClient(func(c *client) {
		c.mu.Lock()
		due := !c.isClosed() && !c.authUntil.IsZero() && !now.Before(c.authUntil)
		user := userNameOf(c.user)
		c.mu.Unlock()
		if !due {
			return
		}
		expired++
		s.logger.Info("previous password expired: grace window over", "cid", c.cid, "user", user)
		c.sendErr(errTextAuthExpired)
		c.closeConnection(AuthenticationExpired)
	})
	if expired > 0 {
		s.logger.Info("closed connections that authenticated with an expired previous password", "closed", expired)
	}
	s.armPasswordExpiry(s.authConfig())
}
