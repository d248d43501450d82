//go:build bench

package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/natsforge/natsforge/test/plot"
)

// rotationAim is the goal of issue 17: p99 of Secret edit to a pod enforcing
// the new password.
const rotationAim = 1.0 // seconds

// percentile is the nearest-rank percentile of the finite values (p in
// [0, 1]); NaN when there are none. With n samples, p99 is the largest one
// for n <= 100.
func percentile(vs []float64, p float64) float64 {
	f := finite(vs)
	if len(f) == 0 {
		return math.NaN()
	}
	slices.Sort(f)
	k := int(math.Ceil(p*float64(len(f)))) - 1
	return f[min(max(k, 0), len(f)-1)]
}

func worst(vs []float64) float64 { return percentile(vs, 1) }

// enforcedBy is every pod's enforcement time, per pod (in pods' order) and
// all together.
func enforcedBy(rs []*rotation, pods []string) (perPod map[string][]float64, all []float64) {
	perPod = map[string][]float64{}
	for _, r := range rs {
		for _, p := range pods {
			if ps := r.Pods[p]; ps != nil {
				perPod[p] = append(perPod[p], ps.Enforced)
				all = append(all, ps.Enforced)
			}
		}
	}
	return perPod, all
}

// everyPod is, per rotation, the time until the last pod enforced it.
func everyPod(rs []*rotation) []float64 {
	var out []float64
	for _, r := range rs {
		t := math.Inf(-1)
		for _, ps := range r.Pods {
			t = math.Max(t, ps.Enforced)
		}
		out = append(out, t)
	}
	return out
}

func secs(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	if math.Abs(v) < 1 {
		return fmt.Sprintf("%.0f ms", v*1000)
	}
	return fmt.Sprintf("%.2f s", v)
}

func podNames(rs []*rotation) []string {
	var out []string
	for _, r := range rs {
		for p := range r.Pods {
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	slices.Sort(out)
	return out
}

func printClusterSummary(w io.Writer, run *clusterRun) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "rotations\tpod\tp50\tp99\tworst")
	perPod, all := enforcedBy(run.Rotations, run.Pods)
	for _, p := range run.Pods {
		fmt.Fprintf(tw, "3 brokers\t%s\t%s\t%s\t%s\n", p, secs(median(perPod[p])), secs(percentile(perPod[p], .99)), secs(worst(perPod[p])))
	}
	fmt.Fprintf(tw, "3 brokers\tall\t%s\t%s\t%s\n", secs(median(all)), secs(percentile(all, .99)), secs(worst(all)))
	tw.Flush()
	for _, st := range stageBreakdown(run.Rotations) {
		fmt.Fprintf(w, "stage %-22s median %s\n", st.name, secs(median(st.secs)))
	}
	if s := run.Scale; s != nil {
		e := everyPod(s.Rotations)
		fmt.Fprintf(w, "%d NatsUsers: every pod enforcing: median %s, worst %s; operator RSS %.0f MiB (%.0f MiB before)\n",
			s.Users, secs(median(e)), secs(worst(e)), s.RSSMiB, s.RSSBeforeMiB)
	}
}

func saveJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// writeClusterSection writes make bench-cluster's section of the report.
func writeClusterSection(path, pngPath string, run *clusterRun) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := run.Meta
	p("## Password rotation on the local cluster\n\n")
	p("This section is from its own run of `make bench-cluster` (harness `test/bench -cluster`, build tag `bench`), ")
	p("not from the `make bench` run above; `make bench` keeps it as it is.\n\n")
	p("- Command: `%s`\n", m.Command)
	p("- Date: %s (took %s)\n", m.Date.Format("2006-01-02 15:04 MST"), m.Elapsed)
	p("- Commit: `%s`; images `%s`\n", m.Commit, m.Images)
	p("- Machine: %d CPUs, %s, Linux %s; the whole cluster (hack/local-cluster: etcd, kube-apiserver, kubelet, containerd, the operator, the brokers) and the probes share it\n", m.NProc, m.CPU, m.Kernel)
	p("- Load average (1, 5, 15 min) at start: %s; at end: %s; highest 1-minute average seen during the run: %s\n", m.LoadStart, m.LoadEnd, m.LoadMax)
	p("- One bcrypt comparison at cost %d, timed in the bench process at the start and the end of the run: %s. ", m.BcryptCost, secs(m.BcryptCompare.Seconds()))
	p("A rotation pays at least three in a row: the operator hashes the new password, and each probe's broker checks the old password (a refusal is never cached) and then the new one.\n")
	p("- Setup: the operator installed by its Helm chart; a NatsCluster of 3 brokers, `tls.mode: Disabled` (the probes speak plaintext to the pods), bcrypt cost %d; ", m.BcryptCost)
	p("its user `bench` has its password in a Secret, which the bench edits %d times, each edit %s after the previous rotation was enforced on every pod.\n", len(run.Rotations), m.Gap)
	p("- Enforced: the time from the Secret edit (just before the update request) until a pod refuses the old password and accepts the new one. ")
	p("Each pod is probed at its own address every %s with a fresh nats.go connection (old password; once refused, the new one), from inside the cluster's network namespace; ", m.ProbeEvery)
	p("a probe's time is when it finished. p50 is the median; p99 and worst are nearest-rank, so with fewer than 100 samples p99 is the worst one.\n\n")

	perPod, all := enforcedBy(run.Rotations, run.Pods)
	p("| pod | rotations | p50 | p99 | worst | aim: p99 ≤ %s | met |\n|---|--:|--:|--:|--:|---|---|\n", secs(rotationAim))
	met := func(v float64) string {
		switch {
		case math.IsNaN(v):
			return ""
		case v <= rotationAim:
			return "yes"
		}
		return "**no**"
	}
	for _, pod := range run.Pods {
		vs := perPod[pod]
		p("| %s | %d | %s | %s | %s | | %s |\n", pod, len(finite(vs)), secs(median(vs)), secs(percentile(vs, .99)), secs(worst(vs)), met(percentile(vs, .99)))
	}
	p("| **every pod** | %d | %s | %s | %s | | %s |\n\n", len(finite(all)), secs(median(all)), secs(percentile(all, .99)), secs(worst(all)), met(percentile(all, .99)))
	p("Every sample, in rotation order:\n\n")
	for _, pod := range run.Pods {
		var vs []string
		for _, v := range perPod[pod] {
			vs = append(vs, fmt.Sprintf("%.2f", v))
		}
		p("- %s (s): %s\n", pod, strings.Join(vs, " "))
	}
	p("\n")
	if pngPath != "" {
		p("![rotation latency per pod and where it goes](%s)\n\n", relTo(path, pngPath))
	}
	writeStages(&b, "### Where the time goes", run.Rotations)
	if s := run.Scale; s != nil {
		p("### One password change among %d NatsUsers\n\n", s.Users)
		p("A second NatsCluster (3 brokers, no TLS, bcrypt cost %d) with %d NatsUsers: %d with generated passwords and one, `rotated`, whose password is in a Secret; ", s.BcryptCost, s.Users, s.Users-1)
		if s.BcryptCost != m.BcryptCost {
			p("**its bcrypt cost is not the 3-broker cluster's** (the cold start hashes every user once, which at cost %d this machine could not do in the time of the run), "+
				"so each of its rotations pays the one operator bcrypt and the probes' broker-side bcrypts at cost %d, not %d; ", m.BcryptCost, s.BcryptCost, m.BcryptCost)
		}
		p("the NatsUsers were created with %d parallel requests in %s, and every user was served (ResolvedUsers, Ready, ConfigPropagated, `rotated` accepted on every pod) %s after the first create. ",
			scaleCreateParallel, s.CreateTook.Round(1e6), s.ReadyTook.Round(1e9))
		p("Then `rotated`'s Secret was edited %d times, timed and probed as above.\n\n", len(s.Rotations))
		e := everyPod(s.Rotations)
		_, allScale := enforcedBy(s.Rotations, podNames(s.Rotations))
		p("| measure | value |\n|---|--:|\n")
		p("| Secret edit to every pod enforcing, median | %s |\n", secs(median(e)))
		p("| Secret edit to every pod enforcing, worst | %s |\n", secs(worst(e)))
		p("| Secret edit to one pod enforcing, median over pods and rotations | %s |\n", secs(median(allScale)))
		p("| operator RSS (VmRSS of its process) with %d NatsUsers served, after the rotations | %.0f MiB |\n", s.Users, s.RSSMiB)
		p("| operator RSS before the NatsUsers were created (the 3-broker cluster's namespace deleted just before) | %.0f MiB |\n\n", s.RSSBeforeMiB)
		var vs []string
		for _, v := range e {
			vs = append(vs, fmt.Sprintf("%.2f", v))
		}
		p("Every rotation, edit to every pod enforcing (s): %s\n\n", strings.Join(vs, " "))
		writeStages(&b, fmt.Sprintf("#### Where the time goes with %d NatsUsers", s.Users), s.Rotations)
	}
	return writeSection(path, sectionCluster, b.String())
}

