package metering

import (
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/store"
)

// DefaultMaxStoredBody is the default number of bytes of a request or
// response body kept in a record.
const DefaultMaxStoredBody = 1 << 20

// Options configure a Meter. Zero values take the defaults in brackets.
type Options struct {
	// MaxStoredBody is the number of bytes of each body kept for
	// request_data and response_data [DefaultMaxStoredBody]. A longer body
	// is cut and ends with "…[truncated, original size N bytes]", and the
	// record carries FlagRequestTruncated or FlagResponseTruncated. The
	// assembled message of a stream is held to the same size.
	MaxStoredBody int
	// Bodies selects whether bodies are kept at all [BodiesStored].
	Bodies BodyStorage
	// RedactRules are applied to the stored bodies, the message and the
	// error message of every record, before API keys and bearer tokens
	// are masked [none].
	RedactRules []RedactRule
	// Now is the clock [time.Now].
	Now func() time.Time
}

// Attribution names who made a call, from the X-DeepMeter-* request
// headers. An empty field was not given.
type Attribution struct {
	UserID   string // overrides the request body's "user" field
	PageTab  string // the UI page tab the call came from
	Endpoint string // the caller's feature route; the upstream path when empty
	NoBodies bool   // the caller asked that this call's bodies not be stored
}

// Sink receives finished records. Enqueue must not block; it returns false
// when it did not accept the record, which is then lost. Writer is a Sink.
type Sink interface {
	Enqueue(store.Record) bool
}

// Meter turns metered calls into records. It is safe for concurrent use.
type Meter struct {
	prices    *pricing.Table
	sink      Sink
	logger    *slog.Logger
	metrics   *meterMetrics
	maxStored int
	now       func() time.Time

	bodies      BodyStorage
	redactRules []RedactRule

	// warnedMu guards warned, the models already logged as unpriced.
	warnedMu sync.Mutex
	warned   map[string]struct{}
}

// maxWarnedModels bounds the set of models logged once as unpriced, so a
// client sending random model names cannot grow it without limit. Models
// past it are still flagged and counted, just not logged.
const maxWarnedModels = 1000

// NewMeter returns a Meter that prices calls with prices and sends each
// record to sink. A nil prices table leaves every record unpriced, a nil
// sink drops the records, a nil logger discards logs and a nil reg
// registers no metrics.
func NewMeter(prices *pricing.Table, sink Sink, logger *slog.Logger, reg prometheus.Registerer, opts Options) *Meter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxStoredBody <= 0 {
		opts.MaxStoredBody = DefaultMaxStoredBody
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Meter{
		prices:      prices,
		sink:        sink,
		logger:      logger,
		metrics:     newMeterMetrics(reg),
		maxStored:   opts.MaxStoredBody,
		now:         opts.Now,
		bodies:      opts.Bodies,
		redactRules: opts.RedactRules,
		warned:      make(map[string]struct{}),
	}
}

// IsMetered reports whether a request is a call the Meter records: a POST
// to one of the completion paths or to the Anthropic-format messages
// path, compared exactly. DeepSeek also serves every path under /v1, so
// the completion paths are listed under /v1 as well.
func IsMetered(method, path string) bool {
	if method != http.MethodPost {
		return false
	}
	switch path {
	case "/chat/completions", "/v1/chat/completions", "/beta/completions", "/v1/beta/completions",
		"/v1/completions", "/anthropic/v1/messages":
		return true
	}
	return false
}

// ObservePassthrough counts a request that is forwarded but not metered.
// Paths outside the known DeepSeek API share the path label "other", so
// the label set stays bounded.
func (m *Meter) ObservePassthrough(method, path string, status int, d time.Duration) {
	label := passthroughPathLabel(path)
	m.metrics.passthrough.WithLabelValues(label, statusClass(status)).Inc()
	m.metrics.passthroughDuration.WithLabelValues(label).Observe(d.Seconds())
	m.logger.Debug("passthrough request", "method", method, "path", label, "status", status, "duration", d)
}

