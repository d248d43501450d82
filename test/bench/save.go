//go:build bench

package main

import (
	"encoding/json"
	"os"
	"time"
)

// savedRun is a run's results on disk: -save writes it and -render reads it
// back, so the report's prose can be revised without measuring again.
type savedRun struct {
	Meta struct {
		Command, CPU, Memory, Kernel, GoVersion, NatsServer, Ours string
		LoadStart, LoadEnd, LoadMax                               string
		Date                                                      time.Time
		NProc                                                     int
		Elapsed                                                   time.Duration
		Errs                                                      []string
	}
	D    time.Duration
	Rows []savedRow
}

type savedRow struct {
	Group, Name, Unit                   string
	Higher, OursOnly                    bool
	Aim                                 float64
	Ours, Theirs                        []float64 // finite values only
	Missing, Note, AimNote, VerdictNote string
	Fails                               []string
}

func saveRun(path string, m *meta, rows []*row, d time.Duration) error {
	var s savedRun
	s.Meta.Command, s.Meta.CPU, s.Meta.Memory, s.Meta.Kernel = m.command, m.cpu, m.memory, m.kernel
	s.Meta.GoVersion, s.Meta.NatsServer, s.Meta.Ours = m.goVersion, m.natsServer, m.ours
	s.Meta.LoadStart, s.Meta.LoadEnd, s.Meta.LoadMax = m.loadStart, m.loadEnd, m.loadMax
	s.Meta.Date, s.Meta.NProc, s.Meta.Elapsed, s.Meta.Errs = m.date, m.nproc, m.elapsed, m.errs
	s.D = d
	for _, r := range rows {
		s.Rows = append(s.Rows, savedRow{Group: r.group, Name: r.name, Unit: r.unit, Higher: r.higher,
			OursOnly: r.oursOnly, Aim: r.aim, Ours: finite(r.ours), Theirs: finite(r.theirs),
			Missing: r.missing, Note: r.note, AimNote: r.aimNote, VerdictNote: r.verdictNote, Fails: r.fails})
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func loadRun(path string) (*meta, []*row, time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, 0, err
	}
	var s savedRun
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, nil, 0, err
	}
	m := &meta{command: s.Meta.Command, cpu: s.Meta.CPU, memory: s.Meta.Memory, kernel: s.Meta.Kernel,
		goVersion: s.Meta.GoVersion, natsServer: s.Meta.NatsServer, ours: s.Meta.Ours,
		loadStart: s.Meta.LoadStart, loadEnd: s.Meta.LoadEnd, loadMax: s.Meta.LoadMax,
		date: s.Meta.Date, nproc: s.Meta.NProc, elapsed: s.Meta.Elapsed, errs: s.Meta.Errs}
	var rows []*row
	for _, r := range s.Rows {
		rows = append(rows, &row{group: r.Group, metric: metric{name: r.Name, unit: r.Unit, higher: r.Higher, aim: r.Aim},
			ours: r.Ours, theirs: r.Theirs, missing: r.Missing, note: r.Note, oursOnly: r.OursOnly,
			aimNote: r.AimNote, verdictNote: r.VerdictNote, fails: r.Fails})
	}
	return m, rows, s.D, nil
}
