package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/golang-migrate/migrate/v4/database"
	"github.com/golang-migrate/migrate/v4/source/iofs"
)

// acceptedURLForms ends the errors about a database URL of the wrong form.
const acceptedURLForms = `accepted forms are "postgres://user:password@host:5432/dbname", ` +
	`"postgresql://..." and "sqlite:PATH" (or "sqlite://PATH")`

// migrationLockTimeout bounds how long Migrate waits for another process
// that is migrating the same database when ctx has no deadline.
const migrationLockTimeout = 10 * time.Minute

//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrationFiles embed.FS

// backend names the kind of database a URL selects.
type backend int

const (
	backendPostgres backend = iota + 1
	backendSQLite
)

// target is a parsed database URL.
type target struct {
	backend backend
	url     string // the Postgres URL as given
	path    string // the SQLite file path
}

// Open connects to the database that dbURL names and returns a Store. It
// accepts "postgres://..." or "postgresql://..." for Postgres, with any
// pgx or pgxpool connection parameter in the query (such as sslmode or
// pool_max_conns), and "sqlite:PATH" or "sqlite://PATH" for an SQLite file.
// The directory of an SQLite file must exist.
//
// Open does not apply migrations (see Migrate) and does not contact a
// Postgres server. Call Ping to check that the database responds.
func Open(ctx context.Context, dbURL string) (Store, error) {
	t, err := parseURL(dbURL)
	if err != nil {
		return nil, err
	}
	switch t.backend {
	case backendPostgres:
		return openPostgres(ctx, t.url)
	default:
		return openSQLite(ctx, t.path)
	}
}

// Migrate applies every schema migration that the database named by dbURL
// has not applied yet, and returns nil when none is left. URL forms are as
// for Open.
//
// On Postgres a session advisory lock serializes Migrate calls from several
// processes, so replicas may all call it at startup. On SQLite the lock
// works only within one process, so only one process may migrate a file at
// a time.
func Migrate(ctx context.Context, dbURL string) error {
	t, err := parseURL(dbURL)
	if err != nil {
		return err
	}
	switch t.backend {
	case backendPostgres:
		return migratePostgres(ctx, t.url)
	default:
		return migrateSQLite(ctx, t.path)
	}
}

