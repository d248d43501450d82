//go:build bench

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Each command rewrites its own section of the report and keeps the other's
// bytes as they were; a report from before the sections is make bench's.
func TestWriteSectionKeepsTheOther(t *testing.T) {
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	legacy := "# Benchmarks\n\nold bench table\n"
	if err := os.WriteFile(path, []byte(legacy), 0o644); err != nil {
		t.Fatal(err)
	}
	cluster := "## Password rotation\n\n| pod | p50 |\n<!-- not a marker -->\n"
	if err := writeSection(path, sectionCluster, cluster); err != nil {
		t.Fatal(err)
	}
	secs := read(t, path)
	if secs[sectionBench] != legacy || secs[sectionCluster] != cluster {
		t.Fatalf("after bench-cluster: %q", secs)
	}
	bench := "# Benchmarks\n\nnew bench table\n"
	if err := writeSection(path, sectionBench, bench); err != nil {
		t.Fatal(err)
	}
	secs = read(t, path)
	if secs[sectionBench] != bench || secs[sectionCluster] != cluster {
		t.Fatalf("after bench: %q", secs)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), "old bench table") {
		t.Fatalf("the old bench section survived:\n%s", b)
	}
	if i, j := strings.Index(string(b), beginMarker(sectionBench)), strings.Index(string(b), beginMarker(sectionCluster)); i < 0 || j < i {
		t.Fatalf("sections out of order:\n%s", b)
	}
	// Rewriting the cluster section again keeps the bench one verbatim.
	if err := writeSection(path, sectionCluster, "## again\n"); err != nil {
		t.Fatal(err)
	}
	if secs = read(t, path); secs[sectionBench] != bench || secs[sectionCluster] != "## again\n" {
		t.Fatalf("after a second bench-cluster: %q", secs)
	}
}

func read(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return readSections(string(b))
}

// The hand-written analysis is called this run's only on the report of the
// run it names; any other report calls it an earlier run's.
func TestAnalysisIntroNamesItsRun(t *testing.T) {
	date, err := time.Parse("2006-01-02 15:04 MST", analysisRun.date)
	if err != nil {
		t.Fatal(err)
	}
	if got := analysisIntro(&meta{date: date.UTC(), ours: analysisRun.commit}); !strings.Contains(got, "Analysis of this run") {
		t.Errorf("the analysed run's report: %q", got)
	}
	for _, m := range []*meta{
		{date: date.UTC().Add(time.Hour), ours: analysisRun.commit},
		{date: date.UTC(), ours: analysisRun.commit + "-dirty"},
	} {
		if got := analysisIntro(m); !strings.Contains(got, "Analysis of an earlier run") || !strings.Contains(got, analysisRun.commit) {
			t.Errorf("another run's report (%v, %s): %q", m.date, m.ours, got)
		}
	}
}

func TestPercentileNearestRank(t *testing.T) {
	vs := []float64{5, 1, 4, 2, 3}
	for _, c := range []struct{ p, want float64 }{{.5, 3}, {.99, 5}, {1, 5}, {.2, 1}, {.4, 2}} {
		if got := percentile(vs, c.p); got != c.want {
			t.Errorf("percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
}
