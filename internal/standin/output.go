package standin

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// splitSizes are the piece sizes that split=1 cycles through. They vary so
// that pieces end at every kind of place, between CR and LF included.
var splitSizes = []int{1, 2, 3, 5, 8, 13}

// compressor is a gzip or zlib writer.
type compressor interface {
	io.WriteCloser
	Flush() error
}

// output writes one response body and applies the faults that shape it:
// compression, line endings, split writes and cut_after. Its first write
// error sticks, like bufio.Writer's, so callers check err only in loops.
type output struct {
	w      http.ResponseWriter
	rc     *http.ResponseController
	f      *fault
	stream bool

	comp     compressor // nil without compression
	encoding string     // Content-Encoding value when comp is set

	eol string // SSE line ending
	sep string // between an SSE field name and its value

	written  int64 // uncompressed body bytes written
	events   int   // data events written, keep-alives not counted
	splitIdx int
	err      error

	log  *slog.Logger
	path string
}

func (s *Server) newOutput(w http.ResponseWriter, r *http.Request, f *fault, stream bool) *output {
	o := &output{
		w: w, rc: http.NewResponseController(w), f: f, stream: stream,
		eol: "\n", sep: ": ",
		log: s.log, path: r.URL.Path,
	}
	switch {
	case f.crlf:
		o.eol = "\r\n"
	case f.cr:
		o.eol = "\r"
	}
	if f.nospace {
		o.sep = ":"
	}

	// Compression needs the client's consent: a server must not send a coding
	// that Accept-Encoding does not allow.
	switch {
	case f.gzip && acceptsEncoding(r, "gzip"):
		o.comp, o.encoding = gzip.NewWriter(w), "gzip"
	case f.deflate && acceptsEncoding(r, "deflate"):
		o.comp, o.encoding = zlib.NewWriter(w), "deflate"
	case f.badEncoding:
		o.encoding = "gzip"
	}
	return o
}

// start sends the head.
func (o *output) start(status int, contentType string) {
	h := o.w.Header()
	h.Set("Content-Type", contentType)
	if o.encoding != "" {
		h.Set("Content-Encoding", o.encoding)
	}
	if o.f.gzip || o.f.deflate {
		h.Add("Vary", "Accept-Encoding")
	}
	if o.stream {
		h.Set("Cache-Control", "no-cache")
	}
	o.w.WriteHeader(status)
}

// write writes body bytes. On a JSON body with cut_after it drops the
// connection once the body reaches that many bytes.
func (o *output) write(p []byte) {
	if o.err != nil {
		return
	}
	if !o.stream && o.f.cutAfter >= 0 {
		if left := o.f.cutAfter - o.written; int64(len(p)) >= left {
			o.put(p[:left])
			o.abort()
		}
	}
	o.put(p)
}

func (o *output) writeString(s string) {
	o.write([]byte(s))
}

func (o *output) put(p []byte) {
	if !o.f.split {
		o.raw(p)
		return
	}
	for len(p) > 0 && o.err == nil {
		n := min(splitSizes[o.splitIdx%len(splitSizes)], len(p))
		o.splitIdx++
		o.raw(p[:n])
		o.flush()
		p = p[n:]
	}
}

func (o *output) raw(p []byte) {
	if o.err != nil || len(p) == 0 {
		return
	}
	o.written += int64(len(p))
	var err error
	if o.comp != nil {
		_, err = o.comp.Write(p)
	} else {
		_, err = o.w.Write(p)
	}
	o.fail(err)
}

// fail records the first write error and logs it. A client that leaves
// mid-body is normal in tests, so the level is debug.
func (o *output) fail(err error) {
	if err == nil || o.err != nil {
		return
	}
	o.err = err
	o.log.Debug("response write failed", "path", o.path, "bytes_written", o.written, "err", err)
}

// flush sends what is buffered, compressed data included.
func (o *output) flush() {
	if o.err != nil {
		return
	}
	if o.comp != nil {
		if err := o.comp.Flush(); err != nil {
			o.fail(err)
			return
		}
	}
	if err := o.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		o.fail(err)
	}
}

// abort sends what is buffered and drops the connection, so the client sees
// an unexpected EOF. The panic value is the one net/http treats as a quiet
// abort; it must not be recovered.
func (o *output) abort() {
	o.flush()
	panic(http.ErrAbortHandler)
}

// finish ends the body: it drops the connection when cut_after has not been
// reached yet, otherwise it closes the compressor. It leaves the last flush
// to net/http, which then sets Content-Length on a short unflushed body.
func (o *output) finish() {
	if o.f.cutAfter >= 0 {
		o.abort()
	}
	if o.comp != nil && o.err == nil {
		o.fail(o.comp.Close())
	}
}

