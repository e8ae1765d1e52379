package e2e

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/deepmeter/deepmeter/internal/standin"
	"github.com/deepmeter/deepmeter/internal/testdb"
	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/proxy"
	"github.com/deepmeter/deepmeter/store"
)

// Request bodies of the wire tests. Their contents are strings, so the
// proxy's prompt estimate equals the stand-in's prompt_tokens exactly.
const (
	wireChat       = `{"model":"deepseek-chat","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Name some colours in 30 words"}]}`
	wireChatStream = `{"model":"deepseek-chat","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Name some colours in 30 words"}]}`
	wireChinese    = `{"model":"deepseek-chat","stream":true,"messages":[{"role":"user","content":"你好，请用二十个词介绍一下你自己"}]}`
	wireFIM        = `{"model":"deepseek-chat","prompt":"def add(a, b):","suffix":"    return c","max_tokens":64}`
	wireFIMStream  = `{"model":"deepseek-chat","stream":true,"prompt":"def add(a, b):","suffix":"    return c","max_tokens":64}`
	wireAnthropic  = `{"model":"deepseek-chat","max_tokens":512,"system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"Say hello in 20 words"}]}]}`
	wireAnthStream = `{"model":"deepseek-chat","max_tokens":512,"stream":true,"system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"Say hello in 20 words"}]}]}`
)

// exchange is one HTTP call as the client saw it: the raw body bytes,
// still compressed when they were.
type exchange struct {
	status  int
	header  http.Header
	body    []byte
	readErr error
}

// rawClient neither adds Accept-Encoding nor decodes, so a test reads the
// bytes as they were on the wire.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}, Timeout: 30 * time.Second}

// send posts body to base+path with the API key and extra headers; an
// empty header value removes the header.
func send(t *testing.T, client *http.Client, base, path, body string, header map[string]string) exchange {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, readErr := io.ReadAll(resp.Body)
	return exchange{status: resp.StatusCode, header: resp.Header, body: b, readErr: readErr}
}

// wireUsage is a usage as the stand-in reported it.
type wireUsage struct {
	prompt, hit, miss, completion int64
	found                         bool
}

// cost prices u at the built-in deepseek-chat rates of callTime.
func (u wireUsage) cost() pricing.Money {
	return pricing.Money(u.hit*rateHit + u.miss*rateMiss + u.completion*rateOutput)
}

// reportedUsage reads the usage the stand-in sent in a response: the
// last usage of a stream, Anthropic's message_start and message_delta
// merged, or the usage of a JSON body. Compressed bodies are decoded.
func reportedUsage(t *testing.T, ex exchange) wireUsage {
	t.Helper()
	body := decodeBody(t, ex)
	var u wireUsage
	take := func(v gjson.Result) {
		if !v.IsObject() {
			return
		}
		u.found = true
		if v.Get("prompt_tokens").Exists() {
			u.prompt, u.completion = v.Get("prompt_tokens").Int(), v.Get("completion_tokens").Int()
			u.hit, u.miss = v.Get("prompt_cache_hit_tokens").Int(), v.Get("prompt_cache_miss_tokens").Int()
			return
		}
		if in := v.Get("input_tokens"); in.Exists() {
			u.miss, u.hit = in.Int(), v.Get("cache_read_input_tokens").Int()
			u.prompt = u.miss + u.hit
		}
		if out := v.Get("output_tokens"); out.Exists() {
			u.completion = out.Int()
		}
	}
	if !strings.HasPrefix(ex.header.Get("Content-Type"), "text/event-stream") {
		take(gjson.GetBytes(body, "usage"))
		return u
	}
	var final bool
	for _, ev := range sseEvents(body) {
		switch ev.Get("type").Str {
		case "message_start":
			take(ev.Get("message.usage"))
			u.found = false // only message_delta completes the usage
		case "message_delta":
			take(ev.Get("usage"))
			final = true
		default:
			take(ev.Get("usage"))
		}
	}
	if bytes.Contains(body, []byte(`"message_start"`)) {
		u.found = final
	}
	return u
}

