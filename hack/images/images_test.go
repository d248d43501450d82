package main

import (
	"archive/tar"
	"context"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// staticPause builds hack/pause as a static binary: a real binary for the images.
func staticPause(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "pause")
	cmd := exec.Command("go", "build", "-o", out, "../pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ../pause: %v\n%s", err, b)
	}
	return out
}

func files(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	got := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return got
		}
		if err != nil {
			t.Fatal(err)
		}
		got[strings.TrimSuffix(h.Name, "/")] = h
	}
}

func TestBuildPushAndArchive(t *testing.T) {
	bin := staticPause(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg := strings.TrimPrefix(srv.URL, "http://")
	out := t.TempDir()

	err := buildAll(context.Background(), []string{
		"--broker", bin, "--pause", bin, "--tag", "t1", "--created", "1700000000",
		"--out", out, "--push", reg, "--insecure",
	})
	if err != nil {
		t.Fatal(err)
	}

	ref, err := name.NewTag(reg+"/natsforge/broker:t1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q", cf.Config.User)
	}
	if got := strings.Join(cf.Config.Entrypoint, " "); got != "/natsforge-broker" {
		t.Errorf("entrypoint %q", got)
	}
	if cf.Config.Labels["org.opencontainers.image.version"] != "t1" ||
		cf.Config.Labels["org.opencontainers.image.source"] != source {
		t.Errorf("labels %v", cf.Config.Labels)
	}
	if _, ok := cf.Config.ExposedPorts["4222/tcp"]; !ok {
		t.Errorf("ports %v", cf.Config.ExposedPorts)
	}
	if !cf.Created.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("created %v", cf.Created)
	}
	mt, _ := img.MediaType()
	if !strings.Contains(string(mt), "oci") {
		t.Errorf("manifest media type %s", mt)
	}

	fs := files(t, img)
	if h := fs["natsforge-broker"]; h == nil || h.Mode&0o111 == 0 || h.Uid != 0 {
		t.Errorf("binary entry %+v", h)
	}
	if h := fs["tmp"]; h == nil || h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp entry %+v", h)
	}
	if h := fs["home/nonroot"]; h == nil || h.Uid != 65532 {
		t.Errorf("/home/nonroot entry %+v", h)
	}
	if fs["etc/passwd"] == nil {
		t.Error("no /etc/passwd")
	}

	// The archive is an OCI layout holding the same image under the expected name.
	archive := filepath.Join(out, "broker.tar")
	dir := t.TempDir()
	untar(t, archive, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Annotations["io.containerd.image.name"] != "docker.io/natsforge/broker:t1" {
		t.Fatalf("index %+v", im.Manifests)
	}
	want, _ := img.Digest()
	if im.Manifests[0].Digest != want {
		t.Errorf("archive digest %s, pushed %s", im.Manifests[0].Digest, want)
	}
	if _, err := os.Stat(filepath.Join(out, "pause.tar")); err != nil {
		t.Error(err)
	}
}

// Two builds of the same binary at the same time give the same digest.
func TestReproducible(t *testing.T) {
	bin := staticPause(t)
	m := meta{Version: "x", Source: source, Arch: "amd64", Created: time.Unix(1, 0).UTC()}
	s := spec{Repo: "natsforge/pause", Binary: bin, Entrypoint: "/pause"}
	var digests []v1.Hash
	for range 2 {
		base, err := baseLayer(m)
		if err != nil {
			t.Fatal(err)
		}
		img, err := build(s, m, base)
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Errorf("digests differ: %v", digests)
	}
}

func TestRefusesDynamicOrForeignBinaries(t *testing.T) {
	bin := staticPause(t)
	if err := checkStatic(bin, "arm64"); err == nil {
		t.Error("an amd64 binary was accepted as arm64")
	}
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkStatic(notELF, "amd64"); err == nil {
		t.Error("a shell script was accepted")
	}
	if sh, err := exec.LookPath("sh"); err == nil {
		if err := checkStatic(sh, "amd64"); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
			t.Errorf("dynamic %s: %v", sh, err)
		}
	}
}

func untar(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
