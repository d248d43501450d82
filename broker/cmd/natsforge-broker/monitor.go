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

// startMonitor serves HTTP monitoring when a port is configured (-1 picks a
// free one, which the log reports).
func startMonitor(s *server.Server, opts *conf.Options, logger *slog.Logger) (stop func(), err error) {
	if opts.HTTPPort == 0 {
		return func() {}, nil
	}
	port := opts.HTTPPort
	if port < 0 {
		port = 0
	}
	m := monitor.New(s)
	if err := m.Start(net.JoinHostPort(opts.HTTPHost, strconv.Itoa(port))); err != nil {
		return nil, err
	}
	logger.Info("listening for monitoring requests", "addr", m.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = m.Shutdown(ctx)
	}, nil
}
