package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// Every invalid value stops the program with a message naming the flag and
// the expected form, and exit code 2.
func TestRunRejectsInvalidFlags(t *testing.T) {
	badPrices := filepath.Join(t.TempDir(), "prices.yaml")
	if err := os.WriteFile(badPrices, []byte("not: [a price table"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"listen without port", []string{"serve", "--listen", "127.0.0.1"}, nil, "invalid --listen"},
		{"listen bad port", []string{"serve", "--listen", "127.0.0.1:99999"}, nil, "invalid --listen"},
		{"admin listen garbage", []string{"serve", "--admin-listen", "nope"}, nil, "invalid --admin-listen"},
		{"upstream ftp", []string{"serve", "--upstream", "ftp://x"}, nil, "invalid --upstream"},
		{"upstream no host", []string{"serve", "--upstream", "https://"}, nil, "invalid --upstream"},
		{"upstream with credentials", []string{"serve", "--upstream", "https://u:p@api.deepseek.com"}, nil, "invalid --upstream"},
		{"database scheme", []string{"serve", "--database-url", "mysql://x"}, nil, "invalid --database-url"},
		{"sqlite without path", []string{"serve", "--database-url", "sqlite:"}, nil, "invalid --database-url"},
		{"short admin token", []string{"serve", "--admin-token", "short"}, nil, "invalid --admin-token"},
		{"admin token with space", []string{"serve", "--admin-token", "0123456789abcdef 0123"}, nil, "invalid --admin-token"},
		{"daily limit text", []string{"serve", "--daily-limit-usd", "lots"}, nil, "invalid --daily-limit-usd"},
		{"daily limit negative", []string{"serve", "--daily-limit-usd", "-1"}, nil, "invalid --daily-limit-usd"},
		{"daily limit out of range", []string{"serve", "--daily-limit-usd", "10000000"}, nil, `"10000000" is out of range; expected at most 9223372 USD`},
		{"daily limit too precise", []string{"serve", "--daily-limit-usd", "0.0000000000001"}, nil, "more than 12 digits after the decimal point"},
		{"daily limit with spaces", []string{"serve", "--daily-limit-usd", " 5"}, nil, "leading or trailing spaces"},
		{"log level with offset", []string{"serve", "--log-level", "INFO+3"}, nil, "invalid --log-level"},
		{"admin token with control character", []string{"serve", "--admin-token", "0123456789abcdef\x01"}, nil, "control characters"},
		{"sqlite in memory", []string{"serve", "--database-url", "sqlite::memory:"}, nil, `SQLite path ":memory:" is not supported`},
		{"sqlite file URI", []string{"migrate", "--database-url", "sqlite:file:x.db"}, nil, `SQLite path "file:x.db" is not supported`},
		{"bad price file", []string{"serve", "--prices", badPrices}, nil, "invalid --prices"},
		{"missing price file", []string{"serve", "--prices", "/nonexistent/prices.yaml"}, nil, "invalid --prices"},
		{"shutdown grace", []string{"serve", "--shutdown-grace", "soon"}, nil, "invalid --shutdown-grace"},
		{"log level", []string{"serve", "--log-level", "loud"}, nil, "invalid --log-level"},
		{"log format", []string{"serve", "--log-format", "xml"}, nil, "invalid --log-format"},
		{"queue size", []string{"serve", "--queue-size", "0"}, nil, "invalid --queue-size"},
		{"max request body", []string{"serve", "--max-request-body", "12"}, nil, "invalid --max-request-body"},
		{"spool sync text", []string{"serve", "--spool-sync", "often"}, nil, "invalid --spool-sync"},
		{"spool sync zero", []string{"serve", "--spool-sync", "0s"}, nil, "invalid --spool-sync"},
		{"spool sync too long", []string{"serve", "--spool-sync", "1m"}, nil, "invalid --spool-sync"},
		{"spool max bytes small", []string{"serve", "--spool-max-bytes", "1000"}, nil, "invalid --spool-max-bytes"},
		{"spool max bytes text", []string{"serve", "--spool-max-bytes", "1G"}, nil, "invalid --spool-max-bytes"},
		{"env value checked", []string{"serve"}, map[string]string{"DEEPMETER_LISTEN": "bad"}, "invalid --listen"},
		{"public admin without token", []string{"serve", "--admin-listen", "0.0.0.0:8081"}, nil, "without a token"},
		{"all interfaces admin without token", []string{"serve", "--admin-listen", ":8081"}, nil, "without a token"},
		{"on-client-abort unknown", []string{"serve", "--on-client-abort", "ignore"}, nil, "invalid --on-client-abort"},
		{"idle timeout text", []string{"serve", "--upstream-idle-timeout", "soon"}, nil, "invalid --upstream-idle-timeout"},
		{"idle timeout zero", []string{"serve", "--upstream-idle-timeout", "0s"}, nil, "invalid --upstream-idle-timeout"},
		{"idle timeout env", []string{"serve"}, map[string]string{"DEEPMETER_UPSTREAM_IDLE_TIMEOUT": "25h"}, "invalid --upstream-idle-timeout"},
		{"tls cert without key", []string{"serve", "--tls-cert", "cert.pem"}, nil, "invalid --tls-cert/--tls-key: give both"},
		{"tls key without cert", []string{"serve"}, map[string]string{"DEEPMETER_TLS_KEY": "key.pem"}, "invalid --tls-cert/--tls-key: give both"},
		{"tls files missing", []string{"serve", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem"}, nil, "invalid --tls-cert/--tls-key: loading /nonexistent/cert.pem"},
		{"admin tls cert without key", []string{"serve", "--admin-tls-cert", "cert.pem"}, nil, "invalid --admin-tls-cert/--admin-tls-key: give both"},
		{"store bodies mode", []string{"serve", "--store-bodies", "some"}, nil, "invalid --store-bodies"},
		{"cors origin star", []string{"serve", "--admin-cors-origin", "*"}, nil, "invalid --admin-cors-origin"},
		{"cors origin with path", []string{"serve", "--admin-cors-origin", "https://dash.example.com/app"}, nil, "invalid --admin-cors-origin"},
		{"cors origin scheme", []string{"serve", "--admin-cors-origin", "dash.example.com"}, nil, "invalid --admin-cors-origin"},
		{"read header timeout", []string{"serve", "--read-header-timeout", "0s"}, nil, "invalid --read-header-timeout"},
		{"client idle timeout env", []string{"serve"}, map[string]string{"DEEPMETER_CLIENT_IDLE_TIMEOUT": "forever"}, "invalid --client-idle-timeout"},
		{"unknown flag", []string{"serve", "--nope"}, nil, "flag provided but not defined"},
		{"stray argument", []string{"serve", "extra"}, nil, "unexpected argument"},
		{"unknown command", []string{"launch"}, nil, "unknown command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), c.args, envOf(c.env), &stdout, &stderr)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), c.want)
			}
		})
	}
}

