//go:build bench

package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/natsforge/natsforge/broker/conf"
)

var nan = math.NaN()

func (h *harness) scenarios() []scenario {
	c := h.cfg
	return append(append(h.sweepScenarios(), h.ceilingScenarios()...), []scenario{
		{group: "req", runs: c.runs, note: "16 B requests, 2 responders in a queue group, each client one request at a time",
			metrics: []metric{
				{"request/reply, 1 client: p50", "µs", false, 1},
				{"request/reply, 1 client: p99", "µs", false, 1},
				{"request/reply, 1 client", "req/s", true, 1},
				{"request/reply, 50 clients: p50", "µs", false, 1},
				{"request/reply, 50 clients: p99", "µs", false, 1},
				{"request/reply, 50 clients", "req/s", true, 1},
			}, start: h.single(func(p *proc, _ int) ([]float64, error) {
				var out []float64
				for _, n := range []int{1, 50} {
					r, err := reqReply(p.url(), n, c.d)
					if err != nil {
						return nil, err
					}
					out = append(out, us(r.p50), us(r.p99), r.rate)
				}
				return out, nil
			})},
		{group: "import", runs: c.runs, note: "accounts: the publisher in account A, the subscriber in account B, which imports A's stream bench.> under the prefix from_a; 16 B; server CPU per delivered message",
			metrics: []metric{
				{"1 pub in A -> 1 sub in B through a stream import", "msgs/s", true, 1},
				{"server CPU per message, through a stream import", "ns", false, 0},
			}, start: h.singleWith(importOptions, func(p *proc, _ int) ([]float64, error) {
				var v float64
				var n int64
				cpu, err := serverCPU(p, &n, func() (err error) {
					v, n, err = fanInOn(p.userURL("a"), p.userURL("b"), "bench.fan", "from_a.bench.fan", 16, 1, false, c.d)
					return
				})
				return []float64{v, cpu}, err
			})},
		{group: "cluster", runs: c.runs, note: "3 servers in a full mesh; publisher on the first, subscriber on the second; 16 B",
			metrics: []metric{{"3-server cluster, pub on A -> sub on B", "msgs/s", true, 1}},
			start:   h.cluster},
		{group: "storm", runs: c.stormRuns,
			note: fmt.Sprintf("bcrypt cost 11, auth timeout 10 min; every client connects at once and waits as long as it takes. "+
				"Cold rows are the first storm on a fresh server, when no password has been checked yet: %d clients of %d users (%d connections each), "+
				"then %d clients of one user. The reconnect row repeats the %d-user storm on the same running server: it measures the verification cache "+
				"(ours remembers successful checks; nats-server pays bcrypt again). These clients speak the protocol on plain sockets; "+
				"the last row counts the nats.go clients (one attempt each, no reconnect) that get through a storm after the others",
				c.stormConns, c.stormUsers, c.stormConns/c.stormUsers, c.stormConns, c.stormUsers),
			metrics: []metric{
				{fmt.Sprintf("connect storm, %d clients of %d users, cold", c.stormConns, c.stormUsers), "connects/s", true, 0},
				{fmt.Sprintf("connect storm, %d clients of one user, cold", c.stormConns), "connects/s", true, 50},
				{fmt.Sprintf("reconnect storm, %d clients, warm verification cache", c.stormConns), "connects/s", true, 50},
				{fmt.Sprintf("reconnect storm, nats.go clients through at first attempt, of %d", c.stormConns), "clients", true, 1},
			}, start: h.storm},
		{group: "mem", runs: c.memRuns, note: "a fresh server per run; RSS after the idle connections minus RSS before, per connection",
			metrics: []metric{{fmt.Sprintf("memory per idle connection at %d", c.memConns), "KiB", false, 1}},
			start:   h.memory},
		{group: "reload", runs: c.reloadRuns, note: fmt.Sprintf("a server with %d users (cost-11 hashes) has one of them connected; the config file is rewritten "+
			"without that user and with one new user (cost 11), and the server is sent SIGHUP (ours: %s); then a raw client tries the new user's credentials "+
			"every 2 ms until one connects (this includes that user's bcrypt check, and each refused try costs ours a bcrypt against a dummy hash, "+
			"which nats-server skips for an unknown user), while the removed user's connection is watched until the server closes it", c.reloadN, trigger(oursHandlesSIGHUP())),
			metrics: []metric{
				{fmt.Sprintf("reload of %d users: new user served", c.reloadN), "ms", false, 1},
				{fmt.Sprintf("reload of %d users: removed user cut off", c.reloadN), "ms", false, 1},
			}, start: h.reload},
		h.tlsScenario(),
	}...)
}

