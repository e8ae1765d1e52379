// Package spool keeps metering records on disk while the database cannot
// take them, so a database outage, a slow database or a full in-memory
// queue loses no record.
//
// A spool is a directory of append-only segment files named
// 0000000000000001.seg, 0000000000000002.seg and so on. A segment starts
// with the 8-byte magic "DMSPOOL1", whose last byte is the format version.
// Each entry that follows is
//
//	uint32 length, little endian: bytes of the payload
//	uint32 CRC-32C (Castagnoli) of the 4 length bytes and the payload
//	payload: one store.Record as JSON
//
// Append writes entries with one write call and leaves them in the page
// cache, so they survive a crash of the process at once. They survive a
// power cut only after Sync, which runs fsync. The owner calls Sync on a
// timer, so a power cut loses at most the entries appended since the
// last call.
//
// Replay reads the sealed segments oldest first, hands their records in
// order to a callback in batches, and deletes each segment once all of its
// records were accepted. A segment is never appended to after Replay has
// sealed it or after the process restarts, so a crash tears at most the
// last entry of a segment. Reading stops at a torn tail (a header or
// payload cut short) and keeps the entries before it. An entry whose
// checksum does not match is skipped, and reading resumes at the next
// offset where a whole entry with a matching checksum starts, so one bad
// byte costs the entry it falls in and no other.
//
// A crash between a replay and the deletion of its segment replays the
// segment again at the next start; store.Store.Insert skips ids already
// stored, so no record is counted twice.
//
// A Spool is safe for concurrent use. The zero value is not usable; call
// Open.
package spool

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/deepmeter/deepmeter/store"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxBytes     = 1 << 30  // 1 GiB
	DefaultSegmentBytes = 16 << 20 // 16 MiB
	// MaxEntryBytes bounds one encoded record. A record holds at most two
	// bodies of the stored-body cap (64 MiB each at most) plus its fields.
	MaxEntryBytes = 160 << 20
)

// ErrFull is returned by Append when the entries would take the spool
// past Options.MaxBytes.
var ErrFull = errors.New("spool is full")

// ErrClosed is returned by Append and Replay after Close.
var ErrClosed = errors.New("spool is closed")

