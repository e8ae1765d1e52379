package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deepmeter/deepmeter/internal/testdb"
	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/store"
)

func testRecord(i int) store.Record {
	return store.Record{
		ID:               fmt.Sprintf("rec-%05d", i),
		CreatedAt:        time.Date(2026, 5, 1, 12, 0, 0, i*1000, time.UTC),
		Endpoint:         "/chat/completions",
		UpstreamPath:     "/chat/completions",
		Model:            "deepseek-chat",
		StatusCode:       200,
		PromptTokens:     int64(10 + i),
		CompletionTokens: 5,
		TotalTokens:      int64(15 + i),
		UsageSource:      store.UsageReported,
		Cost:             pricing.Money(1234 + i),
		Priced:           true,
		Currency:         "USD",
		Success:          true,
		Flags:            []string{store.FlagUsageMismatch},
		RequestData:      `{"model":"deepseek-chat","messages":[{"role":"user","content":"héllo\n"}]}`,
		UserID:           "user-1",
	}
}

func testRecords(from, n int) []store.Record {
	out := make([]store.Record, n)
	for i := range out {
		out[i] = testRecord(from + i)
	}
	return out
}

func openSpool(t *testing.T, dir string, opts Options) *Spool {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// collect replays s into a slice and returns the records in the order
// Replay handed them.
func collect(t *testing.T, s *Spool) []store.Record {
	t.Helper()
	var got []store.Record
	_, err := s.Replay(context.Background(), 7, func(_ context.Context, batch []store.Record) error {
		got = append(got, batch...)
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return got
}

func ids(records []store.Record) []string {
	out := make([]string, len(records))
	for i, r := range records {
		out[i] = r.ID
	}
	return out
}

// Records written across several appends and segments come back equal
// and in append order, and the spool is empty afterwards, because replay
// order is the order calls finished in and every field must survive.
func TestSpoolRoundTrip(t *testing.T) {
	s := openSpool(t, t.TempDir(), Options{SegmentBytes: 2048})
	want := testRecords(0, 40)
	for i := 0; i < 20; i += 5 {
		if err := s.Append(want[i : i+5]); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	// One batch larger than a segment is split across segments.
	if err := s.Append(want[20:]); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := s.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if got := s.Stats().Entries; got != 40 {
		t.Errorf("Stats().Entries = %d, want 40", got)
	}
	segs, _ := s.segments()
	if len(segs) < 3 {
		t.Errorf("segments = %d, want several with SegmentBytes 2048", len(segs))
	}
	for _, seq := range segs {
		info, err := os.Stat(s.path(seq))
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() > 2048 {
			t.Errorf("segment %d is %d bytes, want at most SegmentBytes 2048", seq, info.Size())
		}
	}

	got := collect(t, s)
	if !slices.Equal(ids(got), ids(want)) {
		t.Fatalf("replayed ids = %v, want %v", ids(got), ids(want))
	}
	for i := range want {
		if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
			t.Errorf("record %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if st := s.Stats(); st != (Stats{}) {
		t.Errorf("Stats after replay = %+v, want zero", st)
	}
	if segs, _ := s.segments(); len(segs) != 0 {
		t.Errorf("segments left after replay: %v", segs)
	}
}

// A spool reopened after a restart holds what the earlier process wrote,
// and new appends go to a new segment after the old ones, so replay
// order holds across restarts.
func TestSpoolReopen(t *testing.T) {
	dir := t.TempDir()
	first, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Append(testRecords(0, 3)); err != nil {
		t.Fatal(err)
	}
	first.Close()

	s := openSpool(t, dir, Options{})
	if got := s.Stats().Entries; got != 3 {
		t.Errorf("Stats().Entries after reopen = %d, want 3", got)
	}
	if err := s.Append(testRecords(3, 2)); err != nil {
		t.Fatal(err)
	}
	got := ids(collect(t, s))
	want := ids(testRecords(0, 5))
	if !slices.Equal(got, want) {
		t.Errorf("replayed ids = %v, want %v", got, want)
	}
}

// writeSegment writes n records into one sealed segment and returns its
// path and the offset where each entry starts.
func writeSegment(t *testing.T, dir string, n int) (string, []int64) {
	t.Helper()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int64
	for i := 0; i < n; i++ {
		offsets = append(offsets, s.fileLen)
		if s.file == nil {
			offsets[i] = headerBytes
		}
		if err := s.Append([]store.Record{testRecord(i)}); err != nil {
			t.Fatal(err)
		}
	}
	path := s.path(s.fileSeq)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, offsets
}

// Damage after a crash or a disk fault costs only the damaged entries:
// a torn tail keeps every entry before it, and a bad byte in the middle
// of a segment costs the one entry it falls in, because reading resumes
// at the next entry whose checksum matches.
func TestSpoolDamage(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(t *testing.T, path string, offsets []int64)
		wantIDs []string
	}{
		{
			name: "torn tail mid-payload",
			damage: func(t *testing.T, path string, offsets []int64) {
				if err := os.Truncate(path, offsets[4]+20); err != nil {
					t.Fatal(err)
				}
			},
			wantIDs: ids(testRecords(0, 4)),
		},
		{
			name: "torn tail mid-header",
			damage: func(t *testing.T, path string, offsets []int64) {
				if err := os.Truncate(path, offsets[4]+3); err != nil {
					t.Fatal(err)
				}
			},
			wantIDs: ids(testRecords(0, 4)),
		},
		{
			name: "flipped byte in a payload",
			damage: func(t *testing.T, path string, offsets []int64) {
				flipByte(t, path, offsets[2]+30)
			},
			wantIDs: ids(append(testRecords(0, 2), testRecords(3, 2)...)),
		},
		{
			name: "flipped byte in a length",
			damage: func(t *testing.T, path string, offsets []int64) {
				flipByte(t, path, offsets[1]+1)
			},
			wantIDs: ids(append(testRecords(0, 1), testRecords(2, 3)...)),
		},
		{
			name: "zeroed tail block",
			damage: func(t *testing.T, path string, offsets []int64) {
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.Write(make([]byte, 4096))
				f.Close()
			},
			wantIDs: ids(testRecords(0, 5)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path, offsets := writeSegment(t, dir, 5)
			tt.damage(t, path, offsets)

			s := openSpool(t, dir, Options{})
			if got, want := s.Stats().Entries, int64(len(tt.wantIDs)); got != want {
				t.Errorf("Stats().Entries = %d, want %d", got, want)
			}
			got := ids(collect(t, s))
			if !slices.Equal(got, tt.wantIDs) {
				t.Errorf("replayed ids = %v, want %v", got, tt.wantIDs)
			}
			if st := s.Stats(); st != (Stats{}) {
				t.Errorf("Stats after replay = %+v, want zero", st)
			}
		})
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0xff
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A file that is not a spool segment, or is from another format
// version, stops Open with an error naming it instead of being read as
// records or deleted.
func TestSpoolBadHeader(t *testing.T) {
	tests := []struct {
		name   string
		header string
	}{
		{"not a spool file", "PK\x03\x04garbage"},
		{"other version", "DMSPOOL9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "0000000000000001.seg"), []byte(tt.header), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(dir, Options{}); err == nil {
				t.Errorf("Open of a segment starting %q succeeded, want an error", tt.header)
			}
		})
	}
}

// A replay that fails midway keeps the segment, and the next replay
// resumes; into a real store, every record ends up stored exactly once.
func TestSpoolReplayIdempotent(t *testing.T) {
	ctx := context.Background()
	url := testdb.SQLiteURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	s := openSpool(t, t.TempDir(), Options{})
	if err := s.Append(testRecords(0, 50)); err != nil {
		t.Fatal(err)
	}

	calls := 0
	errDown := errors.New("database down")
	n, err := s.Replay(ctx, 10, func(ctx context.Context, batch []store.Record) error {
		calls++
		if calls == 3 {
			return errDown
		}
		return st.Insert(ctx, batch)
	})
	if !errors.Is(err, errDown) || n != 20 {
		t.Fatalf("first Replay = %d, %v; want 20, %v", n, err, errDown)
	}
	if got := s.Stats().Entries; got != 30 {
		t.Errorf("Stats().Entries after a failed replay = %d, want 30", got)
	}

	n, err = s.Replay(ctx, 10, st.Insert)
	if err != nil || n != 30 {
		t.Fatalf("second Replay = %d, %v; want 30, nil", n, err)
	}
	if got := countRecords(t, st); got != 50 {
		t.Errorf("stored records = %d, want 50", got)
	}
}

// A crash after a replay and before its segment was deleted replays the
// segment again at the next start; the store skips stored ids, so the
// records are not counted twice.
func TestSpoolCrashBeforeDelete(t *testing.T) {
	ctx := context.Background()
	url := testdb.SQLiteURL(t)
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	dir := t.TempDir()
	path, _ := writeSegment(t, dir, 5)
	saved, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	s := openSpool(t, dir, Options{})
	if n, err := s.Replay(ctx, 100, st.Insert); err != nil || n != 5 {
		t.Fatalf("Replay = %d, %v; want 5, nil", n, err)
	}
	s.Close()
	// The crash: the segment is back as if the delete never happened.
	if err := os.WriteFile(path, saved, 0o600); err != nil {
		t.Fatal(err)
	}

	again := openSpool(t, dir, Options{})
	if n, err := again.Replay(ctx, 100, st.Insert); err != nil || n != 5 {
		t.Fatalf("Replay after restart = %d, %v; want 5, nil", n, err)
	}
	if got := countRecords(t, st); got != 5 {
		t.Errorf("stored records = %d, want 5", got)
	}
}

// Append rejects records that would take the spool past MaxBytes, so a
// long outage fills a bounded amount of disk, and accepts again after a
// replay frees space.
func TestSpoolFull(t *testing.T) {
	s := openSpool(t, t.TempDir(), Options{MaxBytes: 4096})
	var err error
	appended := 0
	for i := 0; i < 100 && err == nil; i++ {
		if err = s.Append([]store.Record{testRecord(i)}); err == nil {
			appended++
		}
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Append past MaxBytes = %v, want ErrFull", err)
	}
	if st := s.Stats(); st.Bytes > 4096 || st.Entries != int64(appended) {
		t.Errorf("Stats = %+v, want at most 4096 bytes and %d entries", st, appended)
	}
	if got := len(collect(t, s)); got != appended {
		t.Errorf("replayed %d records, want %d", got, appended)
	}
	if err := s.Append([]store.Record{testRecord(0)}); err != nil {
		t.Errorf("Append after replay = %v, want nil", err)
	}
}

func countRecords(t *testing.T, st store.Store) int64 {
	t.Helper()
	stats, err := st.Stats(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return stats.TotalCalls
}

// A second Open of a directory in use fails with an error naming the
// flag to change, because two processes appending to and replaying one
// spool would clash on segment names.
func TestSpoolLocked(t *testing.T) {
	dir := t.TempDir()
	s := openSpool(t, dir, Options{})
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "--spool-dir") {
		t.Fatalf("second Open = %v, want an error naming --spool-dir", err)
	}
	s.Close()
	again, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close = %v, want nil", err)
	}
	again.Close()
}

// BenchmarkAppend appends batches of 100 records, the writer's unit when
// the database fails, and syncs after each, and reports records per
// second: the rate the spool takes while the database is down.
func BenchmarkAppend(b *testing.B) {
	s, err := Open(b.TempDir(), Options{MaxBytes: 1 << 40})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch := testRecords(0, 100)
	appended := 0
	for b.Loop() {
		if err := s.Append(batch); err != nil {
			b.Fatal(err)
		}
		if err := s.Sync(); err != nil {
			b.Fatal(err)
		}
		appended += len(batch)
	}
	b.ReportMetric(float64(appended)/b.Elapsed().Seconds(), "records/s")
}
