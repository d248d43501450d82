//go:build bench

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/natsforge/natsforge/broker/server"
)

// profileLoads are the loads -profile can run; size is the payload size
// (-size), 0 for the load's own.
var profileLoads = map[string]func(url string, size int, d time.Duration) error{
	"pub16": func(url string, size int, d time.Duration) error {
		_, _, err := pubOnly(url, or(size, 16), d)
		return err
	},
	"pub1k": func(url string, size int, d time.Duration) error {
		_, _, err := pubOnly(url, or(size, 1024), d)
		return err
	},
	"fan1": func(url string, size int, d time.Duration) error {
		_, _, err := fanIn(url, url, or(size, 16), 1, false, d)
		return err
	},
	"fan4": func(url string, size int, d time.Duration) error {
		_, _, err := fanIn(url, url, or(size, 16), 4, false, d)
		return err
	},
	"queue4": func(url string, size int, d time.Duration) error {
		_, _, err := fanIn(url, url, or(size, 16), 4, true, d)
		return err
	},
	"req1":  func(url string, _ int, d time.Duration) error { _, err := reqReply(url, 1, d); return err },
	"req50": func(url string, _ int, d time.Duration) error { _, err := reqReply(url, 50, d); return err },
}

func or(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func profileNames() []string {
	var names []string
	for n := range profileLoads {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// runProfile runs a broker in this process (ours, or nats-server with
// theirs set) and one load against it from a child process (this binary with
// -client-load), three times over, under the CPU profiler, then writes the
// CPU profile and an allocation profile and prints the top of each. With the
// clients in their own process, as in the benchmark, the profiles hold the
// broker's work only; the same command with -profile-theirs profiles
// nats-server under the very same load, for comparing the two.
func runProfile(name, dir string, size int, theirs bool, d time.Duration) error {
	load, ok := profileLoads[name]
	if !ok {
		return fmt.Errorf("no load %q; have %v", name, profileNames())
	}
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "natsforge-profile-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	o, err := baseOptions()
	if err != nil {
		return err
	}
	if theirs {
		ns, err := natsserver.NewServer(&natsserver.Options{Host: o.Host, Port: o.Port, NoLog: true, NoSigs: true})
		if err != nil {
			return err
		}
		go ns.Start()
		defer ns.Shutdown()
		if !ns.ReadyForConnections(10 * time.Second) {
			return fmt.Errorf("nats-server not ready")
		}
	} else {
		s, err := server.New(o, nil)
		if err != nil {
			return err
		}
		if err := s.Start(); err != nil {
			return err
		}
		defer s.Shutdown()
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", o.Port)

	runtime.MemProfileRate = 64 << 10
	base := name
	if size > 0 {
		base += fmt.Sprintf("-%d", size)
	}
	if theirs {
		base += "-theirs"
	}
	cpuPath, allocPath := filepath.Join(dir, base+"-cpu.pprof"), filepath.Join(dir, base+"-allocs.pprof")
	f, err := os.Create(cpuPath)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	exe, _ := os.Executable()
	_ = load
	for range 3 {
		cmd := exec.Command(exe, "-client-load", name, "-url", url, "-d", d.String(), "-size", fmt.Sprint(size))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Run(); err != nil {
			pprof.StopCPUProfile()
			return fmt.Errorf("client load: %w", err)
		}
	}
	pprof.StopCPUProfile()
	f.Close()
	af, err := os.Create(allocPath)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(af, 0); err != nil {
		return err
	}
	af.Close()

	for _, args := range [][]string{
		{"tool", "pprof", "-top", "-nodecount=35", exe, cpuPath},
		{"tool", "pprof", "-top", "-nodecount=15", "-sample_index=alloc_space", exe, allocPath},
	} {
		fmt.Printf("$ go %v\n", args)
		cmd := exec.Command("go", args...)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		_ = cmd.Run()
	}
	fmt.Printf("profiles: %s %s\n", cpuPath, allocPath)
	return nil
}

// runClientLoad is the child side of runProfile: one load against url.
func runClientLoad(name, url string, size int, d time.Duration) error {
	load, ok := profileLoads[name]
	if !ok {
		return fmt.Errorf("no load %q", name)
	}
	return load(url, size, d)
}