const (
	magic        = "DMSPOOL1"
	headerBytes  = 8
	segmentExt   = ".seg"
	segmentDigit = 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configure a Spool. Zero values take the defaults.
type Options struct {
	MaxBytes     int64        // bytes of all segments; Append fails with ErrFull past it [DefaultMaxBytes]
	SegmentBytes int64        // size at which Append starts a new segment [DefaultSegmentBytes]
	Logger       *slog.Logger // receives corrupt-entry reports; nil discards
}

// Stats is the size of a spool: entries written and not yet replayed, and
// the bytes of their segment files.
type Stats struct {
	Entries int64
	Bytes   int64
}

// Spool is an on-disk queue of records. See the package documentation.
type Spool struct {
	dir    string
	opts   Options
	logger *slog.Logger
	lock   *os.File // holds the directory lock; nil where locks are not supported

	// mu guards every field below. Appends hold it for one write call;
	// Sync holds it only to take the file.
	mu      sync.Mutex
	closed  bool
	file    *os.File // segment being appended to, nil until the first Append
	fileSeq uint64   // sequence number of file, or of the next segment when file is nil
	fileLen int64    // bytes in file
	dirty   bool     // entries appended to file since the last Sync
	stats   Stats
	// counts holds the entries of each segment, for Stats after a replay
	// deletes it. Segments found at Open with torn or corrupt entries
	// count only their readable entries.
	counts map[uint64]int64
	sizes  map[uint64]int64

	// replayMu serializes Replay calls.
	replayMu sync.Mutex
	// resume is how far Replay got into the oldest segment before its
	// callback failed, so the next Replay does not hand the same records
	// again. It is a speed-up only: replaying them again is harmless.
	resumeSeq uint64
	resumeOff int64
}

// Open opens the spool in dir, creating the directory if needed, locks it
// against other processes and counts the entries left by an earlier one. It never appends to an
// existing segment: the next Append starts a new one.
func Open(dir string, opts Options) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool directory: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{
		lock:    lock,
		dir:     dir,
		opts:    opts,
		logger:  logger,
		fileSeq: 1,
		counts:  map[uint64]int64{},
		sizes:   map[uint64]int64{},
	}
	seqs, err := s.segments()
	if err != nil {
		s.unlock()
		return nil, err
	}
	for _, seq := range seqs {
		n, size, err := s.countSegment(seq)
		if err != nil {
			s.unlock()
			return nil, err
		}
		s.counts[seq] = n
		s.sizes[seq] = size
		s.stats.Entries += n
		s.stats.Bytes += size
		s.fileSeq = seq + 1
	}
	return s, nil
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Stats returns the entries and bytes the spool holds.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Append writes records to the spool, in order, with one write call per
// segment it fills. It does not sync; see Sync. It returns ErrFull when the records would take
// the spool past MaxBytes, and then writes none of them.
func (s *Spool) Append(records []store.Record) error {
	if len(records) == 0 {
		return nil
	}
	var buf bytes.Buffer
	ends := make([]int, len(records)) // offset in buf after each entry
	for i := range records {
		if err := appendEntry(&buf, &records[i]); err != nil {
			return err
		}
		ends[i] = buf.Len()
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.stats.Bytes+int64(buf.Len())+headerBytes > s.opts.MaxBytes {
		return ErrFull
	}

	// Write as many whole entries as fit in the current segment, then
	// start the next one, so a segment, which Replay reads whole, stays
	// near SegmentBytes unless one entry alone is larger.
	from, i := 0, 0
	for i < len(records) {
		if s.file != nil && s.fileLen > headerBytes && s.fileLen+int64(ends[i]-from) > s.opts.SegmentBytes {
			if err := s.sealLocked(); err != nil {
				return err
			}
		}
		if s.file == nil {
			if err := s.createLocked(); err != nil {
				return err
			}
		}
		j := i + 1
		for j < len(records) && s.fileLen+int64(ends[j]-from) <= s.opts.SegmentBytes {
			j++
		}
		if err := s.writeLocked(buf.Bytes()[from:ends[j-1]], j-i); err != nil {
			return err
		}
		from, i = ends[j-1], j
	}
	return nil
}

// writeLocked writes n encoded entries to the current segment.
func (s *Spool) writeLocked(entries []byte, n int) error {
	written, err := s.file.Write(entries)
	s.fileLen += int64(written)
	s.stats.Bytes += int64(written)
	s.sizes[s.fileSeq] += int64(written)
	if err != nil {
		// A short write leaves a torn entry that readers skip. Seal the
		// segment so the next Append starts cleanly in a new one.
		s.sealLocked()
		return fmt.Errorf("append to spool: %w", err)
	}
	s.dirty = true
	s.counts[s.fileSeq] += int64(n)
	s.stats.Entries += int64(n)
	return nil
}

// Sync flushes appended entries to stable storage with fsync.
func (s *Spool) Sync() error {
	s.mu.Lock()
	f, dirty := s.file, s.dirty
	s.dirty = false
	s.mu.Unlock()
	if f == nil || !dirty {
		return nil
	}
	// Sync runs without the lock so appends go on meanwhile. A segment
	// sealed in between was synced by sealLocked, and the closed file's
	// error says nothing about the data.
	if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return fmt.Errorf("sync spool: %w", err)
	}
	return nil
}

// Replay hands every spooled record, oldest first, to insert in batches
// of at most batchSize, and deletes each segment once insert accepted all
// of its records. It seals the segment being appended to first, so
// records appended during the replay wait for the next one. It stops at
// the first error of insert or ctx and returns how many records insert
// accepted. insert must be idempotent: after a crash, records it accepted
// can be handed to it again.
func (s *Spool) Replay(ctx context.Context, batchSize int, insert func(context.Context, []store.Record) error) (int, error) {
	if batchSize <= 0 {
		batchSize = 500
	}
	s.replayMu.Lock()
	defer s.replayMu.Unlock()

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, ErrClosed
	}
	if s.file != nil {
		if err := s.sealLocked(); err != nil {
			s.mu.Unlock()
			return 0, err
		}
	}
	limit := s.fileSeq
	s.mu.Unlock()

	seqs, err := s.segments()
	if err != nil {
		return 0, err
	}
	replayed := 0
	for _, seq := range seqs {
		if seq >= limit {
			break
		}
		n, err := s.replaySegment(ctx, seq, batchSize, insert)
		replayed += n
		if err != nil {
			return replayed, err
		}
	}
	return replayed, nil
}