// sseEvents parses an event stream with any line ends into the data of
// its events. An event's data lines join with newlines; comments and
// other fields are skipped.
func sseEvents(body []byte) []gjson.Result {
	body = bytes.ReplaceAll(bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n")), []byte("\r"), []byte("\n"))
	var events []gjson.Result
	for _, event := range strings.Split(string(body), "\n\n") {
		var data []string
		for _, line := range strings.Split(event, "\n") {
			if d, ok := strings.CutPrefix(line, "data:"); ok {
				data = append(data, strings.TrimPrefix(d, " "))
			}
		}
		if len(data) > 0 {
			events = append(events, gjson.Parse(strings.Join(data, "\n")))
		}
	}
	return events
}

// streamText joins the answer text of a stream: chat deltas, text
// completion pieces and Anthropic text deltas, the final chunk's included.
func streamText(body []byte) string {
	var b strings.Builder
	for _, ev := range sseEvents(body) {
		b.WriteString(ev.Get("choices.0.delta.content").Str)
		b.WriteString(ev.Get("choices.0.text").Str)
		if ev.Get("delta.type").Str == "text_delta" {
			b.WriteString(ev.Get("delta.text").Str)
		}
	}
	return b.String()
}

func decodeBody(t *testing.T, ex exchange) []byte {
	t.Helper()
	var r io.Reader
	var err error
	switch ex.header.Get("Content-Encoding") {
	case "gzip":
		r, err = gzip.NewReader(bytes.NewReader(ex.body))
	case "deflate":
		r, err = zlib.NewReader(bytes.NewReader(ex.body))
	default:
		return ex.body
	}
	if err != nil {
		t.Fatalf("decode %s body: %v", ex.header.Get("Content-Encoding"), err)
	}
	b, _ := io.ReadAll(r)
	return b
}

// sameExchange fails unless the client got through the proxy exactly
// what the stand-in sends directly: status, content headers and body
// bytes, and a cut body cut the same way.
func sameExchange(t *testing.T, direct, proxied exchange) {
	t.Helper()
	if proxied.status != direct.status {
		t.Errorf("status through the proxy %d, want the direct %d", proxied.status, direct.status)
	}
	for _, h := range []string{"Content-Type", "Content-Encoding", "Content-Length"} {
		if got, want := proxied.header.Get(h), direct.header.Get(h); got != want {
			t.Errorf("%s through the proxy %q, want the direct %q", h, got, want)
		}
	}
	if !bytes.Equal(proxied.body, direct.body) {
		t.Errorf("body through the proxy (%d bytes) differs from the direct body (%d bytes):\n got %.300q\nwant %.300q",
			len(proxied.body), len(direct.body), proxied.body, direct.body)
	}
	if (proxied.readErr != nil) != (direct.readErr != nil) {
		t.Errorf("read error through the proxy %v, direct %v", proxied.readErr, direct.readErr)
	}
}

// wantUsage names the usage a record must hold.
type wantUsage int

const (
	usageReported  wantUsage = iota // the stand-in's usage, priced
	usageEstimated                  // prompt estimated exactly, completion estimated from the forwarded text
	usageNone                       // no tokens, cost 0
)

// TestWireCases drives the real proxy in front of the stand-in through
// every wire case the stand-in can inject, and compares both sides: the
// client gets byte for byte what a direct call gets, and the stored record
// has the right status, flags, usage source, tokens and cost. These are
// the calls that other metering proxies lose or misprice.
func TestWireCases(t *testing.T) {
	anthropicKey := map[string]string{"Authorization": "", "x-api-key": apiKey}
	gzipOK := map[string]string{"Accept-Encoding": "gzip"}
	deflateOK := map[string]string{"Accept-Encoding": "deflate"}
	tests := []struct {
		name   string
		path   string
		body   string
		fault  string
		header map[string]string

		wantStatus  int
		wantSuccess bool
		wantFlags   []string
		wantUsage   wantUsage
		wantError   string // error_message; "=body" means the direct body's error text
		wantMessage string // the records list message; empty skips the check
	}{
		{name: "chat", path: "/chat/completions", body: wireChat, wantStatus: 200, wantSuccess: true, wantMessage: "Name some colours in 30 words"},
		{name: "chat on v1 path", path: "/v1/chat/completions", body: wireChat, wantStatus: 200, wantSuccess: true},
		{name: "chat stream", path: "/chat/completions", body: wireChatStream, wantStatus: 200, wantSuccess: true},
		{name: "Chinese stream", path: "/chat/completions", body: wireChinese, wantStatus: 200, wantSuccess: true},
		{name: "stream CRLF", path: "/chat/completions", body: wireChatStream, fault: "crlf=1", wantStatus: 200, wantSuccess: true},
		{name: "stream CR", path: "/chat/completions", body: wireChatStream, fault: "cr=1", wantStatus: 200, wantSuccess: true},
		{name: "stream data without space", path: "/chat/completions", body: wireChatStream, fault: "nospace=1", wantStatus: 200, wantSuccess: true},
		{name: "stream split in tiny reads", path: "/chat/completions", body: wireChatStream, fault: "split=1", wantStatus: 200, wantSuccess: true},
		{name: "stream keep-alives", path: "/chat/completions", body: wireChatStream, fault: "keepalive=3,data_keepalive=3", wantStatus: 200, wantSuccess: true},
		{name: "stream multi-line data and comments", path: "/chat/completions", body: wireChatStream, fault: "multiline=1,split=1", wantStatus: 200, wantSuccess: true},
		{name: "usage that does not add up", path: "/chat/completions", body: wireChatStream, fault: "usage_mismatch=1", wantStatus: 200, wantSuccess: true,
			wantFlags: []string{store.FlagUsageMismatch}},
		{name: "JSON after blank lines", path: "/chat/completions", body: wireChat, fault: "keepalive=4", wantStatus: 200, wantSuccess: true},
		{name: "stream gzip", path: "/chat/completions", body: wireChatStream, fault: "gzip=1", header: gzipOK, wantStatus: 200, wantSuccess: true},
		{name: "JSON gzip split", path: "/chat/completions", body: wireChat, fault: "gzip=1,split=1", header: gzipOK, wantStatus: 200, wantSuccess: true},
		{name: "JSON deflate", path: "/chat/completions", body: wireChat, fault: "deflate=1", header: deflateOK, wantStatus: 200, wantSuccess: true},
		{name: "stream deflate", path: "/chat/completions", body: wireChatStream, fault: "deflate=1", header: deflateOK, wantStatus: 200, wantSuccess: true},
		{name: "FIM", path: "/beta/completions", body: wireFIM, wantStatus: 200, wantSuccess: true, wantMessage: "def add(a, b):"},
		{name: "FIM stream", path: "/beta/completions", body: wireFIMStream, wantStatus: 200, wantSuccess: true, wantMessage: "def add(a, b):"},
		{name: "FIM on v1 path", path: "/v1/beta/completions", body: wireFIM, wantStatus: 200, wantSuccess: true, wantMessage: "def add(a, b):"},
		{name: "Anthropic", path: "/anthropic/v1/messages", body: wireAnthropic, header: anthropicKey, wantStatus: 200, wantSuccess: true, wantMessage: "Say hello in 20 words"},
		{name: "Anthropic stream", path: "/anthropic/v1/messages", body: wireAnthStream, header: anthropicKey, wantStatus: 200, wantSuccess: true, wantMessage: "Say hello in 20 words"},
		{name: "Anthropic stream gzip split", path: "/anthropic/v1/messages", body: wireAnthStream, fault: "gzip=1,split=1",
			header: map[string]string{"Authorization": "", "x-api-key": apiKey, "Accept-Encoding": "gzip"}, wantStatus: 200, wantSuccess: true},
		{name: "JSON larger than the storage cap", path: "/chat/completions", body: wireChat, fault: "size=300000", wantStatus: 200, wantSuccess: true,
			wantFlags: []string{store.FlagResponseTruncated}},
		{name: "stream larger than the storage cap", path: "/chat/completions", body: wireChatStream, fault: "size=1500000", wantStatus: 200, wantSuccess: true,
			wantFlags: []string{store.FlagResponseTruncated}},

		{name: "status 400", path: "/chat/completions", body: wireChat, fault: "status=400", wantStatus: 400, wantUsage: usageNone, wantError: "=body"},
		{name: "status 401", path: "/chat/completions", body: wireChat, fault: "status=401", wantStatus: 401, wantUsage: usageNone, wantError: "=body"},
		{name: "status 402", path: "/chat/completions", body: wireChat, fault: "status=402", wantStatus: 402, wantUsage: usageNone, wantError: "=body"},
		{name: "status 422", path: "/chat/completions", body: wireChat, fault: "status=422", wantStatus: 422, wantUsage: usageNone, wantError: "=body"},
		{name: "status 422 plain text", path: "/chat/completions", body: wireChat, fault: "status=422,plain=1", wantStatus: 422, wantUsage: usageNone, wantError: "=body"},
		{name: "status 429", path: "/chat/completions", body: wireChatStream, fault: "status=429", wantStatus: 429, wantUsage: usageNone, wantError: "=body"},
		{name: "status 500", path: "/chat/completions", body: wireChat, fault: "status=500", wantStatus: 500, wantUsage: usageNone, wantError: "=body"},
		{name: "status 503", path: "/chat/completions", body: wireChatStream, fault: "status=503", wantStatus: 503, wantUsage: usageNone, wantError: "=body"},
		{name: "Anthropic status 429", path: "/anthropic/v1/messages", body: wireAnthropic, fault: "status=429", header: anthropicKey, wantStatus: 429, wantUsage: usageNone, wantError: "=body"},
		{name: "empty 200", path: "/chat/completions", body: wireChat, fault: "empty=1", wantStatus: 200, wantUsage: usageNone,
			wantFlags: []string{store.FlagUsageMissing}, wantError: "empty response"},
		{name: "empty 200 after keep-alives", path: "/chat/completions", body: wireChat, fault: "empty=1,keepalive=3", wantStatus: 200, wantUsage: usageNone,
			wantFlags: []string{store.FlagUsageMissing}, wantError: "empty response"},

		{name: "stream cut", path: "/chat/completions", body: wireChatStream, fault: "cut_after=3", wantStatus: 200, wantUsage: usageEstimated,
			wantFlags: []string{store.FlagUsageMissing}, wantError: "reading the upstream response: unexpected EOF"},
		{name: "Chinese stream cut", path: "/chat/completions", body: wireChinese, fault: "cut_after=4", wantStatus: 200, wantUsage: usageEstimated,
			wantFlags: []string{store.FlagUsageMissing}, wantError: "reading the upstream response: unexpected EOF"},
		{name: "gzip stream cut", path: "/chat/completions", body: wireChatStream, fault: "cut_after=3,gzip=1", header: gzipOK, wantStatus: 200, wantUsage: usageEstimated,
			wantFlags: []string{store.FlagUsageMissing}, wantError: "reading the upstream response: unexpected EOF"},
		{name: "Anthropic stream cut", path: "/anthropic/v1/messages", body: wireAnthStream, fault: "cut_after=5", header: anthropicKey, wantStatus: 200, wantUsage: usageEstimated,
			wantFlags: []string{store.FlagUsageMissing}, wantError: "reading the upstream response: unexpected EOF"},
		{name: "FIM stream cut", path: "/beta/completions", body: wireFIMStream, fault: "cut_after=2", wantStatus: 200, wantUsage: usageEstimated,
			wantFlags: []string{store.FlagUsageMissing}, wantError: "reading the upstream response: unexpected EOF"},
		{name: "JSON cut", path: "/chat/completions", body: wireChat, fault: "cut_after=40", wantStatus: 200, wantUsage: usageEstimated,
			wantFlags: []string{store.FlagUsageMissing}, wantError: "reading the upstream response: unexpected EOF"},
		{name: "JSON cut inside the content", path: "/chat/completions", body: wireChat, fault: "cut_after=300", wantStatus: 200, wantUsage: usageEstimated,
			wantFlags: []string{store.FlagUsageMissing}, wantError: "reading the upstream response: unexpected EOF"},
		{name: "JSON labelled gzip but plain", path: "/chat/completions", body: wireChat, fault: "bad_encoding=1", wantStatus: 200, wantUsage: usageEstimated,
			wantFlags: []string{store.FlagDecodeFailed, store.FlagUsageMissing}, wantError: "response body could not be decoded: reading the gzip header: gzip: invalid header"},
		{name: "stream labelled gzip but plain", path: "/chat/completions", body: wireChatStream, fault: "bad_encoding=1", wantStatus: 200, wantUsage: usageEstimated,
			wantFlags: []string{store.FlagDecodeFailed, store.FlagUsageMissing}, wantError: "response body could not be decoded: reading the gzip header: gzip: invalid header"},
		{name: "stream ends without DONE", path: "/chat/completions", body: wireChatStream, fault: "trailing_keepalive=2,hang=1", wantStatus: 200, wantSuccess: true},
	}

	s := newStackWith(t, testdb.SQLiteURL(t), stackOptions{maxStoredBody: 64 << 10})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			header := map[string]string{}
			for k, v := range tt.header {
				header[k] = v
			}
			if tt.fault != "" {
				header[standin.FaultHeader] = tt.fault
			}
			direct := send(t, rawClient, s.upstream.URL, tt.path, tt.body, header)
			proxied := send(t, rawClient, s.proxy.URL, tt.path, tt.body, header)
			sameExchange(t, direct, proxied)

			id := proxied.header.Get(proxy.RequestIDHeader)
			if id == "" {
				t.Fatal("no request id header")
			}
			rec := s.recordByID(t, id)
			if rec.StatusCode != tt.wantStatus {
				t.Errorf("record status %d, want %d", rec.StatusCode, tt.wantStatus)
			}
			if rec.Success != tt.wantSuccess {
				t.Errorf("record success %v (%q), want %v", rec.Success, rec.ErrorMessage, tt.wantSuccess)
			}
			if got, want := strings.Join(rec.Flags, ","), strings.Join(sorted(tt.wantFlags), ","); got != want {
				t.Errorf("record flags %q, want %q", got, want)
			}
			if tt.wantMessage != "" && rec.Message != tt.wantMessage {
				t.Errorf("record message %q, want %q", rec.Message, tt.wantMessage)
			}

			wantErr := tt.wantError
			if wantErr == "=body" {
				wantErr = errorText(direct.body)
			}
			if rec.ErrorMessage != wantErr {
				t.Errorf("record error %q, want %q", rec.ErrorMessage, wantErr)
			}
			if tt.wantStatus >= 400 && rec.ResponseData != string(direct.body) {
				t.Errorf("record response data %q, want the error body %q", rec.ResponseData, direct.body)
			}
			if slices.Contains(tt.wantFlags, store.FlagResponseTruncated) &&
				!strings.HasSuffix(rec.ResponseData, " bytes]") {
				t.Errorf("truncated response data ends %q, want the marker with the original size", tail(rec.ResponseData))
			}
			checkUsage(t, s, tt.wantUsage, rec, direct, tt.path, tt.body, tt.header)
			if tt.wantSuccess && !rec.HasFlag(store.FlagResponseTruncated) {
				checkStoredResponse(t, rec, decodeBody(t, direct))
			}
			cutStream := tt.wantUsage == usageEstimated && strings.Contains(tt.body, `"stream":true`) && !rec.HasFlag(store.FlagDecodeFailed)
			cutInsideContent := tt.wantUsage == usageEstimated && regexp.MustCompile(`"content":"[^"]`).Match(direct.body[:min(len(direct.body), cutBytes(tt.fault))])
			if (cutStream || cutInsideContent) && rec.CompletionTokens == 0 {
				t.Error("estimated completion tokens 0, want the forwarded text counted")
			}
		})
	}
}

