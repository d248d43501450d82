//go:build e2e && soak

package e2e

// What the soak measured, how it is judged (least-squares slopes over the
// steady parts of the run) and how it is written: docs/soak.md,
// docs/soak.png and the raw samples as JSON.

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/natsforge/natsforge/test/plot"
)

// soakRun is one soak: its settings, everything it measured and its verdict;
// it is also the JSON of the raw samples.
type soakRun struct {
	Start      time.Time `json:"start"`
	Duration   string    `json:"duration"`
	ScaleEvery string    `json:"scale_every"`
	Commit     string    `json:"commit"`
	WarmUp     float64   `json:"warm_up_s"`
	Elapsed    float64   `json:"elapsed_s"`
	Finished   bool      `json:"finished"`

	Samples      []soakSample   `json:"samples"`
	ScrapeErrors []string       `json:"scrape_errors"`
	Rotations    []soakRotation `json:"rotations"`
	Scales       []soakWindow   `json:"scales"`
	Traffic      []soakTraffic  `json:"traffic"`

	Series   []soakSeries `json:"series"`
	Failures []string     `json:"failures"`
}

// soakSample is one reading of one process, at seconds since the start.
type soakSample struct {
	At         float64 `json:"at_s"`
	Pod        string  `json:"pod"` // a broker pod's name, or "operator"
	UID        string  `json:"uid"`
	RSS        float64 `json:"rss_bytes"`
	Goroutines float64 `json:"goroutines"`
}

// soakRotation: a password Secret edited at At, enforced on every broker
// (the old password refused, the new accepted) Seconds later.
type soakRotation struct {
	At      float64 `json:"at_s"`
	Seconds float64 `json:"seconds"`
}

// soakWindow is one scale up and down: from From to To (seconds since the
// start); Up and Down are how long each step took to be Ready and meshed.
type soakWindow struct {
	From float64 `json:"from_s"`
	To   float64 `json:"to_s"`
	Up   float64 `json:"up_s"`
	Down float64 `json:"down_s"`
}

type soakTraffic struct {
	Stream      string `json:"stream"`
	Sent        int64  `json:"sent"`
	Received    int64  `json:"received"`
	Lost        int64  `json:"lost"`
	Disconnects int    `json:"disconnects"`
}

// soakSeries is one process's samples (one pod's lifetime) and their slopes
// over the steady samples.
type soakSeries struct {
	Name      string   `json:"name"` // pod name, "(2)" for its second pod, ...
	UID       string   `json:"uid"`
	WholeRun  bool     `json:"whole_run"`
	Samples   int      `json:"samples"`
	Steady    int      `json:"steady_samples"`
	FirstRSS  float64  `json:"first_rss_bytes"`
	LastRSS   float64  `json:"last_rss_bytes"`
	FirstGR   float64  `json:"first_goroutines"`
	LastGR    float64  `json:"last_goroutines"`
	RSSSlope  optFloat `json:"rss_slope_kib_per_min"` // NaN: too few steady samples
	GRSlope   optFloat `json:"goroutine_slope_per_min"`
	FloorRise optFloat `json:"goroutine_floor_rise"`
	Verdict   string   `json:"verdict"`

	points []soakSample
}

// optFloat is a number that may be unknown (NaN), null in JSON.
type optFloat float64

func (f optFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}

// steady says whether a sample at seconds since the start is in a steady part:
// after the warm-up and outside every scale window (and soakScaleSettle after it).
func (r *soakRun) steady(at float64) bool {
	if at < r.WarmUp {
		return false
	}
	for _, w := range r.Scales {
		if at >= w.From && at <= w.To+soakScaleSettle.Seconds() {
			return false
		}
	}
	return true
}

