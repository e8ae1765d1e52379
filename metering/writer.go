package metering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deepmeter/deepmeter/spool"
	"github.com/deepmeter/deepmeter/store"
)

// Writer defaults.
const (
	DefaultQueueSize     = 10000
	DefaultBatchSize     = 500
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultRetryBackoff  = 500 * time.Millisecond

	// maxRetryBackoff caps the doubling wait between retries of a batch.
	maxRetryBackoff = 10 * time.Second
	// batchWriteTimeout bounds one Insert, so a database that stops
	// responding turns into a retry instead of a stuck writer.
	batchWriteTimeout = 30 * time.Second
	// dropLogInterval is the least time between two logs of dropped
	// records. The drops in between are summed into one line when the
	// interval ends.
	dropLogInterval = 10 * time.Second
)

// WriterOptions configure a Writer. Zero values take the defaults in
// brackets.
type WriterOptions struct {
	QueueSize     int           // maximum records waiting to be written; past it Enqueue spools or drops [DefaultQueueSize]
	BatchSize     int           // maximum records in one Insert [DefaultBatchSize]
	FlushInterval time.Duration // maximum wait for a batch to fill [DefaultFlushInterval]
	RetryBackoff  time.Duration // first wait after a failed batch; doubles up to 10s [DefaultRetryBackoff]

	// Spool, when set, takes the records the database cannot: a batch
	// whose insert failed, every batch while the database is failing, and
	// records that find the queue full. Run replays it into the store in
	// the background. Nil keeps failed batches in memory and retries them,
	// and drops records that find the queue full. The Writer does not
	// close the spool.
	Spool *spool.Spool
	// SyncInterval is how often Run syncs the spool to disk [DefaultSyncInterval].
	SyncInterval time.Duration
	// ReplayInterval is how often Run tries to replay the spool [DefaultReplayInterval].
	ReplayInterval time.Duration
	// WriteTimeout bounds one Insert; a batch that times out goes to the
	// spool [DefaultWriteTimeout with a spool, 30s without].
	WriteTimeout time.Duration
	// StoreReady, when set with a spool, is closed once the store can take
	// records, for example after its schema was migrated. Until then every
	// batch goes to the spool and no replay runs. Nil means ready.
	StoreReady <-chan struct{}
}

// Writer is a Sink that queues records in memory and inserts them into a
// store in batches from one goroutine, the caller's Run. Enqueue never
// waits on the database.
//
// With a spool (WriterOptions.Spool), a batch whose insert fails goes to
// the spool, and so does every later batch until a replay of the spool
// succeeds, so an outage costs one failed insert and no waiting. A record
// that finds the queue full is appended to the spool by Enqueue itself.
// Run replays the spool into the store every ReplayInterval. A record is
// dropped only when the queue is full and the spool fails too.
//
// Without a spool, a batch that fails is kept and retried with backoff
// while new records keep queuing, and Enqueue drops records when the
// queue is full.
//
// Records still in memory, queued or in the batch being inserted, are
// lost if the process dies. The queue holds at most FlushInterval of
// finished calls while the writer keeps up.
//
// Enqueue, QueueDepth and Close are safe for concurrent use. Run is meant
// to be called once; a second call returns at once.
type Writer struct {
	st      store.Store
	opts    WriterOptions
	logger  *slog.Logger
	metrics *writerMetrics

	queue chan store.Record
	stop  chan struct{} // closed by Close
	// runDone is closed when Run returns; Close waits on it.
	runDone chan struct{}

	// mu guards closed and started. Enqueue holds it for reading while it
	// sends, so no record enters the queue after Close has set closed.
	mu      sync.RWMutex
	closed  bool
	started bool

	// pending is the batch being written or retried. Only Run uses it
	// while Run runs; Close uses it after Run has returned.
	pending []store.Record
	// waiting counts records accepted and not yet written or given up.
	waiting atomic.Int64

	// dropMu guards the drop log state: the drops not logged yet, the
	// reason of the latest, the time of the last drop log and the timer
	// that logs the drops of the current window when it ends.
	dropMu       sync.Mutex
	lastDropLog  time.Time
	dropsToLog   int64
	dropReason   string
	dropLogTimer *time.Timer
	// dropLogInterval is the package constant, which tests shorten.
	dropLogInterval time.Duration

	// spool is opts.Spool; the fields below are used only with one.
	spool *spool.Spool
	// failing is true from a failed insert until the next successful
	// replay; while it is true, batches go straight to the spool.
	failing atomic.Bool
	// spoolErr is the error of the last failed spool append or sync, nil
	// after a later success.
	spoolErr atomic.Pointer[error]
}