// RedactURL returns dbURL with any password replaced by "xxxxx", for logs and
// errors. It redacts the user-info password of a URL and password or
// sslpassword query and key=value parameters. A string that is not a URL
// is redacted on a best-effort basis.
func RedactURL(dbURL string) string {
	if u, err := parseNetURL(dbURL); err == nil && u.Scheme != "" && !strings.HasPrefix(u.Scheme, "sqlite") {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		changed := false
		for key := range q {
			if isPasswordKey(key) {
				q.Set(key, "xxxxx")
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
		return u.String()
	}
	if strings.HasPrefix(strings.ToLower(dbURL), "sqlite:") {
		return dbURL
	}
	s := keyValuePassword.ReplaceAllString(dbURL, "${1}=xxxxx")
	return userInfoPassword.ReplaceAllString(s, "${1}:xxxxx@")
}

var (
	// keyValuePassword matches password=secret and password='sec ret' in a
	// key=value connection string or a query that does not parse.
	keyValuePassword = regexp.MustCompile(`(?i)\b((?:ssl)?password)\s*=\s*(?:'(?:[^'\\]|\\.)*'|[^\s&]*)`)
	// userInfoPassword matches the password part of scheme://user:password@.
	userInfoPassword = regexp.MustCompile(`(://[^:/@\s]*):[^@\s]*@`)
)

func isPasswordKey(key string) bool {
	k := strings.ToLower(key)
	return k == "password" || k == "sslpassword"
}

// parseURL classifies a database URL. Its errors never contain a password.
func parseURL(raw string) (target, error) {
	lower := strings.ToLower(raw)
	switch {
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		if _, err := parseNetURL(raw); err != nil {
			return target{}, fmt.Errorf("invalid database URL %q: %w; %s", RedactURL(raw), err, acceptedURLForms)
		}
		// pgx recognizes a URL only by a lowercase scheme.
		scheme, rest, _ := strings.Cut(raw, "://")
		return target{backend: backendPostgres, url: strings.ToLower(scheme) + "://" + rest}, nil

	case strings.HasPrefix(lower, "sqlite:"):
		path := raw[len("sqlite:"):]
		if strings.HasPrefix(path, "//") {
			path = path[2:]
		}
		if err := checkSQLitePath(path); err != nil {
			return target{}, fmt.Errorf("invalid database URL %q: %w; %s", raw, err, acceptedURLForms)
		}
		return target{backend: backendSQLite, path: path}, nil

	default:
		return target{}, fmt.Errorf("unsupported database URL %q: %s", RedactURL(raw), acceptedURLForms)
	}
}

// checkSQLitePath rejects SQLite paths that the store cannot open as a
// plain file shared by its connections.
func checkSQLitePath(path string) error {
	switch {
	case path == "":
		return errors.New("missing SQLite file path")
	case path == ":memory:" || strings.HasPrefix(path, "file:"):
		// Each pooled connection would get its own in-memory database, and
		// Migrate and Open would not share one.
		return fmt.Errorf("SQLite path %q is not supported, a file path is required", path)
	case strings.ContainsAny(path, "?\x00"):
		// The driver treats everything after '?' as connection options.
		return fmt.Errorf("SQLite path %q must not contain '?' or NUL", path)
	}
	return nil
}

// checkSQLiteDir returns an error naming the directory of path when it
// does not exist, because SQLite would otherwise fail with a vague
// "unable to open database file".
func checkSQLiteDir(path string) error {
	dir := filepath.Dir(path)
	info, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("open SQLite database %q: directory %q does not exist", path, dir)
		}
		return fmt.Errorf("open SQLite database %q: %w", path, err)
	}
	if !info.IsDir() {
		return fmt.Errorf("open SQLite database %q: %q is not a directory", path, dir)
	}
	return nil
}

// parseNetURL parses raw and returns the parser's reason without the URL
// itself, because url.Error repeats the whole input, password included.
func parseNetURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// An escape error quotes the bad escape, which may be part of the
		// password.
		var escape url.EscapeError
		if errors.As(err, &escape) {
			return nil, errors.New("invalid percent-encoding")
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, ue.Err
		}
		return nil, errors.New("malformed URL")
	}
	return u, nil
}

// runMigrations applies the embedded migrations under dir through drv,
// which migrate closes. Canceling ctx stops after the running migration.
func runMigrations(ctx context.Context, dir, driverName string, drv database.Driver) error {
	src, err := iofs.New(migrationFiles, dir)
	if err != nil {
		drv.Close()
		return fmt.Errorf("load embedded migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, driverName, drv)
	if err != nil {
		src.Close()
		drv.Close()
		return fmt.Errorf("start migrations: %w", err)
	}
	defer m.Close()

	// A replica that starts while another one migrates waits for the lock.
	// The golang-migrate default of 15 seconds is too short for a migration
	// that rewrites a large table.
	m.LockTimeout = migrationLockTimeout
	if deadline, ok := ctx.Deadline(); ok {
		m.LockTimeout = max(time.Until(deadline), time.Millisecond)
	}

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			m.GracefulStop <- true
		case <-done:
		}
	}()

	err = m.Up()
	var dirty migrate.ErrDirty
	switch {
	case err == nil, errors.Is(err, migrate.ErrNoChange):
		if ctx.Err() != nil {
			return fmt.Errorf("apply migrations: %w", ctx.Err())
		}
		return nil
	case errors.As(err, &dirty):
		return fmt.Errorf("apply migrations: schema version %d is marked dirty because a migration failed part way; "+
			"repair the schema by hand, then set schema_migrations.dirty to false: %w", dirty.Version, err)
	default:
		return fmt.Errorf("apply migrations: %w", err)
	}
}