// Begin starts metering one call. body is the complete request body as
// sent upstream; Begin copies what it keeps, so the caller may reuse body
// afterwards. id becomes the record's ID and start its CreatedAt.
func (m *Meter) Begin(id string, start time.Time, upstreamPath string, body []byte, attr Attribution) *Call {
	return &Call{
		m:            m,
		id:           id,
		start:        start,
		upstreamPath: upstreamPath,
		attr:         attr,
		req:          parseRequest(body, m.maxStored),
		began:        time.Now(),
	}
}

// BeginOverLimit is Begin for a request whose body the proxy stopped
// reading at its limit: head holds the first limit bytes. The stored body
// is always marked truncated, with a size of more than limit bytes,
// because the real size is unknown.
func (m *Meter) BeginOverLimit(id string, start time.Time, upstreamPath string, head []byte, limit int64, attr Attribution) *Call {
	c := m.Begin(id, start, upstreamPath, head, attr)
	c.req.data = storedHead(head, m.maxStored) + overLimitMarker(limit)
	c.req.truncated = true
	return c
}

// End describes how a call ended.
type End struct {
	// StatusCode is the status the client got: the upstream's, or the one
	// the proxy set when it wrote its own error, such as 502 or 504. Zero
	// means the upstream's status from Call.Response.
	StatusCode int
	// Err is the transport or copy error; nil when the body ended cleanly.
	Err error
	// ClientAborted is set when the client went away before the end.
	ClientAborted bool
	// TimedOut is set when the upstream made no progress in time.
	TimedOut bool
}

// Call is one metered call in progress, from Meter.Begin to Call.Finish.
//
// A Call is not safe for concurrent use. Response, Write and Finish may run
// on different goroutines only if each call happens before the next one,
// for example because the goroutine that ran the last Write signals the one
// that runs Finish through a channel or sync.WaitGroup. Finish must run
// for every call, even one that failed before a response arrived, because
// it also stops the goroutine that decodes a compressed body.
type Call struct {
	m            *Meter
	id           string
	start        time.Time
	upstreamPath string
	attr         Attribution
	req          requestInfo

	hasHead     bool
	status      int       // upstream status from Response
	headAt      time.Time // when Response was called
	firstByteAt time.Time // when the first body byte arrived

	// firstPayloadAt is when the first body byte that carries content
	// arrived; keep-alive blank lines and comments do not count. It is
	// written by the goroutine that feeds the parser and read by Finish
	// after that goroutine has stopped.
	firstPayloadAt time.Time

	// body receives the response bytes as they arrive: the parser itself,
	// a decoder feeding it, or a discarding writer for an encoding that
	// cannot be decoded. It is nil until Response or the first Write.
	body        bodyWriter
	jsonBody    *jsonBody     // set for a JSON or error body
	stream      *streamParser // set for an event stream
	decoder     *decoder      // set for a gzip or deflate body
	badEncoding string        // a Content-Encoding that cannot be decoded

	// began is when Begin ran, on the real clock whatever Options.Now is,
	// and progressed the time after began of the last payload progress
	// in nanoseconds. progressed is written by the goroutine that feeds
	// the parser (the decoder's, for a compressed body) and read by
	// LastProgress from any goroutine.
	began      time.Time
	progressed atomic.Int64

	finished bool
	record   store.Record
}

// LastProgress returns when the call last made progress on the payload:
// Begin, the response head, or body bytes that carry content. Blank lines
// before a JSON body, keep-alive comments, blank lines and data lines
// without JSON in a stream are no progress, so an upstream that sends
// only keep-alives can be timed out. The time is on the real clock, never
// Options.Now. LastProgress is safe to call from any goroutine while the
// call runs.
func (c *Call) LastProgress() time.Time {
	return c.began.Add(time.Duration(c.progressed.Load()))
}

// markProgress records payload progress now.
func (c *Call) markProgress() {
	c.progressed.Store(int64(time.Since(c.began)))
}