// NewWriter returns a Writer for st. Start it with Run and stop it with
// Close. A nil logger discards logs and a nil reg registers no metrics.
func NewWriter(st store.Store, opts WriterOptions, logger *slog.Logger, reg prometheus.Registerer) *Writer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = DefaultRetryBackoff
	}
	if opts.SyncInterval <= 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.ReplayInterval <= 0 {
		opts.ReplayInterval = DefaultReplayInterval
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = batchWriteTimeout
		if opts.Spool != nil {
			opts.WriteTimeout = DefaultWriteTimeout
		}
	}
	return &Writer{
		spool:   opts.Spool,
		st:      st,
		opts:    opts,
		logger:  logger,
		metrics: newWriterMetrics(reg, opts.Spool),
		queue:   make(chan store.Record, opts.QueueSize),
		stop:    make(chan struct{}),
		runDone: make(chan struct{}),

		dropLogInterval: dropLogInterval,
	}
}

// Enqueue queues r for writing without waiting on the database. When the
// queue is full or the Writer is closed, it appends r to the spool, and
// when there is no spool or the append fails, it returns false and counts
// the record as dropped. The first drop after a quiet 10-second window is
// logged at once, and the drops after it in one summary line when the
// window ends or at Close.
func (w *Writer) Enqueue(r store.Record) bool {
	w.mu.RLock()
	accepted := false
	if !w.closed {
		select {
		case w.queue <- r:
			accepted = true
		default:
		}
	}
	closed := w.closed
	w.mu.RUnlock()

	if !accepted {
		if w.spool != nil && w.appendToSpool([]store.Record{r}) == nil {
			return true
		}
		w.drop(1, closed)
		return false
	}
	w.metrics.queued.Inc()
	w.metrics.depth.Set(float64(w.waiting.Add(1)))
	return true
}

// QueueDepth returns the number of records accepted and not yet written:
// those in the queue and those in the batch being written or retried.
func (w *Writer) QueueDepth() int {
	return int(w.waiting.Load())
}

// Run writes queued records until Close is called or ctx ends. A batch is
// written when it reaches BatchSize or FlushInterval after its first
// record. Records still queued when Run returns are written by Close.
func (w *Writer) Run(ctx context.Context) {
	w.mu.Lock()
	if w.closed || w.started {
		w.mu.Unlock()
		return
	}
	w.started = true
	w.mu.Unlock()
	defer close(w.runDone)

	if w.spool != nil {
		spoolCtx, cancel := context.WithCancel(ctx)
		spoolDone := make(chan struct{})
		go func() {
			defer close(spoolDone)
			w.runSpool(spoolCtx)
		}()
		defer func() {
			cancel()
			<-spoolDone
		}()
	}

	delay := retryDelay{first: w.opts.RetryBackoff}
	delay.reset()
	for {
		if len(w.pending) == 0 && !w.collect(ctx) {
			return
		}
		if w.stopping(ctx) {
			// Close writes the batch with its own deadline.
			return
		}
		if w.spoolPendingWhileFailing() {
			continue
		}
		if wait, err := w.writePending(ctx, &delay); err != nil && !w.sleep(ctx, wait) {
			return
		}
	}
}

// writePending inserts the pending batch. On success it clears the batch
// and resets delay. On failure it logs, keeps the batch for the next try
// and returns the wait before that try.
func (w *Writer) writePending(ctx context.Context, delay *retryDelay) (time.Duration, error) {
	err := w.insert(ctx, w.pending)
	if err == nil {
		w.pending = w.pending[:0]
		delay.reset()
		return 0, nil
	}
	if w.spool != nil {
		batchSize := len(w.pending)
		if w.spoolPending() == nil {
			// failing turns true only once the batch is in the spool, so a
			// replay that finds the spool empty can tell the database
			// worked since.
			if !w.failing.Swap(true) {
				w.logger.Error("writing records failed; spooling records until the database takes them again",
					"batch_size", batchSize, "spool_dir", w.spool.Dir(), "error", err)
			}
			return 0, nil
		}
	}
	wait := delay.take()
	w.logger.Error("writing records failed; retrying", "batch_size", len(w.pending), "retry_in", wait, "error", err)
	return wait, err
}

