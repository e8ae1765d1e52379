package metering

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/deepmeter/deepmeter/store"
)

// Spool defaults of WriterOptions.
const (
	// DefaultSyncInterval is how often the spool is synced to disk, so a
	// power cut loses at most the spooled records of this window.
	DefaultSyncInterval = 200 * time.Millisecond
	// DefaultReplayInterval is how often a non-empty spool is replayed.
	DefaultReplayInterval = time.Second
	// DefaultWriteTimeout bounds one Insert when there is a spool. A
	// database that holds a batch longer, for example behind a table
	// lock, is treated as failing and the batch goes to the spool.
	DefaultWriteTimeout = 5 * time.Second
)

// SpoolErr returns the error of the last failed spool append or sync, or
// nil when there is no spool, or when an append succeeded or a replay
// emptied the spool since that failure. So a full spool that a replay
// drained no longer counts as failing, although nothing was appended
// since because the database takes the records again.
func (w *Writer) SpoolErr() error {
	if p := w.spoolErr.Load(); p != nil {
		return *p
	}
	return nil
}

// appendToSpool appends records to the spool and counts them. The caller
// updates the queue depth.
func (w *Writer) appendToSpool(records []store.Record) error {
	if err := w.spool.Append(records); err != nil {
		w.metrics.spoolErrors.Inc()
		w.setSpoolErr(err)
		return fmt.Errorf("spooling %d records: %w", len(records), err)
	}
	w.spoolErr.Store(nil)
	w.metrics.spooled.Add(float64(len(records)))
	return nil
}

func (w *Writer) setSpoolErr(err error) {
	w.spoolErr.Store(&err)
}

// spoolPending appends the pending batch to the spool and clears it. On
// failure it logs, rate-limited like drops, and keeps the batch.
func (w *Writer) spoolPending() error {
	if err := w.appendToSpool(w.pending); err != nil {
		w.logger.Error("spooling records failed; retrying the database", "batch_size", len(w.pending), "spool_dir", w.spool.Dir(), "error", err)
		return err
	}
	w.metrics.depth.Set(float64(w.waiting.Add(-int64(len(w.pending)))))
	w.pending = w.pending[:0]
	return nil
}

// spoolPendingWhileFailing sends the pending batch to the spool when the
// database failed and no replay has succeeded since, or when the store is
// not ready yet, and reports whether it did. Spooled records keep their order with the ones spooled before,
// and the writer does not wait out one timeout per batch on a dead
// database.
func (w *Writer) spoolPendingWhileFailing() bool {
	if w.spool == nil || (!w.failing.Load() && w.storeReady()) {
		return false
	}
	return w.spoolPending() == nil
}

// storeReady reports whether WriterOptions.StoreReady is nil or closed.
func (w *Writer) storeReady() bool {
	if w.opts.StoreReady == nil {
		return true
	}
	select {
	case <-w.opts.StoreReady:
		return true
	default:
		return false
	}
}

// runSpool syncs the spool every SyncInterval and replays it every
// ReplayInterval until ctx ends.
func (w *Writer) runSpool(ctx context.Context) {
	syncTicker := time.NewTicker(w.opts.SyncInterval)
	defer syncTicker.Stop()
	replayTicker := time.NewTicker(w.opts.ReplayInterval)
	defer replayTicker.Stop()

	// A spool left by an earlier process is replayed at once.
	w.replay(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-syncTicker.C:
			w.syncSpool()
		case <-replayTicker.C:
			w.replay(ctx)
		}
	}
}

func (w *Writer) syncSpool() {
	if err := w.spool.Sync(); err != nil {
		w.metrics.spoolErrors.Inc()
		w.setSpoolErr(err)
		w.logger.Error("syncing the spool failed", "spool_dir", w.spool.Dir(), "error", err)
	}
}

// replay inserts the spooled records into the store. A success with the
// database marked failing marks it working again, so batches go to the
// database again.
func (w *Writer) replay(ctx context.Context) {
	if !w.storeReady() {
		return
	}
	// An append that fails while this replay runs stores a new error,
	// which the swap below leaves in place.
	lastSpoolErr := w.spoolErr.Load()
	if w.spool.Stats().Entries == 0 {
		// An earlier replay emptied the spool after the last batch went
		// to it, so the database took records since.
		w.failing.Store(false)
		w.spoolErr.CompareAndSwap(lastSpoolErr, nil)
		return
	}
	start := time.Now()
	n, err := w.spool.Replay(ctx, w.opts.BatchSize, func(ctx context.Context, batch []store.Record) error {
		ctx, cancel := context.WithTimeout(ctx, w.opts.WriteTimeout)
		defer cancel()
		if err := w.st.Insert(ctx, batch); err != nil {
			return err
		}
		w.metrics.replayed.Add(float64(len(batch)))
		return nil
	})
	switch {
	case err == nil:
		if w.spool.Stats().Entries == 0 {
			w.spoolErr.CompareAndSwap(lastSpoolErr, nil)
		}
		if w.failing.Swap(false) {
			w.logger.Info("database takes records again; spool replayed", "replayed", n, "duration", time.Since(start))
		} else if n > 0 {
			w.logger.Debug("spool replayed", "replayed", n, "duration", time.Since(start))
		}
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// Stopping: the rest stays in the spool for the next start.
	default:
		w.metrics.spoolErrors.Inc()
		if !w.failing.Swap(true) {
			w.logger.Warn("replaying the spool failed; spooling records until a replay succeeds", "replayed", n, "retry_in", w.opts.ReplayInterval, "error", err)
		} else {
			w.logger.Debug("replaying the spool failed; retrying", "replayed", n, "retry_in", w.opts.ReplayInterval, "error", err)
		}
	}
}