// markBodyProgress records payload progress in the body, and the time of
// the first payload byte. A compressed body is parsed on the decoder's
// goroutine, some time after its bytes arrived, so its time to first byte
// stays the time of the first raw byte.
func (c *Call) markBodyProgress() {
	if c.decoder == nil && c.firstPayloadAt.IsZero() {
		c.firstPayloadAt = c.m.now()
	}
	c.markProgress()
}

// Response records the arrival of the upstream response head, before the
// first Write. Calls after the first are ignored.
func (c *Call) Response(status int, header http.Header) {
	if c.hasHead {
		return
	}
	c.hasHead = true
	c.status = status
	c.headAt = c.m.now()
	c.markProgress()
	if c.body == nil {
		c.startBody(header)
	}
}

// Write takes a copy of response body bytes exactly as they came from the
// upstream, still compressed if they were. It always returns len(p), nil,
// and keeps no reference to p.
func (c *Call) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.firstByteAt.IsZero() {
		c.firstByteAt = c.m.now()
	}
	if c.body == nil {
		c.startBody(nil)
	}
	if c.badEncoding != "" {
		// An undecodable body cannot be told apart from keep-alives, so
		// every byte counts as progress.
		c.markBodyProgress()
	}
	c.body.write(p)
	return len(p), nil
}

// Finish builds the call's record, prices it, counts it in the metrics
// and sends it to the sink. It returns the record, also when the sink
// rejected it. A second call returns the same record and sends nothing.
func (c *Call) Finish(end End) store.Record {
	if c.finished {
		return c.record
	}
	c.finished = true
	finishedAt := c.m.now()

	var decodeErr error
	if c.decoder != nil {
		decodeErr = c.decoder.close()
	}
	if c.stream != nil {
		c.stream.finish()
	}

	rec, cost := c.buildRecord(end, finishedAt, decodeErr)
	c.m.protect(&rec, c.attr.NoBodies)
	c.m.price(&rec, cost)
	c.m.metrics.observe(&rec, c.ttfbKnown())
	if c.m.sink != nil {
		c.m.sink.Enqueue(rec)
	}
	c.record = rec
	return rec
}

// StreamDone reports whether an event stream has sent its [DONE] event.
// It is false for other bodies and for compressed streams, which are
// decoded on another goroutine until Finish.
func (c *Call) StreamDone() bool {
	return c.decoder == nil && c.stream != nil && c.stream.done
}

// StreamFinished reports whether an event stream has sent its final
// chunk, the one with a finish reason, or its end event. A client may
// hang up right after the final chunk, so what arrives later is no part
// of the answer it missed. It is false for other bodies and for
// compressed streams, like StreamDone.
func (c *Call) StreamFinished() bool {
	return c.decoder == nil && c.stream != nil && (c.stream.done || c.stream.finishReason != "")
}

// startBody picks the parser for the response body from its head.
func (c *Call) startBody(header http.Header) {
	if isEventStream(header, c.status, c.req.stream) {
		c.stream = newStreamParser(c.m.maxStored, maxEventLine)
		c.stream.onProgress = c.markBodyProgress
		c.body = c.stream
	} else {
		c.jsonBody = newJSONBody(c.m.maxStored)
		c.jsonBody.onProgress = c.markBodyProgress
		c.body = c.jsonBody
	}

	switch encoding := contentEncoding(header); encoding {
	case "", "identity":
	case "gzip", "x-gzip", "deflate":
		c.decoder = newDecoder(encoding, c.body)
		c.body = c.decoder
	default:
		c.badEncoding = encoding
		c.body = discardWriter{}
	}
}

// ttfbKnown reports whether any part of the response arrived, so the time
// to the first byte means something.
func (c *Call) ttfbKnown() bool {
	return c.hasHead || !c.firstByteAt.IsZero()
}

// bodyWriter consumes response body bytes. write must not keep p.
type bodyWriter interface {
	write(p []byte)
}

type discardWriter struct{}

func (discardWriter) write([]byte) {}