// replaySegment replays one sealed segment and deletes it.
func (s *Spool) replaySegment(ctx context.Context, seq uint64, batchSize int, insert func(context.Context, []store.Record) error) (int, error) {
	f, err := os.Open(s.path(seq))
	if err != nil {
		return 0, fmt.Errorf("open spool segment: %w", err)
	}
	defer f.Close()

	start := int64(0)
	if s.resumeSeq == seq {
		start = s.resumeOff
	}
	r, err := newReader(f, s.path(seq), s.logger)
	if err != nil {
		return 0, err
	}
	replayed := 0
	batch := make([]store.Record, 0, batchSize)
	var batchEnd int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := insert(ctx, batch); err != nil {
			return err
		}
		replayed += len(batch)
		s.resumeSeq, s.resumeOff = seq, batchEnd
		s.mu.Lock()
		s.counts[seq] -= int64(len(batch))
		s.stats.Entries -= int64(len(batch))
		s.mu.Unlock()
		batch = batch[:0]
		return nil
	}
	for {
		rec, end, err := r.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return replayed, err
		}
		if end <= start {
			continue
		}
		batch = append(batch, rec)
		batchEnd = end
		if len(batch) == batchSize {
			if err := flush(); err != nil {
				return replayed, err
			}
		}
	}
	if err := flush(); err != nil {
		return replayed, err
	}

	if err := os.Remove(s.path(seq)); err != nil {
		return replayed, fmt.Errorf("delete replayed spool segment: %w", err)
	}
	s.mu.Lock()
	// Entries skipped as torn or corrupt leave the count here.
	s.stats.Entries -= s.counts[seq]
	s.stats.Bytes -= s.sizes[seq]
	delete(s.counts, seq)
	delete(s.sizes, seq)
	s.mu.Unlock()
	s.resumeSeq, s.resumeOff = 0, 0
	return replayed, nil
}

// Close syncs and closes the segment being appended to. Entries not yet
// replayed stay on disk for the next Open.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	defer s.unlock()
	if s.file == nil {
		return nil
	}
	return s.sealLocked()
}

func (s *Spool) unlock() {
	if s.lock != nil {
		s.lock.Close()
	}
}

// createLocked starts segment fileSeq and syncs the directory, so the new
// file's name survives a power cut.
func (s *Spool) createLocked() error {
	f, err := os.OpenFile(s.path(s.fileSeq), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("create spool segment: %w", err)
	}
	if _, err := f.WriteString(magic); err != nil {
		f.Close()
		os.Remove(s.path(s.fileSeq))
		return fmt.Errorf("create spool segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		os.Remove(s.path(s.fileSeq))
		return err
	}
	s.file = f
	s.fileLen = headerBytes
	s.stats.Bytes += headerBytes
	s.sizes[s.fileSeq] = headerBytes
	s.counts[s.fileSeq] = 0
	return nil
}

// sealLocked syncs and closes the segment being appended to; the next
// Append starts a new one.
func (s *Spool) sealLocked() error {
	f := s.file
	s.file = nil
	s.fileSeq++
	s.fileLen = 0
	s.dirty = false
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("seal spool segment: %w", err)
	}
	return nil
}

func (s *Spool) path(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%0*d%s", segmentDigit, seq, segmentExt))
}

// segments returns the sequence numbers of the segment files, ascending.
// Other files in the directory are ignored.
func (s *Spool) segments() ([]uint64, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read spool directory: %w", err)
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, segmentExt) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segmentExt), 10, 64)
		if err != nil || seq == 0 {
			continue
		}
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	return seqs, nil
}

