package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

var zeroTime = time.Unix(0, 0).UTC()

// serveRegistry runs an OCI distribution registry over plain http until ctx ends.
// Blobs are kept in --dir, manifests in memory: a restarted registry has lost its
// tags (push again), while a container runtime keeps what it already pulled.
func serveRegistry(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("images registry", flag.ContinueOnError)
	addr := fs.String("address", "127.0.0.1:5001", "listen address")
	dir := fs.String("dir", "", "directory for blobs (default: in memory)")
	quiet := fs.Bool("quiet", false, "do not log every request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts := []registry.Option{}
	if *dir != "" {
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			return err
		}
		opts = append(opts, registry.WithBlobHandler(registry.NewDiskBlobHandler(*dir)))
	}
	logger := log.New(os.Stderr, "registry: ", log.LstdFlags)
	if *quiet {
		logger = log.New(io.Discard, "", 0)
	}
	opts = append(opts, registry.Logger(logger))

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: registry.New(opts...), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "registry: serving on http://%s (blobs: %s)\n", ln.Addr(), orMemory(*dir))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func orMemory(dir string) string {
	if dir == "" {
		return "memory"
	}
	return dir
}
