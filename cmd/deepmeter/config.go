package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/deepmeter/deepmeter/pricing"
)

// config is the validated configuration of the serve and migrate commands.
type config struct {
	Listen         string
	AdminListen    string
	Upstream       *url.URL
	DatabaseURL    string
	AdminToken     string
	PricesFile     string
	DailyLimit     pricing.Money
	MaxRequestBody int64
	MaxStoredBody  int
	QueueSize      int
	ShutdownGrace  time.Duration
	LogLevel       slog.Level
	LogFormat      string
	SpoolDir       string
	SpoolSync      time.Duration
	SpoolMaxBytes  int64
}

// defaultPostgresSpoolDir is the spool directory with a Postgres database
// and no --spool-dir, relative to the working directory.
const defaultPostgresSpoolDir = "deepmeter-spool"

// minAdminTokenLength is the shortest admin token accepted. A shorter token
// can be guessed, and the admin API sets the balance.
const minAdminTokenLength = 16

// option is one command-line flag with its environment variable.
type option struct {
	name  string
	env   string
	value string // default
	usage string
}

var serveOptions = []option{
	{"listen", "DEEPMETER_LISTEN", "127.0.0.1:8080", "address of the proxy listener, host:port"},
	{"admin-listen", "DEEPMETER_ADMIN_LISTEN", "127.0.0.1:8081", "address of the admin API, /metrics, /healthz and /readyz, host:port"},
	{"upstream", "DEEPMETER_UPSTREAM", "https://api.deepseek.com", "DeepSeek base URL that calls are forwarded to"},
	{"database-url", "DEEPMETER_DATABASE_URL", "sqlite:deepmeter.db", "postgres://USER@HOST:PORT/DB for Postgres, or sqlite:PATH for the embedded store"},
	{"admin-token", "DEEPMETER_ADMIN_TOKEN", "", fmt.Sprintf("bearer token for the admin API, at least %d characters; no default, so without it the admin API answers 401", minAdminTokenLength)},
	{"prices", "DEEPMETER_PRICES", "", "price file (YAML or JSON) that replaces the built-in DeepSeek price table"},
	{"daily-limit-usd", "DEEPMETER_DAILY_LIMIT_USD", "0", "daily spending limit in USD reported by the admin API; 0 means none"},
	{"max-request-body", "DEEPMETER_MAX_REQUEST_BODY", "33554432", "largest metered request body in bytes; larger ones get 413"},
	{"max-stored-body", "DEEPMETER_MAX_STORED_BODY", "1048576", "bytes of each request and response body kept in a record; the rest is cut with a marker"},
	{"queue-size", "DEEPMETER_QUEUE_SIZE", "10000", "records held in memory while the database writer catches up"},
	{"shutdown-grace", "DEEPMETER_SHUTDOWN_GRACE", "30s", "time in-flight calls get to finish on SIGTERM or SIGINT, as a Go duration"},
	{"log-level", "DEEPMETER_LOG_LEVEL", "info", "log level: debug, info, warn or error"},
	{"log-format", "DEEPMETER_LOG_FORMAT", "text", "log format: text or json"},
	{"spool-dir", "DEEPMETER_SPOOL_DIR", "", "directory for records the database cannot take yet; default PATH.spool beside a sqlite:PATH database, ./" + defaultPostgresSpoolDir + " with Postgres; one directory per process"},
	{"spool-sync", "DEEPMETER_SPOOL_SYNC", "200ms", "how often queued records are written and the spool is synced to disk, as a Go duration; a crash loses at most the records of about this window"},
	{"spool-max-bytes", "DEEPMETER_SPOOL_MAX_BYTES", "1073741824", "largest size of the spool in bytes; past it records are dropped and counted"},
}

var migrateOptions = []option{
	serveOptions[3], // database-url
	serveOptions[11], serveOptions[12],
}

