// Package proxy forwards every call to the configured DeepSeek upstream
// unchanged and tees metered calls into the metering step.
//
// A Proxy is an http.Handler built on httputil.ReverseProxy. The client's
// headers, including Authorization, go upstream as they are, except the
// X-DeepMeter-* attribution headers, which are read and removed. Responses
// come back byte for byte, and event streams are flushed event by event.
// The only change a client can see is the X-DeepMeter-Request-Id header.
//
// For a metered call (see metering.IsMetered) the proxy reads the request
// body whole, up to Config.MaxRequestBody, so the upstream never responds
// before the request was sent in full. It then feeds the response bytes to
// a metering.Call as they pass and finishes the call when the response
// ends, on every exit path. Nothing here waits on the database: the record
// goes to a bounded queue owned by the metering writer.
//
// A Proxy is safe for concurrent use.
package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/deepmeter/deepmeter/metering"
)

// Header names the proxy reads or sets.
const (
	// RequestIDHeader carries the record id back to the client.
	RequestIDHeader = "X-DeepMeter-Request-Id"
	// UserIDHeader, PageTabHeader and EndpointHeader attribute a call to a
	// user, a UI page tab and the caller's own feature route. They are
	// removed before the call goes upstream.
	UserIDHeader   = "X-DeepMeter-User-Id"
	PageTabHeader  = "X-DeepMeter-Page-Tab"
	EndpointHeader = "X-DeepMeter-Endpoint"
	// StoreBodiesHeader set to "none" keeps the call's bodies out of its
	// record; any value but "full" does the same. It is removed before the
	// call goes upstream.
	StoreBodiesHeader = "X-DeepMeter-Store-Bodies"
)

// MaxRequestHeaders is the largest number of request header lines the proxy
// forwards; a request with more gets 431. OpenAI-compatible clients send a
// few dozen at most.
const MaxRequestHeaders = 256

// MaxAttributionLength is the longest attribution header value kept, in
// characters; longer values are cut.
const MaxAttributionLength = 256

// DefaultIdleTimeout is Config.IdleTimeout when it is zero. DeepSeek
// closes a request that has not started inference within about 10
// minutes, so a longer wait cannot end well.
const DefaultIdleTimeout = 10 * time.Minute

// DefaultMaxRequestBody is the largest metered request body accepted when
// Config.MaxRequestBody is zero. DeepSeek's longest context, about 128K
// tokens, is well under 2 MiB of text.
const DefaultMaxRequestBody = 32 << 20

// Config configures a Proxy.
type Config struct {
	// Upstream is the DeepSeek base URL, such as https://api.deepseek.com.
	// Its path, if any, is prefixed to every request path.
	Upstream *url.URL

	// Meter meters the calls that metering.IsMetered selects. Required.
	Meter *metering.Meter

	// Transport sends requests upstream. Nil means NewTransport().
	Transport http.RoundTripper

	// MaxRequestBody bounds a metered request body in bytes. A larger body
	// gets a 413 response and a record. Zero means DefaultMaxRequestBody.
	MaxRequestBody int64

	// Logger receives proxy errors. Nil discards them.
	Logger *slog.Logger

	// NewID returns a new record id. Nil means a UUIDv7, which sorts by
	// time.
	NewID func() string

	// Now is the clock. Nil means time.Now.
	Now func() time.Time

	// IdleTimeout ends a metered call whose upstream made no payload
	// progress for this long (see metering.Call.LastProgress): before the
	// response head the client gets 504, after it the response is
	// aborted, and the record is flagged timed_out. Keep-alives do not
	// count as progress. Zero means DefaultIdleTimeout.
	IdleTimeout time.Duration

	// DrainOnClientAbort keeps reading the upstream response after the
	// client of a metered call went away, until it ends or IdleTimeout
	// passes without progress, so the record gets the upstream's usage.
	// The client gets nothing more. False cancels the upstream call, as a
	// client talking to DeepSeek directly would by hanging up.
	DrainOnClientAbort bool
}

