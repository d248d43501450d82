package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// buildRecord is what --digests writes: every image of one build, by digest.
// make release keeps it as dist/images.json and pins the chart to it.
type buildRecord struct {
	Version  string       `json:"version"`
	Revision string       `json:"revision,omitempty"`
	Created  string       `json:"created"`
	Images   []builtImage `json:"images"`
}

// builtImage is one image index and its platform images.
type builtImage struct {
	// Name is the image's short name: operator, broker, pause.
	Name string `json:"name"`
	// Repository is where it was pushed (registry/natsforge/operator), or the
	// repository path alone when it was not.
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	// Digest is the image index's.
	Digest    string          `json:"digest"`
	Platforms []builtPlatform `json:"platforms"`
}

type builtPlatform struct {
	Platform string `json:"platform"`
	Digest   string `json:"digest"`
}

// describe records idx, built for s, before it is pushed anywhere.
func describe(s spec, tag string, idx v1.ImageIndex, imgs []platformImage) (builtImage, error) {
	d, err := idx.Digest()
	if err != nil {
		return builtImage{}, err
	}
	b := builtImage{Name: path.Base(s.Repo), Repository: s.Repo, Tag: tag, Digest: d.String()}
	for _, pi := range imgs {
		pd, err := pi.Image.Digest()
		if err != nil {
			return builtImage{}, err
		}
		b.Platforms = append(b.Platforms, builtPlatform{Platform: platformOf(pi.Arch).String(), Digest: pd.String()})
	}
	return b, nil
}

func (r buildRecord) write(file string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}

// printDigests prints each image of a --digests file as repository:tag@digest.
func printDigests(file string) error {
	r, err := readRecord(file)
	if err != nil {
		return err
	}
	for _, img := range r.Images {
		fmt.Printf("%s:%s@%s\n", img.Repository, img.Tag, img.Digest)
	}
	return nil
}

func readRecord(file string) (buildRecord, error) {
	var r buildRecord
	b, err := os.ReadFile(file)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}
