//go:build bench

// Command bench runs natsforge's broker and nats-server side by side under the
// same client load and writes the results as a Markdown table and a PNG chart.
// It also times the operator's reconcile loop against a real API server
// (envtest). Run it from the repository root:
//
//	go run -tags bench ./test/bench -md docs/benchmarks.md -png docs/benchmarks.png
//
// or `make bench`. Both servers are built from source (ours from
// ./broker/cmd/natsforge-broker, nats-server from the module in go.mod), run as
// separate processes on loopback with the same config file, and are measured
// in alternating order; each row reports the median of several runs and the
// ratio ours/theirs. Every server the harness starts is killed by its PID when
// it ends, on error and on SIGINT/SIGTERM too.
//
// -profile NAME instead runs one load against our broker (or, with
// -profile-theirs, nats-server) in-process under pprof and writes CPU and
// allocation profiles (see profile.go).
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// verbose logs details for reading profiles.
var verbose bool

// metric is one row of the table.
type metric struct {
	name   string
	unit   string
	higher bool    // a higher value is better
	aim    float64 // the aim for ours/theirs; 0: none
}

// row is a metric with its measurements.
type row struct {
	group string
	metric
	ours, theirs []float64 // NaN: no value in that run
	missing      string    // why there is no number
	note         string    // how the row is made
	oursOnly     bool      // an operator row: nothing to compare with
	aimNote      string    // the aim, when it is not a ratio
	verdictNote  string    // whether it was met, when it is not a ratio
	fails        []string  // runs that failed, and why
}

// scenario is a family of rows measured by one kind of load. start prepares
// one target (starts its servers) and returns the function that measures one
// run, returning one value per metric (NaN where a run does not measure it),
// and a cleanup.
type scenario struct {
	group   string
	metrics []metric
	runs    int
	start   func(t target) (measure func(run int) ([]float64, error), cleanup func(), err error)
	note    string
}

type harness struct {
	tmp     string
	ours    target
	theirs  target
	cfg     config
	rows    []*row
	errlog  []string
	started time.Time
	loadMax atomic.Value // float64: the highest 1-minute load average seen
}

// watchLoad samples the load average every 5 s for the report.
func (h *harness) watchLoad() {
	h.loadMax.Store(0.0)
	for {
		var l float64
		fmt.Sscan(loadavg(), &l)
		if l > h.loadMax.Load().(float64) {
			h.loadMax.Store(l)
		}
		time.Sleep(5 * time.Second)
	}
}

// config are the knobs; -quick shrinks them for a smoke run.
type config struct {
	d          time.Duration // length of one throughput run
	runs       int           // runs of each throughput and latency row
	stormRuns  int
	stormConns int
	stormUsers int
	memRuns    int
	memConns   int
	reloadRuns int
	reloadN    int // users in the reloaded config
	clusters   int // NatsClusters in the operator rows
	users      int // users per NatsCluster
	opRuns     int
	natsUsers  int // NatsUsers of the one cluster in the NatsUser rows
}

