//go:build bench

package main

import (
	"errors"
	"fmt"
)

// payloadSizes are the message sizes every throughput load is measured at.
var payloadSizes = []int{16, 128, 1 << 10, 4 << 10, 16 << 10, 64 << 10}

// sweepAim is the ratio ours/theirs the sweep rows aim for.
const sweepAim = 1.2

// sizeName is a payload size as the rows name it: 16 B, 1 KiB.
func sizeName(n int) string {
	if n >= 1<<10 && n%(1<<10) == 0 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// fanShape is one publisher to n subscribers, plain or in one queue group.
type fanShape struct {
	name  string // in the row: "1 pub -> 4 subs"
	short string // in logs: "1 -> 4"
	n     int
	queue bool
}

var fanShapes = []fanShape{
	{"1 pub -> 1 sub", "1 -> 1", 1, false},
	{"1 pub -> 4 subs", "1 -> 4", 4, false},
	{"1 pub -> queue group of 4", "queue of 4", 4, true},
}

// sweepScenarios measure publish-only and the fan shapes at every payload
// size. Each size is a scenario of its own, so ours and theirs alternate
// every few seconds rather than every sweep. The 16 B scenarios also report
// the server's CPU per message.
func (h *harness) sweepScenarios() []scenario {
	c := h.cfg
	var scs []scenario
	for _, size := range payloadSizes {
		metrics := []metric{{"publish only, " + sizeName(size), "msgs/s", true, sweepAim}}
		withCPU := size == payloadSizes[0]
		if withCPU {
			metrics = append(metrics, metric{"server CPU per message, publish " + sizeName(size), "ns", false, 0})
		}
		scs = append(scs, scenario{group: "pub", runs: c.runs,
			note:    "one nats.go publisher, no subscribers; server CPU is the server process's user+system time per message (from /proc), for reading the profiles",
			metrics: metrics,
			start: h.single(func(p *proc, _ int) ([]float64, error) {
				var rate float64
				var n int64
				cpu, err := serverCPU(p, &n, func() (err error) { rate, n, err = pubOnly(p.url(), size, c.d); return })
				if !withCPU {
					return []float64{rate}, err
				}
				return []float64{rate, cpu}, err
			})})
	}
	for _, size := range payloadSizes {
		withCPU := size == payloadSizes[0]
		var metrics []metric
		for _, f := range fanShapes {
			metrics = append(metrics, metric{f.name + ", " + sizeName(size), "msgs/s", true, sweepAim})
		}
		if withCPU {
			for _, f := range fanShapes {
				metrics = append(metrics, metric{"server CPU per message, " + f.short + ", " + sizeName(size), "ns", false, 0})
			}
		}
		scs = append(scs, scenario{group: "fan", runs: c.runs,
			note: "one nats.go publisher to nats.go subscribers (pending limits off), each on its own connection; msgs/s delivered, " +
				"all subscribers together, from the first publish to the last delivery; server CPU per delivered message",
			metrics: metrics,
			start: h.single(func(p *proc, _ int) ([]float64, error) {
				var rates, cpus []float64
				var errs []error
				for _, f := range fanShapes {
					var v float64
					var n int64
					cpu, err := serverCPU(p, &n, func() (err error) {
						v, n, err = fanIn(p.url(), p.url(), size, f.n, f.queue, c.d)
						return
					})
					if err != nil {
						v, cpu = nan, nan
						errs = append(errs, fmt.Errorf("%s: %w", f.short, err))
					}
					rates, cpus = append(rates, v), append(cpus, cpu)
				}
				if withCPU {
					rates = append(rates, cpus...)
				}
				return rates, errors.Join(errs...)
			})})
	}
	return scs
}