// assess groups the samples by process, computes each series' slopes and
// judges those of whole (UIDs of the processes that lived the whole run)
// against soakBounds.
func (r *soakRun) assess(whole map[string]bool) {
	index := map[string]int{} // UID -> position in r.Series
	names := map[string]int{}
	for _, x := range r.Samples {
		i, ok := index[x.UID]
		if !ok {
			names[x.Pod]++
			name := x.Pod
			if n := names[x.Pod]; n > 1 {
				name = fmt.Sprintf("%s (%d)", x.Pod, n)
			}
			i = len(r.Series)
			index[x.UID] = i
			r.Series = append(r.Series, soakSeries{Name: name, UID: x.UID, WholeRun: whole[x.UID]})
		}
		r.Series[i].points = append(r.Series[i].points, x)
	}
	for uid := range whole {
		if _, ok := index[uid]; !ok {
			r.Failures = append(r.Failures, fmt.Sprintf("no samples of the process of pod UID %s, which lived the whole run", uid))
		}
	}
	for i := range r.Series {
		se := &r.Series[i]
		var rss, gr [][2]float64
		for _, p := range se.points {
			if r.steady(p.At) {
				rss = append(rss, [2]float64{p.At / 60, p.RSS / 1024})
				gr = append(gr, [2]float64{p.At / 60, p.Goroutines})
			}
		}
		first, last := se.points[0], se.points[len(se.points)-1]
		se.Samples, se.Steady = len(se.points), len(rss)
		se.FirstRSS, se.LastRSS, se.FirstGR, se.LastGR = first.RSS, last.RSS, first.Goroutines, last.Goroutines
		se.RSSSlope, se.GRSlope, se.FloorRise = optFloat(math.NaN()), optFloat(math.NaN()), optFloat(math.NaN())
		if len(rss) >= 4 && rss[len(rss)-1][0]-rss[0][0] >= 1 {
			se.RSSSlope, se.GRSlope, se.FloorRise = optFloat(slope(rss)), optFloat(slope(gr)), optFloat(floorRise(gr))
		}
		switch {
		case !se.WholeRun:
			se.Verdict = "not judged (not there the whole run)"
		case math.IsNaN(float64(se.RSSSlope)):
			se.Verdict = "FAIL: too few steady samples"
		default:
			var bad []string
			rs, gs, rise := float64(se.RSSSlope), float64(se.GRSlope), float64(se.FloorRise)
			if rs > soakBounds.maxRSSSlope {
				bad = append(bad, fmt.Sprintf("RSS grows %.0f KiB/min (bound %.0f)", rs, soakBounds.maxRSSSlope))
			}
			if gs > soakBounds.maxGoroutineSlope && rise > soakBounds.maxGoroutineRise {
				bad = append(bad, fmt.Sprintf("goroutines grow %.2f/min, floor up %.0f (bounds %.0f/min and %.0f)",
					gs, rise, soakBounds.maxGoroutineSlope, soakBounds.maxGoroutineRise))
			}
			se.Verdict = "flat"
			if len(bad) > 0 {
				se.Verdict = "FAIL: " + strings.Join(bad, "; ")
			}
		}
		if strings.HasPrefix(se.Verdict, "FAIL") {
			r.Failures = append(r.Failures, se.Name+": "+strings.TrimPrefix(se.Verdict, "FAIL: "))
		}
	}
}

// slope is the least-squares slope of y over x.
func slope(pts [][2]float64) float64 {
	var mx, my float64
	for _, p := range pts {
		mx += p[0]
		my += p[1]
	}
	n := float64(len(pts))
	mx, my = mx/n, my/n
	var sxy, sxx float64
	for _, p := range pts {
		sxy += (p[0] - mx) * (p[1] - my)
		sxx += (p[0] - mx) * (p[0] - mx)
	}
	if sxx == 0 {
		return math.NaN()
	}
	return sxy / sxx
}

// floorRise is the lowest y of the last third of pts less the lowest of the
// first third.
func floorRise(pts [][2]float64) float64 {
	k := max(1, len(pts)/3)
	low := func(ps [][2]float64) float64 {
		m := math.Inf(1)
		for _, p := range ps {
			m = math.Min(m, p[1])
		}
		return m
	}
	return low(pts[len(pts)-k:]) - low(pts[:k])
}

// percentile of sorted xs (nearest rank).
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	return xs[max(0, int(math.Ceil(q*float64(len(xs))))-1)]
}