// Proxy is the metering reverse proxy.
type Proxy struct {
	upstream *url.URL
	meter    *metering.Meter
	maxBody  int64
	logger   *slog.Logger
	newID    func() string
	now      func() time.Time
	idle     time.Duration
	drain    bool
	rp       *httputil.ReverseProxy

	// closing is set by CloseCalls, so calls cut by the shutdown are not
	// recorded as client aborts.
	closing atomic.Bool
}

// CloseCalls marks that the server is about to cancel the calls
// still in flight, at the end of a shutdown's grace period. Their records
// then say the shutdown cut them rather than that their clients left.
func (p *Proxy) CloseCalls() {
	p.closing.Store(true)
}

// New returns a Proxy for cfg.
func New(cfg Config) (*Proxy, error) {
	if cfg.Upstream == nil || cfg.Upstream.Host == "" {
		return nil, errors.New("proxy: upstream URL with a host is required")
	}
	if cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https" {
		return nil, fmt.Errorf("proxy: upstream scheme %q is not http or https", cfg.Upstream.Scheme)
	}
	if cfg.Meter == nil {
		return nil, errors.New("proxy: a meter is required")
	}
	p := &Proxy{
		upstream: cfg.Upstream,
		meter:    cfg.Meter,
		maxBody:  cfg.MaxRequestBody,
		logger:   cfg.Logger,
		newID:    cfg.NewID,
		now:      cfg.Now,
		idle:     cfg.IdleTimeout,
		drain:    cfg.DrainOnClientAbort,
	}
	if p.idle <= 0 {
		p.idle = DefaultIdleTimeout
	}
	if p.maxBody <= 0 {
		p.maxBody = DefaultMaxRequestBody
	}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	if p.newID == nil {
		p.newID = newUUID
	}
	if p.now == nil {
		p.now = time.Now
	}
	transport := cfg.Transport
	if transport == nil {
		transport = NewTransport()
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      transport,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.handleUpstreamError,
		ErrorLog:       slog.NewLogLogger(p.logger.Handler(), slog.LevelDebug),
	}
	return p, nil
}

// NewTransport returns the transport the proxy uses by default: Go's default
// transport settings with more idle connections per host, and with
// compression left to the client. The standard transport would otherwise add
// its own Accept-Encoding and decode the body, so the client would not get
// the upstream's bytes.
func NewTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DisableCompression = true
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.ForceAttemptHTTP2 = true
	return t
}

// ServeHTTP forwards r upstream and, for a metered call, records it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := p.now()
	id := p.newID()
	w.Header().Set(RequestIDHeader, id)
	if n := headerLines(r.Header); n > MaxRequestHeaders {
		// The server bounds the header bytes; this bounds the count, which
		// costs memory and work per header even when each one is small.
		writeError(w, http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("request has %d header lines; the proxy accepts at most %d", n, MaxRequestHeaders))
		return
	}
	attr := takeAttribution(r.Header)

	// Keep reading the request body after the response has started. Without
	// this an HTTP/1 server closes the body once the handler writes, and a
	// fast upstream response can cut the forwarded request and its stream.
	// HTTP/2 is always full duplex and reports an error here that is safe to
	// ignore.
	_ = http.NewResponseController(w).EnableFullDuplex()

	// The reverse proxy clears the response header after forwarding an
	// upstream 1xx response, so statusWriter sets the id again on the
	// final head.
	sw := &statusWriter{ResponseWriter: w, requestID: id}
	if !metering.IsMetered(r.Method, r.URL.Path) {
		p.forwardUnmetered(sw, r, start)
		return
	}
	p.forwardMetered(sw, r, id, start, attr)
}

