package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/natsforge/natsforge/broker/conf"
)

// Reload: the config file is parsed again and, if it parses, validates and
// changes nothing that is not reloadable (server name, listen addresses,
// ports, the presence of a cluster), swapped in whole. Anything else refuses
// the whole reload: the server keeps serving the old config, and the error is
// logged, counted in /metrics and shown in /varz.
//
// Applying a config re-checks every connected client against the new
// authorization: a client whose user is gone, or whose password no longer
// verifies, gets 'Authorization Violation' and is closed; the others stay,
// with new permissions, losing only the subscriptions those no longer allow.

// ConfigOverrides re-applies command-line flags over a reloaded config, as
// they were applied over the file at start.
type ConfigOverrides func(o *conf.Options) error

// SetConfigFile tells the server which file its options came from and how the
// command line overrides it, enabling Reload, and records the file's digest
// for /varz.
func (s *Server) SetConfigFile(path string, overrides ConfigOverrides) error {
	data, err := conf.ReadConfig(path)
	if err != nil {
		return err
	}
	e := s.ext()
	e.mu.Lock()
	e.configFile = path
	e.overrides = overrides
	e.configDigest = configDigest(data)
	e.mu.Unlock()
	return nil
}

// configDigest is the sha256 of the config file's bytes (of its parts joined,
// for a parts manifest), in hex.
func configDigest(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// WatchConfigFile reloads whenever the config file's content changes on disk,
// polling every interval (a second when 0). It stops at Shutdown.
func (s *Server) WatchConfigFile(interval time.Duration) error {
	e := s.ext()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.configFile == "" {
		return errors.New("no config file to watch")
	}
	if e.watcher != nil {
		return nil
	}
	path := e.configFile
	w := newConfigWatcher(path, interval, func(digest string) {
		e.mu.Lock()
		loaded := e.configDigest
		e.mu.Unlock()
		if digest == loaded {
			return // already loaded, by SIGHUP
		}
		s.logger.Info("config file changed on disk, reloading", "file", path)
		_ = s.Reload()
	})
	e.watcher = w
	go w.run()
	return nil
}

func init() {
	shutdownHooks = append(shutdownHooks, func(s *Server) {
		e := s.ext()
		e.mu.Lock()
		w := e.watcher
		e.watcher = nil
		e.mu.Unlock()
		if w != nil {
			w.close()
		}
	})
}

// Reload reads the config file again and applies it, or refuses it whole.
func (s *Server) Reload() error {
	e := s.ext()
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	e.mu.Lock()
	path, overrides := e.configFile, e.overrides
	e.mu.Unlock()
	if path == "" {
		return errors.New("reload: the server was not started from a config file")
	}
	data, o, err := s.loadConfig(path, overrides)
	if err == nil {
		err = s.applyConfig(o)
	}
	e.mu.Lock()
	if err != nil {
		e.lastReloadTime = time.Now()
		e.reloadErrors++
		e.lastReloadError = err.Error()
	} else {
		e.reloads++
		e.lastReloadError = ""
		e.configDigest = configDigest(data)
	}
	e.mu.Unlock()
	if err != nil {
		s.logger.Error("config reload refused, still serving the previous config", "file", path, "err", err.Error())
		return err
	}
	s.mu.Lock()
	s.configLoad = time.Now()
	s.mu.Unlock()
	s.logger.Info("config reloaded", "file", path, "digest", configDigest(data))
	return nil
}

// loadConfig parses and checks the file. A parse error names file and line.
func (s *Server) loadConfig(path string, overrides ConfigOverrides) ([]byte, *conf.Options, error) {
	data, err := conf.ReadConfig(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reload: %w", err)
	}
	o, warnings, err := conf.Load(data, path)
	for _, w := range warnings {
		s.logger.Warn("config", "warning", w.String())
	}
	if err != nil {
		return nil, nil, err
	}
	if overrides != nil {
		if err := overrides(o); err != nil {
			return nil, nil, err
		}
	}
	return data, o, nil
}

// notReloadable returns why o cannot replace cur without a restart, or nil.
func notReloadable(cur, o *conf.Options) error {
	type field struct {
		name     string
		old, new any
	}
	var fields []field
	fields = append(fields,
		field{"server_name", cur.ServerName, o.ServerName},
		field{"host", cur.Host, o.Host},
		field{"port", cur.Port, o.Port},
		field{"http host", cur.HTTPHost, o.HTTPHost},
		field{"http_port", cur.HTTPPort, o.HTTPPort},
		field{"https host", cur.HTTPSHost, o.HTTPSHost},
		field{"https_port", cur.HTTPSPort, o.HTTPSPort},
		field{"cluster", cur.Cluster != nil, o.Cluster != nil},
		field{"tls", cur.TLS != nil, o.TLS != nil},
		field{"system_account", cur.SystemAccount, o.SystemAccount},
	)
	if cur.Cluster != nil && o.Cluster != nil {
		fields = append(fields,
			field{"cluster.tls", cur.Cluster.TLS != nil, o.Cluster.TLS != nil},
			field{"cluster.name", cur.Cluster.Name, o.Cluster.Name},
			field{"cluster.host", cur.Cluster.Host, o.Cluster.Host},
			field{"cluster.port", cur.Cluster.Port, o.Cluster.Port},
		)
	}
	for _, f := range fields {
		if !reflect.DeepEqual(f.old, f.new) {
			return fmt.Errorf("reload: %s cannot change without a restart (%v -> %v)", f.name, f.old, f.new)
		}
	}
	return nil
}

// applyConfig swaps o in, or changes nothing and says why not.
func (s *Server) applyConfig(next *conf.Options) error {
	o := WithDefaults(next)
	if err := Validate(o); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	cur := s.getOpts()
	if err := notReloadable(cur, o); err != nil {
		return err
	}
	set, imps := s.buildAccounts(o, s.accountSet())
	ac, err := newAuthConfig(o, set)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	m := s.routes()
	if m != nil {
		if _, err := newRouteConfig(o); err != nil {
			return fmt.Errorf("reload: %w", err)
		}
	}
	// Certificates are read again on every reload (SIGHUP included); files
	// that do not load refuse the reload whole.
	tlsClient, tlsRoutes, err := loadAllTLS(o)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}

	// Past this point the reload happens.
	old := s.authConfig()
	for name, u := range old.users {
		if nu := ac.users[name]; nu == nil || nu.password != u.password {
			s.verifier.Forget(name)
		}
	}
	if old.token != ac.token {
		s.verifier.Forget("\x00token")
	}
	s.opts.Store(o)
	s.commitAccounts(set, imps)
	s.setAuthConfig(ac)
	s.armPasswordExpiry(ac)
	s.storeTLS(tlsClient, tlsRoutes)
	s.ext().mu.Lock()
	s.ext().tlsFailing = false
	s.ext().mu.Unlock()
	if m != nil {
		if err := m.reconfigure(o); err != nil {
			s.logger.Error("reload: cluster", "err", err.Error())
		}
	}
	s.recheckClients(old, ac, o)
	return nil
}

