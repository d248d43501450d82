package main

import (
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
)

// writeSBOM writes a CycloneDX (1.6, JSON) SBOM of one image index: the image
// as the BOM's subject, each platform's binary as an application, and the Go
// modules and standard library compiled into them, read from the binaries'
// build information (debug/buildinfo). Nothing in it depends on when or where it
// was made (the timestamp is the build's creation time, the serial number is
// derived from the index digest), so the same build gives the same file.
func writeSBOM(file string, b builtImage, imgs []platformImage, m meta) error {
	imageRef := ociPURL(b)
	bom := cdx.NewBOM()
	bom.SerialNumber = "urn:uuid:" + uuidFrom(b.Digest)
	bom.Version = 1
	bom.Metadata = &cdx.Metadata{
		Timestamp: m.Created.UTC().Format(time.RFC3339),
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
			Type: cdx.ComponentTypeApplication, Name: "natsforge hack/images", Version: m.Version,
		}}},
		Component: &cdx.Component{
			BOMRef:     imageRef,
			Type:       cdx.ComponentTypeContainer,
			Name:       b.Repository,
			Version:    b.Tag,
			PackageURL: imageRef,
			Hashes:     &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: strings.TrimPrefix(b.Digest, "sha256:")}},
			Properties: &[]cdx.Property{
				{Name: "natsforge:image:source", Value: m.Source},
				{Name: "natsforge:image:revision", Value: m.Revision},
			},
		},
	}

	modules := map[string]cdx.Component{} // by bom-ref, shared by the platforms
	var binaries []string
	deps := map[string][]string{}
	var components []cdx.Component
	for i, pi := range imgs {
		bi, err := buildinfo.ReadFile(pi.Binary)
		if err != nil {
			return fmt.Errorf("%s: %w", pi.Binary, err)
		}
		platform := b.Platforms[i]
		ref := platform.Platform + "/" + path.Base(pi.Binary)
		props := []cdx.Property{
			{Name: "natsforge:platform", Value: platform.Platform},
			{Name: "natsforge:platform:digest", Value: platform.Digest},
			{Name: "natsforge:go:package", Value: bi.Path},
			{Name: "natsforge:go:version", Value: bi.GoVersion},
		}
		for _, s := range bi.Settings {
			props = append(props, cdx.Property{Name: "natsforge:go:build:" + s.Key, Value: s.Value})
		}
		components = append(components, cdx.Component{
			BOMRef: ref, Type: cdx.ComponentTypeApplication,
			Name: bi.Main.Path, Version: b.Tag, Properties: &props,
		})
		binaries = append(binaries, ref)

		std := goPURL("std", bi.GoVersion)
		modules[std] = cdx.Component{BOMRef: std, Type: cdx.ComponentTypeLibrary, Name: "std", Version: bi.GoVersion, PackageURL: std}
		uses := []string{std}
		for _, d := range bi.Deps {
			mod := d
			if d.Replace != nil {
				mod = d.Replace
			}
			p := goPURL(mod.Path, mod.Version)
			c := cdx.Component{BOMRef: p, Type: cdx.ComponentTypeLibrary, Name: mod.Path, Version: mod.Version, PackageURL: p}
			if h, ok := h1SHA256(mod.Sum); ok {
				c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: h}}
			}
			if d.Replace != nil {
				c.Properties = &[]cdx.Property{{Name: "natsforge:go:replaces", Value: d.Path + "@" + d.Version}}
			}
			modules[p] = c
			uses = append(uses, p)
		}
		sort.Strings(uses)
		deps[ref] = uses
	}
	refs := make([]string, 0, len(modules))
	for r := range modules {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, r := range refs {
		components = append(components, modules[r])
	}
	bom.Components = &components

	dependencies := []cdx.Dependency{{Ref: imageRef, Dependencies: &binaries}}
	for _, bin := range binaries {
		uses := deps[bin]
		dependencies = append(dependencies, cdx.Dependency{Ref: bin, Dependencies: &uses})
	}
	for _, r := range refs {
		dependencies = append(dependencies, cdx.Dependency{Ref: r})
	}
	bom.Dependencies = &dependencies

	f, err := os.Create(file)
	if err != nil {
		return err
	}
	enc := cdx.NewBOMEncoder(f, cdx.BOMFileFormatJSON).SetPretty(true).SetEscapeHTML(false)
	err = enc.EncodeVersion(bom, cdx.SpecVersion1_6)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ociPURL is the package URL of an image index (purl spec, type oci).
func ociPURL(b builtImage) string {
	q := url.Values{}
	q.Set("repository_url", b.Repository)
	q.Set("tag", b.Tag)
	return "pkg:oci/" + b.Name + "@" + strings.ReplaceAll(b.Digest, ":", "%3A") + "?" + q.Encode()
}

// goPURL is the package URL of a Go module (purl spec, type golang).
func goPURL(module, version string) string {
	return "pkg:golang/" + module + "@" + url.PathEscape(version)
}

// h1SHA256 turns a go.sum hash (h1:<base64 SHA-256 of the module's file list>)
// into the hex a CycloneDX SHA-256 hash holds, as cyclonedx-gomod does.
func h1SHA256(sum string) (string, bool) {
	b64, ok := strings.CutPrefix(sum, "h1:")
	if !ok {
		return "", false
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != sha256.Size {
		return "", false
	}
	return hex.EncodeToString(raw), true
}

// uuidFrom makes a version-5-shaped UUID from s: the same image, the same serial.
func uuidFrom(s string) string {
	h := sha256.Sum256([]byte("natsforge-sbom:" + s))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}