func (p *Proxy) forwardUnmetered(sw *statusWriter, r *http.Request, start time.Time) {
	defer func() {
		p.meter.ObservePassthrough(r.Method, r.URL.Path, sw.statusOr(http.StatusOK), p.now().Sub(start))
	}()
	p.rp.ServeHTTP(sw, r)
}

func (p *Proxy) forwardMetered(sw *statusWriter, r *http.Request, id string, start time.Time, attr metering.Attribution) {
	body, err := readBody(r.Body, p.maxBody)
	if err != nil {
		status, message := http.StatusBadRequest, "failed to read the request body"
		var call *metering.Call
		if errors.Is(err, errBodyTooLarge) {
			status = http.StatusRequestEntityTooLarge
			message = fmt.Sprintf("request body is larger than the proxy limit of %d bytes", p.maxBody)
			call = p.meter.BeginOverLimit(id, start, r.URL.Path, body, p.maxBody, attr)
		} else {
			call = p.meter.Begin(id, start, r.URL.Path, body, attr)
		}
		aborted := r.Context().Err() != nil
		if !aborted {
			// The rest of the body is unread, so the connection cannot
			// carry another request. Closing it also keeps net/http from
			// reading the next request while its full-duplex body read
			// is still pending, which panics with "invalid concurrent
			// Body.Read call".
			sw.Header().Set("Connection", "close")
			writeError(sw, status, message)
		}
		call.Finish(metering.End{StatusCode: status, Err: fmt.Errorf("%s: %w", message, err), ClientAborted: aborted})
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	// The client already got its 100 Continue when the body was read, and
	// the whole body goes upstream at once.
	r.Header.Del("Expect")

	// The upstream call runs on its own context: cancelled by the idle
	// watch, and by the client leaving unless the proxy drains.
	upstreamCtx := r.Context()
	if p.drain {
		upstreamCtx = context.WithoutCancel(upstreamCtx)
	}
	upstreamCtx, cancel := context.WithCancelCause(upstreamCtx)
	defer cancel(nil)

	st := &callState{
		call:        p.meter.Begin(id, start, r.URL.Path, body, attr),
		clientCtx:   r.Context(),
		upstreamCtx: upstreamCtx,
		drain:       p.drain,
		sw:          sw,
		closing:     &p.closing,
	}
	stopWatch := watchIdle(st.call, p.idle, cancel)
	defer stopWatch()
	defer func() {
		recovered := recover()
		st.finish(r, sw, recovered)
		if recovered != nil {
			// The standard library aborts the response by panicking with
			// http.ErrAbortHandler once headers are out; keep that behaviour.
			panic(recovered)
		}
	}()
	p.rp.ServeHTTP(sw, r.WithContext(context.WithValue(upstreamCtx, callKey{}, st)))
}

// errIdleTimeout is the cause of an upstream context cancelled by the idle
// watch.
var errIdleTimeout = errors.New("upstream made no progress within the idle timeout")

// watchIdle cancels a call's upstream context with errIdleTimeout once
// call.LastProgress is idle old. One timer per call is re-armed for the
// time left, so progress costs nothing but an atomic store. The returned
// function stops the watch.
func watchIdle(call *metering.Call, idle time.Duration, cancel context.CancelCauseFunc) (stop func()) {
	var stopped atomic.Bool
	// The timer starts far in the future and is armed by Reset only
	// after it is assigned, so the callback always sees it.
	var timer *time.Timer
	timer = time.AfterFunc(time.Duration(math.MaxInt64), func() {
		if stopped.Load() {
			return
		}
		waited := time.Since(call.LastProgress())
		if waited >= idle {
			cancel(errIdleTimeout)
			return
		}
		timer.Reset(idle - waited)
	})
	timer.Reset(idle)
	return func() {
		stopped.Store(true)
		timer.Stop()
	}
}

// forwardingHeaders are the client's forwarding headers, which
// httputil.ReverseProxy removes from the outbound request in Rewrite mode.
var forwardingHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// rewrite points the outbound request at the upstream. SetURL replaces the
// scheme and host, so an absolute-URI request line for another host still
// goes only to the upstream. The proxy stays transparent: it adds no
// forwarding headers and passes the client's own on unchanged.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.upstream)
	for _, name := range forwardingHeaders {
		if values, ok := pr.In.Header[name]; ok {
			pr.Out.Header[name] = slices.Clone(values)
		}
	}
}

