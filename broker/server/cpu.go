package server

import (
	"sync"
	"syscall"
	"time"
)

// cpuSampler computes /varz cpu as nats-server reports it: the process's CPU
// time over wall time, in percent of one core, here between two /varz
// samples at least a second apart (the first one: since the process
// started), so that /varz and /metrics asked together agree.
type cpuSampler struct {
	mu       sync.Mutex
	lastCPU  time.Duration
	lastWall time.Time
	last     float64
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (c *cpuSampler) percent(started time.Time) float64 {
	now, cpu := time.Now(), processCPU()
	c.mu.Lock()
	defer c.mu.Unlock()
	since, used := c.lastWall, cpu-c.lastCPU
	if since.IsZero() {
		since, used = started, cpu
	} else if now.Sub(since) < time.Second {
		return c.last
	}
	wall := now.Sub(since)
	if wall <= 0 {
		return c.last
	}
	c.lastCPU, c.lastWall = cpu, now
	c.last = float64(int(float64(used)/float64(wall)*1000)) / 10 // one decimal, as nats-server
	return c.last
}
