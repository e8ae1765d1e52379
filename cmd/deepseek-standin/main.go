// Command deepseek-standin serves the deterministic DeepSeek stand-in of
// package standin over HTTP, for demos and manual tests of deepmeter.
//
// Usage:
//
//	deepseek-standin [--listen 127.0.0.1:8090] [--log-level info]
//	deepseek-standin --version
//
// It stops gracefully on SIGINT or SIGTERM: requests that are waiting or
// holding their connection open (fault keys delay, hang and the like) end at
// once, and the others get up to shutdownTimeout to finish.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/deepmeter/deepmeter/internal/standin"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const shutdownTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "deepseek-standin:", err)
		os.Exit(1)
	}
}

// run parses args and serves until ctx ends. When ready is not nil, it
// receives the listening address once the server accepts connections.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("deepseek-standin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8090", "address to listen on, host:port")
	logLevel := fs.String("log-level", "info", "minimum log level: debug, info, warn or error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *showVersion {
		_, err := fmt.Fprintln(stdout, "deepseek-standin", version)
		return err
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("invalid --log-level %q: %w", *logLevel, err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *listen, err)
	}
	addr := ln.Addr().String()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
		logger.Warn("listening on a non-loopback address; the stand-in accepts any key starting with sk-", "addr", addr)
	}

	handler := standin.New(standin.Options{Logger: logger.With("component", "standin")})
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	serveErr := make(chan error, 1) // one slot for the one send, so the goroutine never blocks
	go func() { serveErr <- srv.Serve(ln) }()
	logger.Info("serving", "addr", addr, "version", version)
	if ready != nil {
		ready <- addr
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}

	logger.Info("shutting down")
	handler.Close()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}