// event writes one SSE event with an optional event name, then flushes. It
// drops the connection after cut_after data events.
func (o *output) event(name string, data []byte) {
	if o.f.cutAfter >= 0 && int64(o.events) >= o.f.cutAfter {
		o.abort()
	}

	var b bytes.Buffer
	if name != "" {
		b.WriteString("event" + o.sep + name + o.eol)
	}
	b.WriteString("data" + o.sep)
	if i := bytes.IndexByte(data, ','); o.f.multiline && i >= 0 {
		// The reader joins data lines with a newline, which JSON takes as
		// white space, and skips the comment line between them.
		b.Write(data[:i+1])
		b.WriteString(o.eol + ": multiline" + o.eol + "data" + o.sep)
		data = data[i+1:]
	}
	b.Write(data)
	b.WriteString(o.eol + o.eol)
	o.write(b.Bytes())
	o.flush()

	o.events++
	if o.f.cutAfter >= 0 && int64(o.events) >= o.f.cutAfter {
		o.abort()
	}
}

// done writes the "data: [DONE]" terminator, which is not counted as a data
// event.
func (o *output) done() {
	o.writeString("data" + o.sep + "[DONE]" + o.eol + o.eol)
	o.flush()
}

// keepAlive writes one keep-alive unit: a blank line before a JSON body or a
// comment on a stream.
func (o *output) keepAlive() {
	if o.stream {
		o.writeString(": keep-alive" + o.eol + o.eol)
	} else {
		o.writeString("\n")
	}
	o.flush()
}

// dataKeepAlive writes a keep-alive as a data line with no JSON.
func (o *output) dataKeepAlive() {
	o.writeString("data" + o.sep + o.eol + o.eol)
	o.flush()
}

// sleep waits for d and reports false when the client left or the server
// closed first.
func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.done:
		return false
	}
}

// hold waits for d, or with d zero until the client leaves or the server
// closes.
func (s *Server) hold(ctx context.Context, d time.Duration) {
	if d > 0 {
		s.sleep(ctx, d)
		return
	}
	select {
	case <-ctx.Done():
	case <-s.done:
	}
}

// startOK sends a 200 head, JSON or event stream as the output is, and the
// keep-alives that come before the body, each after keepalive_delay. It
// reports false when the request ended first.
func (s *Server) startOK(ctx context.Context, o *output) bool {
	if o.stream {
		o.start(http.StatusOK, "text/event-stream; charset=utf-8")
	} else {
		o.start(http.StatusOK, "application/json")
	}

	for range o.f.keepalive {
		if !s.sleep(ctx, o.f.keepaliveDelay) {
			return false
		}
		o.keepAlive()
	}
	for range o.f.dataKeepalive {
		if !s.sleep(ctx, o.f.keepaliveDelay) {
			return false
		}
		o.dataKeepAlive()
	}
	return o.err == nil
}

// endStream writes the end of a stream after its last chunk: the terminal
// event, or with trailing_keepalive the keep-alives and then a hold with no
// terminal event. With cut_after not reached yet, the connection drops
// before the terminal event.
func (s *Server) endStream(ctx context.Context, o *output, terminate func()) {
	if o.f.trailingKeepalive == 0 {
		if o.f.cutAfter >= 0 {
			o.abort()
		}
		terminate()
		o.finish()
		return
	}
	for range o.f.trailingKeepalive {
		if !s.sleep(ctx, o.f.keepaliveDelay) {
			return
		}
		o.keepAlive()
	}
	s.hold(ctx, o.f.hang)
	o.finish()
}

// resetConn closes the client connection without a response, with a TCP
// reset where the connection allows it. Where hijacking is not supported, as
// on HTTP/2, it aborts the handler instead.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0) // a zero linger makes Close send RST
	}
	_ = conn.Close()
}

// acceptsEncoding reports whether the Accept-Encoding header allows coding,
// by name or by "*", with a q-value above zero.
func acceptsEncoding(r *http.Request, coding string) bool {
	for _, line := range r.Header.Values("Accept-Encoding") {
		for item := range strings.SplitSeq(line, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(item), ";")
			name = strings.TrimSpace(name)
			if !strings.EqualFold(name, coding) && name != "*" {
				continue
			}
			if qValue(params) > 0 {
				return true
			}
		}
	}
	return false
}

// qValue returns the q parameter in params, 1 when absent.
func qValue(params string) float64 {
	for p := range strings.SplitSeq(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0
		}
		return q
	}
	return 1
}
