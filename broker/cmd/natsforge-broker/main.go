// Command natsforge-broker runs the natsforge NATS broker.
//
//	natsforge-broker [-c file [--previous_passwords file]] [-p port] [-a addr] [--user U --pass P] [-m http_port] [-D] [-V]
//	natsforge-broker passwd [-p] [--cost N]
//
// Flags override the config file, as nats-server's do.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/natsforge/natsforge/broker/conf"
	"github.com/natsforge/natsforge/broker/monitor"
	"github.com/natsforge/natsforge/broker/server"
)

// version is natsforge's version, set at build time (-ldflags
// "-X main.version=v0.1.0", as the Makefile does).
var version = ""

func main() {
	if version != "" {
		server.NatsforgeVersion = strings.TrimPrefix(version, "v")
	}
	if len(os.Args) > 1 && os.Args[1] == "passwd" {
		os.Exit(runPasswd(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(run(os.Args[1:], os.Stderr))
}

// flags are the command line; set records which were given.
type flags struct {
	port, httpPort    int
	addr, user, pass  string
	config            string
	debug, trace, ver bool
	set               map[string]bool

	// previousPasswords is the previous-passwords file (broker/conf
	// previous.go), read with the config file at start and on every reload.
	previousPasswords string

	// Cluster flags, as nats-server's (cluster.go).
	cluster, routes, clusterName string
	noAdvertise                  bool

	// TLS flags, as nats-server's (tls.go).
	tls, tlsVerify             bool
	tlsCert, tlsKey, tlsCACert string
	httpsPort                  int

	// userLabelLimit bounds per-user metric series (ours; nats-server has
	// no /metrics).
	userLabelLimit int
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{set: map[string]bool{}}
	fs := flag.NewFlagSet("natsforge-broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&f.port, "p", 0, "client port (default 4222; -1 for any free port)")
	fs.IntVar(&f.port, "port", 0, "client port")
	fs.StringVar(&f.addr, "a", "", "client listen address (default 0.0.0.0)")
	fs.StringVar(&f.addr, "addr", "", "client listen address")
	fs.StringVar(&f.user, "user", "", "user required for connections")
	fs.StringVar(&f.pass, "pass", "", "password required for connections: plain or a bcrypt hash")
	fs.StringVar(&f.config, "c", "", "configuration file")
	fs.StringVar(&f.config, "config", "", "configuration file")
	fs.StringVar(&f.previousPasswords, "previous_passwords", "", "previous-passwords file: password hashes still accepted during a rotation grace window (natsforge only)")
	fs.IntVar(&f.httpPort, "m", 0, "HTTP monitoring port")
	fs.IntVar(&f.httpPort, "http_port", 0, "HTTP monitoring port")
	fs.BoolVar(&f.debug, "D", false, "debug logging")
	fs.BoolVar(&f.trace, "V", false, "protocol trace logging (passwords redacted)")
	fs.BoolVar(&f.ver, "v", false, "print the version and exit")
	fs.BoolVar(&f.ver, "version", false, "print the version and exit")
	fs.StringVar(&f.cluster, "cluster", "", "cluster listen URL, e.g. nats://0.0.0.0:6222")
	fs.StringVar(&f.routes, "routes", "", "comma-separated route URLs to dial (nats://user:pass@host:6222)")
	fs.StringVar(&f.clusterName, "cluster_name", "", "cluster name")
	fs.BoolVar(&f.noAdvertise, "no_advertise", false, "do not advertise this server's client URL to clients")
	fs.BoolVar(&f.tls, "tls", false, "enable TLS (--tls=false turns off the config file's tls block)")
	fs.BoolVar(&f.tlsVerify, "tlsverify", false, "enable TLS with client certificate verification")
	fs.StringVar(&f.tlsCert, "tlscert", "", "server certificate file")
	fs.StringVar(&f.tlsKey, "tlskey", "", "private key of the server certificate")
	fs.StringVar(&f.tlsCACert, "tlscacert", "", "CA certificates client certificates must chain to")
	fs.IntVar(&f.httpsPort, "ms", 0, "HTTPS monitoring port")
	fs.IntVar(&f.httpsPort, "https_port", 0, "HTTPS monitoring port")
	fs.IntVar(&f.userLabelLimit, "metrics_user_label_limit", 0, "serve per-user auth failure metrics while fewer users than this are configured (0: never)")
	fs.Usage = func() {
		tell(stderr, "Usage: natsforge-broker [options]\n       natsforge-broker passwd [-p] [--cost N]\n\nOptions:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	alias := map[string]string{"port": "p", "addr": "a", "config": "c", "http_port": "m", "version": "v", "https_port": "ms"}
	fs.Visit(func(fl *flag.Flag) {
		name := fl.Name
		if a, ok := alias[name]; ok {
			name = a
		}
		f.set[name] = true
	})
	return f, nil
}

// options builds the server options: the config file, then the flags over it.
func (f *flags) options(logger *slog.Logger) (*conf.Options, error) {
	opts := &conf.Options{}
	if f.config != "" {
		o, warnings, err := conf.LoadFile(f.config)
		for _, w := range warnings {
			logger.Warn("config", "warning", w.String())
		}
		if err != nil {
			return nil, err
		}
		opts = o
	}
	if err := f.apply(opts); err != nil {
		return nil, err
	}
	return opts, nil
}

// apply lays the flags over options parsed from the config file; reload
// applies them again over every reloaded file.
func (f *flags) apply(opts *conf.Options) error {
	if f.previousPasswords != "" {
		pp, err := conf.LoadPreviousPasswordsFile(f.previousPasswords)
		if err != nil {
			return err
		}
		opts.PreviousPasswords = pp
	}
	if err := f.applyCluster(opts); err != nil {
		return err
	}
	if err := f.applyTLS(opts); err != nil {
		return err
	}
	if f.set["p"] {
		opts.Port = f.port
	}
	if f.set["a"] {
		opts.Host = f.addr
	}
	if f.set["m"] {
		opts.HTTPPort = f.httpPort
	}
	if f.set["D"] {
		opts.Debug = f.debug
	}
	if f.set["V"] {
		opts.Trace = f.trace
	}
	if f.set["user"] || f.set["pass"] {
		if f.user == "" || f.pass == "" {
			return errors.New("--user and --pass go together")
		}
		a := &conf.Authorization{}
		if opts.Authorization != nil {
			*a = *opts.Authorization
		}
		a.User, a.Password = f.user, f.pass
		opts.Authorization = a
	}
	return nil
}

func newLogger(w io.Writer, debug, trace bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	if trace {
		level = server.LevelTrace
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.LevelKey && a.Value.Any() == server.LevelTrace {
				a.Value = slog.StringValue("TRACE")
			}
			return a
		},
	}))
}

func run(args []string, stderr io.Writer) int {
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		tell(stderr, "natsforge-broker: %v\n", err)
		return 2
	}
	if f.ver {
		if _, err := fmt.Fprintf(os.Stdout, "natsforge-broker: v%s (reports nats-server version %s to clients)\n", server.NatsforgeVersion, server.Version); err != nil {
			tell(stderr, "natsforge-broker: %v\n", err)
			return 1
		}
		return 0
	}
	logger := newLogger(stderr, f.debug, f.trace)
	opts, err := f.options(logger)
	if err != nil {
		// As nats-server: the error alone, each on its line (a config error
		// reads file:line:col: ...), and exit status 1.
		tell(stderr, "natsforge-broker: %v\n", err)
		return 1
	}
	logger = newLogger(stderr, opts.Debug, opts.Trace)

	s, err := server.New(opts, logger)
	if err != nil {
		tell(stderr, "natsforge-broker: %v\n", err)
		return 1
	}
	// Monitoring first, as nats-server: until the listeners are up /healthz
	// answers that they are not, rather than the port refusing.
	stopMonitor, err := startMonitor(s, opts, monitor.Options{UserLabelLimit: f.userLabelLimit}, logger)
	if err != nil {
		logger.Error("monitoring", "err", err.Error())
		return 1
	}
	defer stopMonitor()
	if err := s.Start(); err != nil {
		logger.Error("start", "err", err.Error())
		return 1
	}
	if f.config != "" {
		if err := enableReload(s, f); err != nil {
			logger.Error("config reload", "err", err.Error())
			s.Shutdown()
			return 1
		}
	}
	handleSignals(s, logger)
	return 0
}

// tell writes a diagnostic to stderr. Its error is dropped: stderr is the
// last place anything can be reported.
func tell(stderr io.Writer, format string, a ...any) {
	_, _ = fmt.Fprintf(stderr, format, a...)
}
