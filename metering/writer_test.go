package metering

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deepmeter/deepmeter/internal/testlog"
	"github.com/deepmeter/deepmeter/store"
)

// openSQLite returns a migrated SQLite store in a temporary directory.
func openSQLite(t testing.TB) store.Store {
	t.Helper()
	ctx := context.Background()
	url := "sqlite:" + t.TempDir() + "/x.db"
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatalf("migrate %s: %v", url, err)
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// failingStore fails Insert while failures remain (forever when
// failures is negative) and otherwise passes it to the real store.
type failingStore struct {
	store.Store
	failures atomic.Int64
	calls    atomic.Int64
}

var errInjected = errors.New("database is locked")

func (s *failingStore) Insert(ctx context.Context, records []store.Record) error {
	s.calls.Add(1)
	if n := s.failures.Load(); n != 0 {
		s.failures.Add(-1)
		return errInjected
	}
	return s.Store.Insert(ctx, records)
}

// storedCount returns how many records st holds.
func storedCount(t testing.TB, st store.Store) int64 {
	t.Helper()
	_, total, err := st.List(context.Background(), store.ListQuery{Limit: 1})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	return total
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline. It checks progress that happens on another goroutine; speed
// is measured by benchmarks, not here.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testRecord(i int) store.Record {
	return store.Record{
		ID:           fmt.Sprintf("rec-%04d", i),
		CreatedAt:    testStart.Add(time.Duration(i) * time.Second),
		Endpoint:     "/chat/completions",
		UpstreamPath: "/chat/completions",
		Model:        "deepseek-chat",
		StatusCode:   200,
		UsageSource:  store.UsageReported,
		Success:      true,
		Message:      "hi",
	}
}

// TestWriterBatches queues records before Run starts, so the batches are
// known: full batches first, then the rest, each inserted once.
func TestWriterBatches(t *testing.T) {
	st := openSQLite(t)
	reg := prometheus.NewRegistry()
	w := NewWriter(st, WriterOptions{BatchSize: 10, FlushInterval: time.Millisecond}, nil, reg)
	for i := 0; i < 95; i++ {
		if !w.Enqueue(testRecord(i)) {
			t.Fatalf("Enqueue(%d) = false, want true", i)
		}
	}
	if got := w.QueueDepth(); got != 95 {
		t.Errorf("queue depth = %d, want 95", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	waitFor(t, "95 stored records", func() bool { return storedCount(t, st) == 95 })
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	batches := findMetric(t, reg, "deepmeter_batch_size", map[string]string{}).GetHistogram()
	if batches.GetSampleCount() != 10 || batches.GetSampleSum() != 95 {
		t.Errorf("batches, records = %d, %v; want 10, 95", batches.GetSampleCount(), batches.GetSampleSum())
	}
	for name, want := range map[string]float64{
		"deepmeter_records_queued_total":  95,
		"deepmeter_records_written_total": 95,
		"deepmeter_records_dropped_total": 0,
		"deepmeter_write_errors_total":    0,
	} {
		if got := counterValue(t, reg, name, map[string]string{}); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := w.QueueDepth(); got != 0 {
		t.Errorf("queue depth after Close = %d, want 0", got)
	}
	if got := testutil.ToFloat64(w.metrics.depth); got != 0 {
		t.Errorf("queue_depth gauge = %v, want 0", got)
	}
}

// TestWriterFlushInterval writes a partial batch once the flush interval
// passes, without waiting for Close or a full batch.
func TestWriterFlushInterval(t *testing.T) {
	st := openSQLite(t)
	w := NewWriter(st, WriterOptions{BatchSize: 500, FlushInterval: 10 * time.Millisecond}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	for i := 0; i < 3; i++ {
		w.Enqueue(testRecord(i))
	}
	waitFor(t, "3 stored records", func() bool { return storedCount(t, st) == 3 })
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestWriterQueueFull drops records past the queue size without blocking,
// counts each one and logs the drops once per interval, not per record.
func TestWriterQueueFull(t *testing.T) {
	st := openSQLite(t)
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	w := NewWriter(st, WriterOptions{QueueSize: 5}, slog.New(slog.NewTextHandler(&logs, nil)), reg)

	accepted := 0
	for i := 0; i < 8; i++ {
		if w.Enqueue(testRecord(i)) {
			accepted++
		}
	}
	if accepted != 5 {
		t.Errorf("accepted %d records, want 5", accepted)
	}
	if got := counterValue(t, reg, "deepmeter_records_dropped_total", map[string]string{}); got != 3 {
		t.Errorf("records_dropped_total = %v, want 3", got)
	}
	if n := strings.Count(logs.String(), "records dropped"); n != 1 {
		t.Errorf("logged drops %d times, want once:\n%s", n, logs.String())
	}
	if got := w.QueueDepth(); got != 5 {
		t.Errorf("queue depth = %d, want 5", got)
	}

	// Close without Run writes what was accepted.
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := storedCount(t, st); got != 5 {
		t.Errorf("stored %d records, want 5", got)
	}
	if w.Enqueue(testRecord(100)) {
		t.Errorf("Enqueue after Close = true, want false")
	}
	if got := counterValue(t, reg, "deepmeter_records_dropped_total", map[string]string{}); got != 4 {
		t.Errorf("records_dropped_total after a closed Enqueue = %v, want 4", got)
	}
	if err := w.Close(context.Background()); err == nil {
		t.Errorf("second Close = nil, want an error")
	}
}

// TestWriterRetry keeps a failed batch in memory and retries it with
// backoff until the store recovers, while new records keep queuing. No
// record may be lost or written twice.
func TestWriterRetry(t *testing.T) {
	st := &failingStore{Store: openSQLite(t)}
	st.failures.Store(3)
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	w := NewWriter(st, WriterOptions{BatchSize: 10, FlushInterval: time.Millisecond, RetryBackoff: time.Millisecond},
		slog.New(slog.NewTextHandler(&logs, nil)), reg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	for i := 0; i < 10; i++ {
		w.Enqueue(testRecord(i))
	}
	waitFor(t, "the failures to be used up", func() bool { return st.failures.Load() == 0 })
	for i := 10; i < 25; i++ {
		w.Enqueue(testRecord(i))
	}
	waitFor(t, "25 stored records", func() bool { return storedCount(t, st) == 25 })
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}

	if got := counterValue(t, reg, "deepmeter_write_errors_total", map[string]string{}); got != 3 {
		t.Errorf("write_errors_total = %v, want 3", got)
	}
	if got := counterValue(t, reg, "deepmeter_records_written_total", map[string]string{}); got != 25 {
		t.Errorf("records_written_total = %v, want 25", got)
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 3 || !strings.Contains(logs.String(), "batch_size=") {
		t.Errorf("logged %d errors, want 3 with batch_size:\n%s", n, logs.String())
	}
}

// TestWriterCloseDeadline gives up when the store stays down past the
// Close deadline and reports how many records were lost.
func TestWriterCloseDeadline(t *testing.T) {
	st := &failingStore{Store: openSQLite(t)}
	st.failures.Store(-1)
	reg := prometheus.NewRegistry()
	w := NewWriter(st, WriterOptions{BatchSize: 4, RetryBackoff: time.Millisecond}, nil, reg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	for i := 0; i < 10; i++ {
		w.Enqueue(testRecord(i))
	}
	waitFor(t, "a failed insert", func() bool { return st.calls.Load() > 0 })

	closeCtx, closeCancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer closeCancel()
	err := w.Close(closeCtx)
	if err == nil || !strings.Contains(err.Error(), "10 records not written") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want 10 records not written and a deadline error", err)
	}
	if !errors.Is(err, errInjected) {
		t.Errorf("Close = %v, want it to wrap the last store error", err)
	}
	if got := counterValue(t, reg, "deepmeter_records_dropped_total", map[string]string{}); got != 10 {
		t.Errorf("records_dropped_total = %v, want 10", got)
	}
	if got := w.QueueDepth(); got != 0 {
		t.Errorf("queue depth = %d, want 0 after giving up", got)
	}
}

// TestWriterRunContextEnds stops Run when its context ends; records queued
// afterwards are still written by Close.
func TestWriterRunContextEnds(t *testing.T) {
	st := openSQLite(t)
	w := NewWriter(st, WriterOptions{}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		w.Run(ctx)
		close(done)
	}()
	cancel()
	<-done
	for i := 0; i < 3; i++ {
		w.Enqueue(testRecord(i))
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := storedCount(t, st); got != 3 {
		t.Errorf("stored %d records, want 3", got)
	}
}

// TestWriterConcurrentClose enqueues from many goroutines while Close
// runs: every record Enqueue accepted must be stored, and none other.
func TestWriterConcurrentClose(t *testing.T) {
	st := openSQLite(t)
	w := NewWriter(st, WriterOptions{QueueSize: 100000, BatchSize: 50, FlushInterval: time.Millisecond}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	var accepted atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if w.Enqueue(testRecord(g*1000 + i)) {
					accepted.Add(1)
				}
			}
		}()
	}
	time.Sleep(time.Millisecond)
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	if got, want := storedCount(t, st), accepted.Load(); got != want {
		t.Errorf("stored %d records, want the %d accepted", got, want)
	}
}

// TestMeterToStore runs a call through a Meter into a Writer and reads it
// back from SQLite: the fields the admin API shows must survive.
func TestMeterToStore(t *testing.T) {
	st := openSQLite(t)
	w := NewWriter(st, WriterOptions{FlushInterval: time.Millisecond}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	clock := &manualClock{now: testStart}
	m := NewMeter(testPrices(t), w, nil, nil, Options{Now: clock.Now})
	call := m.Begin("e2e-1", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", true)), Attribution{UserID: "u1", PageTab: "chat"})
	clock.Advance(120 * time.Millisecond)
	call.Response(200, withEncoding(sseHeader(), "gzip"))
	call.Write(gzipBytes(t, sseBody(chunk("deepseek-chat", "Hi", "stop", usageJSON(10000, 500, 9000, 1000)), "[DONE]")))
	clock.Advance(30 * time.Millisecond)
	want := call.Finish(End{StatusCode: 200, ClientAborted: false})

	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got, err := st.Record(context.Background(), "e2e-1")
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	if got.Cost != want.Cost || got.Cost.String() != "0.000742" || got.Currency != "USD" || !got.Priced {
		t.Errorf("stored cost = %s %s (priced %v), want 0.000742 USD", got.Cost, got.Currency, got.Priced)
	}
	if got.ResponseData != want.ResponseData || got.RequestData != want.RequestData || got.Message != "Say hello" {
		t.Errorf("stored bodies or message differ:\n got %q / %q\nwant %q / %q", got.ResponseData, got.Message, want.ResponseData, "Say hello")
	}
	if got.TTFBMillis != 120 || got.ProcessingTimeMillis != 150 || !got.CreatedAt.Equal(testStart) {
		t.Errorf("ttfb, processing, created = %d, %d, %v; want 120, 150, %v", got.TTFBMillis, got.ProcessingTimeMillis, got.CreatedAt, testStart)
	}
	if !got.Success || got.UserID != "u1" || got.PageTab != "chat" || got.PromptCacheHitTokens != 9000 {
		t.Errorf("stored record = %+v, want the metered call", got)
	}
}

// TestRetryDelay doubles the wait after each failure up to the cap and
// starts over after a success.
func TestRetryDelay(t *testing.T) {
	d := retryDelay{first: 500 * time.Millisecond}
	d.reset()
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := d.take(); got != w {
			t.Errorf("wait %d = %v, want %v", i, got, w)
		}
	}
	d.reset()
	if got := d.take(); got != 500*time.Millisecond {
		t.Errorf("wait after reset = %v, want 500ms", got)
	}
}

// loggedDrops returns the sum of the counts of the "records dropped"
// lines in logs and how many such lines there are.
func loggedDrops(t *testing.T, logs string) (sum int64, lines int) {
	t.Helper()
	for _, m := range regexp.MustCompile(`msg="records dropped" count=(\d+)`).FindAllStringSubmatch(logs, -1) {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil {
			t.Fatalf("parse drop count %q: %v", m[1], err)
		}
		sum += n
		lines++
	}
	return sum, lines
}

// TestWriterDropLogSums drops 105 records in one burst. The first drop is
// logged at once, and the other 104 in one summary line, when the window
// ends or at Close, so the log and records_dropped_total agree.
func TestWriterDropLogSums(t *testing.T) {
	cases := []struct {
		name     string
		interval time.Duration
		// waitForSummary waits for the summary line before Close.
		waitForSummary bool
	}{
		{name: "summary when the window ends", interval: 50 * time.Millisecond, waitForSummary: true},
		{name: "summary at Close", interval: time.Hour},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := openSQLite(t)
			reg := prometheus.NewRegistry()
			var logs testlog.Buffer
			w := NewWriter(st, WriterOptions{QueueSize: 5}, slog.New(slog.NewTextHandler(&logs, nil)), reg)
			w.dropLogInterval = c.interval

			for i := 0; i < 110; i++ {
				w.Enqueue(testRecord(i))
			}
			if sum, lines := loggedDrops(t, logs.String()); sum != 1 || lines != 1 {
				t.Errorf("after the burst: logged %d drops in %d lines, want 1 in 1:\n%s", sum, lines, logs.String())
			}
			if c.waitForSummary {
				waitFor(t, "the summary drop log", func() bool {
					_, lines := loggedDrops(t, logs.String())
					return lines == 2
				})
			}

			if err := w.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if got := counterValue(t, reg, "deepmeter_records_dropped_total", map[string]string{}); got != 105 {
				t.Errorf("records_dropped_total = %v, want 105", got)
			}
			sum, lines := loggedDrops(t, logs.String())
			if sum != 105 {
				t.Errorf("logged %d drops, want 105 like the metric:\n%s", sum, logs.String())
			}
			if lines != 2 {
				t.Errorf("logged drops in %d lines, want 2:\n%s", lines, logs.String())
			}
		})
	}
}