func writeStages(b *strings.Builder, title string, rs []*rotation) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("%s\n\n", title)
	p("Each stage from the logs the operator and the brokers write (container runtime timestamps, one clock); ")
	p("the operator's stages once per rotation, the others once per rotation and pod. ")
	p("A stage whose lines are missing has no number.\n\n")
	p("| stage | from → to | samples | median | p90 | worst |\n|---|---|--:|--:|--:|--:|\n")
	total := 0.0
	for _, st := range stageBreakdown(rs) {
		med := median(st.secs)
		if !math.IsNaN(med) {
			total += med
		}
		p("| %s | %s | %d | %s | %s | %s |\n", st.name, st.what, len(finite(st.secs)), secs(med), secs(percentile(st.secs, .9)), secs(worst(st.secs)))
	}
	p("| sum of the medians | | | %s | | |\n\n", secs(total))
}

// writeClusterChart draws the enforcement time of every rotation per pod,
// and the median of each stage.
func writeClusterChart(path string, run *clusterRun) error {
	const w, panelH = 1100, 340
	panels := 2
	if run.Scale != nil && len(run.Scale.Rotations) > 0 {
		panels = 3
	}
	img := plot.NewCanvas(w, panels*panelH+3*plot.LineH+60)
	y := 20
	plot.DrawText(img, 20, y, fmt.Sprintf("NATSFORGE PASSWORD ROTATION, MAKE BENCH-CLUSTER, %s, %s",
		run.Meta.Date.Format("2006-01-02 15:04 UTC"), strings.ToUpper(run.Meta.Commit)), plot.Black)
	y += plot.LineH + 8
	plot.DrawText(img, 20, y, fmt.Sprintf("3 BROKERS, BCRYPT COST %d, EACH POD PROBED EVERY %s, %d CPUS, LOAD %s", run.Meta.BcryptCost,
		strings.ToUpper(run.Meta.ProbeEvery.String()), run.Meta.NProc, run.Meta.LoadStart), plot.Grey)
	y += plot.LineH + 24
	colors := []color.Color{plot.Blue, plot.Orange, plot.Green}
	series := func(rs []*rotation) []plot.Series {
		var out []plot.Series
		for i, pod := range podNames(rs) {
			s := plot.Series{Name: pod, Color: colors[i%len(colors)]}
			for j, r := range rs {
				if ps := r.Pods[pod]; ps != nil && !math.IsNaN(ps.Enforced) {
					s.Points = append(s.Points, [2]float64{float64(j), ps.Enforced})
				}
			}
			out = append(out, s)
		}
		return append(out, plot.Series{Name: "aim 1s", Color: plot.Red,
			Points: [][2]float64{{0, rotationAim}, {float64(max(len(rs)-1, 1)), rotationAim}}})
	}
	plot.LinePanel(img, 20, y, w-40, panelH-20, "Secret edit to each pod enforcing the new password, per rotation (0 = the first)", "s", "", series(run.Rotations))
	y += panelH
	var labels []string
	var meds []float64
	for _, st := range stageBreakdown(run.Rotations) {
		labels = append(labels, strings.ToUpper(st.short))
		meds = append(meds, math.Max(0, nanZero(median(st.secs))))
	}
	plot.BarPanel(img, 20, y, w-40, panelH-20, "Median of each stage, 3 brokers (the stages table)", "s", labels, meds, plot.Blue)
	y += panelH
	if panels == 3 {
		plot.LinePanel(img, 20, y, w-40, panelH-20, fmt.Sprintf("The same with %d NatsUsers (bcrypt cost %d), per rotation", run.Scale.Users, run.Scale.BcryptCost), "s", "", series(run.Scale.Rotations))
	}
	return plot.SavePNG(path, img)
}

func nanZero(v float64) float64 {
	if math.IsNaN(v) {
		return 0
	}
	return v
}
