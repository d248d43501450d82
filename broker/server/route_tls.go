package server

import (
	"crypto/tls"
	"encoding/json"
	"time"
)

// Route TLS (cluster.tls), mutual as in nats-server: the accepting side sends
// a first INFO in the clear saying tls_required, then both sides run the TLS
// handshake, each presenting its certificate and verifying the other's
// against ca_file; the dialling side checks the server's name against the
// route URL's host. The route protocol (INFO, CONNECT with the URL's
// credentials, PING/PONG) then runs inside TLS unchanged, so route URLs stay
// nats:// and credentials still apply.

// routeTLS is the routes' certificate material, nil without cluster.tls.
func (s *Server) routeTLS() *tlsMaterial { return s.tlsRoutes.Load() }

// upgradeTLS runs the TLS negotiation on a new route and returns a reader on
// the TLS connection, or false (and the reason logged) when it failed.
func (r *route) upgradeTLS(rr *routeReader, m *tlsMaterial) (*routeReader, bool) {
	s := r.m.s
	fail := func(msg string, args ...any) (*routeReader, bool) {
		s.logger.Info("route TLS failed", append([]any{"addr", r.nc.RemoteAddr().String(), "why", msg}, args...)...)
		return nil, false
	}
	deadline := time.Now().Add(m.timeout())
	var tc *tls.Conn
	if r.dialer == nil {
		info := r.m.info()
		info.TLSRequired = true
		_ = r.nc.SetWriteDeadline(deadline)
		if r.writeNow(appendRouteJSON(nil, "INFO", info)) != nil {
			return fail("write failed")
		}
		tc = tls.Server(r.nc, m.config)
	} else {
		_ = r.nc.SetReadDeadline(deadline)
		op, err := rr.next()
		if err != nil || op.kind != routeOpInfo {
			return fail("expected INFO")
		}
		var in routeInfo
		if json.Unmarshal(op.arg, &in) != nil || !in.TLSRequired {
			return fail("the remote does not require TLS; routes here do")
		}
		cfg := m.config.Clone()
		cfg.ServerName = r.dialer.u.Hostname()
		tc = tls.Client(r.nc, cfg)
	}
	_ = tc.SetDeadline(deadline)
	if err := tc.Handshake(); err != nil {
		if r.dialer == nil {
			lingeringClose(r.nc)
		}
		return fail("handshake", "err", err.Error())
	}
	_ = tc.SetDeadline(time.Time{})
	r.nc = tc
	return newRouteReader(tc), true
}
