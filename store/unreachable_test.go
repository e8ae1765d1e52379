package store_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/deepmeter/deepmeter/store"
)

// closedPort returns a loopback port that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestIsUnreachable separates a database server that cannot be reached,
// where serve starts anyway and spools, from errors of a reachable
// server or of SQLite, which must still stop the start.
func TestIsUnreachable(t *testing.T) {
	ctx := context.Background()
	refused := store.Migrate(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/test?sslmode=disable", closedPort(t)))
	sqliteErr := store.Migrate(ctx, "sqlite:"+filepath.Join(t.TempDir(), "missing", "x.db"))
	if refused == nil || sqliteErr == nil {
		t.Fatalf("Migrate errors = %v and %v, want both non-nil", refused, sqliteErr)
	}

	cases := []struct {
		name string
		err  error
		want bool
	}{
		{name: "nil", err: nil, want: false},
		{name: "connection refused", err: refused, want: true},
		{name: "server starting up", err: fmt.Errorf("connect: %w", &pgconn.PgError{Code: "57P03"}), want: true},
		{name: "login failed", err: fmt.Errorf("connect: %w", &pgconn.PgError{Code: "28P01"}), want: false},
		{name: "dirty schema", err: errors.New("apply migrations: schema version 3 is marked dirty"), want: false},
		{name: "sqlite directory missing", err: sqliteErr, want: false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := store.IsUnreachable(c.err); got != c.want {
				t.Errorf("IsUnreachable(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}
