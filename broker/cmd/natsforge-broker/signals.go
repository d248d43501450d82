package main

import (
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/natsforge/natsforge/broker/server"
)

// enableReload lets SIGHUP and changes of the config file on disk reload it,
// with the command-line flags laid over it again.
func enableReload(s *server.Server, f *flags) error {
	if err := s.SetConfigFile(f.config, f.apply); err != nil {
		return err
	}
	return s.WatchConfigFile(0)
}

// handleSignals runs until the server is down: SIGHUP reloads the config,
// SIGTERM (and SIGUSR2, nats-server's) enters lame duck mode (clients move to
// other servers, then exit 0), SIGINT shuts down at once.
func handleSignals(s *server.Server, logger *slog.Logger) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGUSR2, syscall.SIGHUP)
	defer signal.Stop(sigs)
	for {
		select {
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				logger.Info("SIGHUP received, reloading the config")
				_ = s.Reload() // a refusal is logged, counted and shown in /varz
			case syscall.SIGTERM, syscall.SIGUSR2:
				logger.Info("signal received, entering lame duck mode", "signal", sig.String())
				go s.LameDuckShutdown()
			default:
				logger.Info("signal received, shutting down", "signal", sig.String())
				s.Shutdown()
				return
			}
		case <-s.Done():
			return
		}
	}
}