// retryDelay is the wait between tries of a failed batch. It starts at
// first and doubles with every failure, up to maxRetryBackoff.
type retryDelay struct {
	first, next time.Duration
}

func (d *retryDelay) reset() { d.next = d.first }

// take returns the wait before the next try and doubles the one after.
func (d *retryDelay) take() time.Duration {
	wait := d.next
	d.next = min(2*wait, maxRetryBackoff)
	return wait
}

// collect fills w.pending with the next batch: it waits for a first
// record, then takes more until BatchSize or FlushInterval. It returns
// false when Close was called or ctx ended before a first record.
func (w *Writer) collect(ctx context.Context) bool {
	select {
	case r := <-w.queue:
		w.pending = append(w.pending, r)
	case <-w.stop:
		return false
	case <-ctx.Done():
		return false
	}

	timer := time.NewTimer(w.opts.FlushInterval)
	defer timer.Stop()
	for len(w.pending) < w.opts.BatchSize {
		select {
		case r := <-w.queue:
			w.pending = append(w.pending, r)
		case <-timer.C:
			return true
		case <-w.stop:
			return true
		case <-ctx.Done():
			return true
		}
	}
	return true
}

// stopping reports whether Close was called or ctx ended.
func (w *Writer) stopping(ctx context.Context) bool {
	select {
	case <-w.stop:
		return true
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// sleep waits d, or less when Close is called or ctx ends, and reports
// whether the whole wait passed.
func (w *Writer) sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-w.stop:
		return false
	case <-ctx.Done():
		return false
	}
}

// insert writes one batch and counts the outcome.
func (w *Writer) insert(ctx context.Context, batch []store.Record) error {
	ctx, cancel := context.WithTimeout(ctx, w.opts.WriteTimeout)
	defer cancel()

	start := time.Now()
	err := w.st.Insert(ctx, batch)
	w.metrics.writeDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		w.metrics.writeErrors.Inc()
		return fmt.Errorf("inserting %d records: %w", len(batch), err)
	}
	w.metrics.batchSize.Observe(float64(len(batch)))
	w.metrics.written.Add(float64(len(batch)))
	w.metrics.depth.Set(float64(w.waiting.Add(-int64(len(batch)))))
	return nil
}

// Close stops accepting records, writes every record still queued and
// waits for Run to return. A failed batch is retried with backoff until
// ctx ends; Close then returns an error saying how many records were not
// written, and counts them as dropped. Close can take as long as the
// store's Insert takes to return after ctx ends.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errors.New("metering writer already closed")
	}
	w.closed = true
	started := w.started
	close(w.stop)
	w.mu.Unlock()

	if started {
		<-w.runDone
	}
	err := w.flush(ctx)
	w.flushDropLog()
	return err
}

// flush writes the pending batch and the rest of the queue, retrying
// failures until ctx ends. Nothing else reads the queue by then: Run has
// returned or never started.
func (w *Writer) flush(ctx context.Context) error {
	if w.spool != nil {
		// Sync last, after the queue went to the database or the spool.
		defer w.syncSpool()
	}
	delay := retryDelay{first: w.opts.RetryBackoff}
	delay.reset()
	var lastErr error
	for {
		for len(w.pending) < w.opts.BatchSize && len(w.queue) > 0 {
			w.pending = append(w.pending, <-w.queue)
		}
		if len(w.pending) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			break
		}
		if w.spoolPendingWhileFailing() {
			continue
		}

		wait, err := w.writePending(ctx, &delay)
		if err == nil {
			continue
		}
		lastErr = err
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
		}
		timer.Stop()
	}

	lost := int64(len(w.pending) + len(w.queue))
	w.pending = nil
	for len(w.queue) > 0 {
		<-w.queue
	}
	w.metrics.dropped.Add(float64(lost))
	w.metrics.depth.Set(float64(w.waiting.Add(-lost)))
	err := fmt.Errorf("%d records not written before the shutdown deadline: %w", lost, ctx.Err())
	if lastErr != nil {
		err = fmt.Errorf("%w (last error: %w)", err, lastErr)
	}
	w.logger.Error("records lost at shutdown", "count", lost, "error", err)
	return err
}

