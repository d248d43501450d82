package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// staticPause builds hack/pause as a static amd64 binary: a real binary for the images.
func staticPause(t *testing.T) string {
	t.Helper()
	return buildPause(t, t.TempDir(), "amd64")
}

// buildPause builds hack/pause for linux/arch into dir/arch/pause, the way make
// image-binaries builds every image's binary.
func buildPause(t *testing.T, dir, arch string) string {
	t.Helper()
	out := filepath.Join(dir, arch, "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", out, "../pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ../pause for %s: %v\n%s", arch, err, b)
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
	pushed, err := remote.Index(ref)
	if err != nil {
		t.Fatalf("the tag is not an image index: %v", err)
	}
	indexDigest, _ := pushed.Digest()
	img, err := remote.Image(ref) // resolves the index to linux/amd64
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
	if im.Manifests[0].Digest != indexDigest {
		t.Errorf("archive digest %s, pushed %s", im.Manifests[0].Digest, indexDigest)
	}
	if _, err := os.Stat(filepath.Join(out, "pause.tar")); err != nil {
		t.Error(err)
	}
}

// make images is reproducible: two builds of both architectures' binaries, each
// in a temp dir of its own, at the same commit time, give the same index digests
// (and the same SBOM); a later commit time gives another.
func TestTwoBuildsOfTheSameCommitGiveTheSameDigests(t *testing.T) {
	build := func(created string) (buildRecord, []byte) {
		dir := t.TempDir()
		for _, arch := range []string{"amd64", "arm64"} {
			buildPause(t, dir, arch)
		}
		out := filepath.Join(dir, "out")
		if err := buildAll(context.Background(), []string{
			"--arch", "amd64,arm64", "--pause", filepath.Join(dir, "{arch}", "pause"),
			"--broker", filepath.Join(dir, "{arch}", "pause"),
			"--tag", "1.2.3", "--revision", "abc", "--created", created,
			"--out", out, "--digests", filepath.Join(out, "images.json"), "--sbom", out,
		}); err != nil {
			t.Fatal(err)
		}
		r, err := readRecord(filepath.Join(out, "images.json"))
		if err != nil {
			t.Fatal(err)
		}
		sbom, err := os.ReadFile(filepath.Join(out, "pause.cdx.json"))
		if err != nil {
			t.Fatal(err)
		}
		return r, sbom
	}
	first, firstSBOM := build("1700000000")
	second, secondSBOM := build("1700000000")
	if len(first.Images) != 2 {
		t.Fatalf("images %+v", first.Images)
	}
	for i, img := range first.Images {
		if got := len(img.Platforms); got != 2 {
			t.Errorf("%s: %d platforms, want linux/amd64 and linux/arm64", img.Name, got)
		}
		if img.Digest != second.Images[i].Digest {
			t.Errorf("%s: two builds of the same commit gave index digests %s and %s", img.Name, img.Digest, second.Images[i].Digest)
		}
	}
	if !bytes.Equal(firstSBOM, secondSBOM) {
		t.Error("two builds of the same commit gave different SBOMs")
	}
	later, _ := build("1700000001")
	if later.Images[0].Digest == first.Images[0].Digest {
		t.Errorf("another commit time gave the same digest %s: the creation time is not in the image", first.Images[0].Digest)
	}
}