func writeSoakReport(t *testing.T, r *soakRun) {
	t.Helper()
	mdPath, pngPath, jsonPath := soakOutput("SOAK_MD", "docs/soak.md"), soakOutput("SOAK_PNG", "docs/soak.png"), soakOutput("SOAK_SAMPLES", "bin/soak-samples.json")
	if r.Series == nil && len(r.Samples) > 0 {
		r.assess(nil) // stopped early: chart what there is
	}
	js, err := json.MarshalIndent(r, "", " ")
	if err == nil {
		err = writeFile(jsonPath, js)
	}
	if err != nil {
		t.Errorf("samples: %v", err)
	}
	if err := writeFile(mdPath, []byte(r.markdown(filepath.Base(pngPath)))); err != nil {
		t.Errorf("report: %v", err)
	}
	if err := r.saveChart(pngPath); err != nil {
		t.Errorf("chart: %v", err)
	}
	t.Logf("wrote %s, %s and %s", mdPath, pngPath, jsonPath)
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func (r *soakRun) markdown(png string) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("# Soak")
	p("")
	p("<!-- Generated by make soak (test/e2e/soak_test.go) from one run; do not edit. -->")
	p("")
	command := "make soak"
	if r.Duration != "30m0s" {
		command += " SOAK_DURATION=" + shortDuration(r.Duration)
	}
	if r.ScaleEvery != "10m0s" {
		command += " SOAK_SCALE_EVERY=" + shortDuration(r.ScaleEvery)
	}
	p("`%s` on %s at commit `%s`: %s on the local cluster (hack/local-cluster, one node, 2 cores).",
		command, r.Start.Format("2006-01-02 15:04 UTC"), r.Commit, time.Duration(r.Elapsed*float64(time.Second)).Round(time.Second))
	p("A NatsCluster of %d brokers (TLS disabled: the probes and the traffic speak plaintext to the pods) carried %d streams of nats.go traffic",
		soakReplicas, len(r.Traffic))
	p("(a publisher on one broker, its subscriber on the next, 50 messages/s each) for the whole run; user rotor's password Secret")
	p("was edited every minute, and the cluster scaled %d -> %d -> %d every %s. Every %s the soak read `process_resident_memory_bytes`",
		soakReplicas, soakScaleTo, soakReplicas, shortDuration(r.ScaleEvery), soakSampleEvery)
	p("and `go_goroutines` from every Ready broker's /metrics (port 8222) and the operator's (8443).")
	p("")
	if len(r.Failures) == 0 && r.Finished {
		p("**Result: flat.** No process that lived the whole run leaked by the bounds below.")
	} else {
		p("**Result: failed.**")
		p("")
		for _, f := range r.Failures {
			p("- %s", f)
		}
	}
	p("")
	p("![RSS and goroutines over time](%s)", png)
	p("")
	p("## Memory and goroutines")
	p("")
	p("Slopes are least-squares fits over the steady samples: after the first %s and outside each scale window (and %s after it).",
		time.Duration(r.WarmUp*float64(time.Second)), soakScaleSettle)
	p("The soak fails if the operator or a broker that lived the whole run has an RSS slope above %.0f KiB/min (1 MiB/min),",
		soakBounds.maxRSSSlope)
	p("or goroutines that grow without bound: a slope above %.0f/min together with a floor (the lowest count) in the last third",
		soakBounds.maxGoroutineSlope)
	p("of the steady samples more than %.0f above the floor of the first third. Brokers 3 and 4 live only while scaled up: charted, not judged.",
		soakBounds.maxGoroutineRise)
	p("")
	p("| process | samples (steady) | RSS first -> last | RSS slope | goroutines first -> last | goroutine slope | goroutine floor rise | verdict |")
	p("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, s := range r.Series {
		p("| %s | %d (%d) | %.1f -> %.1f MiB | %s | %.0f -> %.0f | %s | %s | %s |", s.Name, s.Samples, s.Steady,
			s.FirstRSS/(1<<20), s.LastRSS/(1<<20), numOr(float64(s.RSSSlope), "%+.1f KiB/min"), s.FirstGR, s.LastGR,
			numOr(float64(s.GRSlope), "%+.2f/min"), numOr(float64(s.FloorRise), "%+.0f"), s.Verdict)
	}
	p("")
	p("%d samples, %d scrape errors.", len(r.Samples), len(r.ScrapeErrors))
	for i, e := range r.ScrapeErrors {
		if i == 5 {
			p("(and %d more in the samples' JSON)", len(r.ScrapeErrors)-5)
			break
		}
		p("- %s", e)
	}
	p("")
	p("## Rotations")
	p("")
	lat := make([]float64, 0, len(r.Rotations))
	for _, x := range r.Rotations {
		lat = append(lat, x.Seconds)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		p("%d rotations of rotor's password, each from the Secret's edit until every broker refused the old password and accepted the new:",
			len(lat))
		p("p50 %.2f s, max %.2f s.", percentile(lat, 0.5), lat[len(lat)-1])
	} else {
		p("No rotation ran.")
	}
	p("")
	p("## Scaling")
	p("")
	if len(r.Scales) > 0 {
		p("| at | %d -> %d (Ready, meshed) | %d -> %d (Ready, meshed) |", soakReplicas, soakScaleTo, soakScaleTo, soakReplicas)
		p("| --- | --- | --- |")
		for _, w := range r.Scales {
			p("| %s | %.1f s | %.1f s |", minutes(w.From), w.Up, w.Down)
		}
	} else {
		p("No scale event ran.")
	}
	p("")
	p("## Traffic")
	p("")
	p("| stream | sent | received | lost | client disconnects |")
	p("| --- | --- | --- | --- | --- |")
	var sent, got, lost int64
	for _, x := range r.Traffic {
		p("| %s | %d | %d | %d | %d |", x.Stream, x.Sent, x.Received, x.Lost, x.Disconnects)
		sent, got, lost = sent+x.Sent, got+x.Received, lost+x.Lost
	}
	p("| all | %d | %d | %d | |", sent, got, lost)
	return b.String()
}

