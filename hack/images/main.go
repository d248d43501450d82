// Command images builds natsforge's container images without a Docker engine: each
// image is one static Go binary on an empty base with a distroless-style non-root
// user (65532), an entrypoint, OCI labels and a linux platform. It writes the images
// as OCI tarballs (for `ctr images import`, `docker load`, `podman load`) and/or
// pushes them to a registry.
//
//	go run ./hack/images --tag dev \
//	    --operator bin/manager --broker bin/natsforge-broker --pause bin/pause \
//	    --out dist/images --push 10.200.0.2:5001 --insecure
//
// An image whose binary flag is empty is skipped. `--image repo=binary` adds any
// other single-binary image (entrypoint /<binary name>).
//
// It also serves a small registry (blobs on disk, manifests in memory) for the
// local cluster:
//
//	go run ./hack/images registry --address 127.0.0.1:5001 --dir bin/registry
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

const source = "https://github.com/natsforge/natsforge"

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if len(os.Args) > 1 && os.Args[1] == "registry" {
		err = serveRegistry(ctx, os.Args[2:])
	} else {
		args := os.Args[1:]
		if len(args) > 0 && args[0] == "build" {
			args = args[1:]
		}
		err = buildAll(ctx, args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func buildAll(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	var (
		operator = fs.String("operator", "", "path of the static `manager` binary (image natsforge/operator); empty skips it")
		broker   = fs.String("broker", "", "path of the static `natsforge-broker` binary (image natsforge/broker); empty skips it")
		pause    = fs.String("pause", "", "path of the static pause binary (image natsforge/pause); empty skips it")
		prefix   = fs.String("repo-prefix", "natsforge", "repository prefix of the images")
		tag      = fs.String("tag", "dev", "image tag (also the org.opencontainers.image.version label)")
		out      = fs.String("out", "", "directory to write <name>.tar archives to")
		format   = fs.String("format", "oci", "archive format for --out: oci (OCI image layout) or docker (docker save)")
		push     = fs.String("push", "", "registry to push to, e.g. 10.200.0.2:5001 or ghcr.io/org")
		insecure = fs.Bool("insecure", false, "allow plain http to the --push registry")
		arch     = fs.String("arch", "amd64", "GOARCH the binaries were built for (the image platform is linux/<arch>)")
		revision = fs.String("revision", "", "git revision label (default: git rev-parse HEAD, if available)")
		created  = fs.String("created", "", "creation time, RFC 3339 or Unix seconds (default: $SOURCE_DATE_EPOCH, else the HEAD commit time, else the epoch): fixed so builds are reproducible")
		caCerts  = fs.String("ca-certs", "", "CA bundle to include at /etc/ssl/certs/ca-certificates.crt (default none)")
		extra    multiFlag
	)
	fs.Var(&extra, "image", "extra image `repo=binary` (repeatable); entrypoint /<binary file name>")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *out == "" && *push == "" {
		return errors.New("nothing to do: give --out DIR and/or --push REGISTRY")
	}
	if *format != "oci" && *format != "docker" {
		return fmt.Errorf("--format %q: want oci or docker", *format)
	}

	var specs []spec
	if *operator != "" {
		specs = append(specs, spec{Repo: *prefix + "/operator", Binary: *operator, Entrypoint: "/manager",
			Title: "natsforge operator", Description: "Kubernetes operator for natsforge NATS clusters"})
	}
	if *broker != "" {
		specs = append(specs, spec{Repo: *prefix + "/broker", Binary: *broker, Entrypoint: "/natsforge-broker",
			Title: "natsforge broker", Description: "natsforge's NATS-protocol message broker",
			Ports: []string{"4222/tcp", "6222/tcp", "8222/tcp"}})
	}
	if *pause != "" {
		specs = append(specs, spec{Repo: *prefix + "/pause", Binary: *pause, Entrypoint: "/pause",
			Title: "natsforge pause", Description: "pod sandbox container of the natsforge local cluster"})
	}
	for _, e := range extra {
		repo, bin, ok := strings.Cut(e, "=")
		if !ok || repo == "" || bin == "" {
			return fmt.Errorf("--image %q: want repo=binary", e)
		}
		specs = append(specs, spec{Repo: repo, Binary: bin, Entrypoint: "/" + filepath.Base(bin),
			Title: repo, Description: repo + " (built by natsforge hack/images)"})
	}
	if len(specs) == 0 {
		return errors.New("no images: give --operator, --broker, --pause or --image")
	}

	m := meta{Version: *tag, Revision: *revision, Source: source, Arch: *arch, CACerts: *caCerts}
	if m.Revision == "" {
		m.Revision = git("rev-parse", "HEAD")
	}
	t, err := creationTime(*created)
	if err != nil {
		return err
	}
	m.Created = t

	base, err := baseLayer(m)
	if err != nil {
		return err
	}
	if *out != "" {
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
	}
	var nameOpts []name.Option
	if *insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	for _, s := range specs {
		start := time.Now()
		img, err := build(s, m, base)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Repo, err)
		}
		digest, err := img.Digest()
		if err != nil {
			return fmt.Errorf("%s: %w", s.Repo, err)
		}
		if *out != "" {
			file := filepath.Join(*out, filepath.Base(s.Repo)+".tar")
			ref, err := name.NewTag("docker.io/" + s.Repo + ":" + *tag)
			if err != nil {
				return err
			}
			if *format == "docker" {
				err = tarball.WriteToFile(file, ref, img)
			} else {
				err = writeOCIArchive(file, img, ref, v1.Platform{OS: "linux", Architecture: *arch})
			}
			if err != nil {
				return fmt.Errorf("%s: writing %s: %w", s.Repo, file, err)
			}
			fmt.Printf("wrote %s  %s:%s  %s\n", file, s.Repo, *tag, digest)
		}
		if *push != "" {
			ref, err := name.NewTag(strings.TrimSuffix(*push, "/")+"/"+s.Repo+":"+*tag, nameOpts...)
			if err != nil {
				return err
			}
			if err := remote.Write(ref, img, remote.WithContext(ctx),
				remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
				return fmt.Errorf("pushing %s: %w", ref, err)
			}
			fmt.Printf("pushed %s@%s (%s)\n", ref, digest, time.Since(start).Round(time.Millisecond))
		}
	}
	return nil
}

// creationTime resolves --created, $SOURCE_DATE_EPOCH or the HEAD commit time.
func creationTime(flagValue string) (time.Time, error) {
	v := flagValue
	if v == "" {
		v = os.Getenv("SOURCE_DATE_EPOCH")
	}
	if v == "" {
		v = git("log", "-1", "--format=%ct")
	}
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Unix(secs, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("creation time %q: want RFC 3339 or Unix seconds", v)
	}
	return t.UTC(), nil
}

// git runs a git command and returns its trimmed output, or "" on any failure.
func git(args ...string) string {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
