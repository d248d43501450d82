package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// pinChart sets a chart's image values to a build's images, for make release:
//
//	go run ./hack/images pin-chart --digests dist/images.json --values <copy of the chart>/values.yaml
//
// image.* is the operator image, broker.image.* the broker's: repository, tag
// and digest of what was pushed. Only those scalars change, in place, so the
// packaged values.yaml keeps every comment and blank line of the source.
func pinChart(args []string) error {
	fs := flag.NewFlagSet("images pin-chart", flag.ContinueOnError)
	digests := fs.String("digests", "", "the `file` --digests wrote")
	values := fs.String("values", "", "the chart's values.yaml `file`, rewritten in place")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *digests == "" || *values == "" || fs.NArg() > 0 {
		return errors.New("usage: images pin-chart --digests FILE --values FILE")
	}
	r, err := readRecord(*digests)
	if err != nil {
		return err
	}
	set := map[string]string{}
	for _, img := range r.Images {
		var prefix string
		switch img.Name {
		case "operator":
			prefix = "image"
		case "broker":
			prefix = "broker.image"
		default:
			continue
		}
		set[prefix+".repository"] = img.Repository
		set[prefix+".tag"] = img.Tag
		set[prefix+".digest"] = img.Digest
	}
	if len(set) != 6 {
		return fmt.Errorf("%s: want the operator and broker images, got %d values", *digests, len(set))
	}
	src, err := os.ReadFile(*values)
	if err != nil {
		return err
	}
	out, err := setScalars(src, set)
	if err != nil {
		return fmt.Errorf("%s: %w", *values, err)
	}
	return os.WriteFile(*values, out, 0o644)
}

// setScalars replaces the values at the dotted paths of set in the YAML
// document src, each a scalar on its own line, and checks that the result reads
// back with exactly those values.
func setScalars(src []byte, set map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, err
	}
	lines := bytes.Split(src, []byte("\n"))
	for p, v := range set {
		n, err := lookup(&doc, p)
		if err != nil {
			return nil, err
		}
		line := lines[n.Line-1]
		if n.Column-1 > len(line) {
			return nil, fmt.Errorf("%s: line %d is shorter than its value's column", p, n.Line)
		}
		// The value is replaced to the end of its line: a comment there
		// would go with it.
		if bytes.Contains(line[n.Column-1:], []byte(" #")) {
			return nil, fmt.Errorf("%s: line %d has a comment after the value, which rewriting it would drop", p, n.Line)
		}
		lines[n.Line-1] = append(line[:n.Column-1:n.Column-1], strconv.Quote(v)...)
	}
	out := bytes.Join(lines, []byte("\n"))

	var check yaml.Node
	if err := yaml.Unmarshal(out, &check); err != nil {
		return nil, fmt.Errorf("rewritten values do not parse: %w", err)
	}
	for p, v := range set {
		n, err := lookup(&check, p)
		if err != nil {
			return nil, err
		}
		if n.Value != v {
			return nil, fmt.Errorf("%s reads back as %q, want %q", p, n.Value, v)
		}
	}
	return out, nil
}

// lookup finds the scalar value node at a dotted path of mapping keys.
func lookup(doc *yaml.Node, dotted string) (*yaml.Node, error) {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	for _, key := range strings.Split(dotted, ".") {
		if n.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s: %q is not under a mapping", dotted, key)
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil, fmt.Errorf("%s: no key %q", dotted, key)
		}
		n = next
	}
	if n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("%s is not a scalar", dotted)
	}
	return n, nil
}

// normalizeChart rewrites a chart archive that helm package wrote, which stamps
// every entry and the gzip header with the time of packaging, with mtime in
// their place: the same chart then packs to the same bytes (and SHA256SUMS).
//
//	go run ./hack/images normalize-chart dist/natsforge-1.2.3.tgz
//
// The time is the build's (--created, $SOURCE_DATE_EPOCH, the HEAD commit's).
func normalizeChart(args []string) error {
	fs := flag.NewFlagSet("images normalize-chart", flag.ContinueOnError)
	created := fs.String("created", "", "time of every entry, RFC 3339 or Unix seconds (default: $SOURCE_DATE_EPOCH, else the HEAD commit time)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: images normalize-chart [--created T] CHART.tgz")
	}
	mtime, err := creationTime(*created)
	if err != nil {
		return err
	}
	file := fs.Arg(0)
	src, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	zr, err := gzip.NewReader(bytes.NewReader(src))
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.ModTime = mtime
	tr, tw := tar.NewReader(zr), tar.NewWriter(zw)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		h.ModTime, h.AccessTime, h.ChangeTime = mtime, time.Time{}, time.Time{}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(file, out.Bytes(), 0o644)
}
