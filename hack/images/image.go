package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Non-root identity of every image, as in distroless's "nonroot" variant.
const (
	nonrootUID  = 65532
	nonrootName = "nonroot"
)

// spec describes one image: a single static binary on an empty base.
type spec struct {
	// Repo is the repository path without registry, e.g. "natsforge/broker".
	Repo string
	// Binary is the path of the static Linux binary on the build machine.
	Binary string
	// Entrypoint is where the binary goes in the image, e.g. "/natsforge-broker".
	Entrypoint string
	// Title and Description become OCI labels.
	Title       string
	Description string
	// Ports are exposed ports ("4222/tcp").
	Ports []string
}

// meta is what every image of one build shares.
type meta struct {
	Version  string // image tag and org.opencontainers.image.version
	Revision string // git commit, may be empty
	Source   string // repository URL
	Created  time.Time
	Arch     string // GOARCH of the binaries of one platform image
	CACerts  string // optional CA bundle to include at /etc/ssl/certs/ca-certificates.crt
}

// elfMachine maps a GOARCH to the ELF machine a binary built for it carries.
var elfMachine = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"arm":     elf.EM_ARM,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
	"riscv64": elf.EM_RISCV,
}

// archVariant is the platform variant registries and runtimes record for a
// GOARCH (arm64 is v8, as buildx writes it); empty for the others.
var archVariant = map[string]string{"arm64": "v8"}

// platformOf is the OCI platform of a linux/<arch> image.
func platformOf(arch string) v1.Platform {
	return v1.Platform{OS: "linux", Architecture: arch, Variant: archVariant[arch]}
}

// checkStatic refuses a binary that an empty base cannot run: not an ELF for arch,
// or dynamically linked (it would need a loader and libc that the image lacks).
func checkStatic(file, arch string) error {
	f, err := elf.Open(file)
	if err != nil {
		return fmt.Errorf("%s: not a Linux binary: %w", file, err)
	}
	defer func() { _ = f.Close() }()
	if want, ok := elfMachine[arch]; !ok {
		return fmt.Errorf("unsupported architecture %q", arch)
	} else if f.Machine != want {
		return fmt.Errorf("%s: built for %s, want %s (GOARCH=%s)", file, f.Machine, want, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: dynamically linked; build it with CGO_ENABLED=0", file)
		}
	}
	return nil
}

// tarEntry is one file or directory of a layer.
type tarEntry struct {
	name string
	mode int64
	uid  int
	data []byte // nil for a directory
}

// layerFrom makes a deterministic, gzip-compressed OCI layer of entries.
func layerFrom(entries []tarEntry, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.uid,
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		if e.uid == nonrootUID {
			hdr.Uname, hdr.Gname = nonrootName, nonrootName
		} else {
			hdr.Uname, hdr.Gname = "root", "root"
		}
		if e.data == nil {
			hdr.Typeflag = tar.TypeDir
			hdr.Name = strings.TrimSuffix(e.name, "/") + "/"
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if e.data != nil {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(b)), nil
	}, tarball.WithMediaType(types.OCILayer))
}