// serverCPU runs f and returns the CPU time p used meanwhile, in ns per
// message; f stores the message count in *n.
func serverCPU(p *proc, n *int64, f func() error) (float64, error) {
	before, self := cpuTicks(p.pid()), cpuTicks(os.Getpid())
	if err := f(); err != nil {
		return 0, err
	}
	ticks := cpuTicks(p.pid()) - before
	self = cpuTicks(os.Getpid()) - self
	if *n == 0 {
		return nan, nil
	}
	perMsg := func(t int64) float64 { return float64(t) * 1e9 / clockTicks / float64(*n) }
	if verbose {
		logf("    %s: %d msgs, server %.0f ns/msg, clients %.0f ns/msg", p.t.name, *n, perMsg(ticks), perMsg(self))
	}
	return perMsg(ticks), nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on Linux.
const clockTicks = 100

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// single starts one server with the base options and measures with f.
func (h *harness) single(f func(p *proc, run int) ([]float64, error)) func(t target) (func(int) ([]float64, error), func(), error) {
	return h.singleWith(baseOptions, f)
}

// singleWith starts one server with the options mk makes and measures with f.
func (h *harness) singleWith(mk func() (*conf.Options, error), f func(p *proc, run int) ([]float64, error)) func(t target) (func(int) ([]float64, error), func(), error) {
	return func(t target) (func(int) ([]float64, error), func(), error) {
		o, err := mk()
		if err != nil {
			return nil, nil, err
		}
		p, err := h.startServer(t, o)
		if err != nil {
			return nil, nil, err
		}
		slow := 0
		return func(run int) ([]float64, error) {
			v, err := f(p, run)
			select {
			case <-p.exited:
				return nil, fmt.Errorf("server exited: %s", tail(p.log))
			default:
			}
			if n := slowConsumers(p.log); n > slow {
				msg := fmt.Sprintf("the server's log reports %d slow consumer(s) cut off", n-slow)
				if err != nil {
					err = fmt.Errorf("%w (%s)", err, msg)
				} else {
					err = errors.New(msg)
				}
				slow = n
			}
			return v, err
		}, p.stop, nil
	}
}

// slowConsumers counts the slow consumers a server's log reports (ours:
// "slow consumer, disconnecting"; nats-server: "Slow Consumer Detected").
func slowConsumers(log string) int {
	b, _ := os.ReadFile(log)
	return strings.Count(strings.ToLower(string(b)), "slow consumer")
}

// cluster starts three servers of t in a full mesh of routes.
func (h *harness) cluster(t target) (func(int) ([]float64, error), func(), error) {
	const n = 3
	var opts []*conf.Options
	var routePorts []int
	for range n {
		o, err := baseOptions()
		if err != nil {
			return nil, nil, err
		}
		cp, err := freePort()
		if err != nil {
			return nil, nil, err
		}
		o.ServerName = fmt.Sprintf("bench-%d", len(opts))
		o.Cluster = &conf.Cluster{Name: "bench", Host: "127.0.0.1", Port: cp}
		opts = append(opts, o)
		routePorts = append(routePorts, cp)
	}
	for i, o := range opts {
		for j, cp := range routePorts {
			if i != j {
				o.Cluster.Routes = append(o.Cluster.Routes, fmt.Sprintf("nats://127.0.0.1:%d", cp))
			}
		}
	}
	var ps []*proc
	stop := func() {
		for _, p := range ps {
			p.stop()
		}
	}
	for _, o := range opts {
		p, err := h.startServer(t, o)
		if err != nil {
			stop()
			return nil, nil, err
		}
		ps = append(ps, p)
	}
	return func(int) ([]float64, error) {
		v, _, err := fanIn(ps[0].url(), ps[1].url(), 16, 1, false, h.cfg.d)
		if err != nil {
			return nil, err
		}
		return []float64{v}, nil
	}, stop, nil
}

// benchUsers makes n users with distinct passwords hashed at cost, in
// parallel; the hashes are made once and shared by both targets.
func benchUsers(prefix string, n, cost int) ([]conf.User, []string, error) {
	users := make([]conf.User, n)
	pws := make([]string, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range n {
		pws[i] = fmt.Sprintf("pw-%s-%d-secret", prefix, i)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			hash, err := bcrypt.GenerateFromPassword([]byte(pws[i]), cost)
			users[i] = conf.User{Name: fmt.Sprintf("%s%d", prefix, i), Password: string(hash)}
			errs[i] = err
		}()
	}
	wg.Wait()
	return users, pws, errors.Join(errs...)
}

// stormWait is how long a storm client waits for its PONG (and the servers'
// auth timeout): long enough for nats-server to pay 500 cost-11 bcrypts one
// after another on a busy 2-core machine.
const stormWait = 10 * time.Minute

var stormCreds struct {
	once  sync.Once
	users []conf.User
	pws   []string
	err   error
}

// storm starts a server whose users have cost-11 bcrypt hashes. Each run
// connects every client at once and closes them all again: run 0 is cold,
// the later ones reconnect to the same running server. The storm clients
// speak the protocol on plain sockets and wait through the server's first
// PING: nats.go gives up on a handshake that outlasts that PING (2 s), which
// on this machine is every cold one; the last run also counts how many
// nats.go clients get through a storm at their first attempt.
func (h *harness) storm(t target) (func(int) ([]float64, error), func(), error) {
	c := h.cfg
	stormCreds.once.Do(func() {
		logf("  hashing %d storm passwords at bcrypt cost 11", c.stormUsers+1)
		stormCreds.users, stormCreds.pws, stormCreds.err = benchUsers("storm", c.stormUsers+1, 11)
	})
	if stormCreds.err != nil {
		return nil, nil, stormCreds.err
	}
	// The last user is kept for the one-user storm.
	users, pws := stormCreds.users[:c.stormUsers], stormCreds.pws[:c.stormUsers]
	solo, soloPW := stormCreds.users[c.stormUsers:], stormCreds.pws[c.stormUsers:]
	o, err := baseOptions()
	if err != nil {
		return nil, nil, err
	}
	o.Authorization = &conf.Authorization{Timeout: stormWait, Users: stormCreds.users}
	p, err := h.startServer(t, o)
	if err != nil {
		return nil, nil, err
	}
	return func(run int) ([]float64, error) {
		rate, err := rawStorm(p.addr(), c.stormConns, users, pws)
		if err != nil {
			return nil, err
		}
		out := []float64{nan, nan, rate, nan}
		if run == 0 {
			out[0], out[2] = rate, nan
			if out[1], err = rawStorm(p.addr(), c.stormConns, solo, soloPW); err != nil {
				return nil, err
			}
		}
		if run == c.stormRuns-1 {
			out[3] = float64(natsGoStorm(p.url(), c.stormConns, users, pws))
			// Clients that gave up leave a server still checking their
			// passwords; it measures nothing more, so stop it rather than
			// let it slow down the next measurement.
			p.stop()
		}
		return out, nil
	}, p.stop, nil
}

// rawStorm connects n clients at once and returns connects per second, from
// the release of the first to the PONG of the last.
func rawStorm(addr string, n int, users []conf.User, pws []string) (float64, error) {
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	el := storm(n, func(i int) {
		u := i % len(users)
		conns[i], errs[i] = rawConnect(addr, users[u].Name, pws[u], stormWait)
	})
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	if err := firstErr(errs); err != nil {
		failed := 0
		for _, e := range errs {
			if e != nil {
				failed++
			}
		}
		return 0, fmt.Errorf("%d of %d clients failed to connect: %v", failed, n, err)
	}
	return float64(n) / el.Seconds(), nil
}

// natsGoStorm connects n nats.go clients at once, one attempt each, and
// returns how many got through.
func natsGoStorm(url string, n int, users []conf.User, pws []string) int {
	conns := make([]*nats.Conn, n)
	storm(n, func(i int) {
		u := i % len(users)
		conns[i], _ = connect(url, nats.UserInfo(users[u].Name, pws[u]), nats.Timeout(2*time.Minute))
	})
	ok := 0
	for _, nc := range conns {
		if nc != nil {
			ok++
			nc.Close()
		}
	}
	return ok
}

// storm runs f(0..n-1) in n goroutines released at once and returns how long
// they took together.
func storm(n int, f func(i int)) time.Duration {
	var ready, wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range n {
		ready.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ready.Done()
			<-gate
			f(i)
		}()
	}
	ready.Wait()
	start := time.Now()
	close(gate)
	wg.Wait()
	return time.Since(start)
}