// A flag on the command line wins over its environment variable, which
// wins over the default.
func TestFlagPrecedence(t *testing.T) {
	var stderr bytes.Buffer
	env := envOf(map[string]string{"DEEPMETER_LISTEN": "127.0.0.1:9000", "DEEPMETER_UPSTREAM": "http://127.0.0.1:9001"})
	raw, err := parseFlags("serve", serveOptions, []string{"--listen", "127.0.0.1:9100"}, env, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := buildConfig(raw)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9100" {
		t.Errorf("listen %q, want the flag's 127.0.0.1:9100", cfg.Listen)
	}
	if got := cfg.Upstream.String(); got != "http://127.0.0.1:9001" {
		t.Errorf("upstream %q, want the environment's", got)
	}
	if cfg.AdminListen != "127.0.0.1:8081" || cfg.DatabaseURL != "sqlite:deepmeter.db" {
		t.Errorf("defaults: admin %q database %q", cfg.AdminListen, cfg.DatabaseURL)
	}
	if cfg.DailyLimit != 0 || cfg.AdminToken != "" {
		t.Errorf("defaults: limit %v token set %v", cfg.DailyLimit, cfg.AdminToken != "")
	}
}

func TestRunVersionAndHelp(t *testing.T) {
	cases := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"version"}, 0, "deepmeter "},
		{[]string{"--version"}, 0, "deepmeter "},
		{[]string{"--help"}, 0, "deepmeter serve"},
		{[]string{"serve", "--help"}, 0, "DEEPMETER_ADMIN_TOKEN"},
		{[]string{"migrate", "-h"}, 0, "DEEPMETER_DATABASE_URL"},
		{nil, 2, "Usage:"},
		{[]string{"version", "extra"}, 2, `unexpected argument "extra"`},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), c.args, envOf(nil), &stdout, &stderr)
			if code != c.code {
				t.Errorf("exit code %d, want %d", code, c.code)
			}
			if out := stdout.String() + stderr.String(); !strings.Contains(out, c.contains) {
				t.Errorf("output %q does not contain %q", out, c.contains)
			}
		})
	}
}

