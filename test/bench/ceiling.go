//go:build bench

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// The ceiling: how fast this machine moves a one-publisher, one-subscriber
// stream through one process that reads one socket and writes another, with
// no broker logic at all. A relay process (this binary with -relay) carries
// the publisher's bytes to the subscriber unchanged; each run measures it,
// then the server, with the same raw-socket clients, so the two figures are
// comparable and measured moments apart.

// relayGroup names the ceiling scenarios' rows.
const relayGroup = "ceiling"

// relayRowPrefix starts the name of the relay's own rows.
const relayRowPrefix = "ceiling: raw TCP relay, "

func (h *harness) ceilingScenarios() []scenario {
	c := h.cfg
	var scs []scenario
	for _, size := range payloadSizes {
		scs = append(scs, scenario{group: relayGroup, runs: c.runs,
			note: "raw sockets on both ends (no nats.go): a publisher writes PUB frames in 64 KiB writes and stays within 8 MiB of what the subscriber " +
				"has read, the subscriber reads 256 KiB at a time and counts bytes; MB/s is payload bytes delivered per second (10^6 B), from the first " +
				"write to the last byte. Each run measures the relay (a process copying one socket to the other through a 64 KiB buffer, one read " +
				"then one write, in one goroutine) and then the server with the same clients; the relay's row is the median of all those runs. " +
				"A broker reads and writes on two goroutines at once, so on two cores it can pass this relay",
			metrics: []metric{
				{"raw 1 pub -> 1 sub, " + sizeName(size), "MB/s", true, 0},
				{relayRowPrefix + sizeName(size), "MB/s", true, 0},
			},
			start: func(t target) (func(int) ([]float64, error), func(), error) {
				o, err := baseOptions()
				if err != nil {
					return nil, nil, err
				}
				p, err := h.startServer(t, o)
				if err != nil {
					return nil, nil, err
				}
				relay, err := startRelay()
				if err != nil {
					p.stop()
					return nil, nil, err
				}
				return func(int) ([]float64, error) {
						viaRelay, err := rawStream(relay.addr(), relay.addr(), size, false, c.d)
						if err != nil {
							return nil, fmt.Errorf("relay: %w", err)
						}
						viaServer, err := rawStream(p.addr(), p.addr(), size, true, c.d)
						if err != nil {
							return []float64{nan, viaRelay}, err
						}
						return []float64{viaServer, viaRelay}, nil
					}, func() {
						relay.stop()
						p.stop()
					}, nil
			}})
	}
	return scs
}

// mergeRelayRows turns the relay rows, measured alongside both servers, into
// rows of their own: every measurement in one list, nothing to compare with.
func mergeRelayRows(rows []*row) {
	for _, r := range rows {
		if r.group == relayGroup && strings.HasPrefix(r.name, relayRowPrefix) && !r.oursOnly {
			r.ours = append(r.ours, r.theirs...)
			r.theirs = nil
			r.oursOnly = true
		}
	}
}

// rawStream runs one raw publisher into pubAddr and one raw subscriber on
// subAddr for d and returns payload MB/s delivered. Through a server
// (broker set) both do the client handshake and the subscriber subscribes;
// through the relay the subscriber connects first and gets the PUB frames
// as they are.
func rawStream(subAddr, pubAddr string, size int, broker bool, d time.Duration) (float64, error) {
	const subject = "bench.raw"
	payload := strings.Repeat("x", size)
	pubFrame := fmt.Sprintf("PUB %s %d\r\n%s\r\n", subject, size, payload)
	recvFrame := len(pubFrame)
	var sub, pub net.Conn
	var err error
	if broker {
		recvFrame = len(fmt.Sprintf("MSG %s 1 %d\r\n%s\r\n", subject, size, payload))
		if sub, err = rawConnect(subAddr, "", "", 30*time.Second); err != nil {
			return 0, err
		}
		defer sub.Close()
		if err := subscribeRaw(sub, "SUB "+subject+" 1\r\n"); err != nil {
			return 0, err
		}
		if pub, err = rawConnect(pubAddr, "", "", 30*time.Second); err != nil {
			return 0, err
		}
	} else {
		if sub, err = net.Dial("tcp", subAddr); err != nil {
			return 0, err
		}
		defer sub.Close()
		// The relay pairs connections in the order they arrive: the
		// subscriber's must be accepted before the publisher dials.
		time.Sleep(50 * time.Millisecond)
		if pub, err = net.Dial("tcp", pubAddr); err != nil {
			return 0, err
		}
	}
	defer pub.Close()

	batchN := max(1, (64<<10)/len(pubFrame))
	batch := []byte(strings.Repeat(pubFrame, batchN))
	window := int64(max(1, (8<<20)/recvFrame))
	var received atomic.Int64 // frames read by the subscriber
	var want atomic.Int64
	want.Store(math.MaxInt64)
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		var got int64
		for got < want.Load() {
			n, err := sub.Read(buf)
			got += int64(n)
			received.Store(got / int64(recvFrame))
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	start := time.Now()
	deadline := start.Add(d)
	var sent int64
	for time.Now().Before(deadline) {
		for sent-received.Load() > window {
			time.Sleep(20 * time.Microsecond)
		}
		if _, err := pub.Write(batch); err != nil {
			return 0, err
		}
		sent += int64(batchN)
	}
	// The subscriber may have read everything already and be waiting in
	// Read, so wait for the count rather than for it to return.
	want.Store(sent * int64(recvFrame))
	wait := time.Now().Add(30 * time.Second)
	for received.Load() < sent {
		select {
		case err := <-done:
			if err != nil {
				return 0, err
			}
		default:
		}
		if time.Now().After(wait) {
			return 0, fmt.Errorf("delivered %d of %d frames within 30s", received.Load(), sent)
		}
		time.Sleep(100 * time.Microsecond)
	}
	el := time.Since(start)
	return float64(sent) * float64(size) / el.Seconds() / 1e6, nil
}

// subscribeRaw sends setup and a PING on a handshaken raw connection and
// waits for the PONG.
func subscribeRaw(c net.Conn, setup string) error {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write([]byte(setup + "PING\r\n")); err != nil {
		return err
	}
	r := bufio.NewReaderSize(c, 512)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.HasPrefix(line, "PONG") {
			if r.Buffered() > 0 {
				return errors.New("unexpected bytes after PONG")
			}
			return nil
		}
		if strings.HasPrefix(line, "-ERR") {
			return errors.New(strings.TrimSpace(line))
		}
	}
}

