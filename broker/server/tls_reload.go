package server

import (
	"fmt"
	"slices"
	"time"

	"github.com/natsforge/natsforge/broker/conf"
)

// Certificates rotate without a restart. The files a tls block names (cert,
// key, CA; client and route blocks) are read again on SIGHUP and on a config
// reload (applyConfig), and whenever their content changes on disk: each
// file is watched like the config file (configWatcher), so the Kubernetes
// Secret `..data` symlink swap is seen. New material is stored whole; new
// connections get it, existing ones keep the session they have. Material
// that does not load (a missing file, a key that is not the certificate's)
// changes nothing: the old certificate keeps serving, and the error shows in
// /varz and the log as a refused config reload does.

// tlsFilePollInterval is how often the certificate files are checked when
// no file system event says so sooner.
var tlsFilePollInterval = time.Second

// loadAllTLS loads the material of every tls block in o.
func loadAllTLS(o *conf.Options) (client, routes *tlsMaterial, err error) {
	if client, err = loadTLS(o.TLS, false); err != nil {
		return nil, nil, fmt.Errorf("tls: %w", err)
	}
	if o.Cluster != nil {
		if routes, err = loadTLS(o.Cluster.TLS, true); err != nil {
			return nil, nil, fmt.Errorf("cluster.tls: %w", err)
		}
	}
	return client, routes, nil
}

// storeTLS installs loaded material and watches its files.
func (s *Server) storeTLS(client, routes *tlsMaterial) {
	s.tlsClient.Store(client)
	s.tlsRoutes.Store(routes)
	s.watchTLSFiles()
}

// tlsFiles are the files the current material was read from.
func (s *Server) tlsFiles() []string {
	var files []string
	for _, m := range []*tlsMaterial{s.clientTLS(), s.routeTLS()} {
		if m == nil {
			continue
		}
		for _, f := range []string{m.opts.CertFile, m.opts.KeyFile, m.opts.CAFile} {
			if f != "" && !slices.Contains(files, f) {
				files = append(files, f)
			}
		}
	}
	return files
}

// ReloadTLS reads the certificate files again. On failure the old material
// keeps serving and the error is reported as a refused reload.
func (s *Server) ReloadTLS() error {
	e := s.ext()
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	client, routes, err := loadAllTLS(s.getOpts())
	e.mu.Lock()
	if err != nil {
		e.reloadErrors++
		e.lastReloadError = "reload: " + err.Error()
		e.lastReloadTime = time.Now()
		e.tlsFailing = true
	} else if e.tlsFailing {
		e.lastReloadError = ""
		e.tlsFailing = false
	}
	e.mu.Unlock()
	if err != nil {
		s.logger.Error("certificate reload refused, still serving the previous certificate", "err", err.Error())
		return err
	}
	s.tlsClient.Store(client)
	s.tlsRoutes.Store(routes)
	s.logger.Info("certificates reloaded", "files", len(s.tlsFiles()))
	return nil
}

// watchTLSFiles (re)starts the watchers when the set of files changed.
func (s *Server) watchTLSFiles() {
	files := s.tlsFiles()
	e := s.ext()
	e.mu.Lock()
	if e.tlsWatchStopped || slices.Equal(files, e.tlsWatched) {
		e.mu.Unlock()
		return
	}
	old := e.tlsWatchers
	e.tlsWatchers, e.tlsWatched = nil, files
	for _, f := range files {
		w := newConfigWatcher(f, tlsFilePollInterval, func(string) {
			s.logger.Info("certificate file changed on disk, reloading", "file", f)
			_ = s.ReloadTLS()
		})
		e.tlsWatchers = append(e.tlsWatchers, w)
		go w.run()
	}
	e.mu.Unlock()
	// Not waited for here: a reload (holding reloadMu) calls this, and an
	// old watcher may be inside ReloadTLS, waiting for reloadMu.
	go func() {
		for _, w := range old {
			w.close()
		}
	}()
}

func init() {
	startHooks = append(startHooks, func(s *Server) error {
		s.watchTLSFiles()
		return nil
	})
	shutdownHooks = append(shutdownHooks, func(s *Server) {
		e := s.ext()
		e.mu.Lock()
		ws := e.tlsWatchers
		e.tlsWatchers, e.tlsWatchStopped = nil, true
		e.mu.Unlock()
		for _, w := range ws {
			w.close()
		}
	})
}
