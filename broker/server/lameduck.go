package server

import (
	"time"
)

// LameDuckShutdown is what SIGTERM does: stop accepting clients and routes,
// tell the clients (INFO with "ldm":true and connect_urls without this
// server) and the peers (so they stop advertising it), wait the grace period,
// then close the remaining clients spread over the rest of
// lame_duck_duration (at most a second apart), so that they reconnect
// elsewhere a few at a time; then shut down. It returns once the server is down.
func (s *Server) LameDuckShutdown() {
	o := s.getOpts()
	e := s.ext()
	e.mu.Lock()
	if e.lameDuck {
		e.mu.Unlock()
		<-s.Done()
		return
	}
	e.lameDuck = true
	e.mu.Unlock()

	s.logger.Info("entering lame duck mode", "duration", o.LameDuckDuration.String(),
		"grace_period", o.LameDuckGracePeriod.String())
	s.StopAccepting()
	if m := s.routes(); m != nil {
		m.enterLameDuck()
	}
	s.sendAsyncInfo()

	grace, total := o.LameDuckGracePeriod, o.LameDuckDuration
	if grace > total {
		grace = total
	}
	if s.numClients() > 0 {
		s.lameDuckWait(grace)
	}
	var clients []*client
	s.forEachClient(func(c *client) { clients = append(clients, c) })
	if n := len(clients); n > 0 {
		// As nats-server: spread over what is left of the duration, but no
		// more than a second apart, so a few clients are not strung out
		// over minutes.
		step := min((total-grace)/time.Duration(n), time.Second)
		for i, c := range clients {
			c.closeConnection(LameDuckMode)
			if i < n-1 && step > 0 {
				s.lameDuckWait(step)
			}
		}
	}
	s.logger.Info("lame duck mode over, shutting down")
	s.Shutdown()
}

// lameDuckWait waits d, or less if the server shuts down meanwhile.
func (s *Server) lameDuckWait(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.Done():
	}
}

// InLameDuckMode reports whether LameDuckShutdown has begun.
func (s *Server) InLameDuckMode() bool {
	e := s.ext()
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lameDuck
}

func (s *Server) numClients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.clients)
}
