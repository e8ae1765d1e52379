package metering

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/store"
)

// testStart is the pinned start of every test call: a time when
// deepseek-chat cost 0.028 / 0.28 / 0.42 USD per 1M tokens.
var testStart = time.Date(2025, 10, 1, 12, 0, 0, 0, time.UTC)

// manualClock is a clock that moves only when a test advances it.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// collectSink keeps every record it is given, or rejects them all.
type collectSink struct {
	mu      sync.Mutex
	records []store.Record
	reject  bool
}

func (s *collectSink) Enqueue(r store.Record) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reject {
		return false
	}
	s.records = append(s.records, r)
	return true
}

func (s *collectSink) all() []store.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]store.Record(nil), s.records...)
}

// testPrices returns a table with deepseek-chat at the September 2025
// prices and deepseek-v4-flash at its April 2026 prices.
func testPrices(t testing.TB) *pricing.Table {
	t.Helper()
	rate := func(s string) pricing.Money {
		t.Helper()
		m, err := pricing.ParseRate(s)
		if err != nil {
			t.Fatalf("ParseRate(%q): %v", s, err)
		}
		return m
	}
	table, err := pricing.NewTable([]pricing.Entry{
		{
			Model:         "deepseek-chat",
			Aliases:       []string{"deepseek-reasoner"},
			EffectiveFrom: time.Date(2025, 9, 29, 0, 0, 0, 0, time.UTC),
			Currency:      "USD",
			Rates:         pricing.Rates{Hit: rate("0.028"), Miss: rate("0.28"), Output: rate("0.42")},
		},
		{
			Model:         "deepseek-v4-flash",
			EffectiveFrom: time.Date(2025, 9, 29, 0, 0, 0, 0, time.UTC),
			Currency:      "USD",
			Rates:         pricing.Rates{Hit: rate("0.028"), Miss: rate("0.14"), Output: rate("0.28")},
		},
		{
			Model:         "deepseek-cny",
			EffectiveFrom: time.Date(2025, 9, 29, 0, 0, 0, 0, time.UTC),
			Currency:      "CNY",
			Rates:         pricing.Rates{Hit: rate("0.2"), Miss: rate("2"), Output: rate("3")},
		},
	})
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	return table
}

// meterEnv is a Meter with its clock, sink and metrics registry.
type meterEnv struct {
	meter *Meter
	clock *manualClock
	sink  *collectSink
	reg   *prometheus.Registry
}

func newMeterEnv(t testing.TB, opts Options) *meterEnv {
	t.Helper()
	env := &meterEnv{
		clock: &manualClock{now: testStart},
		sink:  &collectSink{},
		reg:   prometheus.NewRegistry(),
	}
	if opts.Now == nil {
		opts.Now = env.clock.Now
	}
	env.meter = NewMeter(testPrices(t), env.sink, nil, env.reg, opts)
	return env
}

// response is one upstream response fed to a Call.
type response struct {
	status int
	header http.Header
	chunks [][]byte // body bytes, in the pieces Write receives
}

// run meters one call from begin to end, advancing the clock 100ms before
// the head, 100ms before the first chunk and 10ms before each later one.
func (env *meterEnv) run(path, reqBody string, resp *response, end End) store.Record {
	call := env.meter.Begin("call-1", testStart, path, []byte(reqBody), Attribution{})
	if resp != nil {
		env.clock.Advance(100 * time.Millisecond)
		call.Response(resp.status, resp.header)
		for i, chunk := range resp.chunks {
			if i == 0 {
				env.clock.Advance(100 * time.Millisecond)
			} else {
				env.clock.Advance(10 * time.Millisecond)
			}
			if n, err := call.Write(chunk); n != len(chunk) || err != nil {
				panic(fmt.Sprintf("Write returned %d, %v; want %d, nil", n, err, len(chunk)))
			}
		}
	}
	env.clock.Advance(50 * time.Millisecond)
	if end.StatusCode == 0 && resp != nil {
		end.StatusCode = resp.status
	}
	return call.Finish(end)
}