// modifyResponse removes the upstream's own request id header, so the
// client gets only the proxy's, then hands the response head to the call
// and tees the body.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	resp.Header.Del(RequestIDHeader)
	st, ok := resp.Request.Context().Value(callKey{}).(*callState)
	if !ok {
		return nil
	}
	st.call.Response(resp.StatusCode, resp.Header)
	resp.Body = &teeBody{body: resp.Body, state: st}
	return nil
}

// handleUpstreamError responds when no response head came from upstream: the
// upstream was unreachable, reset the connection or the client left first.
func (p *Proxy) handleUpstreamError(w http.ResponseWriter, r *http.Request, err error) {
	clientCtx := r.Context()
	st, _ := r.Context().Value(callKey{}).(*callState)
	if st != nil {
		st.upstreamErr = err
		clientCtx = st.clientCtx
	}
	if st != nil && st.timedOut() {
		p.logger.Warn("upstream timed out before the response head", "path", r.URL.Path, "idle_timeout", p.idle)
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("upstream request timed out: no response within %s", p.idle))
		return
	}
	if clientCtx.Err() != nil {
		// The client is gone, so no response is written.
		p.logger.Debug("client left before the upstream answered", "path", r.URL.Path, "error", err)
		if sw, ok := w.(*statusWriter); ok {
			sw.status = StatusClientClosedRequest
		}
		return
	}
	status := http.StatusBadGateway
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		status = http.StatusGatewayTimeout
	}
	p.logger.Warn("upstream request failed", "path", r.URL.Path, "status", status, "error", err)
	writeError(w, status, "upstream request failed: "+describeUpstreamError(err))
}

// StatusClientClosedRequest is the status recorded when the client left
// before any response was written, following nginx.
const StatusClientClosedRequest = 499

// callState carries one metered call through the reverse proxy's hooks.
// The reverse proxy runs the hooks and the body copy on the handler's
// goroutine, so the fields need no lock: finish reads them after
// ReverseProxy.ServeHTTP has returned or panicked.
type callState struct {
	call        *metering.Call
	clientCtx   context.Context // the client request's context
	upstreamCtx context.Context // the upstream call's context
	drain       bool            // keep reading the upstream after the client left
	sw          *statusWriter

	upstreamErr error // transport error before the response head
	readErr     error // error reading the upstream body, io.EOF excluded
	upstreamEOF bool  // the upstream body was read to its end
	clientLeft  bool  // upstream bytes arrived after the client had left
	drained     bool  // the rest of the body was read after the client left

	closing *atomic.Bool // the proxy's CloseCalls flag
}

// timedOut reports whether the idle watch ended the upstream call.
func (st *callState) timedOut() bool {
	return errors.Is(context.Cause(st.upstreamCtx), errIdleTimeout)
}

type callKey struct{}

