//go:build bench

package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/natsforge/natsforge/broker/conf"
)

// target is one of the two brokers under test.
type target struct {
	name string // "ours" or "theirs"
	bin  string // path of the built binary
}

// proc is one running server process. Every proc is registered with the
// harness and killed by its PID when the harness ends, however it ends.
type proc struct {
	t      target
	cmd    *exec.Cmd
	port   int
	conf   string // path of its config file
	log    string // path of its log file
	exited chan struct{}
}

func (p *proc) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", p.port) }

// userURL is url with the credentials of user, whose password is its name
// (importOptions).
func (p *proc) userURL(user string) string {
	return fmt.Sprintf("nats://%s:%s@127.0.0.1:%d", user, user, p.port)
}
func (p *proc) addr() string { return fmt.Sprintf("127.0.0.1:%d", p.port) }
func (p *proc) pid() int     { return p.cmd.Process.Pid }

// procs tracks the server processes the harness started.
type procs struct {
	mu  sync.Mutex
	all map[*proc]bool
}

var running = &procs{all: map[*proc]bool{}}

// stop kills p by its PID and waits for it.
func (p *proc) stop() {
	running.mu.Lock()
	delete(running.all, p)
	running.mu.Unlock()
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

// killAll stops every server still running; main defers it and calls it on
// SIGINT and SIGTERM.
func killAll() {
	running.mu.Lock()
	var ps []*proc
	for p := range running.all {
		ps = append(ps, p)
	}
	running.mu.Unlock()
	for _, p := range ps {
		p.stop()
	}
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// baseOptions are the settings both servers run with: loopback, a free port,
// and everything else at its default.
func baseOptions() (*conf.Options, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	return &conf.Options{Host: "127.0.0.1", Port: port}, nil
}

// writeConfig renders o into dir/name. The renderer's output is accepted by
// both servers, so both read the very same file.
func writeConfig(path string, o *conf.Options) error {
	b, err := conf.Render(o)
	if err != nil {
		return fmt.Errorf("render config: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	// A rename replaces the file in one step, so a server polling it never
	// reads half a config.
	return os.Rename(tmp, path)
}

var seq struct {
	mu sync.Mutex
	n  int
}

// startServer writes o to a config file and starts t's binary on it, then
// waits until the server greets a client with INFO.
func (h *harness) startServer(t target, o *conf.Options) (*proc, error) {
	seq.mu.Lock()
	seq.n++
	n := seq.n
	seq.mu.Unlock()
	base := filepath.Join(h.tmp, fmt.Sprintf("%s-%03d", t.name, n))
	p := &proc{t: t, port: o.Port, conf: base + ".conf", log: base + ".log", exited: make(chan struct{})}
	if err := writeConfig(p.conf, o); err != nil {
		return nil, err
	}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	p.cmd = exec.Command(t.bin, "-c", p.conf)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	// If the harness dies without cleaning up, the kernel kills the server.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	running.mu.Lock()
	running.all[p] = true
	running.mu.Unlock()
	go func() { _ = p.cmd.Wait(); close(p.exited) }()

	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-p.exited:
			p.stop()
			return nil, fmt.Errorf("%s exited at start: %s", t.name, tail(p.log))
		default:
		}
		if greets(p.addr()) {
			return p, nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s not ready in a minute: %s", t.name, tail(p.log))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// greets reports whether a server at addr sends INFO.
func greets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "INFO ")
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return strings.Join(lines, " | ")
}

// rss is the resident set size of process pid in bytes.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// rawConnect does the client handshake on a plain socket: INFO, CONNECT,
// PING, then PONG (served) or -ERR (refused). It returns the open connection
// when served; idle connections cost the harness almost nothing this way.
func rawConnect(addr, user, pass string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(timeout))
	r := bufio.NewReaderSize(c, 2048)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "INFO ") {
		c.Close()
		return nil, fmt.Errorf("no INFO: %q %v", line, err)
	}
	connect := `CONNECT {"verbose":false,"pedantic":false,"lang":"go","version":"bench","protocol":1`
	if user != "" {
		connect += fmt.Sprintf(`,"user":%q,"pass":%q`, user, pass)
	}
	if _, err := c.Write([]byte(connect + "}\r\nPING\r\n")); err != nil {
		c.Close()
		return nil, err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			c.Close()
			return nil, err
		}
		switch {
		case strings.HasPrefix(line, "PONG"):
			_ = c.SetDeadline(time.Time{})
			return c, nil
		case strings.HasPrefix(line, "-ERR"):
			c.Close()
			return nil, errRefused
		}
	}
}

var errRefused = errors.New("refused")

// build compiles both servers into dir.
func build(dir string) (ours, theirs target, err error) {
	ours = target{name: "ours", bin: filepath.Join(dir, "natsforge-broker")}
	theirs = target{name: "theirs", bin: filepath.Join(dir, "nats-server")}
	for _, b := range []struct{ out, pkg string }{
		{ours.bin, "./broker/cmd/natsforge-broker"},
		{theirs.bin, "github.com/nats-io/nats-server/v2"},
	} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return ours, theirs, fmt.Errorf("go build %s: %w", b.pkg, err)
		}
	}
	return ours, theirs, nil
}

// raiseFileLimit lifts RLIMIT_NOFILE to its hard limit; the servers started
// afterwards inherit it.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	return l.Cur, nil
}