func numOr(x float64, format string) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf(format, x)
}

// shortDuration drops a duration string's zero tail: 3m0s -> 3m, 1h0m0s -> 1h.
func shortDuration(d string) string {
	if strings.HasSuffix(d, "m0s") {
		d = strings.TrimSuffix(d, "0s")
	}
	if strings.HasSuffix(d, "h0m") {
		d = strings.TrimSuffix(d, "0m")
	}
	return d
}

func minutes(s float64) string { return fmt.Sprintf("%d:%02d", int(s)/60, int(s)%60) }

// chart: RSS and goroutines over time, brokers (one line per pod) and the
// operator in panels of their own.
func (r *soakRun) saveChart(path string) error {
	const w, panelH = 1400, 320
	img := plot.NewCanvas(w, 4*panelH+3*plot.LineH+60)
	y := 20
	plot.DrawText(img, 20, y, fmt.Sprintf("NATSFORGE SOAK (MAKE SOAK, %s, %s, COMMIT %s)",
		r.Start.Format("2006-01-02 15:04 UTC"), strings.ToUpper(shortDuration(r.Duration)), strings.ToUpper(r.Commit)), plot.Black)
	y += plot.LineH + 8
	plot.DrawText(img, 20, y, fmt.Sprintf("%d BROKERS, TRAFFIC, A ROTATION A MINUTE, %d -> %d -> %d EVERY %s, SAMPLED EVERY %s",
		soakReplicas, soakReplicas, soakScaleTo, soakReplicas, strings.ToUpper(shortDuration(r.ScaleEvery)), strings.ToUpper(soakSampleEvery.String())), plot.Grey)
	y += plot.LineH + 24
	palette := []color.Color{plot.Blue, plot.Orange, plot.Green, plot.Red, color.RGBA{130, 60, 160, 255}, plot.Grey}
	var brokerRSS, brokerGR, opRSS, opGR []plot.Series
	for _, s := range r.Series {
		var rss, gr [][2]float64
		for _, p := range s.points {
			rss = append(rss, [2]float64{p.At / 60, p.RSS / (1 << 20)})
			gr = append(gr, [2]float64{p.At / 60, p.Goroutines})
		}
		if s.points[0].Pod == "operator" {
			opRSS = append(opRSS, plot.Series{Name: s.Name, Color: plot.Black, Points: rss})
			opGR = append(opGR, plot.Series{Name: s.Name, Color: plot.Black, Points: gr})
			continue
		}
		c := palette[len(palette)-1]
		if i := strings.LastIndexByte(s.points[0].Pod, '-'); i >= 0 {
			var n int
			if _, err := fmt.Sscanf(s.points[0].Pod[i+1:], "%d", &n); err == nil && n < len(palette) {
				c = palette[n]
			}
		}
		brokerRSS = append(brokerRSS, plot.Series{Name: s.Name, Color: c, Points: rss})
		brokerGR = append(brokerGR, plot.Series{Name: s.Name, Color: c, Points: gr})
	}
	for _, panel := range []struct {
		title, unit string
		series      []plot.Series
	}{
		{"Broker RSS (process_resident_memory_bytes), per pod", "MIB", brokerRSS},
		{"Broker goroutines (go_goroutines), per pod", "", brokerGR},
		{"Operator RSS (process_resident_memory_bytes)", "MIB", opRSS},
		{"Operator goroutines (go_goroutines)", "", opGR},
	} {
		plot.LinePanel(img, 20, y, w-40, panelH-20, panel.title, panel.unit, "M", panel.series)
		y += panelH
	}
	return plot.SavePNG(path, img)
}