// recheckClients holds every connected client to the new authorization.
func (s *Server) recheckClients(old, ac *authConfig, o *conf.Options) {
	// A failed check costs a bcrypt comparison; remember this reload's
	// answers so a hundred clients of one user pay it once.
	verdicts := map[[3]string]bool{}
	verify := func(name, stored, pass string) bool {
		k := [3]string{name, stored, pass}
		ok, seen := verdicts[k]
		if !seen {
			ok = s.verifier.Verify(name, stored, pass)
			verdicts[k] = ok
		}
		return ok
	}
	revoked, narrowed := 0, 0
	now := time.Now()
	s.forEachClient(func(c *client) {
		c.mu.Lock()
		if c.isClosed() || !c.flags.has(flagConnectReceived) {
			c.mu.Unlock()
			return
		}
		u := c.user
		pass, token := c.opts.Password, c.opts.Token
		authStored := c.authStored
		acc := c.acc
		c.mu.Unlock()

		var next *userAuth
		allowed := true
		// stored is the configured password c holds its user by from now
		// on, until the end of a grace window when it is a previous one.
		stored, until := "", time.Time{}
		switch {
		case !ac.required:
			next = nil
		case ac.token != "":
			allowed = u == nil && verify("\x00token", ac.token, token)
		case ac.tlsMap:
			if c.tls != nil {
				next = ac.certUser(c.tls.peer)
			}
			allowed = next != nil
			if allowed && next.password != "" {
				stored, until, allowed = recheckPassword(next, authStored, pass, now, verify)
			}
		case u == nil:
			// Connected while no auth was required, or as no_auth_user.
			allowed = ac.noAuthUser != nil
			next = ac.noAuthUser
		case u == old.noAuthUser && pass == "" && token == "":
			allowed = ac.noAuthUser != nil && ac.noAuthUser.name == u.name
			next = ac.noAuthUser
		default:
			next = ac.users[u.name]
			allowed = next != nil
			if allowed {
				stored, until, allowed = recheckPassword(next, authStored, pass, now, verify)
			}
		}
		// A user moved to another account (or whose account went away) is
		// cut: its subscriptions live in the old account's subject space.
		if allowed && (next != nil && next.acc != acc || next == nil && acc != s.accountSet().global) {
			allowed = false
		}
		if !allowed {
			revoked++
			s.logger.Info("authorization revoked by reload", "cid", c.cid, "user", userNameOf(u))
			c.sendErr(errTextAuthViolation)
			c.closeConnection(AuthenticationRevoked)
			return
		}
		narrowed += c.applyUser(next, stored, until)
		c.mu.Lock()
		// The outbound limits apply in place; max_payload and the other
		// parser limits apply to connections made from now on.
		c.out.mp, c.out.wdl = o.MaxPending, o.WriteDeadline
		c.mu.Unlock()
	})
	if revoked > 0 || narrowed > 0 {
		s.logger.Info("reload re-checked clients", "closed", revoked, "subscriptions_dropped", narrowed)
	}
}

