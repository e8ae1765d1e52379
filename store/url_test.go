package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deepmeter/deepmeter/store"
)

// TestRedactURL checks that RedactURL hides a password wherever a
// connection string can carry one, and leaves the rest readable for logs.
func TestRedactURL(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{
			name: "user and password",
			in:   "postgres://meter:hunter2@db.internal:5432/deepmeter?sslmode=require",
			want: "postgres://meter:xxxxx@db.internal:5432/deepmeter?sslmode=require",
		},
		{
			name: "no password",
			in:   "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
			want: "postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
		},
		{
			name: "password in query",
			in:   "postgresql://meter@db/deepmeter?password=hunter2&sslpassword=keypass",
			want: "postgresql://meter@db/deepmeter?password=xxxxx&sslpassword=xxxxx",
		},
		{
			name: "percent-encoded password",
			in:   "postgres://meter:p%40ss%3Aword@db/deepmeter",
			want: "postgres://meter:xxxxx@db/deepmeter",
		},
		{
			name: "unparsable URL",
			in:   "postgres://meter:hunter2@db:notaport/deepmeter",
			want: "postgres://meter:xxxxx@db:notaport/deepmeter",
		},
		{
			name: "key value form",
			in:   "host=db user=meter password=hunter2 dbname=deepmeter",
			want: "host=db user=meter password=xxxxx dbname=deepmeter",
		},
		{
			name: "quoted key value password",
			in:   "host=db password='hunter 2' dbname=deepmeter",
			want: "host=db password=xxxxx dbname=deepmeter",
		},
		{
			name: "sqlite path",
			in:   "sqlite:/var/lib/deepmeter/meter.db",
			want: "sqlite:/var/lib/deepmeter/meter.db",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := store.RedactURL(tt.in)
			if got != tt.want {
				t.Errorf("RedactURL(%q): got %q, want %q", tt.in, got, tt.want)
			}
			for _, secret := range []string{"hunter", "keypass", "p%40ss"} {
				if strings.Contains(got, secret) {
					t.Errorf("RedactURL(%q) = %q still contains %q", tt.in, got, secret)
				}
			}
		})
	}
}

// TestOpenUppercaseScheme checks that a URL scheme is case-insensitive, as
// RFC 3986 specifies, although pgx accepts only a lowercase one.
func TestOpenUppercaseScheme(t *testing.T) {
	s, err := store.Open(context.Background(), "POSTGRES://postgres@127.0.0.1:1/test")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
}

// TestOpenInvalidURL checks that Open and Migrate reject URLs they cannot
// use with an error that names the problem, lists the accepted forms where
// the form is wrong, and never shows a password.
func TestOpenInvalidURL(t *testing.T) {
	missingDir := filepath.Join(t.TempDir(), "no-such-dir")
	tests := []struct {
		name     string
		url      string
		wantText []string
	}{
		{name: "empty", url: "", wantText: []string{"unsupported database URL", "sqlite:PATH", "postgres://"}},
		{name: "other scheme", url: "mysql://root:hunter2@db/x", wantText: []string{"unsupported database URL", "sqlite:PATH", "xxxxx"}},
		{name: "bare path", url: "/var/lib/deepmeter.db", wantText: []string{"unsupported database URL", "sqlite:PATH"}},
		{name: "bad postgres port", url: "postgres://meter:hunter2@db:notaport/x", wantText: []string{"invalid database URL", "invalid port", "xxxxx"}},
		{name: "bad escape in password", url: "postgres://meter:hunter2%zz@db/x", wantText: []string{"invalid percent-encoding", "xxxxx"}},
		{name: "bad postgres option", url: "postgres://meter:hunter2@db/x?sslmode=sometimes", wantText: []string{"sslmode"}},
		{name: "sqlite without path", url: "sqlite:", wantText: []string{"missing SQLite file path", "sqlite:PATH"}},
		{name: "sqlite memory", url: "sqlite::memory:", wantText: []string{":memory:", "file path is required"}},
		{name: "sqlite query", url: "sqlite:/tmp/x.db?mode=ro", wantText: []string{"must not contain '?'"}},
		{name: "sqlite missing directory", url: "sqlite:" + filepath.Join(missingDir, "meter.db"), wantText: []string{missingDir, "does not exist"}},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := map[string]func() error{
				"Open": func() error {
					s, err := store.Open(ctx, tt.url)
					if err == nil {
						s.Close()
					}
					return err
				},
				"Migrate": func() error { return store.Migrate(ctx, tt.url) },
			}
			for name, call := range calls {
				err := call()
				if err == nil {
					t.Fatalf("%s(%q): got no error, want one", name, tt.url)
				}
				for _, want := range tt.wantText {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("%s(%q) error %q does not contain %q", name, tt.url, err, want)
					}
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("%s(%q) error shows the password: %v", name, tt.url, err)
				}
			}
		})
	}
}
