// Command images builds natsforge's container images without a Docker engine: each
// image is an OCI image index of one image per architecture, each of those one
// static Go binary on an empty base with a distroless-style non-root user (65532),
// an entrypoint, OCI labels and its linux platform. It writes the images as OCI
// tarballs (for `ctr images import`, `podman load`) and/or pushes them to a
// registry, and can record their digests and write a CycloneDX SBOM of each.
//
//	go run ./hack/images --tag 0.1.0 --arch amd64,arm64 \
//	    --operator 'bin/images/{arch}/manager' --broker 'bin/images/{arch}/natsforge-broker' \
//	    --pause 'bin/images/{arch}/pause' \
//	    --push 10.200.0.2:5001 --insecure --digests dist/images.json --sbom dist/sbom
//
// Every byte of an image comes from the binaries and fixed metadata (the creation
// time is $SOURCE_DATE_EPOCH or the HEAD commit's time), so the same commit gives
// the same digests.
//
// An image whose binary flag is empty is skipped. `--image repo=binary` adds any
// other single-binary image (entrypoint /<binary name>).
//
// It also serves a small registry (blobs on disk, manifests in memory) for the
// local cluster:
//
//	go run ./hack/images registry --address 127.0.0.1:5001 --dir bin/registry
//
// and sets a chart's image values to the images a --digests file records (make
// release):
//
//	go run ./hack/images pin-chart --digests dist/images.json --values chart/values.yaml
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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const source = "https://github.com/natsforge/natsforge"

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "registry":
		err = serveRegistry(ctx, os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "pin-chart":
		err = pinChart(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "normalize-chart":
		err = normalizeChart(os.Args[2:])
	case len(os.Args) == 3 && os.Args[1] == "digests":
		err = printDigests(os.Args[2])
	default:
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
		arch     = fs.String("arch", "amd64", "GOARCHes the binaries were built for, comma-separated: each image is an OCI index with one linux/<arch> image each; with more than one, binary paths hold {arch}")
		digests  = fs.String("digests", "", "write every image's repository, tag and index and platform digests to this JSON `file`")
		sbomDir  = fs.String("sbom", "", "write a CycloneDX SBOM of each image, <name>.cdx.json, to this `directory`")
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

	archList, err := parseArchs(*arch)
	if err != nil {
		return err
	}
	m := meta{Version: *tag, Revision: *revision, Source: source, CACerts: *caCerts}
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
	for _, dir := range []string{*out, *sbomDir} {
		if dir != "" {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
	}
	var nameOpts []name.Option
	if *insecure {
		nameOpts = append(nameOpts, name.Insecure)
	}
	record := buildRecord{Version: *tag, Revision: m.Revision, Created: m.Created.Format(time.RFC3339)}
	for _, s := range specs {
		start := time.Now()
		idx, imgs, err := buildIndex(s, m, archList, base)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Repo, err)
		}
		built, err := describe(s, *tag, idx, imgs)
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
				err = writeDockerArchive(file, ref, imgs)
			} else {
				err = writeOCIArchive(file, idx, ref)
			}
			if err != nil {
				return fmt.Errorf("%s: writing %s: %w", s.Repo, file, err)
			}
			fmt.Printf("wrote %s  %s:%s  %s\n", file, s.Repo, *tag, built.Digest)
		}
		if *push != "" {
			ref, err := name.NewTag(strings.TrimSuffix(*push, "/")+"/"+s.Repo+":"+*tag, nameOpts...)
			if err != nil {
				return err
			}
			if err := remote.WriteIndex(ref, idx, remote.WithContext(ctx),
				remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
				return fmt.Errorf("pushing %s: %w", ref, err)
			}
			built.Repository = ref.Context().Name()
			fmt.Printf("pushed %s@%s (%s)\n", ref, built.Digest, time.Since(start).Round(time.Millisecond))
		}
		for _, p := range built.Platforms {
			fmt.Printf("  %s:%s %s %s\n", s.Repo, *tag, p.Platform, p.Digest)
		}
		if *sbomDir != "" {
			file := filepath.Join(*sbomDir, filepath.Base(s.Repo)+".cdx.json")
			if err := writeSBOM(file, built, imgs, m); err != nil {
				return fmt.Errorf("%s: SBOM: %w", s.Repo, err)
			}
			fmt.Printf("wrote %s\n", file)
		}
		record.Images = append(record.Images, built)
	}
	if *digests != "" {
		if err := record.write(*digests); err != nil {
			return err
		}
		fmt.Printf("wrote %s\n", *digests)
	}
	return nil
}

// parseArchs splits --arch: GOARCHes, comma-separated, each known and once.
func parseArchs(v string) ([]string, error) {
	var archs []string
	for _, a := range strings.Split(v, ",") {
		a = strings.TrimSpace(a)
		if _, ok := elfMachine[a]; !ok {
			return nil, fmt.Errorf("--arch %q: unsupported architecture %q", v, a)
		}
		if slices.Contains(archs, a) {
			return nil, fmt.Errorf("--arch %q: %s twice", v, a)
		}
		archs = append(archs, a)
	}
	return archs, nil
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