func main() {
	var (
		md         = flag.String("md", "", "write the Markdown report here")
		png        = flag.String("png", "", "write the chart here")
		quick      = flag.Bool("quick", false, "short runs and small sizes, to check the harness")
		only       = flag.String("only", "", "run only scenarios whose name matches this regexp (pub, fan, ceiling, req, cluster, storm, mem, reload, tls, operator, natsusers)")
		runs       = flag.Int("runs", 7, "runs of each throughput and latency row")
		dur        = flag.Duration("d", time.Second, "length of one throughput run")
		command    = flag.String("command", "", "the command to name in the report (default: this one)")
		profile    = flag.String("profile", "", "profile our in-process broker under one load: "+strings.Join(profileNames(), ", "))
		profSize   = flag.Int("size", 0, "with -profile: the payload size of the pub and fan loads (default: the load's own)")
		profTheirs = flag.Bool("profile-theirs", false, "with -profile: profile nats-server in-process instead of ours, under the same load")
		profDir    = flag.String("profile-dir", "", "where -profile writes cpu.pprof and allocs.pprof (default: a temp dir)")
		keep       = flag.Bool("keep", false, "keep the temp dir with the servers' configs and logs")
		save       = flag.String("save", "", "also save the results as JSON here")
		render     = flag.String("render", "", "measure nothing: write -md and -png from results saved by -save")
	)
	cluster := flag.Bool("cluster", false, "measure password rotations on the local cluster instead (make bench-cluster; run inside its network namespace), writing only its section of -md")
	co := clusterFlags()
	flag.BoolVar(&verbose, "v", false, "log more: CPU per message of server and clients")
	relay := flag.Bool("relay", false, "internal: run the ceiling's relay process")
	clientLoad := flag.String("client-load", "", "internal: run one -profile load against -url and exit")
	url := flag.String("url", "", "internal: the server -client-load drives")
	clientProf := flag.String("client-profile", "", "internal: where -client-load writes the clients' CPU profile")
	flag.Parse()

	if *relay {
		if err := runRelay(); err != nil {
			fatal("relay: %v", err)
		}
		return
	}
	if *clientLoad != "" {
		if err := runClientLoad(*clientLoad, *url, *clientProf, *profSize, *dur); err != nil {
			fatal("%v", err)
		}
		return
	}
	if *cluster {
		cmd := *command
		if cmd == "" {
			cmd = "go run -tags bench ./test/bench " + strings.Join(os.Args[1:], " ")
		}
		if *quick {
			co.quick()
		}
		if err := runCluster(co, cmd, *md, *png, *save); err != nil {
			fatal("bench-cluster FAILED: %v", err)
		}
		return
	}
	if *render != "" {
		m, rows, d, err := loadRun(*render)
		if err == nil && *md != "" {
			err = writeMarkdown(*md, *png, m, rows, d)
		}
		if err == nil && *png != "" {
			err = writeChart(*png, rows, m)
		}
		if err != nil {
			fatal("render: %v", err)
		}
		printTable(os.Stdout, rows)
		return
	}
	if _, err := raiseFileLimit(); err != nil {
		fatal("raise RLIMIT_NOFILE: %v", err)
	}
	if *profile != "" {
		if err := runProfile(*profile, *profDir, *profSize, *profTheirs, *dur); err != nil {
			fatal("%v", err)
		}
		return
	}

	cfg := config{d: *dur, runs: *runs, stormRuns: 2, stormConns: 500, stormUsers: 100,
		memRuns: 3, memConns: 10000, reloadRuns: 5, reloadN: 10000, clusters: 200, users: 20, opRuns: 3, natsUsers: 10000}
	if *quick {
		cfg = config{d: 200 * time.Millisecond, runs: 2, stormRuns: 2, stormConns: 40, stormUsers: 8,
			memRuns: 1, memConns: 1000, reloadRuns: 2, reloadN: 1000, clusters: 10, users: 5, opRuns: 1, natsUsers: 300}
	}
	var filter *regexp.Regexp
	if *only != "" {
		filter = regexp.MustCompile(*only)
	}

	tmp, err := os.MkdirTemp("", "natsforge-bench-")
	if err != nil {
		fatal("%v", err)
	}
	h := &harness{tmp: tmp, cfg: cfg, started: time.Now()}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "bench: %v: stopping servers\n", s)
		killAll()
		stopEnvtest()
		os.RemoveAll(tmp)
		os.Exit(130)
	}()
	if *keep {
		logf("configs and logs in %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	defer killAll()

	meta := collectMeta(*command)
	go h.watchLoad()
	logf("building both servers")
	h.ours, h.theirs, err = build(tmp)
	if err != nil {
		killAll()
		fatal("%v", err)
	}

	for _, sc := range h.scenarios() {
		if filter != nil && !filter.MatchString(sc.name()) {
			continue
		}
		h.run(sc)
	}
	mergeRelayRows(h.rows)
	if filter == nil || filter.MatchString("operator") {
		h.rows = append(h.rows, h.operatorRows()...)
	}
	if filter == nil || filter.MatchString("operator") || filter.MatchString("natsusers") {
		h.rows = append(h.rows, h.natsUserRows()...)
	}
	killAll()
	meta.finish(h)

	printTable(os.Stdout, h.rows)
	if *save != "" {
		if err := saveRun(*save, meta, h.rows, h.cfg.d); err != nil {
			fatal("save %s: %v", *save, err)
		}
	}
	if *md != "" {
		if err := writeMarkdown(*md, *png, meta, h.rows, h.cfg.d); err != nil {
			fatal("write %s: %v", *md, err)
		}
		logf("wrote %s", *md)
	}
	if *png != "" {
		if err := writeChart(*png, h.rows, meta); err != nil {
			fatal("write %s: %v", *png, err)
		}
		logf("wrote %s", *png)
	}
}

func (sc scenario) name() string { return sc.group }

// run measures one scenario: both targets started, then runs alternating
// which goes first, then both stopped.
func (h *harness) run(sc scenario) {
	logf("scenario %s (%d runs)", sc.group, sc.runs)
	rows := make([]*row, len(sc.metrics))
	for i, m := range sc.metrics {
		rows[i] = &row{group: sc.group, metric: m, note: sc.note}
		h.rows = append(h.rows, rows[i])
	}
	type started struct {
		t       target
		measure func(int) ([]float64, error)
		cleanup func()
	}
	var ts []*started
	for _, t := range []target{h.ours, h.theirs} {
		m, c, err := sc.start(t)
		if err != nil {
			h.fail(rows, t, fmt.Sprintf("%s did not start: %v", t.name, err))
			ts = append(ts, nil)
			continue
		}
		ts = append(ts, &started{t, m, c})
	}
	defer func() {
		for _, s := range ts {
			if s != nil && s.cleanup != nil {
				s.cleanup()
			}
		}
	}()
	failures := map[string][]string{}
	for run := range sc.runs {
		order := []*started{ts[0], ts[1]}
		if run%2 == 1 {
			order = []*started{ts[1], ts[0]}
		}
		for _, s := range order {
			if s == nil {
				continue
			}
			vals, err := s.measure(run)
			if err != nil {
				logf("  %s run %d: %v", s.t.name, run, err)
				failures[s.t.name] = append(failures[s.t.name], err.Error())
				// A run that measured some rows (vals with NaN where it
				// failed) still counts for the others.
				for i, r := range rows {
					if vals == nil || math.IsNaN(vals[i]) {
						r.fails = append(r.fails, fmt.Sprintf("%s run %d: %v", s.t.name, run, err))
					}
				}
				if vals == nil {
					continue
				}
			}
			for i, v := range vals {
				if s.t.name == "ours" {
					rows[i].ours = append(rows[i].ours, v)
				} else {
					rows[i].theirs = append(rows[i].theirs, v)
				}
			}
			logf("  %s run %d: %s", s.t.name, run, formatVals(sc.metrics, vals))
		}
	}
	for name, errs := range failures {
		msg := fmt.Sprintf("%s failed %d of %d runs: %s", name, len(errs), sc.runs, errs[0])
		h.errlog = append(h.errlog, sc.group+": "+msg)
		for _, r := range rows {
			vals := r.ours
			if name == "theirs" {
				vals = r.theirs
			}
			if len(finite(vals)) == 0 && r.missing == "" {
				r.missing = msg
			}
		}
	}
}

func (h *harness) fail(rows []*row, t target, msg string) {
	logf("  %s", msg)
	h.errlog = append(h.errlog, rows[0].group+": "+msg)
	for _, r := range rows {
		if r.missing == "" {
			r.missing = msg
		}
	}
}

func formatVals(ms []metric, vals []float64) string {
	var parts []string
	for i, v := range vals {
		if math.IsNaN(v) {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%s %s", ms[i].name, human(v), ms[i].unit))
	}
	return strings.Join(parts, ", ")
}

func finite(vs []float64) []float64 {
	var out []float64
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			out = append(out, v)
		}
	}
	return out
}

// median of the finite values; NaN when there are none.
func median(vs []float64) float64 {
	f := finite(vs)
	if len(f) == 0 {
		return math.NaN()
	}
	slices.Sort(f)
	if len(f)%2 == 1 {
		return f[len(f)/2]
	}
	return (f[len(f)/2-1] + f[len(f)/2]) / 2
}

// ratio is ours/theirs of the medians; NaN when either is missing.
func (r *row) ratio() float64 {
	o, t := median(r.ours), median(r.theirs)
	switch {
	case math.IsNaN(o) || math.IsNaN(t) || (t == 0 && o == 0):
		return math.NaN()
	case t == 0:
		return math.Inf(1)
	}
	return o / t
}

// met says whether the ratio meets the aim.
func (r *row) met() (ok, known bool) {
	q := r.ratio()
	if r.aim == 0 || math.IsNaN(q) {
		return false, false
	}
	if r.higher {
		return q >= r.aim, true
	}
	return q <= r.aim, true
}

func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
}

func fatal(format string, a ...any) {
	logf(format, a...)
	os.Exit(1)
}