// recheckPassword holds a connected client of user next to next's
// passwords: the configured password it authenticated with (authStored)
// still counts without bcrypt, its password pass is checked otherwise. It
// returns the password that holds it, and until when for a previous one.
func recheckPassword(next *userAuth, authStored, pass string, now time.Time,
	verify func(name, stored, pass string) bool) (stored string, until time.Time, ok bool) {
	previous := next.acceptsPrevious(now)
	switch {
	case next.password == authStored:
		return next.password, time.Time{}, true
	case previous && next.previous == authStored:
		// The usual case at a rotation with a grace window: the password
		// it connected with has just become the previous one.
		return next.previous, next.previousUntil, true
	case verify(next.name, next.password, pass):
		return next.password, time.Time{}, true
	case previous && verify(next.name, next.previous, pass):
		return next.previous, next.previousUntil, true
	}
	return "", time.Time{}, false
}

func userNameOf(u *userAuth) string {
	if u == nil {
		return ""
	}
	return u.name
}

// applyUser binds u (nil: no auth) and its permissions to c, which holds u
// by the configured password stored (until a time, for a previous password),
// dropping the subscriptions they no longer allow, each with the permissions
// violation error. It returns how many were dropped.
func (c *client) applyUser(u *userAuth, stored string, until time.Time) int {
	c.mu.Lock()
	c.user = u
	c.authStored, c.authUntil = stored, until
	if u != nil {
		c.setPermissionsLocked(u.perms)
	} else {
		c.setPermissionsLocked(nil)
	}
	var dropped []*subscription
	if c.perms != nil {
		for sid, sub := range c.subs {
			if !c.perms.CanSubscribe(string(sub.subject), string(sub.queue)) {
				delete(c.subs, sid)
				dropped = append(dropped, sub)
			}
		}
	}
	c.mu.Unlock()
	for _, sub := range dropped {
		if c.acc.sl.Remove(sub) {
			c.srv.localInterestChanged(sub, -1)
		}
		c.subPermissionViolation(sub)
	}
	return len(dropped)
}
