package main

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/monitor"
	"github.com/natsforge/natsforge/broker/server"
)

// startMonitor serves HTTP monitoring, or HTTPS with https_port, when a port
// is configured (-1 picks a free one, which the log reports).
func startMonitor(s *server.Server, opts *conf.Options, mo monitor.Options, logger *slog.Logger) (stop func(), err error) {
	host, port, secure := opts.HTTPHost, opts.HTTPPort, false
	if opts.HTTPSPort != 0 {
		host, port, secure = opts.HTTPSHost, opts.HTTPSPort, true
	}
	if port == 0 {
		return func() {}, nil
	}
	if host == "" {
		// As nats-server: monitoring binds where the client listener does
		// unless told otherwise.
		host = opts.Host
	}
	if port < 0 {
		port = 0
	}
	m := monitor.NewWithOptions(s, mo)
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if secure {
		err = m.StartTLS(addr, s.MonitoringTLSConfig())
	} else {
		err = m.Start(addr)
	}
	if err != nil {
		return nil, err
	}
	logger.Info("listening for monitoring requests", "addr", m.Addr().String(), "https", secure)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
	}, nil
}