func jsonHeader() http.Header {
	return http.Header{"Content-Type": {"application/json"}}
}

func sseHeader() http.Header {
	return http.Header{"Content-Type": {"text/event-stream; charset=utf-8"}}
}

func withEncoding(h http.Header, encoding string) http.Header {
	h = h.Clone()
	h.Set("Content-Encoding", encoding)
	return h
}

// chatRequest is a typical chat completion request body.
func chatRequest(model string, stream bool) string {
	return fmt.Sprintf(`{"model":%q,"stream":%t,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello"}]}`, model, stream)
}

// usageJSON is a usage object with a cache split.
func usageJSON(prompt, completion, hit, miss int) string {
	return fmt.Sprintf(`{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,"prompt_cache_hit_tokens":%d,"prompt_cache_miss_tokens":%d}`,
		prompt, completion, prompt+completion, hit, miss)
}

// chatCompletion is a non-stream chat completion body.
func chatCompletion(model, content, usage string) string {
	return fmt.Sprintf(`{"id":"cmpl-1","object":"chat.completion","created":1700000000,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":%s,"system_fingerprint":"fp_1"}`,
		model, content, usage)
}

// chunk is one chat.completion.chunk event's JSON. finish and usage are
// left out when empty.
func chunk(model, content, finish, usage string) string {
	finishJSON := "null"
	if finish != "" {
		finishJSON = fmt.Sprintf("%q", finish)
	}
	s := fmt.Sprintf(`{"id":"cmpl-1","object":"chat.completion.chunk","created":1700000000,"model":%q,"choices":[{"index":0,"delta":{"content":%q},"logprobs":null,"finish_reason":%s}]`,
		model, content, finishJSON)
	if usage != "" {
		s += `,"usage":` + usage
	}
	return s + "}"
}

// sseBody frames each data value as a "data: ..." event.
func sseBody(data ...string) string {
	var b strings.Builder
	for _, d := range data {
		b.WriteString("data: ")
		b.WriteString(d)
		b.WriteString("\n\n")
	}
	return b.String()
}

// typicalStream is a stream of n content chunks, a final chunk with usage,
// and [DONE], as DeepSeek sends it.
func typicalStream(n int) string {
	var b strings.Builder
	b.WriteString(": keep-alive\n\n")
	for i := 0; i < n; i++ {
		b.WriteString(sseBody(chunk("deepseek-chat", fmt.Sprintf("word%d ", i), "", "null")))
	}
	b.WriteString(sseBody(chunk("deepseek-chat", "", "stop", usageJSON(1000, n, 640, 360)), "[DONE]"))
	return b.String()
}

// splitEvery cuts s into pieces of size bytes.
func splitEvery(s string, size int) [][]byte {
	var out [][]byte
	for len(s) > size {
		out = append(out, []byte(s[:size]))
		s = s[size:]
	}
	if len(s) > 0 {
		out = append(out, []byte(s))
	}
	return out
}

// compress returns s written through a compressing writer.
func compress(t testing.TB, s string, newWriter func(io.Writer) io.WriteCloser) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := newWriter(&buf)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatalf("compress: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("compress: %v", err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, s string) []byte {
	t.Helper()
	return compress(t, s, func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) })
}

func zlibBytes(t testing.TB, s string) []byte {
	t.Helper()
	return compress(t, s, func(w io.Writer) io.WriteCloser { return zlib.NewWriter(w) })
}

// rawDeflateBytes is deflate data without the zlib header, which some
// servers send as Content-Encoding: deflate.
func rawDeflateBytes(t testing.TB, s string) []byte {
	t.Helper()
	return compress(t, s, func(w io.Writer) io.WriteCloser {
		fw, _ := flate.NewWriter(w, flate.BestSpeed)
		return fw
	})
}

// flagsString renders flags for failure messages.
func flagsString(flags []string) string {
	return "[" + strings.Join(flags, ",") + "]"
}