func TestIsLoopbackListen(t *testing.T) {
	cases := map[string]bool{
		"127.0.0.1:8081": true,
		"[::1]:8081":     true,
		"localhost:8081": true,
		"127.8.9.1:1":    true,
		":8081":          false,
		"0.0.0.0:8081":   false,
		"10.0.0.5:8081":  false,
		"example.com:80": false,
	}
	for addr, want := range cases {
		if got := isLoopbackListen(addr); got != want {
			t.Errorf("isLoopbackListen(%q) = %v, want %v", addr, got, want)
		}
	}
}

// `deepmeter migrate` applies the schema to a fresh SQLite file and exits 0.
func TestRunMigrateSQLite(t *testing.T) {
	var stdout, stderr bytes.Buffer
	url := "sqlite:" + t.TempDir() + "/m.db"
	if code := run(context.Background(), []string{"migrate", "--database-url", url}, envOf(nil), &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "database schema is up to date") {
		t.Errorf("log %q", stderr.String())
	}
}

// A price file that does not parse stops serve before it listens, with
// exit code 2 like any other invalid flag.
func TestRunServeRejectsBadPriceFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/prices.yaml"
	if err := writeFile(path, "prices:\n  - model: x\n    miss: abc\n"); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--prices", path, "--database-url", "sqlite:" + dir + "/s.db",
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, envOf(nil), &stdout, &stderr)
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if !strings.Contains(stderr.String(), "invalid --prices") {
		t.Errorf("stderr %q does not name --prices", stderr.String())
	}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

// Security settings are read and validated before serve listens: a bad
// tokens or redaction file stops the start with the line or rule at
// fault, and never echoes a token.
func TestRunServeRejectsBadSecurityFiles(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name    string
		flag    string
		content string
		want    string
	}{
		{"tokens bad role", "--admin-tokens-file", "ops admin " + secret + "\nviewer owner x" + secret + "\n", `line 2: token`},
		{"tokens short", "--admin-tokens-file", "ops admin short\n", "is 5 characters"},
		{"redact bad regexp", "--redact-file", "- pattern: 'a'\n  replacement: b\n- pattern: '(x'\n  replacement: c\n", "redaction rule 2"},
		{"redact not a list", "--redact-file", "pattern: x\n", "invalid --redact-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := dir + "/file"
			if err := writeFile(path, tt.content); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"serve", tt.flag, path, "--database-url", "sqlite:" + dir + "/s.db",
				"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, envOf(nil), &stdout, &stderr)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.want)
			}
			if strings.Contains(stderr.String(), secret) {
				t.Errorf("stderr contains the token: %q", stderr.String())
			}
		})
	}
}

// A tokens file counts as a token for the rule that a public admin
// listener needs one, and the body storage mode picks the stored size.
func TestBuildConfigSecurity(t *testing.T) {
	tests := []struct {
		name      string
		raw       map[string]string
		wantLimit int
	}{
		{"full", map[string]string{"store-bodies": "full", "max-stored-body": "65536"}, fullStoredBody},
		{"truncated", map[string]string{"store-bodies": "truncated", "max-stored-body": "65536"}, 65536},
		{"none", map[string]string{"store-bodies": "none", "max-stored-body": "2048"}, fullStoredBody},
		{"public admin with tokens file", map[string]string{"admin-listen": "0.0.0.0:8081", "admin-tokens-file": "/etc/deepmeter/tokens", "store-bodies": "truncated", "max-stored-body": "4096"}, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := buildConfig(tt.raw)
			if err != nil {
				t.Fatalf("buildConfig: %v", err)
			}
			if got := c.storedBodyLimit(); got != tt.wantLimit {
				t.Errorf("stored body limit = %d, want %d", got, tt.wantLimit)
			}
		})
	}
}