// drop counts n records that Enqueue rejected. It logs at most once every
// dropLogInterval: the first drop after a quiet window is logged at once,
// and the drops after it are summed into one line when the window ends,
// or by Close, so the logged counts add up to the metric.
func (w *Writer) drop(n int64, closed bool) {
	w.metrics.dropped.Add(float64(n))

	now := time.Now()
	w.dropMu.Lock()
	w.dropsToLog += n
	if closed {
		w.dropReason = "writer closed"
	} else {
		w.dropReason = "queue full"
	}
	if w.dropLogTimer != nil {
		// The timer logs these drops when the window ends.
		w.dropMu.Unlock()
		return
	}
	if wait := w.dropLogInterval - now.Sub(w.lastDropLog); wait > 0 {
		w.dropLogTimer = time.AfterFunc(wait, w.logDropsFromTimer)
		w.dropMu.Unlock()
		return
	}
	w.logDropsLocked(now)
	w.dropMu.Unlock()
}

// logDropsFromTimer logs the drops summed since the last drop log, when
// the window after it ends.
func (w *Writer) logDropsFromTimer() {
	w.dropMu.Lock()
	defer w.dropMu.Unlock()
	w.dropLogTimer = nil
	w.logDropsLocked(time.Now())
}

// flushDropLog logs the drops not logged yet and stops the timer that
// would log them. Close calls it, so no count waits in memory at exit.
func (w *Writer) flushDropLog() {
	w.dropMu.Lock()
	defer w.dropMu.Unlock()
	if w.dropLogTimer != nil {
		w.dropLogTimer.Stop()
		w.dropLogTimer = nil
	}
	w.logDropsLocked(time.Now())
}

// logDropsLocked logs and resets the drop count, if any. The caller holds
// dropMu.
func (w *Writer) logDropsLocked(now time.Time) {
	if w.dropsToLog == 0 {
		return
	}
	w.logger.Warn("records dropped", "count", w.dropsToLog, "reason", w.dropReason, "queue_size", w.opts.QueueSize)
	w.dropsToLog = 0
	w.lastDropLog = now
}

// writerMetrics are the Writer's Prometheus collectors.
type writerMetrics struct {
	queued        prometheus.Counter
	written       prometheus.Counter
	dropped       prometheus.Counter
	writeErrors   prometheus.Counter
	spooled       prometheus.Counter
	replayed      prometheus.Counter
	spoolErrors   prometheus.Counter
	depth         prometheus.Gauge
	batchSize     prometheus.Histogram
	writeDuration prometheus.Histogram
}

func newWriterMetrics(reg prometheus.Registerer, sp *spool.Spool) *writerMetrics {
	counter := func(name, help string) prometheus.Counter {
		return register(reg, prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}))
	}
	if sp != nil {
		gauge := func(name, help string, value func(spool.Stats) int64) {
			register(reg, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help},
				func() float64 { return float64(value(sp.Stats())) }))
		}
		gauge("spool_entries", "Records in the on-disk spool, waiting for a replay into the store.",
			func(s spool.Stats) int64 { return s.Entries })
		gauge("spool_bytes", "Bytes of the on-disk spool's segment files.",
			func(s spool.Stats) int64 { return s.Bytes })
	}
	return &writerMetrics{
		queued:      counter("records_queued_total", "Records accepted into the write queue."),
		written:     counter("records_written_total", "Records inserted into the store from the queue; replayed records are counted in records_replayed_total."),
		dropped:     counter("records_dropped_total", "Records lost because the queue was full and the spool failed or is not configured, or because the writer shut down before writing them."),
		spooled:     counter("records_spooled_total", "Records appended to the on-disk spool because the database failed or the queue was full."),
		replayed:    counter("records_replayed_total", "Records replayed from the on-disk spool into the store."),
		spoolErrors: counter("spool_errors_total", "Failed spool appends, syncs and replays."),
		writeErrors: counter("write_errors_total", "Failed batch inserts; each failed batch is retried."),
		depth: register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "queue_depth",
			Help:      "Records accepted and not yet written.",
		})),
		batchSize: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "batch_size",
			Help:      "Records per written batch.",
			Buckets:   []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500},
		})),
		writeDuration: register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "write_duration_seconds",
			Help:      "Time one batch insert took, failed ones included.",
			Buckets:   []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		})),
	}
}