// cpuTicks is the user plus system CPU time of pid in clock ticks; -1 when
// it is gone.
func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name may hold spaces; the fields after its ')' are fixed.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return -1
	}
	var u, sys int64
	fmt.Sscan(f[11], &u)
	fmt.Sscan(f[12], &sys)
	return u + sys
}

// memory starts a fresh server each run, opens the idle connections and
// reports the RSS growth per connection in KiB.
func (h *harness) memory(t target) (func(int) ([]float64, error), func(), error) {
	n := h.cfg.memConns
	return func(int) ([]float64, error) {
		o, err := baseOptions()
		if err != nil {
			return nil, err
		}
		p, err := h.startServer(t, o)
		if err != nil {
			return nil, err
		}
		defer p.stop()
		time.Sleep(300 * time.Millisecond)
		before, err := rss(p.pid())
		if err != nil {
			return nil, err
		}
		conns, err := openIdle(p.addr(), n)
		defer func() {
			// The server goes first, so its side holds the TIME_WAITs and
			// the harness's ephemeral ports are free for the next run.
			p.stop()
			for _, c := range conns {
				c.Close()
			}
		}()
		if err != nil {
			return nil, err
		}
		time.Sleep(time.Second)
		after, err := rss(p.pid())
		if err != nil {
			return nil, err
		}
		return []float64{float64(after-before) / float64(n) / 1024}, nil
	}, nil, nil
}

