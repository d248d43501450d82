package server

import (
	"fmt"
	"strings"
)

// Healthz is nil when the server accepts clients and, when clustered, routes;
// otherwise it names what is not up in nats-server's words
// (readyForConnections in its server.go): "server" for the client listener,
// which is not up before Start and is closed in lame duck mode, and "route"
// for the cluster listener. /healthz reports it, so readiness goes false
// while a pod hands its clients over and before it can take any.
func (s *Server) Healthz() error {
	var failed []string
	s.mu.Lock()
	accepting := s.running && !s.shutdown && s.listener != nil
	s.mu.Unlock()
	if !accepting {
		failed = append(failed, "server")
	}
	if s.getOpts().Cluster != nil {
		if m := s.routes(); m == nil || m.addr() == nil {
			failed = append(failed, "route")
		}
	}
	if len(failed) == 0 {
		return nil
	}
	// nats-server waits up to a millisecond for its listeners and says so;
	// the text is kept verbatim for tools that match on it.
	return fmt.Errorf("failed to be ready for connections after 1ms: %s", strings.Join(failed, ", "))
}