// baseLayer is the distroless-style base shared by every image: users and groups
// (root, nonroot 65532, nobody), nsswitch.conf, a writable /tmp, the nonroot home
// and, when given, a CA bundle.
func baseLayer(m meta) (v1.Layer, error) {
	entries := []tarEntry{
		{name: "etc", mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\nnobody:x:65534:\n")},
		{name: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{name: "etc/passwd", mode: 0o644, data: []byte(
			"root:x:0:0:root:/root:/sbin/nologin\n" +
				"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n" +
				"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")},
		{name: "home", mode: 0o755},
		{name: "home/nonroot", mode: 0o700, uid: nonrootUID},
		{name: "root", mode: 0o700},
		{name: "tmp", mode: 0o1777},
	}
	if m.CACerts != "" {
		certs, err := os.ReadFile(m.CACerts)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		entries = append(entries,
			tarEntry{name: "etc/ssl", mode: 0o755},
			tarEntry{name: "etc/ssl/certs", mode: 0o755},
			tarEntry{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: certs})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	return layerFrom(entries, m.Created)
}

// build assembles the image of s: base layer, binary layer, non-root config.
func build(s spec, m meta, base v1.Layer) (v1.Image, error) {
	if err := checkStatic(s.Binary, m.Arch); err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(s.Binary)
	if err != nil {
		return nil, err
	}
	entry := strings.TrimPrefix(path.Clean("/"+s.Entrypoint), "/")
	var entries []tarEntry
	if dir := path.Dir(entry); dir != "." {
		parts := strings.Split(dir, "/")
		for i := range parts {
			entries = append(entries, tarEntry{name: strings.Join(parts[:i+1], "/"), mode: 0o755})
		}
	}
	entries = append(entries, tarEntry{name: entry, mode: 0o755, data: bin})
	binLayer, err := layerFrom(entries, m.Created)
	if err != nil {
		return nil, err
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	created := v1.Time{Time: m.Created}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "natsforge hack/images: nonroot base", Comment: "users, groups, /tmp"}},
		mutate.Addendum{Layer: binLayer, MediaType: types.OCILayer, History: v1.History{
			Created: created, CreatedBy: "natsforge hack/images: COPY " + path.Base(s.Binary) + " /" + entry}},
	)
	if err != nil {
		return nil, err
	}

	labels := map[string]string{
		"org.opencontainers.image.title":       s.Title,
		"org.opencontainers.image.description": s.Description,
		"org.opencontainers.image.source":      m.Source,
		"org.opencontainers.image.url":         m.Source,
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.vendor":      "natsforge",
	}
	if m.Revision != "" {
		labels["org.opencontainers.image.revision"] = m.Revision
	}
	if !m.Created.IsZero() {
		labels["org.opencontainers.image.created"] = m.Created.UTC().Format(time.RFC3339)
	}
	ports := map[string]struct{}{}
	for _, p := range s.Ports {
		ports[p] = struct{}{}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = m.Arch
	cf.Variant = archVariant[m.Arch]
	cf.OS = "linux"
	cf.Created = created
	cf.Author = "natsforge"
	cf.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", nonrootUID, nonrootUID),
		Entrypoint:   []string{"/" + entry},
		WorkingDir:   "/",
		Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Labels:       labels,
		ExposedPorts: ports,
	}
	if m.CACerts != "" {
		cf.Config.Env = append(cf.Config.Env, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
	}
	if len(ports) == 0 {
		cf.Config.ExposedPorts = nil
	}
	return mutate.ConfigFile(img, cf)
}

// binaryFor is the binary of s for one architecture: its path with {arch}
// replaced. Several architectures need the placeholder, or every platform would
// get the same binary (checkStatic would refuse all but one anyway).
func binaryFor(s spec, arch string, archs int) (string, error) {
	if archs > 1 && !strings.Contains(s.Binary, "{arch}") {
		return "", fmt.Errorf("%s: binary path %q has no {arch} for %d architectures", s.Repo, s.Binary, archs)
	}
	return strings.ReplaceAll(s.Binary, "{arch}", arch), nil
}

// platformImage is one platform's image of an index, with the binary it runs.
type platformImage struct {
	Arch   string
	Binary string
	Image  v1.Image
}

// buildIndex builds the image of s for every arch and puts them in one OCI image
// index, in the order of archs: the index's digest is then a function of the
// binaries and m alone.
func buildIndex(s spec, m meta, archs []string, base v1.Layer) (v1.ImageIndex, []platformImage, error) {
	var adds []mutate.IndexAddendum
	var imgs []platformImage
	for _, arch := range archs {
		bin, err := binaryFor(s, arch, len(archs))
		if err != nil {
			return nil, nil, err
		}
		pm := m
		pm.Arch = arch
		ps := s
		ps.Binary = bin
		img, err := build(ps, pm, base)
		if err != nil {
			return nil, nil, err
		}
		p := platformOf(arch)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
		imgs = append(imgs, platformImage{Arch: arch, Binary: bin, Image: img})
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	return mutate.AppendManifests(idx, adds...), imgs, nil
}