// The pushed index holds linux/amd64 and linux/arm64 images whose binaries are
// for those machines; a client resolving the tag for either platform gets its own.
func TestTheIndexServesEachPlatformItsOwnBinary(t *testing.T) {
	dir := t.TempDir()
	for _, arch := range []string{"amd64", "arm64"} {
		buildPause(t, dir, arch)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg := strings.TrimPrefix(srv.URL, "http://")
	if err := buildAll(context.Background(), []string{
		"--arch", "amd64,arm64", "--pause", filepath.Join(dir, "{arch}", "pause"),
		"--tag", "1.2.3", "--push", reg, "--insecure",
	}); err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(reg+"/natsforge/pause:1.2.3", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		p := platformOf(arch)
		img, err := remote.Image(ref, remote.WithPlatform(p))
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != arch || cf.OS != "linux" || cf.Variant != p.Variant {
			t.Errorf("%s: config platform %s/%s/%s", arch, cf.OS, cf.Architecture, cf.Variant)
		}
		if got := entrypointMachine(t, img, "pause"); got != machine {
			t.Errorf("%s: the image's /pause is for %s, want %s", arch, got, machine)
		}
	}
	if err := buildAll(context.Background(), []string{
		"--arch", "amd64,arm64", "--pause", filepath.Join(dir, "amd64", "pause"), "--tag", "x", "--push", reg, "--insecure",
	}); err == nil || !strings.Contains(err.Error(), "{arch}") {
		t.Errorf("one binary path for two architectures: %v, want a refusal naming {arch}", err)
	}
}

// entrypointMachine reads the ELF machine of file in img's filesystem.
func entrypointMachine(t *testing.T, img v1.Image, file string) elf.Machine {
	t.Helper()
	rc := mutate.Extract(img)
	defer func() { _ = rc.Close() }()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no %s in the image: %v", file, err)
		}
		if h.Name != file {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		f, err := elf.NewFile(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return f.Machine
	}
}

// The SBOM is CycloneDX that its own library reads back: the image by index
// digest as the subject, one application per platform, the Go standard library
// the binaries were built with, the modules they contain.
func TestTheSBOMListsTheImageItsBinariesAndTheirModules(t *testing.T) {
	dir := t.TempDir()
	buildPause(t, dir, "amd64")
	// The test binary itself: a Go binary with module dependencies in its build info.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	m := meta{Version: "1.2.3", Revision: "abc", Source: source, Created: time.Unix(1700000000, 0).UTC()}
	b := builtImage{Name: "pause", Repository: "r.example/natsforge/pause", Tag: "1.2.3", Digest: "sha256:" + strings.Repeat("ab", 32),
		Platforms: []builtPlatform{{Platform: "linux/amd64", Digest: "sha256:" + strings.Repeat("cd", 32)}, {Platform: "linux/arm64/v8", Digest: "sha256:" + strings.Repeat("ef", 32)}}}
	imgs := []platformImage{{Arch: "amd64", Binary: filepath.Join(dir, "amd64", "pause")}, {Arch: "arm64", Binary: self}}
	file := filepath.Join(dir, "pause.cdx.json")
	if err := writeSBOM(file, b, imgs, m); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var bom cdx.BOM
	if err := cdx.NewBOMDecoder(f, cdx.BOMFileFormatJSON).Decode(&bom); err != nil {
		t.Fatal(err)
	}
	if bom.SpecVersion != cdx.SpecVersion1_6 || !strings.HasPrefix(bom.SerialNumber, "urn:uuid:") {
		t.Errorf("spec %v serial %q", bom.SpecVersion, bom.SerialNumber)
	}
	subject := bom.Metadata.Component
	if subject == nil || subject.Type != cdx.ComponentTypeContainer ||
		subject.PackageURL != "pkg:oci/pause@sha256%3A"+strings.Repeat("ab", 32)+"?repository_url=r.example%2Fnatsforge%2Fpause&tag=1.2.3" {
		t.Fatalf("subject %+v", subject)
	}
	if bom.Metadata.Timestamp != "2023-11-14T22:13:20Z" {
		t.Errorf("timestamp %s, want the build's creation time", bom.Metadata.Timestamp)
	}
	byRef := map[string]cdx.Component{}
	for _, c := range *bom.Components {
		byRef[c.BOMRef] = c
	}
	if c, ok := byRef["linux/amd64/pause"]; !ok || c.Type != cdx.ComponentTypeApplication || c.Name != "github.com/natsforge/natsforge" {
		t.Errorf("amd64 binary component %+v", c)
	}
	if _, ok := byRef["pkg:golang/std@"+runtime.Version()]; !ok {
		t.Errorf("no std@%s component", runtime.Version())
	}
	// The test binary links go-containerregistry; its go.sum hash is the SHA-256.
	var ggcr *cdx.Component
	for _, c := range *bom.Components {
		if c.Name == "github.com/google/go-containerregistry" {
			ggcr = &c
		}
	}
	if ggcr == nil || ggcr.Version == "" || ggcr.Hashes == nil || len((*ggcr.Hashes)[0].Value) != 64 {
		t.Fatalf("go-containerregistry component %+v", ggcr) // its BOMRef is needed below
	}
	deps := map[string][]string{}
	for _, d := range *bom.Dependencies {
		if d.Dependencies != nil {
			deps[d.Ref] = *d.Dependencies
		}
	}
	if got := deps[subject.BOMRef]; len(got) != 2 {
		t.Errorf("the image depends on %v, want its two binaries", got)
	}
	if !slices.Contains(deps["linux/arm64/v8/"+filepath.Base(self)], ggcr.BOMRef) {
		t.Errorf("the arm64 binary's dependencies %v lack %s", deps["linux/arm64/v8/"+filepath.Base(self)], ggcr.BOMRef)
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