// parseFlags parses args for a command that takes opts. A flag given on the
// command line wins over its environment variable, which wins over the
// default. It returns flag.ErrHelp after printing usage for -h or --help.
func parseFlags(command string, opts []option, args []string, getenv func(string) string, stderr io.Writer) (map[string]string, error) {
	fs := flag.NewFlagSet("deepmeter "+command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	values := make(map[string]*string, len(opts))
	for _, o := range opts {
		values[o.name] = fs.String(o.name, o.value, fmt.Sprintf("%s (env %s)", o.usage, o.env))
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: deepmeter %s [flags]\n\nFlags:\n", command)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; deepmeter %s takes only flags (see --help)", fs.Arg(0), command)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	out := make(map[string]string, len(opts))
	for _, o := range opts {
		out[o.name] = *values[o.name]
		if !given[o.name] {
			if v, ok := lookupEnv(getenv, o.env); ok {
				out[o.name] = v
			}
		}
	}
	return out, nil
}

func lookupEnv(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// buildConfig validates raw flag values. Each error names the flag and the
// expected form.
func buildConfig(raw map[string]string) (*config, error) {
	c := &config{}
	var errs []error
	fail := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("invalid --%s: %s", name, fmt.Sprintf(format, args...)))
	}

	if v, ok := raw["listen"]; ok {
		c.Listen = v
		if err := checkHostPort(v); err != nil {
			fail("listen", "%v; expected host:port such as 127.0.0.1:8080", err)
		}
	}
	if v, ok := raw["admin-listen"]; ok {
		c.AdminListen = v
		if err := checkHostPort(v); err != nil {
			fail("admin-listen", "%v; expected host:port such as 127.0.0.1:8081", err)
		}
	}
	if v, ok := raw["upstream"]; ok {
		u, err := parseUpstream(v)
		if err != nil {
			fail("upstream", "%v; expected an http or https URL such as https://api.deepseek.com", err)
		}
		c.Upstream = u
	}
	if v, ok := raw["database-url"]; ok {
		c.DatabaseURL = v
		if err := checkDatabaseURL(v); err != nil {
			fail("database-url", "%v; expected postgres://USER@HOST:PORT/DB or sqlite:PATH", err)
		}
	}
	if v, ok := raw["admin-token"]; ok {
		c.AdminToken = v
		switch {
		case v != "" && len(v) < minAdminTokenLength:
			fail("admin-token", "the token is %d characters; use at least %d, for example the output of: openssl rand -hex 32", len(v), minAdminTokenLength)
		case strings.TrimSpace(v) != v || strings.ContainsAny(v, " \t\r\n"):
			fail("admin-token", "the token contains white space; use a token without spaces, for example the output of: openssl rand -hex 32")
		}
	}
	if v, ok := raw["prices"]; ok {
		c.PricesFile = v
	}
	if v, ok := raw["daily-limit-usd"]; ok {
		m, err := pricing.ParseMoney(v)
		switch {
		case err != nil:
			fail("daily-limit-usd", "%q is not a decimal amount; expected a number of USD such as 25 or 12.50", v)
		case m < 0:
			fail("daily-limit-usd", "%q is negative; expected 0 for no limit or a positive amount of USD", v)
		}
		c.DailyLimit = m
	}
	if v, ok := raw["max-request-body"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1024 || n > 1<<30 {
			fail("max-request-body", "%q; expected a number of bytes from 1024 to 1073741824", v)
		}
		c.MaxRequestBody = n
	}
	if v, ok := raw["max-stored-body"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1024 || n > 64<<20 {
			fail("max-stored-body", "%q; expected a number of bytes from 1024 to 67108864", v)
		}
		c.MaxStoredBody = n
	}
	if v, ok := raw["queue-size"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10_000_000 {
			fail("queue-size", "%q; expected a number of records from 1 to 10000000", v)
		}
		c.QueueSize = n
	}
	if v, ok := raw["shutdown-grace"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			fail("shutdown-grace", "%q; expected a non-negative Go duration such as 30s or 5m", v)
		}
		c.ShutdownGrace = d
	}
	if v, ok := raw["log-level"]; ok {
		if err := c.LogLevel.UnmarshalText([]byte(v)); err != nil {
			fail("log-level", "%q; expected debug, info, warn or error", v)
		}
	}
	if v, ok := raw["log-format"]; ok {
		c.LogFormat = v
		if v != "text" && v != "json" {
			fail("log-format", "%q; expected text or json", v)
		}
	}

	if v, ok := raw["spool-dir"]; ok {
		c.SpoolDir = v
		if v == "" && c.DatabaseURL != "" {
			c.SpoolDir = defaultSpoolDir(c.DatabaseURL)
		}
	}
	if v, ok := raw["spool-sync"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Millisecond || d > 10*time.Second {
			fail("spool-sync", "%q; expected a Go duration from 1ms to 10s such as 200ms", v)
		}
		c.SpoolSync = d
	}
	if v, ok := raw["spool-max-bytes"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1<<20 || n > 1<<40 {
			fail("spool-max-bytes", "%q; expected a number of bytes from 1048576 to 1099511627776", v)
		}
		c.SpoolMaxBytes = n
	}

	if c.AdminToken == "" && c.AdminListen != "" && !isLoopbackListen(c.AdminListen) {
		errs = append(errs, fmt.Errorf("refusing to serve the admin API on %s without a token: set --admin-token or DEEPMETER_ADMIN_TOKEN, or listen on a loopback address such as 127.0.0.1:8081", c.AdminListen))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

func checkHostPort(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return err
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("host %q is not valid", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

func parseUpstream(v string) (*url.URL, error) {
	u, err := url.Parse(v)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("the URL has no host")
	}
	if u.User != nil {
		return nil, errors.New("the URL must not contain credentials; clients send their own API key")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("the URL must not have a query or fragment")
	}
	return u, nil
}

func checkDatabaseURL(v string) error {
	switch {
	case strings.HasPrefix(v, "postgres://"), strings.HasPrefix(v, "postgresql://"):
		u, err := url.Parse(v)
		if err != nil {
			return errors.New("the Postgres URL does not parse")
		}
		if u.Host == "" {
			return errors.New("the Postgres URL has no host")
		}
		return nil
	case strings.HasPrefix(v, "sqlite:"):
		if strings.TrimPrefix(v, "sqlite:") == "" {
			return errors.New("the SQLite URL has no file path")
		}
		return nil
	default:
		return errors.New("unknown database URL scheme")
	}
}

// defaultSpoolDir returns the spool directory for a database URL without
// --spool-dir: PATH.spool beside a sqlite:PATH file, so the spool moves
// with the database, and defaultPostgresSpoolDir with Postgres.
func defaultSpoolDir(databaseURL string) string {
	if !strings.HasPrefix(databaseURL, "sqlite:") {
		return defaultPostgresSpoolDir
	}
	path := strings.TrimPrefix(databaseURL, "sqlite:")
	if strings.HasPrefix(path, "//") {
		path = path[2:]
	}
	return path + ".spool"
}

// isLoopbackListen reports whether a listen address accepts connections
// only from this machine. An empty host listens on every interface.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newLogger returns the process logger for c, writing to w.
func newLogger(c *config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