// countSegment returns the readable entries and the size of a segment
// left by an earlier process.
func (s *Spool) countSegment(seq uint64) (int64, int64, error) {
	f, err := os.Open(s.path(seq))
	if err != nil {
		return 0, 0, fmt.Errorf("open spool segment: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("open spool segment: %w", err)
	}
	r, err := newReader(f, s.path(seq), s.logger)
	if err != nil {
		return 0, 0, err
	}
	var n int64
	for {
		_, _, err := r.next()
		if errors.Is(err, io.EOF) {
			return n, info.Size(), nil
		}
		if err != nil {
			return 0, 0, err
		}
		n++
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync spool directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync spool directory: %w", err)
	}
	return nil
}

// appendEntry encodes r as one entry at the end of buf.
func appendEntry(buf *bytes.Buffer, r *store.Record) error {
	start := buf.Len()
	buf.Write(make([]byte, 8))
	if err := json.NewEncoder(buf).Encode(r); err != nil {
		buf.Truncate(start)
		return fmt.Errorf("encode record %s for the spool: %w", r.ID, err)
	}
	entry := buf.Bytes()[start:]
	length := len(entry) - 8
	if length > MaxEntryBytes {
		buf.Truncate(start)
		return fmt.Errorf("record %s is %d bytes encoded, more than the spool's limit of %d", r.ID, length, MaxEntryBytes)
	}
	binary.LittleEndian.PutUint32(entry[0:4], uint32(length))
	binary.LittleEndian.PutUint32(entry[4:8], entryChecksum(entry[0:4], entry[8:]))
	return nil
}

func entryChecksum(lengthBytes, payload []byte) uint32 {
	sum := crc32.Update(0, castagnoli, lengthBytes)
	return crc32.Update(sum, castagnoli, payload)
}

// reader reads the entries of one segment. It holds the whole segment in
// memory, which SegmentBytes bounds apart from one oversized entry.
type reader struct {
	data   []byte
	off    int
	path   string
	logger *slog.Logger
}

func newReader(f *os.File, path string, logger *slog.Logger) (*reader, error) {
	data, err := io.ReadAll(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("read spool segment %s: %w", filepath.Base(path), err)
	}
	r := &reader{data: data, path: path, logger: logger}
	switch {
	case len(data) < headerBytes && bytes.HasPrefix([]byte(magic), data):
		// A crash right after the file was created.
		r.off = len(data)
	case len(data) < headerBytes || string(data[:headerBytes-1]) != magic[:headerBytes-1]:
		return nil, fmt.Errorf("spool segment %s is not a spool file: bad magic", filepath.Base(path))
	case data[headerBytes-1] != magic[headerBytes-1]:
		return nil, fmt.Errorf("spool segment %s has format version %q; this build reads %q", filepath.Base(path), data[headerBytes-1], magic[headerBytes-1])
	default:
		r.off = headerBytes
	}
	return r, nil
}

// next returns the next good record and the offset just after its entry,
// or io.EOF after the last one. It skips and logs a corrupt entry and a
// torn tail.
func (r *reader) next() (store.Record, int64, error) {
	for r.off < len(r.data) {
		length, ok := r.entryAt(r.off)
		if !ok {
			start := r.off
			next := r.resync(start + 1)
			if next < 0 {
				r.logger.Warn("skipping torn or corrupt tail of spool segment",
					"segment", filepath.Base(r.path), "offset", start, "bytes", len(r.data)-start)
				r.off = len(r.data)
				return store.Record{}, 0, io.EOF
			}
			r.logger.Warn("skipping corrupt entry in spool segment",
				"segment", filepath.Base(r.path), "offset", start, "bytes", next-start)
			r.off = next
			continue
		}
		payload := r.data[r.off+8 : r.off+8+length]
		entryOff := r.off
		r.off += 8 + length
		var rec store.Record
		if err := json.Unmarshal(payload, &rec); err != nil {
			r.logger.Warn("skipping undecodable entry in spool segment",
				"segment", filepath.Base(r.path), "offset", entryOff, "error", err)
			continue
		}
		return rec, int64(r.off), nil
	}
	return store.Record{}, 0, io.EOF
}

// entryAt returns the payload length of a whole entry with a matching
// checksum at off.
func (r *reader) entryAt(off int) (int, bool) {
	if len(r.data)-off < 8 {
		return 0, false
	}
	length := int(binary.LittleEndian.Uint32(r.data[off : off+4]))
	if length == 0 || length > MaxEntryBytes || length > len(r.data)-off-8 {
		return 0, false
	}
	sum := binary.LittleEndian.Uint32(r.data[off+4 : off+8])
	if entryChecksum(r.data[off:off+4], r.data[off+8:off+8+length]) != sum {
		return 0, false
	}
	return length, true
}

// resync returns the first offset at or after from where a good entry
// starts, or -1. Most offsets fail at once on the length check: read as a
// little-endian length, four bytes of JSON text exceed MaxEntryBytes.
func (r *reader) resync(from int) int {
	for off := from; off < len(r.data); off++ {
		if _, ok := r.entryAt(off); ok {
			return off
		}
	}
	return -1
}