// TestRunPrintsFlagErrorOnce checks that an unknown flag's error appears
// once: the flag package prints it with the usage, and run must not print
// it again.
func TestRunPrintsFlagErrorOnce(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"serve", "--nope"}, envOf(nil), &stdout, &stderr)
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if n := strings.Count(stderr.String(), "flag provided but not defined"); n != 1 {
		t.Errorf("error printed %d times, want once:\n%s", n, stderr.String())
	}
}

// TestLogLevelNames accepts the four documented level names in any case.
func TestLogLevelNames(t *testing.T) {
	tests := []struct {
		value string
		want  slog.Level
	}{
		{"debug", slog.LevelDebug},
		{"INFO", slog.LevelInfo},
		{"Warn", slog.LevelWarn},
		{"error", slog.LevelError},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			cfg, err := buildConfig(map[string]string{"log-level": tt.value})
			if err != nil {
				t.Fatalf("buildConfig: %v", err)
			}
			if cfg.LogLevel != tt.want {
				t.Errorf("log level = %v, want %v", cfg.LogLevel, tt.want)
			}
		})
	}
}

// A tokens file that other users may read still loads, with a warning
// that names the file and never a token.
func TestLoadAdminTokensWarnsOnWideMode(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name     string
		mode     os.FileMode
		wantWarn bool
	}{
		{"owner only", 0o600, false},
		{"world readable", 0o644, true},
		{"group readable", 0o640, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := t.TempDir() + "/tokens"
			if err := os.WriteFile(path, []byte("ops admin "+secret+"\n"), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			tokens, err := loadAdminTokens(&config{AdminTokensFile: path}, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatalf("loadAdminTokens: %v", err)
			}
			if len(tokens) != 1 || tokens[0].Name != "ops" {
				t.Errorf("tokens = %+v, want one named ops", tokens)
			}
			if got := strings.Contains(logs.String(), "readable by other users"); got != tt.wantWarn {
				t.Errorf("warning logged = %v, want %v; logs: %s", got, tt.wantWarn, logs.String())
			}
			if strings.Contains(logs.String(), secret) {
				t.Errorf("logs contain the token: %s", logs.String())
			}
		})
	}
}

// Without --spool-dir, the spool sits beside an SQLite file so it moves
// with the database, and in the working directory with Postgres; a given
// directory wins.
func TestSpoolDirDefault(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"sqlite relative", map[string]string{"DEEPMETER_DATABASE_URL": "sqlite:data/x.db"}, "data/x.db.spool"},
		{"sqlite absolute", map[string]string{"DEEPMETER_DATABASE_URL": "sqlite:///var/lib/dm.db"}, "/var/lib/dm.db.spool"},
		{"built-in default", nil, "deepmeter.db.spool"},
		{"postgres", map[string]string{"DEEPMETER_DATABASE_URL": "postgres://u@db:5432/x"}, "deepmeter-spool"},
		{"given", map[string]string{"DEEPMETER_SPOOL_DIR": "/srv/spool"}, "/srv/spool"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			raw, err := parseFlags("serve", serveOptions, nil, envOf(c.env), &bytes.Buffer{})
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			cfg, err := buildConfig(raw)
			if err != nil {
				t.Fatalf("buildConfig: %v", err)
			}
			if cfg.SpoolDir != c.want {
				t.Errorf("SpoolDir = %q, want %q", cfg.SpoolDir, c.want)
			}
		})
	}
}

// TestDailyLimitBounds accepts the largest whole amount and 12 decimal
// places, the limits of Money.
func TestDailyLimitBounds(t *testing.T) {
	for _, v := range []string{"9223372", "0.000000000001", "25", "12.50"} {
		if _, err := parseDailyLimit(v); err != nil {
			t.Errorf("parseDailyLimit(%q) = %v, want no error", v, err)
		}
	}
}
