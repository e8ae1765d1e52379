package store_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-migrate/migrate/v4"
	_ "github.com/golang-migrate/migrate/v4/database/pgx/v5" // registers pgx5://
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"

	"github.com/deepmeter/deepmeter/internal/testdb"
	"github.com/deepmeter/deepmeter/store"
	"github.com/deepmeter/deepmeter/store/storetest"
)

func openPostgresStore(tb testing.TB) store.Store {
	tb.Helper()
	dbURL := testdb.PostgresURL(tb)
	ctx := context.Background()
	if err := store.Migrate(ctx, dbURL); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	s, err := store.Open(ctx, dbURL)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return s
}

// TestPostgresConformance runs the shared suite on a fresh schema per test.
func TestPostgresConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openPostgresStore(t) })
}

// schemaVersion returns the migration version and dirty flag stored in the
// schema that dbURL selects, failing when that schema has no
// schema_migrations table.
func schemaVersion(t *testing.T, dbURL string) (int64, bool) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var version int64
	var dirty bool
	err = conn.QueryRow(ctx, `SELECT version, dirty FROM schema_migrations
WHERE to_regclass(current_schema() || '.schema_migrations') IS NOT NULL`).Scan(&version, &dirty)
	if err != nil {
		t.Fatalf("read schema_migrations in the test schema: %v", err)
	}
	return version, dirty
}

// TestPostgresMigrateTwice checks that a second Migrate is a no-op and
// that golang-migrate keeps its table in the schema of search_path.
func TestPostgresMigrateTwice(t *testing.T) {
	dbURL := testdb.PostgresURL(t)
	ctx := context.Background()
	for i := range 2 {
		if err := store.Migrate(ctx, dbURL); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	version, dirty := schemaVersion(t, dbURL)
	if version != 2 || dirty {
		t.Errorf("schema_migrations: got version %d dirty %v, want 2 and false", version, dirty)
	}
}

// TestPostgresMigrateParallel starts several Migrate calls at once, as
// replicas do on a deploy. The advisory lock must let all of them succeed.
func TestPostgresMigrateParallel(t *testing.T) {
	dbURL := testdb.PostgresURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const replicas = 4
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { errs[i] = store.Migrate(ctx, dbURL) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate #%d: %v", i, err)
		}
	}
	if version, dirty := schemaVersion(t, dbURL); version != 2 || dirty {
		t.Errorf("schema_migrations: got version %d dirty %v, want 2 and false", version, dirty)
	}
}

// TestPostgresMigrateDown applies the down migrations and then Migrate
// again, so a rollback script that leaves a table behind is caught.
func TestPostgresMigrateDown(t *testing.T) {
	dbURL := testdb.PostgresURL(t)
	ctx := context.Background()
	if err := store.Migrate(ctx, dbURL); err != nil {
		t.Fatalf("Migrate: %v", err)
	}

	src, err := iofs.New(os.DirFS("migrations"), "postgres")
	if err != nil {
		t.Fatalf("read migrations: %v", err)
	}
	m, err := migrate.NewWithSourceInstance("iofs", src, "pgx5"+strings.TrimPrefix(dbURL, "postgres"))
	if err != nil {
		t.Fatalf("start golang-migrate: %v", err)
	}
	if err := m.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	m.Close()

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var tables []string
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables
WHERE table_schema = current_schema() AND table_name <> 'schema_migrations' ORDER BY 1`)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	tables, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	if len(tables) != 0 {
		t.Errorf("tables after Down: got %v, want none", tables)
	}

	if err := store.Migrate(ctx, dbURL); err != nil {
		t.Fatalf("Migrate after Down: %v", err)
	}
}

// TestPostgresUnreachable points the store at a port where nothing
// listens, with a password in the URL. Ping, Insert and Migrate must fail
// within the context deadline instead of hanging, and no error may show
// the password.
func TestPostgresUnreachable(t *testing.T) {
	testdb.PostgresURL(t) // skips the test without a test database
	const password = "s3cret-pw"
	dbURL := "postgres://postgres:" + password + "@127.0.0.1:1/test?sslmode=disable"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	s, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	calls := []struct {
		name string
		call func() error
	}{
		{"Ping", func() error { return s.Ping(ctx) }},
		{"Insert", func() error { return s.Insert(ctx, []store.Record{storetest.SampleRecord(1, sampleTime)}) }},
		{"Migrate", func() error { return store.Migrate(ctx, dbURL) }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if err == nil {
				t.Fatalf("%s: got no error, want one", c.name)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: got %v, want a connection error before the deadline", c.name, err)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("%s error shows the password: %v", c.name, err)
			}
		})
	}
}

// TestPostgresClosedStore checks that a closed pool, as after shutdown,
// gives an error rather than a hang.
func TestPostgresClosedStore(t *testing.T) {
	s := openPostgresStore(t)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err == nil {
		t.Errorf("Ping after Close: got no error, want one")
	}
	if err := s.Insert(ctx, []store.Record{storetest.SampleRecord(1, sampleTime)}); err == nil {
		t.Errorf("Insert after Close: got no error, want one")
	}
}

// TestPostgresPingSchemaGone checks that Ping fails once the api_usage
// table is gone, as after the database was recreated empty. A bare
// connection ping still succeeds then, so /readyz stayed 200 while every
// insert failed.
func TestPostgresPingSchemaGone(t *testing.T) {
	ctx := context.Background()
	dbURL := testdb.PostgresURL(t)
	if err := store.Migrate(ctx, dbURL); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	s, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping before: %v, want nil", err)
	}

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP TABLE api_usage CASCADE"); err != nil {
		t.Fatalf("drop api_usage: %v", err)
	}
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "api_usage") {
		t.Errorf("Ping after the table was dropped: got %v, want an error naming api_usage", err)
	}
}
