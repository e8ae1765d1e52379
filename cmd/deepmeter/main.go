// Command deepmeter is a transparent metering reverse proxy for the
// DeepSeek API. Run "deepmeter --help" for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

const usage = `deepmeter is a transparent metering reverse proxy for the DeepSeek API.

Usage:
  deepmeter serve [flags]     run the proxy and the admin API
  deepmeter migrate [flags]   apply the database schema and exit
  deepmeter version           print the version

Run "deepmeter COMMAND --help" for the flags of a command. Every flag can
also be set with the environment variable named in its help.
`

func main() {
	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		// The first signal starts a graceful shutdown. A second one ends
		// the process at once, for an operator who cannot wait for the
		// grace period; handling it here also works when the process was
		// started with SIGINT ignored, as a shell's background job is.
		<-signals
		cancel()
		sig := <-signals
		fmt.Fprintf(os.Stderr, "deepmeter: second signal (%v), exiting now\n", sig)
		os.Exit(128 + int(sig.(syscall.Signal)))
	}()
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	cancel()
	os.Exit(code)
}

// run executes one command and returns the process exit code: 0 on
// success, 1 on a runtime failure and 2 on a usage error.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	command, rest := args[0], args[1:]
	switch command {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "-version", "--version":
		if len(rest) > 0 {
			fmt.Fprintf(stderr, "deepmeter version: unexpected argument %q; it takes no arguments\n", rest[0])
			return 2
		}
		fmt.Fprintln(stdout, "deepmeter", versionString())
		return 0
	case "serve", "migrate":
	default:
		fmt.Fprintf(stderr, "deepmeter: unknown command %q\n\n%s", command, usage)
		return 2
	}

	opts := serveOptions
	if command == "migrate" {
		opts = migrateOptions
	}
	raw, err := parseFlags(command, opts, rest, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var reported reportedError
	if errors.As(err, &reported) {
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "deepmeter %s: %v\n", command, err)
		return 2
	}
	cfg, err := buildConfig(raw)
	if err != nil {
		fmt.Fprintf(stderr, "deepmeter %s: %v\n", command, err)
		return 2
	}
	logger := newLogger(cfg, stderr)

	if command == "migrate" {
		err = migrate(ctx, cfg, logger)
	} else {
		err = serve(ctx, cfg, logger)
	}
	if err != nil {
		logger.Error("deepmeter stopped", "command", command, "error", err)
		var invalid configError
		if errors.As(err, &invalid) {
			return 2
		}
		return 1
	}
	return 0
}

// configError is a configuration file that fails to load at start. Like an
// invalid flag value, it ends the command with exit code 2.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

func versionString() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}
