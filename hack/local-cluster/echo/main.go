// Command echo is the local cluster's smoke-test workload and probe, one static
// binary that also becomes the image natsforge/echo:
//
//	echo serve [--addr :8080]                    HTTP: answers "<hostname> <path>"
//	echo get URL                                 GET URL, print the body, fail on non-200
//	echo lookup [--server IP:53] NAME...         resolve names (default: /etc/resolv.conf)
//	echo dial [--timeout 2s] HOST:PORT...        open a TCP connection to each: prints
//	                                             "HOST:PORT open", "... timeout" (no answer:
//	                                             what a NetworkPolicy's dropped SYN looks
//	                                             like) or "... refused <error>"
//	echo nats --user U --pass P HOST:PORT        the NATS handshake (INFO, CONNECT, PING):
//	                                             prints "HOST:PORT connected" or fails with
//	                                             the server's -ERR
//
// Every network call is bounded by --timeout and tried a bounded number of times.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "get":
		err = get(os.Args[2:])
	case "lookup":
		err = lookup(os.Args[2:])
	case "dial":
		err = dial(os.Args[2:])
	case "nats":
		err = natsConnect(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: echo serve [--addr :8080] | get URL | lookup [--server IP:53] NAME... | dial HOST:PORT... | nats --user U --pass P HOST:PORT")
	os.Exit(2)
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	addr := fs.String("addr", ":8080", "listen address")
	_ = fs.Parse(args)
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, "%s %s\n", host, r.URL.Path)
	})
	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	fmt.Fprintf(os.Stderr, "echo: serving on %s as %s\n", *addr, host)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func get(args []string) error {
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	timeout := fs.Duration("timeout", 3*time.Second, "timeout of one try")
	tries := fs.Int("tries", 10, "tries, one second apart")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}
	c := &http.Client{Timeout: *timeout}
	var last error
	for i := 0; i < *tries; i++ {
		if i > 0 {
			time.Sleep(time.Second)
		}
		resp, err := c.Get(fs.Arg(0))
		if err != nil {
			last = err
			continue
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		_ = resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			last = fmt.Errorf("%s: status %d %v", fs.Arg(0), resp.StatusCode, err)
			continue
		}
		fmt.Print(string(body))
		return nil
	}
	return last
}

func lookup(args []string) error {
	fs := flag.NewFlagSet("lookup", flag.ExitOnError)
	server := fs.String("server", "", "DNS server IP:port (default: the system resolver)")
	timeout := fs.Duration("timeout", 3*time.Second, "timeout of one try")
	tries := fs.Int("tries", 10, "tries, one second apart")
	_ = fs.Parse(args)
	if fs.NArg() == 0 {
		usage()
	}
	r := net.DefaultResolver
	if *server != "" {
		r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, *server)
		}}
	}
	for _, n := range fs.Args() {
		var addrs []string
		var err error
		for i := 0; i < *tries; i++ {
			if i > 0 {
				time.Sleep(time.Second)
			}
			ctx, cancel := context.WithTimeout(context.Background(), *timeout)
			addrs, err = r.LookupHost(ctx, n)
			cancel()
			if err == nil {
				break
			}
		}
		if err != nil {
			return err
		}
		fmt.Printf("%s %s\n", n, strings.Join(addrs, " "))
	}
	return nil
}

func dial(args []string) error {
	fs := flag.NewFlagSet("dial", flag.ExitOnError)
	timeout := fs.Duration("timeout", 2*time.Second, "how long a connection may take to open")
	_ = fs.Parse(args)
	if fs.NArg() == 0 {
		usage()
	}
	for _, addr := range fs.Args() {
		c, err := net.DialTimeout("tcp", addr, *timeout)
		var nerr net.Error
		switch {
		case err == nil:
			_ = c.Close()
			fmt.Printf("%s open\n", addr)
		case errors.As(err, &nerr) && nerr.Timeout():
			fmt.Printf("%s timeout\n", addr)
		default:
			fmt.Printf("%s refused %v\n", addr, err)
		}
	}
	return nil
}

// natsConnect speaks just enough of the NATS client protocol to log in: read
// INFO, send CONNECT with the credentials and PING, expect PONG.
func natsConnect(args []string) error {
	fs := flag.NewFlagSet("nats", flag.ExitOnError)
	user := fs.String("user", "", "user name")
	pass := fs.String("pass", "", "password")
	timeout := fs.Duration("timeout", 5*time.Second, "timeout of the whole handshake")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}
	addr := fs.Arg(0)
	c, err := net.DialTimeout("tcp", addr, *timeout)
	if err != nil {
		return err
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(*timeout))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("%s: reading INFO: %w", addr, err)
	}
	if !strings.HasPrefix(line, "INFO ") {
		return fmt.Errorf("%s: want INFO, got %q", addr, strings.TrimSpace(line))
	}
	connect, _ := json.Marshal(map[string]any{"verbose": false, "pedantic": false, "user": *user, "pass": *pass,
		"lang": "echo", "version": "0", "protocol": 1})
	if _, err := fmt.Fprintf(c, "CONNECT %s\r\nPING\r\n", connect); err != nil {
		return err
	}
	line, err = r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("%s: reading the answer to CONNECT: %w", addr, err)
	}
	if strings.TrimSpace(line) != "PONG" {
		return fmt.Errorf("%s: %s", addr, strings.TrimSpace(line))
	}
	fmt.Printf("%s connected\n", addr)
	return nil
}
