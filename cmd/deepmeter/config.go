package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

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
	Prices         *pricing.Table // loaded from PricesFile; nil means the built-in table
	DailyLimit     pricing.Money
	MaxRequestBody int64
	MaxStoredBody  int
	QueueSize      int
	ShutdownGrace  time.Duration
	LogLevel       slog.Level
	LogFormat      string

	// DrainOnClientAbort is --on-client-abort drain.
	DrainOnClientAbort  bool
	UpstreamIdleTimeout time.Duration
	// ProxyTLS and AdminTLS are the certificates of the two listeners,
	// loaded at start; nil serves plain HTTP.
	ProxyTLS          *tls.Certificate
	AdminTLS          *tls.Certificate
	AdminTokensFile   string
	AdminCORSOrigin   string
	StoreBodies       string // full, truncated or none
	RedactFile        string
	ReadHeaderTimeout time.Duration
	ClientIdleTimeout time.Duration
	SpoolDir          string
	SpoolSync         time.Duration
	SpoolMaxBytes     int64
}

// fullStoredBody is the cap on each stored body with --store-bodies full.
// A record's body is held in memory, copied while the record is built and
// written to the database in one row, so a larger cap makes memory grow
// with every large response. 4 MiB is several times DeepSeek's 128K-token
// context as text, so a real chat call is stored whole.
const fullStoredBody = 4 << 20

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
	{"admin-token", "DEEPMETER_ADMIN_TOKEN", "", fmt.Sprintf("bearer token for the admin API, at least %d characters; no default, so without it the admin API returns 401", minAdminTokenLength)},
	{"prices", "DEEPMETER_PRICES", "", "price file (YAML or JSON) that replaces the built-in DeepSeek price table"},
	{"daily-limit-usd", "DEEPMETER_DAILY_LIMIT_USD", "0", "daily spending limit in USD reported by the admin API; 0 means none"},
	{"max-request-body", "DEEPMETER_MAX_REQUEST_BODY", "33554432", "largest metered request body in bytes; larger ones get 413"},
	{"max-stored-body", "DEEPMETER_MAX_STORED_BODY", "65536", "with --store-bodies truncated, bytes of each request and response body kept in a record; the rest is cut with a marker and the original size"},
	{"queue-size", "DEEPMETER_QUEUE_SIZE", "10000", "records held in memory while the database writer catches up"},
	{"shutdown-grace", "DEEPMETER_SHUTDOWN_GRACE", "30s", "time in-flight calls get to finish on SIGTERM or SIGINT, as a Go duration"},
	{"log-level", "DEEPMETER_LOG_LEVEL", "info", "log level: debug, info, warn or error"},
	{"log-format", "DEEPMETER_LOG_FORMAT", "text", "log format: text or json"},
	{"on-client-abort", "DEEPMETER_ON_CLIENT_ABORT", "cancel", "what happens to the upstream call when a client hangs up: cancel it, or drain it to record the exact usage"},
	{"upstream-idle-timeout", "DEEPMETER_UPSTREAM_IDLE_TIMEOUT", "10m", "how long a metered call may go without payload progress from the upstream (keep-alives do not count) before it is ended, as a Go duration"},
	{"tls-cert", "DEEPMETER_TLS_CERT", "", "PEM certificate file of the proxy listener; with --tls-key it serves HTTPS and HTTP/2"},
	{"tls-key", "DEEPMETER_TLS_KEY", "", "PEM private key file of the proxy listener"},
	{"admin-tls-cert", "DEEPMETER_ADMIN_TLS_CERT", "", "PEM certificate file of the admin listener; with --admin-tls-key it serves HTTPS"},
	{"admin-tls-key", "DEEPMETER_ADMIN_TLS_KEY", "", "PEM private key file of the admin listener"},
	{"admin-tokens-file", "DEEPMETER_ADMIN_TOKENS_FILE", "", "file of admin tokens, one \"name role token\" line each, role read or admin"},
	{"admin-cors-origin", "DEEPMETER_ADMIN_CORS_ORIGIN", "", "the one browser origin, such as https://dash.example.com, allowed to call the admin API; none by default"},
	{"store-bodies", "DEEPMETER_STORE_BODIES", "full", "request and response bodies kept in records: full, truncated (to --max-stored-body) or none"},
	{"redact-file", "DEEPMETER_REDACT_FILE", "", "YAML or JSON list of {pattern, replacement} regular expression rules applied to stored bodies"},
	{"read-header-timeout", "DEEPMETER_READ_HEADER_TIMEOUT", "30s", "time a client gets to send its request headers to the proxy, as a Go duration"},
	{"client-idle-timeout", "DEEPMETER_CLIENT_IDLE_TIMEOUT", "2m", "time an idle keep-alive client connection to the proxy stays open, as a Go duration"},
	{"spool-dir", "DEEPMETER_SPOOL_DIR", "", "directory for records the database cannot take yet; default PATH.spool beside a sqlite:PATH database, ./" + defaultPostgresSpoolDir + " with Postgres; one directory per process"},
	{"spool-sync", "DEEPMETER_SPOOL_SYNC", "200ms", "how often queued records are written and the spool is synced to disk, as a Go duration; a crash loses at most the records of about this window"},
	{"spool-max-bytes", "DEEPMETER_SPOOL_MAX_BYTES", "1073741824", "largest size of the spool in bytes; past it records are dropped and counted"},
}