// startRelay starts a relay process (this binary with -relay) and waits for
// the port it listens on. It is registered like the servers, so it is
// killed by its PID however the harness ends.
func startRelay() (*proc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-relay")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{t: target{name: "relay", bin: exe}, cmd: cmd, exited: make(chan struct{})}
	running.mu.Lock()
	running.all[p] = true
	running.mu.Unlock()
	go func() { _ = cmd.Wait(); close(p.exited) }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if _, serr := fmt.Sscanf(line, "relay listening on port %d", &p.port); err != nil || serr != nil {
		p.stop()
		return nil, fmt.Errorf("relay did not start: %q %v %v", line, err, serr)
	}
	return p, nil
}

// runRelay is the relay process: it accepts connections in pairs, the first
// of a pair the receiving end, the second the sending end, and copies the
// sender's bytes to the receiver through one 64 KiB buffer per pair, one
// read and one write at a time, until the sender closes.
func runRelay() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("relay listening on port %d\n", l.Addr().(*net.TCPAddr).Port)
	for {
		dst, err := l.Accept()
		if err != nil {
			return err
		}
		src, err := l.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer dst.Close()
			defer src.Close()
			buf := make([]byte, 64<<10)
			for {
				n, err := src.Read(buf)
				if n > 0 {
					if _, werr := dst.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					if !errors.Is(err, io.EOF) {
						fmt.Fprintln(os.Stderr, "relay:", err)
					}
					return
				}
			}
		}()
	}
}

// writeCeiling writes the ceiling section: per payload size, the relay's
// MB/s and how close each server comes to it, with the raw clients and with
// nats.go (the fan rows' 1 -> 1, turned into payload MB/s).
func writeCeiling(b *bytes.Buffer, rows []*row) {
	byName := map[string]*row{}
	for _, r := range rows {
		byName[r.name] = r
	}
	pct := func(v, of float64) string {
		if math.IsNaN(v) || math.IsNaN(of) || of == 0 {
			return "—"
		}
		return fmt.Sprintf("%s (%.0f%%)", human(v), 100*v/of)
	}
	var lines []string
	for _, size := range payloadSizes {
		relay, raw := byName[relayRowPrefix+sizeName(size)], byName["raw 1 pub -> 1 sub, "+sizeName(size)]
		if relay == nil || raw == nil {
			continue
		}
		ceiling := median(relay.ours)
		ngOurs, ngTheirs := nan, nan
		if r := byName[fanShapes[0].name+", "+sizeName(size)]; r != nil {
			ngOurs, ngTheirs = median(r.ours)*float64(size)/1e6, median(r.theirs)*float64(size)/1e6
		}
		lines = append(lines, fmt.Sprintf("| %s | %s | %s | %s | %s | %s |", sizeName(size), human(ceiling),
			pct(median(raw.ours), ceiling), pct(median(raw.theirs), ceiling), pct(ngOurs, ceiling), pct(ngTheirs, ceiling)))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(b, "## The ceiling: a raw TCP relay\n\n")
	fmt.Fprintf(b, "The same one-publisher, one-subscriber stream through a process that only copies one socket to the other "+
		"(no parsing, no matching), in payload MB/s (10^6 bytes), and each server as a share of it. "+
		"Raw clients: the relay and the server measured moments apart with the same raw-socket publisher and subscriber "+
		"(the `ceiling` rows). nats.go: the `1 pub -> 1 sub` rows of the table above, in MB/s, against the same relay figure.\n\n")
	fmt.Fprintf(b, "| payload | relay MB/s | ours, raw clients | theirs, raw clients | ours, nats.go | theirs, nats.go |\n")
	fmt.Fprintf(b, "|---|--:|--:|--:|--:|--:|\n")
	fmt.Fprintf(b, "%s\n\n", strings.Join(lines, "\n"))
	for _, r := range rows {
		if r.group == relayGroup && r.note != "" {
			fmt.Fprintf(b, "How it is made: %s.\n\n", r.note)
			break
		}
	}
}
