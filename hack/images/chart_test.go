package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// pin-chart changes the six image values and not one other byte of values.yaml.
func TestPinChartSetsTheImagesAndKeepsEverythingElse(t *testing.T) {
	src, err := os.ReadFile("../../charts/natsforge/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	values := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(values, src, 0o644); err != nil {
		t.Fatal(err)
	}
	digests := writeTestRecord(t, dir)
	if err := pinChart([]string{"--digests", digests, "--values", values}); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(values)
	if err != nil {
		t.Fatal(err)
	}
	before, after := strings.Split(string(src), "\n"), strings.Split(string(out), "\n")
	if len(before) != len(after) {
		t.Fatalf("%d lines became %d", len(before), len(after))
	}
	var changed []string
	for i := range before {
		if before[i] != after[i] {
			changed = append(changed, strings.TrimSpace(after[i]))
		}
	}
	want := []string{
		`repository: "reg.example:5000/natsforge/operator"`, `tag: "1.2.3"`, `digest: "sha256:` + strings.Repeat("a", 64) + `"`,
		`repository: "reg.example:5000/natsforge/broker"`, `tag: "1.2.3"`, `digest: "sha256:` + strings.Repeat("b", 64) + `"`,
	}
	if strings.Join(changed, "\n") != strings.Join(want, "\n") {
		t.Errorf("changed lines:\n%s\nwant:\n%s", strings.Join(changed, "\n"), strings.Join(want, "\n"))
	}
}

// A comment after a value pin-chart rewrites would be lost with it: refused.
func TestPinChartRefusesToDropACommentAfterAValue(t *testing.T) {
	src := []byte("image:\n  repository: natsforge/operator # where from\n  tag: \"\"\n")
	_, err := setScalars(src, map[string]string{"image.repository": "r/op", "image.tag": "1"})
	if err == nil || !strings.Contains(err.Error(), "comment") {
		t.Errorf("a value with a comment after it: %v, want a refusal naming the comment", err)
	}
	out, err := setScalars([]byte("image:\n  # where from\n  repository: natsforge/operator\n"), map[string]string{"image.repository": "r/op"})
	if err != nil || string(out) != "image:\n  # where from\n  repository: \"r/op\"\n" {
		t.Errorf("a comment on its own line: %q %v", out, err)
	}
}

// The packaged chart's defaults render exactly as the source chart with the
// images set on the command line, and the pods get repository:tag@digest.
func TestPinnedChartRendersAsTheSourceChartWithTheImagesSet(t *testing.T) {
	helm := os.Getenv("HELM")
	if helm == "" {
		t.Fatal("HELM is not set: run this test through make test, which installs the pinned helm")
	}
	dir := t.TempDir()
	if b, err := exec.Command("cp", "-R", "../../charts/natsforge", dir+"/").CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, b)
	}
	if err := pinChart([]string{"--digests", writeTestRecord(t, dir), "--values", filepath.Join(dir, "natsforge", "values.yaml")}); err != nil {
		t.Fatal(err)
	}
	render := func(chart string, set ...string) []byte {
		t.Helper()
		args := []string{"template", "nf", chart, "--namespace", "ns"}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		out, err := exec.Command(helm, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	// The source path shows up in "# Source:" comments only; drop those.
	strip := func(b []byte) []byte {
		var keep [][]byte
		for _, l := range bytes.Split(b, []byte("\n")) {
			if !bytes.HasPrefix(l, []byte("# Source:")) {
				keep = append(keep, l)
			}
		}
		return bytes.Join(keep, []byte("\n"))
	}
	pinned := strip(render(filepath.Join(dir, "natsforge")))
	set := strip(render("../../charts/natsforge",
		"image.repository=reg.example:5000/natsforge/operator", "image.tag=1.2.3", "image.digest=sha256:"+strings.Repeat("a", 64),
		"broker.image.repository=reg.example:5000/natsforge/broker", "broker.image.tag=1.2.3", "broker.image.digest=sha256:"+strings.Repeat("b", 64)))
	if !bytes.Equal(pinned, set) {
		t.Error("the pinned chart renders differently from the source chart with the same images set")
	}
	for _, want := range []string{
		"image: reg.example:5000/natsforge/operator:1.2.3@sha256:" + strings.Repeat("a", 64),
		"--broker-image=reg.example:5000/natsforge/broker:1.2.3@sha256:" + strings.Repeat("b", 64),
	} {
		if !bytes.Contains(pinned, []byte(want)) {
			t.Errorf("the pinned chart renders no %q", want)
		}
	}
	// A digest that is not one is refused by the chart's schema.
	out, err := exec.Command(helm, "template", "nf", "../../charts/natsforge", "--set", "image.digest=latest").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "digest") {
		t.Errorf("image.digest=latest: %v\n%s", err, out)
	}
}

func writeTestRecord(t *testing.T, dir string) string {
	t.Helper()
	r := buildRecord{Version: "1.2.3", Images: []builtImage{
		{Name: "operator", Repository: "reg.example:5000/natsforge/operator", Tag: "1.2.3", Digest: "sha256:" + strings.Repeat("a", 64)},
		{Name: "broker", Repository: "reg.example:5000/natsforge/broker", Tag: "1.2.3", Digest: "sha256:" + strings.Repeat("b", 64)},
		{Name: "pause", Repository: "reg.example:5000/natsforge/pause", Tag: "1.2.3", Digest: "sha256:" + strings.Repeat("c", 64)},
	}}
	file := filepath.Join(dir, "images.json")
	if err := r.write(file); err != nil {
		t.Fatal(err)
	}
	return file
}

// helm package stamps a chart archive with the time of packaging;
// normalize-chart makes two packagings of one chart the same bytes, with the
// same files in them.
func TestNormalizedChartArchivesOfOneChartAreTheSameBytes(t *testing.T) {
	dir := t.TempDir()
	pack := func(name string, when time.Time) string {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.ModTime = when
		tw := tar.NewWriter(zw)
		for _, f := range []string{"natsforge/Chart.yaml", "natsforge/values.yaml"} {
			if err := tw.WriteHeader(&tar.Header{Name: f, Mode: 0o644, Size: int64(len(f)), ModTime: when}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write([]byte(f)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return file
	}
	a, b := pack("a.tgz", time.Now()), pack("b.tgz", time.Now().Add(time.Hour))
	for _, f := range []string{a, b} {
		if err := normalizeChart([]string{"--created", "1700000000", f}); err != nil {
			t.Fatal(err)
		}
	}
	ab, _ := os.ReadFile(a)
	bb, _ := os.ReadFile(b)
	if !bytes.Equal(ab, bb) {
		t.Fatal("two archives of the same files differ after normalize-chart")
	}
	zr, err := gzip.NewReader(bytes.NewReader(ab))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if string(body) != h.Name || !h.ModTime.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s: body %q, mtime %v", h.Name, body, h.ModTime)
		}
		names = append(names, h.Name)
	}
	if strings.Join(names, ",") != "natsforge/Chart.yaml,natsforge/values.yaml" {
		t.Errorf("entries %v", names)
	}
}
