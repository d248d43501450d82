/*
Copyright 2026 The natsforge Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Package promharness runs Debian's prometheus for the tests that check the
// chart's Grafana dashboard against real scrapes (test/prometheus against
// broker processes, test/e2e against the local cluster), and asks it what
// the dashboard's panels ask.
package promharness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Start runs prometheus with config (a prometheus.yml), its data in a
// directory of the test's, on a free loopback port, and returns the address
// of its HTTP API once it is ready. It is stopped when the test ends, and
// its log shown if the test failed. Without the binary the test fails (it
// is skipped under -short).
func Start(t testing.TB, config string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if testing.Short() {
			t.Skip("no prometheus binary (Debian's prometheus package) and -short")
		}
		t.Fatal("no prometheus binary: apt-get install prometheus (.ci/run installs it)")
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Interrupt is prometheus's clean shutdown; a kill after 10 s
		// covers one that hangs. Wait's error is the signal's.
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ready(addr)
		if err == nil {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30s: %v\n%s", err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// httpClient bounds every request: a prometheus that hangs fails the poll or
// the query instead of the whole test binary at its timeout.
var httpClient = &http.Client{Timeout: 10 * time.Second}

func ready(addr string) error {
	resp, err := httpClient.Get("http://" + addr + "/-/ready")
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/-/ready: %s", resp.Status)
	}
	return nil
}

// lockedBuffer is prometheus's stderr, written by exec's copier and read by
// the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Sample is one series of an instant query's result.
type Sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// Float is the sample's value; NaN when it is not a number.
func (s Sample) Float() float64 {
	v, err := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
	if err != nil {
		return math.NaN()
	}
	return v
}

// Query runs an instant PromQL query (now) through prometheus's HTTP API.
func Query(addr, promql string) ([]Sample, error) {
	resp, err := httpClient.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(promql))
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []Sample `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", body.Status, body.Error)
	}
	return body.Data.Result, nil
}

// HasNumber is nil when promql returns at least one sample that is a
// number, as a dashboard panel needs to draw anything.
func HasNumber(addr, promql string) error {
	got, err := Query(addr, promql)
	if err != nil {
		return err
	}
	for _, s := range got {
		if !math.IsNaN(s.Float()) {
			return nil
		}
	}
	return fmt.Errorf("no data: %v", got)
}

// PanelQuery is one query of a dashboard panel.
type PanelQuery struct {
	Panel  string
	PromQL string
}

// DashboardQueries are every query of every panel of the dashboard the chart
// ships (under repoRoot), in panel order, with Grafana's $__rate_interval
// replaced by rateInterval. A dashboard without any is an error: a check of
// every query would pass on it without asking anything.
func DashboardQueries(repoRoot, rateInterval string) ([]PanelQuery, error) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "charts", "natsforge", "dashboards", "natsforge.json"))
	if err != nil {
		return nil, err
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("the dashboard: %w", err)
	}
	var out []PanelQuery
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, PanelQuery{Panel: p.Title, PromQL: strings.ReplaceAll(tg.Expr, "$__rate_interval", rateInterval)})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("the dashboard has no panel with a query")
	}
	return out, nil
}
