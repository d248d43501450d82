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
	"strings"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/natsforge/natsforge/broker/server"
)

// profileLoads are the loads -profile can run; size is the payload size
// (-size), 0 for the load's own. Each returns how many messages the server
// handled: published (pub), delivered (fan, queue) or requests (req).
var profileLoads = map[string]func(url string, size int, d time.Duration) (int64, error){
	"pub16": func(url string, size int, d time.Duration) (int64, error) {
		_, n, err := pubOnly(url, or(size, 16), d)
		return n, err
	},
	"pub1k": func(url string, size int, d time.Duration) (int64, error) {
		_, n, err := pubOnly(url, or(size, 1024), d)
		return n, err
	},
	"fan1": func(url string, size int, d time.Duration) (int64, error) {
		_, n, err := fanIn(url, url, or(size, 16), 1, false, d)
		return n, err
	},
	"fan4": func(url string, size int, d time.Duration) (int64, error) {
		_, n, err := fanIn(url, url, or(size, 16), 4, false, d)
		return n, err
	},
	"queue4": func(url string, size int, d time.Duration) (int64, error) {
		_, n, err := fanIn(url, url, or(size, 16), 4, true, d)
		return n, err
	},
	"req1":  func(url string, _ int, d time.Duration) (int64, error) { return reqCount(url, 1, d) },
	"req50": func(url string, _ int, d time.Duration) (int64, error) { return reqCount(url, 50, d) },
}

// reqCount runs reqReply and returns about how many requests completed.
func reqCount(url string, n int, d time.Duration) (int64, error) {
	r, err := reqReply(url, n, d)
	return int64(r.rate * d.Seconds()), err
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
// CPU profile and an allocation profile and prints the top of each, and the
// messages each run handled with this process's CPU time per message. With the
// clients in their own process, as in the benchmark, the profiles hold the
// broker's work only; the same command with -profile-theirs profiles
// nats-server under the very same load, for comparing the two.
func runProfile(name, dir string, size int, theirs bool, d time.Duration) error {
	_, ok := profileLoads[name]
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
	for run := range 3 {
		clientProf := filepath.Join(dir, fmt.Sprintf("%s-clients-run%d-cpu.pprof", base, run))
		cmd := exec.Command(exe, "-client-load", name, "-url", url, "-d", d.String(), "-size", fmt.Sprint(size), "-client-profile", clientProf)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		ru0, wall0 := selfUsage(), time.Now()
		err := cmd.Run()
		ru, wall := selfUsage(), time.Since(wall0)
		if err != nil {
			pprof.StopCPUProfile()
			return fmt.Errorf("client load: %w", err)
		}
		var n int64
		if _, err := fmt.Sscanf(out.String(), "messages %d", &n); err != nil || n == 0 {
			pprof.StopCPUProfile()
			return fmt.Errorf("client load said %q", out.String())
		}
		cru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if cru == nil {
			cru = &syscall.Rusage{}
		}
		per := func(v int64) float64 { return float64(v) / float64(n) }
		cpu, ccpu := usageCPU(ru)-usageCPU(ru0), usageCPU(cru)
		fmt.Printf("run %d: %d messages in %s (%.0f/s); per message: server process %.0f ns CPU, %.3f page faults, %.3f voluntary context switches; "+
			"client process %.0f ns CPU, %.3f page faults, %.3f voluntary context switches\n",
			run, n, wall.Round(time.Millisecond), float64(n)/wall.Seconds(),
			per(int64(cpu)), per(ru.Minflt-ru0.Minflt), per(ru.Nvcsw-ru0.Nvcsw),
			per(int64(ccpu)), per(cru.Minflt), per(cru.Nvcsw))
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
	fmt.Printf("profiles: %s %s; the clients': %s\n", cpuPath, allocPath, filepath.Join(dir, base+"-clients-run*-cpu.pprof"))
	return nil
}

// runClientLoad is the child side of runProfile: one load against url, with
// the clients' own CPU profile written to prof unless it is empty.
func runClientLoad(name, url, prof string, size int, d time.Duration) error {
	load, ok := profileLoads[name]
	if !ok {
		return fmt.Errorf("no load %q", name)
	}
	if prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	n, err := load(url, size, d)
	if prof != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	fmt.Printf("messages %d\n", n)
	return nil
}

// selfUsage is this process's resource usage so far.
func selfUsage() *syscall.Rusage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return &ru
}

// usageCPU is the user and system CPU time in ru.
func usageCPU(ru *syscall.Rusage) time.Duration {
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
