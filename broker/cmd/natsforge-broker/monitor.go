package main

import (
	"log/slog"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/server"
)

// startMonitor serves HTTP monitoring when a port is configured.
func startMonitor(s *server.Server, opts *conf.Options, logger *slog.Logger) (stop func(), err error) {
	if opts.HTTPPort == 0 {
		return func() {}, nil
	}
	// broker/monitor needs a monitor.Source for the server; until one is
	// published the port is only reported.
	logger.Warn("HTTP monitoring is not wired into this build yet", "http_port", opts.HTTPPort)
	return func() {}, nil
}