// migrateOptions are the serve options that migrate also takes.
var migrateOptions = selectOptions(serveOptions, "database-url", "log-level", "log-format")

// selectOptions returns the options of opts with the given names, in the
// order of opts. It panics on a name that opts lacks, which is a
// programming error caught by any test that parses flags.
func selectOptions(opts []option, names ...string) []option {
	var out []option
	for _, o := range opts {
		if slices.Contains(names, o.name) {
			out = append(out, o)
		}
	}
	if len(out) != len(names) {
		panic(fmt.Sprintf("selectOptions: some of %v are not options", names))
	}
	return out
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
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		// The flag package has printed the error and the usage already.
		return nil, reportedError{err}
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; deepmeter %s takes only flags (see --help)", fs.Arg(0), command)
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	out := make(map[string]string, len(opts))
	for _, o := range opts {
		out[o.name] = *values[o.name]
		if !onCommandLine[o.name] {
			if v, ok := lookupEnv(getenv, o.env); ok {
				out[o.name] = v
			}
		}
	}
	return out, nil
}

// reportedError is an error already printed to the user, so the caller
// must not print it again.
type reportedError struct{ err error }

func (e reportedError) Error() string { return e.err.Error() }
func (e reportedError) Unwrap() error { return e.err }

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
		case strings.ContainsFunc(v, unicode.IsControl):
			// No HTTP client can send a control character in a header.
			fail("admin-token", "the token contains control characters; use printable characters, for example the output of: openssl rand -hex 32")
		}
	}
	if v, ok := raw["prices"]; ok && v != "" {
		c.PricesFile = v
		table, err := pricing.LoadFile(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("invalid --prices: %w", err))
		}
		c.Prices = table
	}
	if v, ok := raw["daily-limit-usd"]; ok {
		m, err := parseDailyLimit(v)
		if err != nil {
			fail("daily-limit-usd", "%v", err)
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
		// slog.Level.UnmarshalText also takes offsets such as INFO+3,
		// which the help text does not offer.
		level, known := logLevels[strings.ToLower(v)]
		if !known {
			fail("log-level", "%q; expected debug, info, warn or error", v)
		}
		c.LogLevel = level
	}
	if v, ok := raw["log-format"]; ok {
		c.LogFormat = v
		if v != "text" && v != "json" {
			fail("log-format", "%q; expected text or json", v)
		}
	}

	if v, ok := raw["on-client-abort"]; ok {
		switch v {
		case "cancel":
		case "drain":
			c.DrainOnClientAbort = true
		default:
			fail("on-client-abort", "%q; expected cancel or drain", v)
		}
	}
	if v, ok := raw["upstream-idle-timeout"]; ok {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > 24*time.Hour {
			fail("upstream-idle-timeout", "%q; expected a Go duration from 1s to 24h such as 10m", v)
		}
		c.UpstreamIdleTimeout = d
	}
	var err error
	if c.ProxyTLS, err = loadKeyPair(raw["tls-cert"], raw["tls-key"]); err != nil {
		errs = append(errs, fmt.Errorf("invalid --tls-cert/--tls-key: %w", err))
	}
	if c.AdminTLS, err = loadKeyPair(raw["admin-tls-cert"], raw["admin-tls-key"]); err != nil {
		errs = append(errs, fmt.Errorf("invalid --admin-tls-cert/--admin-tls-key: %w", err))
	}

	if v, ok := raw["admin-tokens-file"]; ok {
		c.AdminTokensFile = v
	}
	if v, ok := raw["admin-cors-origin"]; ok {
		c.AdminCORSOrigin = v
		if err := checkOrigin(v); v != "" && err != nil {
			fail("admin-cors-origin", "%v; expected one origin such as https://dash.example.com", err)
		}
	}
	if v, ok := raw["store-bodies"]; ok {
		c.StoreBodies = v
		if v != "full" && v != "truncated" && v != "none" {
			fail("store-bodies", "%q; expected full, truncated or none", v)
		}
	}
	if v, ok := raw["redact-file"]; ok {
		c.RedactFile = v
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"read-header-timeout", &c.ReadHeaderTimeout}, {"client-idle-timeout", &c.ClientIdleTimeout}} {
		v, ok := raw[d.name]
		if !ok {
			continue
		}
		n, err := time.ParseDuration(v)
		if err != nil || n < 100*time.Millisecond || n > time.Hour {
			fail(d.name, "%q; expected a Go duration from 100ms to 1h such as 30s", v)
		}
		*d.dst = n
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

	if c.AdminToken == "" && c.AdminTokensFile == "" && c.AdminListen != "" && !isLoopbackListen(c.AdminListen) {
		errs = append(errs, fmt.Errorf("refusing to serve the admin API on %s without a token: set --admin-token, --admin-tokens-file or their DEEPMETER_ variables, or listen on a loopback address such as 127.0.0.1:8081", c.AdminListen))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

// maxDailyLimitUSD is the largest whole number of USD that Money holds.
const maxDailyLimitUSD = math.MaxInt64 / pricing.MoneyScale

// parseDailyLimit parses --daily-limit-usd: a non-negative decimal amount
// of USD with at most 12 digits after the point, without spaces.
func parseDailyLimit(v string) (pricing.Money, error) {
	if strings.TrimSpace(v) != v {
		return 0, fmt.Errorf("%q has leading or trailing spaces; expected a number of USD such as 25 or 12.50", v)
	}
	m, err := pricing.ParseMoney(v)
	if err == nil && m < 0 {
		return 0, fmt.Errorf("%q is negative; expected 0 for no limit or a positive amount of USD", v)
	}
	if err == nil {
		return m, nil
	}
	whole, frac, _ := strings.Cut(strings.TrimPrefix(v, "+"), ".")
	switch {
	case !isDigits(whole) || !isDigits(frac) || whole+frac == "":
		return 0, fmt.Errorf("%q is not a decimal amount; expected a number of USD such as 25 or 12.50", v)
	case len(frac) > 12:
		return 0, fmt.Errorf("%q has more than 12 digits after the decimal point; expected an amount of USD such as 12.50", v)
	default:
		return 0, fmt.Errorf("%q is out of range; expected at most %d USD", v, maxDailyLimitUSD)
	}
}

// isDigits reports whether s contains only ASCII digits, which is true
// for "".
func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// loadKeyPair loads a listener's certificate and key. Both empty means
// plain HTTP and returns nil; one without the other is an error.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, errors.New("give both the certificate and the key file, or neither")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading %s and %s: %w", certFile, keyFile, err)
	}
	return &cert, nil
}

// checkOrigin accepts a browser origin: an http or https scheme and a host
// with an optional port, and nothing else. "*" is rejected, because the
// admin API moves money and must name the one page allowed to call it.
func checkOrigin(v string) error {
	if v == "*" {
		return errors.New(`"*" would let any web page call the admin API`)
	}
	u, err := url.Parse(v)
	if err != nil {
		return errors.New("the origin does not parse")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" || u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return errors.New("an origin is scheme://host[:port] with no path, query or credentials")
	}
	return nil
}

// storedBodyLimit returns the bytes of each body a record keeps in the
// configured --store-bodies mode.
func (c *config) storedBodyLimit() int {
	if c.StoreBodies == "truncated" {
		return c.MaxStoredBody
	}
	return fullStoredBody
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
		path := strings.TrimPrefix(strings.TrimPrefix(v, "sqlite:"), "//")
		switch {
		case path == "":
			return errors.New("the SQLite URL has no file path")
		case path == ":memory:" || strings.HasPrefix(path, "file:"):
			// The store rejects these too: each pooled connection would
			// get its own in-memory database.
			return fmt.Errorf("SQLite path %q is not supported, a file path such as sqlite:deepmeter.db is required", path)
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
