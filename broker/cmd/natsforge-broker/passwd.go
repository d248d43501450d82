package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/natsforge/natsforge/broker/auth"
)

// runPasswd is the `passwd` subcommand, nats-server's mkpasswd: with -p it asks
// for a password (without echo on a terminal, or one line from a pipe) and
// prints its bcrypt hash; without, it makes a strong random password and
// prints both.
func runPasswd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("natsforge-broker passwd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	prompt := fs.Bool("p", false, "prompt for the password (reads one line from a pipe)")
	cost := fs.Int("cost", auth.DefaultCost, "bcrypt cost")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		tell(stderr, "passwd: cost must be between %d and %d\n", bcrypt.MinCost, bcrypt.MaxCost)
		return 2
	}
	var password string
	var err error
	if *prompt {
		password, err = readPassword(stdin, stderr)
		if err != nil {
			tell(stderr, "passwd: %v\n", err)
			return 1
		}
	} else {
		password, err = auth.GeneratePassword()
		if err != nil {
			tell(stderr, "passwd: %v\n", err)
			return 1
		}
		if _, err := fmt.Fprintf(stdout, "pass: %s\n", password); err != nil {
			tell(stderr, "passwd: %v\n", err)
			return 1
		}
	}
	hash, err := auth.HashPassword(password, *cost)
	if err != nil {
		tell(stderr, "passwd: %v\n", err)
		return 1
	}
	if _, err := fmt.Fprintf(stdout, "bcrypt hash: %s\n", hash); err != nil {
		tell(stderr, "passwd: %v\n", err)
		return 1
	}
	return 0
}

// readPassword asks twice on a terminal (no echo); from a pipe it reads one
// line.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		tell(stderr, "Enter Password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		tell(stderr, "\n")
		if err != nil {
			return "", err
		}
		tell(stderr, "Reenter Password: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		tell(stderr, "\n")
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("passwords do not match")
		}
		if len(p1) == 0 {
			return "", errors.New("empty password")
		}
		return string(p1), nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && (!errors.Is(err, io.EOF) || line == "") {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty password")
	}
	return line, nil
}