// finish ends the call once the reverse proxy is done with it.
func (st *callState) finish(r *http.Request, sw *statusWriter, recovered any) {
	end := metering.End{StatusCode: sw.statusOr(http.StatusOK)}

	// A client may hang up as soon as it has the last event, before the
	// upstream body ends; the proxy's next read from upstream then fails
	// with the cancelled context. When the upstream body was read to its end
	// or the stream sent [DONE], and every write succeeded, the client got
	// the whole answer, so that is no abort.
	complete := st.upstreamEOF || st.call.StreamDone()
	clientGone := sw.writeErr != nil || st.clientLeft || st.drained || (r.Context().Err() != nil && !complete)
	switch {
	case st.timedOut():
		end.TimedOut = true
		end.ClientAborted = clientGone
		end.StatusCode = sw.statusOr(http.StatusGatewayTimeout)
	case st.upstreamErr != nil:
		end.Err = st.upstreamErr
		end.ClientAborted = clientGone
		end.StatusCode = sw.statusOr(http.StatusBadGateway)
	case st.readErr != nil && !complete && (!clientGone || errors.Is(st.readErr, io.ErrUnexpectedEOF)):
		// The upstream cut the body; a client that left afterwards did
		// not cause it.
		end.Err = fmt.Errorf("reading the upstream response: %w", st.readErr)
	case clientGone && st.closing.Load():
		end.Err = errors.New("cancelled by the proxy's shutdown after the grace period")
	case clientGone:
		end.ClientAborted = true
		end.Err = errors.New("client closed the connection before the response ended")
	case recovered != nil && !complete:
		end.Err = fmt.Errorf("response aborted: %v", recovered)
	}
	if end.ClientAborted && !sw.wroteHeader {
		end.StatusCode = StatusClientClosedRequest
	}
	st.call.Finish(end)
}

// teeBody passes the upstream body to the reverse proxy and a copy of every
// byte to the call.
type teeBody struct {
	body  io.ReadCloser
	state *callState
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.body.Read(p)
	if n > 0 {
		// Bytes that arrive once the client has left never reach it: the
		// client missed part of the answer, even if its writes have not
		// failed yet.
		if t.state.clientCtx.Err() != nil && !t.state.call.StreamFinished() {
			t.state.clientLeft = true
		}
		t.state.call.Write(p[:n])
	}
	switch {
	case err == io.EOF:
		t.state.upstreamEOF = true
	case err != nil && t.state.readErr == nil:
		t.state.readErr = err
	}
	return n, err
}

// Close closes the upstream body. When the proxy drains and the client
// left before the body ended, it first reads the rest for the meter; the
// idle watch bounds how long that takes.
func (t *teeBody) Close() error {
	st := t.state
	if st.drain && !st.upstreamEOF && st.readErr == nil && (st.clientCtx.Err() != nil || st.sw.writeErr != nil) {
		st.drained = true
		buf := make([]byte, 32<<10)
		for {
			if _, err := t.Read(buf); err != nil {
				break
			}
		}
	}
	return t.body.Close()
}

// statusWriter records the status sent and the first write error. Unwrap
// lets http.ResponseController reach the underlying writer to flush.
type statusWriter struct {
	http.ResponseWriter
	requestID   string // set as RequestIDHeader on the final head
	status      int
	wroteHeader bool
	writeErr    error
}

func (sw *statusWriter) WriteHeader(code int) {
	if !sw.wroteHeader && code >= 200 {
		sw.status = code
		sw.wroteHeader = true
		sw.Header().Set(RequestIDHeader, sw.requestID)
	}
	sw.ResponseWriter.WriteHeader(code)
}

func (sw *statusWriter) Write(b []byte) (int, error) {
	if !sw.wroteHeader {
		sw.status = http.StatusOK
		sw.wroteHeader = true
		sw.Header().Set(RequestIDHeader, sw.requestID)
	}
	n, err := sw.ResponseWriter.Write(b)
	if err != nil && sw.writeErr == nil {
		sw.writeErr = err
	}
	return n, err
}