// cutBytes returns N of a cut_after=N fault for a JSON body, or 0.
func cutBytes(fault string) int {
	m := regexp.MustCompile(`cut_after=(\d+)`).FindStringSubmatch(fault)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// checkUsage checks a record's usage source, tokens and cost against what
// the stand-in reported directly.
func checkUsage(t *testing.T, s *stack, want wantUsage, rec store.Record, direct exchange, path, body string, header map[string]string) {
	t.Helper()
	switch want {
	case usageReported:
		u := reportedUsage(t, direct)
		if !u.found {
			t.Fatal("the direct response has no usage")
		}
		if rec.UsageSource != store.UsageReported {
			t.Errorf("usage source %q, want reported", rec.UsageSource)
		}
		if rec.PromptTokens != u.prompt || rec.PromptCacheHitTokens != u.hit || rec.PromptCacheMissTokens != u.miss || rec.CompletionTokens != u.completion {
			t.Errorf("tokens prompt %d hit %d miss %d completion %d, want %d %d %d %d",
				rec.PromptTokens, rec.PromptCacheHitTokens, rec.PromptCacheMissTokens, rec.CompletionTokens, u.prompt, u.hit, u.miss, u.completion)
		}
		if !rec.Priced || rec.Cost != u.cost() {
			t.Errorf("cost %s (priced %v), want %s", rec.Cost, rec.Priced, u.cost())
		}
	case usageEstimated:
		// The uncut call gives the stand-in's own count of the prompt,
		// which the estimate must match, and bounds the completion.
		full := reportedUsage(t, send(t, rawClient, s.upstream.URL, path, body, header))
		if rec.UsageSource != store.UsageEstimated {
			t.Errorf("usage source %q, want estimated", rec.UsageSource)
		}
		if rec.PromptTokens != full.prompt {
			t.Errorf("estimated prompt tokens %d, want the stand-in's %d", rec.PromptTokens, full.prompt)
		}
		if rec.CompletionTokens > full.completion {
			t.Errorf("estimated completion tokens %d, more than the whole answer's %d", rec.CompletionTokens, full.completion)
		}
		est := wireUsage{miss: rec.PromptTokens, completion: rec.CompletionTokens}
		if !rec.Priced || rec.Cost != est.cost() || rec.Cost == 0 {
			t.Errorf("cost %s (priced %v), want %s", rec.Cost, rec.Priced, est.cost())
		}
	case usageNone:
		if rec.UsageSource != store.UsageNone || rec.PromptTokens != 0 || rec.CompletionTokens != 0 {
			t.Errorf("usage source %q, tokens %d/%d; want none, 0/0", rec.UsageSource, rec.PromptTokens, rec.CompletionTokens)
		}
		if rec.Cost != 0 {
			t.Errorf("cost %s, want 0", rec.Cost)
		}
	}
}

// checkStoredResponse checks a successful record's response_data against
// the decoded body: a JSON body as it came, without the blank lines before
// it, and a stream as its assembled message with all of its text.
func checkStoredResponse(t *testing.T, rec store.Record, body []byte) {
	t.Helper()
	if !rec.Stream {
		if want := strings.TrimLeft(string(body), "\n"); rec.ResponseData != want {
			t.Errorf("record response data %.200q, want the JSON body %.200q", rec.ResponseData, want)
		}
		return
	}
	if got, want := gjson.Get(rec.ResponseData, "content").Str, streamText(body); got != want {
		t.Errorf("record content %q, want the streamed text %q", got, want)
	}
}

// errorText is what a record's error_message must hold for an error
// body: the envelope's message, or the plain text itself.
func errorText(body []byte) string {
	if msg := gjson.GetBytes(body, "error.message"); msg.Type == gjson.String {
		return msg.Str
	}
	return strings.TrimSpace(string(body))
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func tail(s string) string {
	if len(s) > 60 {
		return s[len(s)-60:]
	}
	return s
}

// TestWireUnmeteredPaths forwards every other path untouched, with no
// record, and counts it in the metrics under a bounded path label: a
// known path as itself, anything else as "other".
func TestWireUnmeteredPaths(t *testing.T) {
	s := newStack(t, testdb.SQLiteURL(t))
	paths := []struct{ method, path, label string }{
		{http.MethodGet, "/models", "/models"},
		{http.MethodGet, "/v1/models", "/v1/models"},
		{http.MethodGet, "/user/balance", "/user/balance"},
		{http.MethodGet, "/brand/new/endpoint-1", "other"},
		{http.MethodGet, "/brand/new/endpoint-2", "other"},
		{http.MethodDelete, "/chat/completions", "/chat/completions"},
	}
	for _, p := range paths {
		var got [2]exchange
		for i, base := range []string{s.upstream.URL, s.proxy.URL} {
			req, _ := http.NewRequest(p.method, base+p.path, nil)
			req.Header.Set("Authorization", "Bearer "+apiKey)
			resp, err := rawClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", p.method, p.path, err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			got[i] = exchange{status: resp.StatusCode, header: resp.Header, body: b, readErr: err}
		}
		t.Run(p.method+" "+p.path, func(t *testing.T) { sameExchange(t, got[0], got[1]) })
	}

	families, err := s.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "deepmeter_passthrough_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "path" {
					counts[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	want := map[string]float64{"/models": 1, "/v1/models": 1, "/user/balance": 1, "other": 2, "/chat/completions": 1}
	for label, n := range want {
		if counts[label] != n {
			t.Errorf("passthrough count for path %q = %v, want %v (all: %v)", label, counts[label], n, counts)
		}
	}
	if len(counts) != len(want) {
		t.Errorf("path labels %v, want exactly %v", counts, want)
	}
	if _, total, err := s.store.List(context.Background(), store.ListQuery{Since: callTime.Add(-time.Hour), Limit: 10}); err != nil || total != 0 {
		t.Errorf("%d records (%v) for unmetered paths, want 0", total, err)
	}
}
