package server

import (
	"strconv"
	"sync"
	"time"

	"github.com/natsforge/natsforge/broker/auth"
	"github.com/natsforge/natsforge/broker/conf"
)

// authConfig is the compiled client authorization. It is immutable; reload
// builds a new one with newAuthConfig and stores it with setAuthConfig.
type authConfig struct {
	required   bool
	timeout    time.Duration
	token      string
	users      map[string]*userAuth
	noAuthUser *userAuth
	// tlsMap authenticates every client by its certificate (verify_and_map):
	// CONNECT's user and password are not consulted, as in nats-server.
	tlsMap bool
	// dummyHash is compared against when the user is unknown, so that a
	// failed login costs a bcrypt comparison whether or not the user exists.
	dummyCost int
}

// userAuth is one configured user.
type userAuth struct {
	name     string
	password string // plaintext or bcrypt hash, as configured
	perms    *auth.Permissions
	// previous is a previous password's bcrypt hash, accepted until
	// previousUntil (a rotation grace window, previous_passwords.go); "" for none.
	previous      string
	previousUntil time.Time
	acc           *account // the user's account; $G outside accounts {}
}

// Name is the user's name.
func (u *userAuth) Name() string { return u.name }

func newAuthConfig(o *conf.Options, set *accountSet) (*authConfig, error) {
	ac := &authConfig{users: make(map[string]*userAuth), timeout: conf.DefaultAuthTimeout}
	a := o.Authorization
	if a == nil {
		a = &conf.Authorization{}
	}
	if a.Timeout > 0 {
		ac.timeout = a.Timeout
	}
	defaults := auth.Compile(a.DefaultPermissions)
	if a.User != "" {
		ac.users[a.User] = &userAuth{name: a.User, password: a.Password, perms: defaults, acc: set.global}
	}
	addUsers := func(users []conf.User, defaults *auth.Permissions, acc *account) {
		for _, u := range users {
			perms := defaults
			if u.Permissions != nil {
				perms = auth.Compile(u.Permissions)
			}
			ac.users[u.Name] = &userAuth{name: u.Name, password: u.Password, perms: perms, acc: acc}
		}
	}
	addUsers(a.Users, defaults, set.global)
	for _, ca := range o.Accounts {
		// As nats-server: an account's users take its default_permissions,
		// never authorization's.
		addUsers(ca.Users, auth.Compile(ca.DefaultPermissions), set.byName[ca.Name])
	}
	for _, p := range o.PreviousPasswords {
		if u := ac.users[p.User]; u != nil {
			u.previous, u.previousUntil = p.Password, p.ValidUntil
		}
	}
	for _, u := range ac.users {
		if c := bcryptCost(u.password); c > ac.dummyCost {
			ac.dummyCost = c
		}
	}
	ac.token = a.Token
	ac.required = a.Token != "" || len(ac.users) > 0
	ac.tlsMap = o.TLS != nil && o.TLS.VerifyAndMap && len(ac.users) > 0
	if o.NoAuthUser != "" {
		ac.noAuthUser = ac.users[o.NoAuthUser]
	}
	return ac, nil
}

// bcryptCost is the cost of a bcrypt hash, 0 for a plaintext password.
func bcryptCost(stored string) int {
	if !auth.IsBcrypt(stored) {
		return 0
	}
	n, _ := strconv.Atoi(stored[4:6])
	return n
}

// authConfig is the current client authorization.
func (s *Server) authConfig() *authConfig { return s.auth.Load() }

// setAuthConfig installs a new authorization (reload). Connected clients are
// not touched; the caller re-checks them.
func (s *Server) setAuthConfig(ac *authConfig) { s.auth.Store(ac) }

var (
	dummyHashMu sync.Mutex
	dummyHashes = map[int]string{}
)

// dummyHash is a bcrypt hash of a random password at cost, made once.
func dummyHash(cost int) string {
	dummyHashMu.Lock()
	defer dummyHashMu.Unlock()
	if h, ok := dummyHashes[cost]; ok {
		return h
	}
	pw, err := auth.GeneratePassword()
	if err != nil {
		return ""
	}
	h, err := auth.HashPassword(pw, cost)
	if err != nil {
		return ""
	}
	dummyHashes[cost] = h
	return h
}

// authenticate checks c's CONNECT credentials and, on success, binds the
// user and permissions to c. On failure it says why (one of authReasons).
func (s *Server) authenticate(c *client) (ok bool, reason string) {
	ac := s.authConfig()
	if !ac.required {
		return true, ""
	}
	c.mu.Lock()
	user, pass, token := c.opts.Username, c.opts.Password, c.opts.Token
	c.mu.Unlock()

	if ac.token != "" {
		if !s.verifier.Verify("\x00token", ac.token, token) {
			return false, authReasonBadToken
		}
		return true, ""
	}
	if ac.tlsMap {
		// The certificate picks the user (CONNECT's user is not consulted);
		// a user that also has a password must still send it, as in
		// nats-server.
		var u *userAuth
		if c.tls != nil {
			u = ac.certUser(c.tls.peer)
		}
		if u == nil {
			return false, authReasonCertificate
		}
		if u.password == "" {
			c.setUser(u)
			return true, ""
		}
		return s.authenticateUser(c, u, pass)
	}
	if user == "" && pass == "" && token == "" && ac.noAuthUser != nil {
		c.setUser(ac.noAuthUser)
		return true, ""
	}
	u := ac.users[user]
	if u == nil {
		if ac.dummyCost > 0 {
			s.verifier.Verify(user, dummyHash(ac.dummyCost), pass)
		}
		return false, authReasonUnknownUser
	}
	return s.authenticateUser(c, u, pass)
}

// authenticateUser checks pass against u's password and, while its grace
// window lasts, u's previous one, and binds u to c.
func (s *Server) authenticateUser(c *client, u *userAuth, pass string) (ok bool, reason string) {
	previous := ""
	if u.acceptsPrevious(time.Now()) {
		previous = u.previous
	}
	switch s.verifier.VerifyEither(u.name, u.password, previous, pass) {
	case 1:
		c.setUser(u)
		return true, ""
	case 2:
		if c.setUserUntil(u, u.previous, u.previousUntil) {
			return true, ""
		}
	}
	s.ext().auth.failUser(u.name)
	return false, authReasonBadPassword
}

// setUser binds an authenticated user and its permissions to c.
func (c *client) setUser(u *userAuth) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.user = u
	c.authStored, c.authUntil = u.password, time.Time{}
	c.acc = u.acc
	c.setPermissionsLocked(u.perms)
}

// setUserUntil binds u to c, which authenticated with u's previous password
// stored, good until until. It refuses when until has passed meanwhile: the
// expiry sweep (previous_passwords.go) takes c.mu too, so a client either is
// bound before the sweep looks at it or sees here that the sweep has run.
func (c *client) setUserUntil(u *userAuth, stored string, until time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !time.Now().Before(until) {
		return false
	}
	c.user = u
	c.authStored, c.authUntil = stored, until
	c.acc = u.acc
	c.setPermissionsLocked(u.perms)
	return true
}

// setPermissionsLocked installs permissions (reload uses it too); the caller
// then re-checks existing subscriptions. Lock held.
func (c *client) setPermissionsLocked(p *auth.Permissions) {
	c.perms = p
	c.pubRestricted.Store(p.RestrictsPublish())
	c.pcache = nil
	c.replies = nil
	if p == nil {
		return
	}
	c.pcache = make(map[string]bool)
	if p.Responses {
		c.replies = make(map[string]*responsePermit)
	}
}