func (sw *statusWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

func (sw *statusWriter) statusOr(fallback int) int {
	if sw.status != 0 {
		return sw.status
	}
	return fallback
}

var errBodyTooLarge = errors.New("request body too large")

// readBody reads at most limit bytes of body. When the body is longer it
// returns the first limit bytes and errBodyTooLarge.
func readBody(body io.Reader, limit int64) ([]byte, error) {
	if body == nil || body == http.NoBody {
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return data, err
	}
	if int64(len(data)) > limit {
		return data[:limit], errBodyTooLarge
	}
	return data, nil
}

// headerLines counts the header lines of h, a repeated name once per value.
func headerLines(h http.Header) int {
	n := 0
	for _, values := range h {
		n += len(values)
	}
	return n
}

// optsOutOfBodies reports whether X-DeepMeter-Store-Bodies keeps a call's
// bodies out of its record. The header is a privacy control, so it fails
// closed: any value but "full", a misspelled one or a repeated header with
// "none" among its values, opts out.
func optsOutOfBodies(values []string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			if !strings.EqualFold(strings.TrimSpace(part), "full") {
				return true
			}
		}
	}
	return false
}

// takeAttribution reads the attribution headers and removes them, so they
// never reach the upstream.
func takeAttribution(h http.Header) metering.Attribution {
	attr := metering.Attribution{
		UserID:   cleanHeaderValue(h.Get(UserIDHeader)),
		PageTab:  cleanHeaderValue(h.Get(PageTabHeader)),
		Endpoint: cleanHeaderValue(h.Get(EndpointHeader)),
		NoBodies: optsOutOfBodies(h.Values(StoreBodiesHeader)),
	}
	h.Del(StoreBodiesHeader)
	h.Del(UserIDHeader)
	h.Del(PageTabHeader)
	h.Del(EndpointHeader)
	return attr
}

// cleanHeaderValue trims v, drops control characters and invalid UTF-8, and
// cuts it to MaxAttributionLength characters.
func cleanHeaderValue(v string) string {
	v = strings.TrimSpace(v)
	if v == "" {
		return ""
	}
	var b strings.Builder
	count := 0
	for _, r := range v {
		if r == utf8.RuneError || unicode.IsControl(r) {
			continue
		}
		if count == MaxAttributionLength {
			break
		}
		b.WriteRune(r)
		count++
	}
	return b.String()
}

// writeError sends an OpenAI-format error body, which every OpenAI-compatible
// client can parse.
func writeError(w http.ResponseWriter, status int, message string) {
	var envelope struct {
		Error struct {
			Message string  `json:"message"`
			Type    string  `json:"type"`
			Param   *string `json:"param"`
			Code    string  `json:"code"`
		} `json:"error"`
	}
	envelope.Error.Message = message
	envelope.Error.Type = "deepmeter_error"
	envelope.Error.Code = strings.ReplaceAll(strings.ToLower(http.StatusText(status)), " ", "_")
	body, _ := json.Marshal(envelope)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// describeUpstreamError names the cause of a transport error in words a
// client can act on. The text never contains the raw error of a
// connection, because it names the proxy's own addresses. The log has the
// full error.
func describeUpstreamError(err error) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var certErr *tls.CertificateVerificationError
	var unknownAuthority x509.UnknownAuthorityError
	var recordErr tls.RecordHeaderError
	var netErr net.Error
	switch {
	case errors.As(err, &certErr):
		return "the upstream's TLS certificate is not trusted: " + certErr.Error()
	case errors.As(err, &unknownAuthority):
		return "the upstream's TLS certificate is not trusted: " + unknownAuthority.Error()
	case errors.As(err, &recordErr):
		return "the TLS handshake with the upstream failed: " + recordErr.Msg
	case errors.As(err, &dnsErr):
		// DNSError.Error names the resolver's address, so only the host
		// and the cause are given.
		return "DNS lookup of the upstream host failed: " + dnsErr.Name + ": " + dnsErr.Err
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timed out waiting for the upstream"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connecting to the upstream failed: connection refused"
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return "connecting to the upstream failed"
	case errors.Is(err, syscall.ECONNRESET):
		return "the upstream reset the connection before sending a response"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, syscall.EPIPE):
		return "the upstream closed the connection before sending a response"
	case errors.As(err, &opErr):
		return "the connection to the upstream failed"
	}
	return "the upstream request failed"
}

func newUUID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}
