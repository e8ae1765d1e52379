package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deepmeter/deepmeter/internal/testdb"
	"github.com/deepmeter/deepmeter/store"
	"github.com/deepmeter/deepmeter/store/storetest"
)

// newSQLiteURL returns the URL of a migrated SQLite file in a fresh
// temporary directory.
func newSQLiteURL(tb testing.TB) string {
	tb.Helper()
	dbURL := testdb.SQLiteURL(tb)
	if err := store.Migrate(context.Background(), dbURL); err != nil {
		tb.Fatalf("Migrate(%s): %v", dbURL, err)
	}
	return dbURL
}

func openSQLiteStore(tb testing.TB) store.Store {
	tb.Helper()
	dbURL := newSQLiteURL(tb)
	s, err := store.Open(context.Background(), dbURL)
	if err != nil {
		tb.Fatalf("Open(%s): %v", dbURL, err)
	}
	return s
}

// TestSQLiteConformance runs the shared suite on a new SQLite file per
// test, through Migrate and Open as the program does.
func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openSQLiteStore(t) })
}

// TestSQLiteMigrateTwice checks that a second Migrate, as on every
// restart, changes nothing and keeps the stored records.
func TestSQLiteMigrateTwice(t *testing.T) {
	ctx := context.Background()
	dbURL := newSQLiteURL(t)
	s, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	if err := s.Insert(ctx, []store.Record{storetest.SampleRecord(1, sampleTime)}); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if err := store.Migrate(ctx, dbURL); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if _, err := s.Record(ctx, storetest.SampleRecord(1, sampleTime).ID); err != nil {
		t.Errorf("Record after second Migrate: %v", err)
	}
}

// TestSQLiteFileSettings checks that the file is in WAL mode, so readers
// run beside the writer, and that records survive closing and reopening.
func TestSQLiteFileSettings(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "deepmeter.db")
	dbURL := "sqlite://" + path
	if err := store.Migrate(ctx, dbURL); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	s, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	rec := storetest.SampleRecord(7, sampleTime)
	if err := s.Insert(ctx, []store.Record{rec}); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Errorf("Ping after Close: got no error, want one")
	}

	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatalf("read journal_mode: %v", err)
	}
	if !strings.EqualFold(mode, "wal") {
		t.Errorf("journal_mode: got %q, want wal", mode)
	}

	s2, err := store.Open(ctx, "sqlite:"+path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	if _, err := s2.Record(ctx, rec.ID); err != nil {
		t.Errorf("Record after reopen: %v", err)
	}
}

// TestSQLitePingSchemaGone checks that Ping fails once the database file
// is deleted, replaced or loses its table. The open connections keep
// answering on the old file, so without these checks /readyz stayed 200
// while every insert failed.
func TestSQLitePingSchemaGone(t *testing.T) {
	removeFiles := func(t *testing.T, path string) {
		t.Helper()
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Remove(path + suffix); err != nil && !os.IsNotExist(err) {
				t.Fatalf("remove %s: %v", path+suffix, err)
			}
		}
	}
	tests := []struct {
		name       string
		breakStore func(t *testing.T, path string)
	}{
		{"file deleted", removeFiles},
		{"file replaced by an empty database", func(t *testing.T, path string) {
			removeFiles(t, path)
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("CREATE TABLE other (x INTEGER)"); err != nil {
				t.Fatal(err)
			}
		}},
		{"table dropped", func(t *testing.T, path string) {
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("DROP TABLE api_usage"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dbURL := newSQLiteURL(t)
			s, err := store.Open(ctx, dbURL)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping before: %v, want nil", err)
			}
			tt.breakStore(t, strings.TrimPrefix(dbURL, "sqlite:"))
			if err := s.Ping(ctx); err == nil {
				t.Errorf("Ping after the %s: got nil, want an error", tt.name)
			}
		})
	}
}