// openIdle opens n handshaken client connections to addr, 64 at a time.
func openIdle(addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conns[i], errs[i] = rawConnect(addr, "", "", 30*time.Second)
		}()
	}
	wg.Wait()
	var open []net.Conn
	for _, c := range conns {
		if c != nil {
			open = append(open, c)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return open, fmt.Errorf("%d of %d connections failed: %w", n-len(open), n, firstErr(errs))
	}
	return open, nil
}

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

var reloadCreds struct {
	once   sync.Once
	filler string // one cost-11 hash that every existing user carries
	fresh  []conf.User
	pws    []string
	err    error
}

// reload starts a server with reloadN users. Each run connects one of them
// (the victim), then writes a config without the victim and with one new
// user, and times two things: until the new user's credentials connect, and
// until the victim's connection is cut off. nats-server is told by SIGHUP;
// ours by SIGHUP when its main handles it, else by its config file watcher
// (the file is rewritten either way).
func (h *harness) reload(t target) (func(int) ([]float64, error), func(), error) {
	c := h.cfg
	reloadCreds.once.Do(func() {
		logf("  hashing reload passwords at bcrypt cost 11")
		b, err := bcrypt.GenerateFromPassword([]byte("filler-password"), 11)
		reloadCreds.filler = string(b)
		reloadCreds.fresh, reloadCreds.pws, reloadCreds.err = benchUsers("fresh", c.reloadRuns, 11)
		reloadCreds.err = errors.Join(err, reloadCreds.err)
	})
	if reloadCreds.err != nil {
		return nil, nil, reloadCreds.err
	}
	o, err := baseOptions()
	if err != nil {
		return nil, nil, err
	}
	users := make([]conf.User, c.reloadN)
	for i := range users {
		users[i] = conf.User{Name: fmt.Sprintf("user%05d", i), Password: reloadCreds.filler}
	}
	o.Authorization = &conf.Authorization{Users: users}
	p, err := h.startServer(t, o)
	if err != nil {
		return nil, nil, err
	}
	sighup := t.name == "theirs" || oursHandlesSIGHUP()
	return func(run int) ([]float64, error) {
		victim, err := rawConnect(p.addr(), users[run].Name, "filler-password", time.Minute)
		if err != nil {
			return nil, fmt.Errorf("victim connect: %w", err)
		}
		defer victim.Close()
		cut := make(chan time.Time, 1)
		go func() {
			buf := make([]byte, 512)
			for {
				if _, err := victim.Read(buf); err != nil {
					cut <- time.Now()
					return
				}
			}
		}()

		u, pw := reloadCreds.fresh[run], reloadCreds.pws[run]
		next := *o
		a := *o.Authorization
		a.Users = append(append([]conf.User(nil), users[run+1:]...), u)
		next.Authorization = &a
		start := time.Now()
		if err := writeConfig(p.conf, &next); err != nil {
			return nil, err
		}
		if sighup {
			if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
				return nil, err
			}
		}
		deadline := start.Add(15 * time.Second)
		var served float64
		for {
			nc, err := rawConnect(p.addr(), u.Name, pw, 5*time.Second)
			if err == nil {
				nc.Close()
				served = ms(time.Since(start))
				break
			}
			if !errors.Is(err, errRefused) {
				return nil, err
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("new user not served within 15s of the config change (trigger: %s)", trigger(sighup))
			}
			time.Sleep(2 * time.Millisecond)
		}
		select {
		case at := <-cut:
			return []float64{served, ms(at.Sub(start))}, nil
		case <-time.After(time.Until(deadline)):
			return []float64{served, nan}, fmt.Errorf("removed user still connected 15s after the config change (trigger: %s)", trigger(sighup))
		}
	}, p.stop, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func trigger(sighup bool) string {
	if sighup {
		return "SIGHUP"
	}
	return "file rewrite"
}

// oursHandlesSIGHUP reports whether our broker's main reloads on SIGHUP (an
// unhandled SIGHUP would kill it).
func oursHandlesSIGHUP() bool {
	files, _ := filepath.Glob("broker/cmd/natsforge-broker/*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "SIGHUP") {
			return true
		}
	}
	return false
}

// importOptions are the base options with two accounts: A exports the
// stream bench.>, B imports it under the prefix from_a (users a and b, the
// password their name).
func importOptions() (*conf.Options, error) {
	o, err := baseOptions()
	if err != nil {
		return nil, err
	}
	o.Accounts = []conf.Account{
		{Name: "A", Users: []conf.User{{Name: "a", Password: "a"}}, Exports: []conf.Export{{Stream: "bench.>"}}},
		{Name: "B", Users: []conf.User{{Name: "b", Password: "b"}}, Imports: []conf.Import{
			{Stream: &conf.ImportSource{Account: "A", Subject: "bench.>"}, Prefix: "from_a"}}},
	}
	return o, nil
}
