package metering

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deepmeter/deepmeter/spool"
	"github.com/deepmeter/deepmeter/store"
)

func openTestSpool(t *testing.T, dir string, opts spool.Options) *spool.Spool {
	t.Helper()
	sp, err := spool.Open(dir, opts)
	if err != nil {
		t.Fatalf("open spool %s: %v", dir, err)
	}
	t.Cleanup(func() { sp.Close() })
	return sp
}

// blockingStore holds every Insert until its context ends while blocked
// is set, the way a table lock holds a write.
type blockingStore struct {
	failingStore
	blocked chan struct{} // closed to release
}

func (s *blockingStore) Insert(ctx context.Context, records []store.Record) error {
	select {
	case <-s.blocked:
		return s.failingStore.Insert(ctx, records)
	case <-ctx.Done():
		s.calls.Add(1)
		return ctx.Err()
	}
}

// TestWriterSpoolOutage sends records while the database fails: they go
// to the spool after one failed insert, without an insert per batch, and
// reach the store exactly once when the database is back.
func TestWriterSpoolOutage(t *testing.T) {
	st := &failingStore{Store: openSQLite(t)}
	st.failures.Store(-1)
	sp := openTestSpool(t, t.TempDir(), spool.Options{})
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	w := NewWriter(st, WriterOptions{BatchSize: 10, FlushInterval: time.Millisecond, Spool: sp, ReplayInterval: 20 * time.Millisecond},
		slog.New(slog.NewTextHandler(&logs, nil)), reg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	for i := 0; i < 100; i++ {
		if !w.Enqueue(testRecord(i)) {
			t.Fatalf("Enqueue(%d) = false during an outage, want true", i)
		}
	}
	waitFor(t, "100 spooled records", func() bool { return sp.Stats().Entries == 100 })
	if got := w.QueueDepth(); got != 0 {
		t.Errorf("queue depth = %d, want 0 with everything spooled", got)
	}
	// Whichever of the writer and the replay sees the failure first logs
	// it, once.
	if n := strings.Count(logs.String(), "level=ERROR") + strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("logged %d errors and warnings during the outage, want 1:\n%s", n, logs.String())
	}

	st.failures.Store(0)
	waitFor(t, "100 stored records", func() bool { return storedCount(t, st) == 100 })
	waitFor(t, "an empty spool", func() bool { return sp.Stats().Entries == 0 })
	for i := 100; i < 110; i++ {
		w.Enqueue(testRecord(i))
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	checks := []struct {
		metric string
		want   float64
	}{
		{"deepmeter_records_spooled_total", 100},
		{"deepmeter_records_replayed_total", 100},
		{"deepmeter_records_written_total", 10},
		{"deepmeter_records_dropped_total", 0},
		{"deepmeter_spool_entries", 0},
	}
	for _, c := range checks {
		if got := counterValue(t, reg, c.metric, map[string]string{}); got != c.want {
			t.Errorf("%s = %v, want %v", c.metric, got, c.want)
		}
	}
	if got := storedCount(t, st); got != 110 {
		t.Errorf("stored %d records, want 110", got)
	}
	if !strings.Contains(logs.String(), "spool replayed") {
		t.Errorf("no log of the recovery:\n%s", logs.String())
	}
}

// TestWriterSpoolQueueFull fills the queue: the records past it go to the
// spool instead of being dropped, and a writer started later on the same
// spool, as after a restart, stores them.
func TestWriterSpoolQueueFull(t *testing.T) {
	st := openSQLite(t)
	dir := t.TempDir()
	sp := openTestSpool(t, dir, spool.Options{})
	reg := prometheus.NewRegistry()
	w := NewWriter(st, WriterOptions{QueueSize: 5, Spool: sp}, nil, reg)
	for i := 0; i < 8; i++ {
		if !w.Enqueue(testRecord(i)) {
			t.Errorf("Enqueue(%d) = false, want true with a spool", i)
		}
	}
	if got := sp.Stats().Entries; got != 3 {
		t.Errorf("spool entries = %d, want 3", got)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := storedCount(t, st); got != 5 {
		t.Errorf("stored %d records after Close, want the 5 queued", got)
	}
	if got := counterValue(t, reg, "deepmeter_records_dropped_total", map[string]string{}); got != 0 {
		t.Errorf("records_dropped_total = %v, want 0", got)
	}
	sp.Close()

	// The restart: a new spool and writer on the same directory.
	again := openTestSpool(t, dir, spool.Options{})
	w2 := NewWriter(st, WriterOptions{Spool: again}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w2.Run(ctx)
	waitFor(t, "8 stored records", func() bool { return storedCount(t, st) == 8 })
	if err := w2.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestWriterSpoolSlowStore holds every insert, as a table lock does: the
// batch goes to the spool after WriteTimeout, Enqueue keeps accepting,
// and the records are stored once the lock is released.
func TestWriterSpoolSlowStore(t *testing.T) {
	st := &blockingStore{failingStore: failingStore{Store: openSQLite(t)}, blocked: make(chan struct{})}
	sp := openTestSpool(t, t.TempDir(), spool.Options{})
	w := NewWriter(st, WriterOptions{
		QueueSize: 10, BatchSize: 5, FlushInterval: time.Millisecond,
		Spool: sp, WriteTimeout: 20 * time.Millisecond, ReplayInterval: 10 * time.Millisecond,
	}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	for i := 0; i < 50; i++ {
		if !w.Enqueue(testRecord(i)) {
			t.Fatalf("Enqueue(%d) = false behind a held lock, want true", i)
		}
	}
	waitFor(t, "50 spooled records", func() bool { return sp.Stats().Entries == 50 })
	close(st.blocked)
	waitFor(t, "50 stored records", func() bool { return storedCount(t, st) == 50 })
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestWriterSpoolFull drops only when the queue is full, and the spool
// rejects the record too, and reports the spool error for readiness.
func TestWriterSpoolFull(t *testing.T) {
	st := openSQLite(t)
	sp := openTestSpool(t, t.TempDir(), spool.Options{MaxBytes: 2500})
	reg := prometheus.NewRegistry()
	w := NewWriter(st, WriterOptions{QueueSize: 2, Spool: sp}, nil, reg)
	accepted := 0
	for i := 0; i < 10; i++ {
		if w.Enqueue(testRecord(i)) {
			accepted++
		}
	}
	spooled := int(sp.Stats().Entries)
	if spooled == 0 || spooled == 8 || accepted != 2+spooled {
		t.Errorf("accepted %d with %d spooled, want 2 queued plus the spooled, with some spooled and some not", accepted, spooled)
	}
	if got, want := counterValue(t, reg, "deepmeter_records_dropped_total", map[string]string{}), float64(10-accepted); got != want {
		t.Errorf("records_dropped_total = %v, want %v", got, want)
	}
	if err := w.SpoolErr(); err == nil {
		t.Errorf("SpoolErr = nil, want the full spool's error")
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestWriterSpoolErrClears fills the spool during an outage, then lets
// the database recover. Once the replay has drained the spool, SpoolErr
// must be nil although no append succeeded since, because readiness
// reads it and would otherwise report a full spool forever.
func TestWriterSpoolErrClears(t *testing.T) {
	st := &failingStore{Store: openSQLite(t)}
	st.failures.Store(-1)
	sp := openTestSpool(t, t.TempDir(), spool.Options{MaxBytes: 2500})
	w := NewWriter(st, WriterOptions{QueueSize: 2, BatchSize: 10, FlushInterval: time.Millisecond, Spool: sp, ReplayInterval: 20 * time.Millisecond}, nil, nil)

	// Before Run, the queue takes 2 records and the spool the rest until
	// it is full.
	accepted := 0
	for i := 0; i < 20; i++ {
		if w.Enqueue(testRecord(i)) {
			accepted++
		}
	}
	if err := w.SpoolErr(); err == nil {
		t.Fatalf("SpoolErr with a full spool = nil, want an error")
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st.failures.Store(0)
	go w.Run(ctx)
	waitFor(t, "all accepted records stored", func() bool { return storedCount(t, st) == int64(accepted) })
	waitFor(t, "an empty spool", func() bool { return sp.Stats().Entries == 0 })
	waitFor(t, "SpoolErr = nil after the spool drained", func() bool { return w.SpoolErr() == nil })

	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, want := storedCount(t, st), int64(accepted); got != want {
		t.Errorf("stored %d records, want %d", got, want)
	}
}

// TestWriterStoreReadyGate holds every record in the spool, without an
// insert, until StoreReady is closed, as serve does while the schema is
// not migrated yet. Then the replay stores each record once.
func TestWriterStoreReadyGate(t *testing.T) {
	st := &failingStore{Store: openSQLite(t)}
	sp := openTestSpool(t, t.TempDir(), spool.Options{})
	ready := make(chan struct{})
	w := NewWriter(st, WriterOptions{BatchSize: 10, FlushInterval: time.Millisecond, Spool: sp,
		ReplayInterval: 20 * time.Millisecond, StoreReady: ready}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	for i := 0; i < 30; i++ {
		if !w.Enqueue(testRecord(i)) {
			t.Fatalf("Enqueue(%d) = false before the store is ready, want true", i)
		}
	}
	waitFor(t, "30 spooled records", func() bool { return sp.Stats().Entries == 30 })
	if got := st.calls.Load(); got != 0 {
		t.Errorf("%d inserts before the store is ready, want 0", got)
	}

	close(ready)
	waitFor(t, "30 stored records", func() bool { return storedCount(t, st) == 30 })
	waitFor(t, "an empty spool", func() bool { return sp.Stats().Entries == 0 })
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := storedCount(t, st); got != 30 {
		t.Errorf("stored %d records, want 30", got)
	}
}
