package metering

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/store"
)

// TestIsMetered selects exactly the completion calls: other methods and
// near-miss paths are forwarded without a record.
func TestIsMetered(t *testing.T) {
	tests := []struct {
		method, path string
		want         bool
	}{
		{"POST", "/chat/completions", true},
		{"POST", "/v1/chat/completions", true},
		{"POST", "/beta/completions", true},
		{"POST", "/v1/beta/completions", true},
		{"POST", "/v1/completions", true},
		{"GET", "/chat/completions", false},
		{"POST", "/chat/completions/", false},
		{"POST", "/CHAT/COMPLETIONS", false},
		{"POST", "/models", false},
		{"POST", "/anthropic/v1/messages", true},
		{"GET", "/anthropic/v1/messages", false},
		{"POST", "/anthropic/v1/complete", false},
		{"POST", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			if got := IsMetered(tt.method, tt.path); got != tt.want {
				t.Errorf("IsMetered(%q, %q) = %v, want %v", tt.method, tt.path, got, tt.want)
			}
		})
	}
}

// TestCallNonStream meters plain JSON completions, including the blank
// lines DeepSeek sends while a request waits for capacity, which must not
// stop the body from parsing.
func TestCallNonStream(t *testing.T) {
	completion := chatCompletion("deepseek-chat", "Hello!", usageJSON(1000, 200, 640, 360))
	tests := []struct {
		name      string
		chunks    [][]byte
		wantModel string
	}{
		{"one write", [][]byte{[]byte(completion)}, "deepseek-chat"},
		{"leading blank lines", [][]byte{[]byte("\n"), []byte("\n\n \r\n"), []byte(completion)}, "deepseek-chat"},
		{"blank lines and body in one write", [][]byte{[]byte("\n\n\n" + completion + "\n")}, "deepseek-chat"},
		{"byte by byte", splitEvery("\n\n"+completion, 1), "deepseek-chat"},
		{"served model differs", [][]byte{[]byte(chatCompletion("deepseek-v4-flash", "Hi", usageJSON(1000, 200, 640, 360)))}, "deepseek-v4-flash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, Options{})
			rec := env.run("/chat/completions", chatRequest("deepseek-chat", false),
				&response{status: 200, header: jsonHeader(), chunks: tt.chunks}, End{})

			if !rec.Success || rec.ErrorMessage != "" {
				t.Errorf("success, error = %v, %q; want true, \"\"", rec.Success, rec.ErrorMessage)
			}
			if rec.PromptTokens != 1000 || rec.CompletionTokens != 200 || rec.TotalTokens != 1200 ||
				rec.PromptCacheHitTokens != 640 || rec.PromptCacheMissTokens != 360 {
				t.Errorf("tokens prompt/completion/total/hit/miss = %d/%d/%d/%d/%d, want 1000/200/1200/640/360",
					rec.PromptTokens, rec.CompletionTokens, rec.TotalTokens, rec.PromptCacheHitTokens, rec.PromptCacheMissTokens)
			}
			if rec.UsageSource != store.UsageReported {
				t.Errorf("usage source = %q, want %q", rec.UsageSource, store.UsageReported)
			}
			if rec.Model != tt.wantModel || rec.RequestedModel != "deepseek-chat" {
				t.Errorf("model, requested = %q, %q; want %q, deepseek-chat", rec.Model, rec.RequestedModel, tt.wantModel)
			}
			if strings.TrimSpace(rec.ResponseData) != strings.TrimSpace(string(bytes.Join(tt.chunks, nil))) {
				t.Errorf("response data = %q, want the body without leading blank lines", rec.ResponseData)
			}
			if len(rec.Flags) != 0 {
				t.Errorf("flags = %v, want none", rec.Flags)
			}
			if rec.Stream {
				t.Errorf("stream = true, want false")
			}
			if got := env.sink.all(); len(got) != 1 || got[0].ID != "call-1" {
				t.Errorf("sink got %d records, want the one call", len(got))
			}
		})
	}
}

// TestCallStream meters a typical stream written in pieces of many sizes,
// the main path of the product.
func TestCallStream(t *testing.T) {
	body := typicalStream(20)
	for _, size := range []int{len(body), 4096, 100, 7, 1} {
		t.Run(fmt.Sprintf("writes of %d bytes", size), func(t *testing.T) {
			env := newMeterEnv(t, Options{})
			rec := env.run("/chat/completions", chatRequest("deepseek-chat", true),
				&response{status: 200, header: sseHeader(), chunks: splitEvery(body, size)}, End{})
			if !rec.Success {
				t.Fatalf("success = false (%q), want true", rec.ErrorMessage)
			}
			if rec.PromptTokens != 1000 || rec.CompletionTokens != 20 || rec.PromptCacheHitTokens != 640 {
				t.Errorf("prompt/completion/hit = %d/%d/%d, want 1000/20/640", rec.PromptTokens, rec.CompletionTokens, rec.PromptCacheHitTokens)
			}
			if !rec.Stream {
				t.Errorf("stream = false, want true")
			}
			msg := storedMessage(t, rec.ResponseData)
			if !strings.HasPrefix(msg.Content, "word0 word1 ") || !strings.HasSuffix(msg.Content, "word19 ") {
				t.Errorf("content = %q, want word0 … word19", msg.Content)
			}
			if msg.FinishReason != "stop" || msg.Model != "deepseek-chat" || !strings.Contains(string(msg.Usage), `"prompt_tokens":1000`) {
				t.Errorf("stored message = %s, want finish_reason stop, model and usage", rec.ResponseData)
			}
		})
	}
}

// TestCallErrorResponses records upstream errors with the upstream's own
// message, whatever shape the body has, and never charges for them.
func TestCallErrorResponses(t *testing.T) {
	envelope := func(msg, kind string) string {
		return fmt.Sprintf(`{"error":{"message":%q,"type":%q,"param":null,"code":"invalid_request_error"}}`, msg, kind)
	}
	tests := []struct {
		name        string
		status      int
		header      http.Header
		body        string
		wantMessage string
	}{
		{"400 model not exist", 400, jsonHeader(), envelope("Model Not Exist", "invalid_request_error"), "Model Not Exist"},
		{"401 authentication", 401, jsonHeader(), envelope("Authentication Fails, Your api key: ****abcd is invalid", "authentication_error"), "Authentication Fails, Your api key: ****abcd is invalid"},
		{"402 insufficient balance", 402, jsonHeader(), envelope("Insufficient Balance", "unknown_error"), "Insufficient Balance"},
		{"422 plain text", 422, http.Header{"Content-Type": {"text/plain"}}, "Failed to deserialize the JSON body into the target type: messages[0]: missing field `role`\n", "Failed to deserialize the JSON body into the target type: messages[0]: missing field `role`"},
		{"429 rate limit", 429, jsonHeader(), envelope("Rate Limit Reached", "rate_limit_error"), "Rate Limit Reached"},
		{"500 server error", 500, jsonHeader(), envelope("Internal Server Error", "server_error"), "Internal Server Error"},
		{"503 empty body", 503, jsonHeader(), "", "Service Unavailable"},
		{"503 JSON without message", 503, jsonHeader(), `{"status":"down"}`, "Service Unavailable"},
		{"502 HTML page", 502, http.Header{"Content-Type": {"text/html"}}, "<html><body>Bad Gateway</body></html>", "<html><body>Bad Gateway</body></html>"},
		{"error sent as event stream", 500, sseHeader(), "data: oops\n\n", "data: oops"},
		{"status without text", 599, jsonHeader(), "", "HTTP 599"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, Options{})
			rec := env.run("/chat/completions", chatRequest("deepseek-chat", true),
				&response{status: tt.status, header: tt.header, chunks: splitEvery(tt.body, 5)}, End{})

			if rec.Success {
				t.Errorf("success = true, want false")
			}
			if rec.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", rec.StatusCode, tt.status)
			}
			if rec.ErrorMessage != tt.wantMessage {
				t.Errorf("error message = %q, want %q", rec.ErrorMessage, tt.wantMessage)
			}
			if rec.ResponseData != tt.body {
				t.Errorf("response data = %q, want the error body %q", rec.ResponseData, tt.body)
			}
			if !rec.Priced || rec.Cost != 0 {
				t.Errorf("priced, cost = %v, %s; want true, 0", rec.Priced, rec.Cost)
			}
			if rec.UsageSource != store.UsageNone || len(rec.Flags) != 0 {
				t.Errorf("usage source, flags = %q, %v; want none, no flags", rec.UsageSource, rec.Flags)
			}
			if rec.RequestData != chatRequest("deepseek-chat", true) {
				t.Errorf("request data = %q, want the request body", rec.RequestData)
			}
		})
	}
}

// TestCallFailedWithoutUsage covers 2xx calls that ended without usage.
// Each must be recorded as a failure with FlagUsageMissing, never as a
// silent zero-cost success. Where text exists, the tokens are estimated
// from it (the request's 23 ASCII characters are 7 tokens at 0.3 each,
// the streamed "a" and "b" 1 token) and priced; a clean empty
// 200 generated nothing and has no usage at all.
func TestCallFailedWithoutUsage(t *testing.T) {
	cutStream := sseBody(chunk("deepseek-chat", "a", "", "null"), chunk("deepseek-chat", "b", "", "null"))
	tests := []struct {
		name        string
		header      http.Header
		body        string
		end         End
		wantMessage string
		wantFlags   []string
		// wantCompletion is the estimated completion tokens; -1 means
		// no estimate at all (usage source none).
		wantCompletion int64
	}{
		{"empty 200", jsonHeader(), "", End{}, "empty response", []string{store.FlagUsageMissing}, -1},
		{"only blank lines", jsonHeader(), "\n\n\n\n", End{}, "empty response", []string{store.FlagUsageMissing}, -1},
		{"stream of keep-alives", sseHeader(), ": keep-alive\n\n: keep-alive\n\n", End{}, "empty response", []string{store.FlagUsageMissing}, -1},
		{"stream cut by reset", sseHeader(), cutStream, End{Err: errors.New("reading the upstream response: connection reset by peer")},
			"reading the upstream response: connection reset by peer", []string{store.FlagUsageMissing}, 1},
		{"stream cut without error", sseHeader(), cutStream, End{}, "stream ended before the final chunk", []string{store.FlagUsageMissing}, 1},
		{"client aborted", sseHeader(), cutStream, End{ClientAborted: true}, "client closed the connection before the response ended",
			[]string{store.FlagClientAborted, store.FlagUsageMissing}, 1},
		{"timed out", sseHeader(), cutStream, End{TimedOut: true, StatusCode: 200}, "upstream timed out", []string{store.FlagTimedOut, store.FlagUsageMissing}, 1},
		{"done without usage", sseHeader(), sseBody(chunk("deepseek-chat", "a", "", ""), "[DONE]"), End{}, "response has no usage", []string{store.FlagUsageMissing}, 1},
		{"JSON without usage", jsonHeader(), `{"id":"x","choices":[]}`, End{}, "response has no usage", []string{store.FlagUsageMissing}, 0},
		{"invalid JSON", jsonHeader(), `{"id":"x","choices":[`, End{}, "response body is not valid JSON", []string{store.FlagDecodeFailed, store.FlagUsageMissing}, 0},
		{"stream of junk data", sseHeader(), "data: hello\n\ndata: world\n\n", End{}, "stream carried no JSON events", []string{store.FlagDecodeFailed, store.FlagUsageMissing}, 0},
		{"error event in a stream", sseHeader(), sseBody(`{"error":{"message":"Server overloaded"}}`), End{}, "Server overloaded", []string{store.FlagUsageMissing}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, Options{})
			rec := env.run("/chat/completions", chatRequest("deepseek-chat", true),
				&response{status: 200, header: tt.header, chunks: splitEvery(tt.body, 3)}, tt.end)
			if rec.Success {
				t.Errorf("success = true, want false")
			}
			if rec.ErrorMessage != tt.wantMessage {
				t.Errorf("error message = %q, want %q", rec.ErrorMessage, tt.wantMessage)
			}
			if flagsString(rec.Flags) != flagsString(tt.wantFlags) {
				t.Errorf("flags = %v, want %v", rec.Flags, tt.wantFlags)
			}
			wantSource, wantPrompt, wantCompletion := store.UsageEstimated, int64(7), tt.wantCompletion
			if tt.wantCompletion < 0 {
				wantSource, wantPrompt, wantCompletion = store.UsageNone, 0, 0
			}
			if rec.UsageSource != wantSource || rec.PromptTokens != wantPrompt || rec.CompletionTokens != wantCompletion {
				t.Errorf("usage source, prompt, completion = %q, %d, %d; want %q, %d, %d",
					rec.UsageSource, rec.PromptTokens, rec.CompletionTokens, wantSource, wantPrompt, wantCompletion)
			}
			wantCost := pricing.Money(wantPrompt*280_000 + wantCompletion*420_000)
			if !rec.Priced || rec.Cost != wantCost {
				t.Errorf("priced, cost = %v, %s; want true, %s", rec.Priced, rec.Cost, wantCost)
			}
		})
	}
}

// TestCallUsageThenAbort bills a stream whose usage arrived before the
// client left: the tokens were spent upstream, so they are priced, while
// the record still counts as failed.
func TestCallUsageThenAbort(t *testing.T) {
	env := newMeterEnv(t, Options{})
	body := sseBody(chunk("deepseek-chat", "a", "stop", usageJSON(1500, 800, 0, 1500)))
	rec := env.run("/chat/completions", chatRequest("deepseek-chat", true),
		&response{status: 200, header: sseHeader(), chunks: [][]byte{[]byte(body)}}, End{ClientAborted: true})
	if rec.Success {
		t.Errorf("success = true, want false")
	}
	if rec.UsageSource != store.UsageReported || rec.PromptTokens != 1500 {
		t.Errorf("usage source, prompt = %q, %d; want reported, 1500", rec.UsageSource, rec.PromptTokens)
	}
	if got := rec.Cost.String(); got != "0.000756" {
		t.Errorf("cost = %s, want 0.000756", got)
	}
	if flagsString(rec.Flags) != flagsString([]string{store.FlagClientAborted}) {
		t.Errorf("flags = %v, want [client_aborted]", rec.Flags)
	}
}

// TestCallNoResponse records a call that failed before any response head,
// as when the upstream is unreachable and the proxy returns 502.
func TestCallNoResponse(t *testing.T) {
	env := newMeterEnv(t, Options{})
	rec := env.run("/chat/completions", chatRequest("deepseek-chat", false), nil,
		End{StatusCode: 502, Err: errors.New("dial tcp 127.0.0.1:1: connect: connection refused")})
	if rec.Success || rec.StatusCode != 502 {
		t.Errorf("success, status = %v, %d; want false, 502", rec.Success, rec.StatusCode)
	}
	if want := "dial tcp 127.0.0.1:1: connect: connection refused"; rec.ErrorMessage != want {
		t.Errorf("error message = %q, want the transport error %q", rec.ErrorMessage, want)
	}
	if rec.TTFBMillis != 0 {
		t.Errorf("ttfb = %d ms, want 0 without a response", rec.TTFBMillis)
	}
	if rec.ProcessingTimeMillis != 50 {
		t.Errorf("processing time = %d ms, want 50", rec.ProcessingTimeMillis)
	}
	if rec.RequestData == "" || rec.Message != "Say hello" {
		t.Errorf("request data, message = %q, %q; want the request kept", rec.RequestData, rec.Message)
	}
	if rec.HasFlag(store.FlagUsageMissing) {
		t.Errorf("flags = %v, want no usage_missing on a 502", rec.Flags)
	}
}

// TestCallErrorMessageText keeps error_message storable: at most 500
// characters, valid UTF-8 and without API keys.
func TestCallErrorMessageText(t *testing.T) {
	tests := []struct {
		name string
		end  End
		body string
		want func(string) bool
		desc string
	}{
		{"long plain-text error", End{}, strings.Repeat("é", 700), func(s string) bool { return s == strings.Repeat("é", 500) }, "500 characters of é"},
		{"api key redacted", End{Err: errors.New("upstream said: bad key sk-0123456789abcdef0123")}, "", func(s string) bool {
			return !strings.Contains(s, "0123456789abcdef") && strings.Contains(s, "sk-****0123")
		}, "the key masked to sk-****0123"},
		{"invalid UTF-8", End{}, "bad \xff\xfe byte", func(s string) bool { return utf8.ValidString(s) && strings.Contains(s, "bad") }, "valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, Options{})
			status := 400
			if tt.end.Err != nil {
				status = 200
			}
			rec := env.run("/chat/completions", chatRequest("deepseek-chat", false),
				&response{status: status, header: http.Header{"Content-Type": {"text/plain"}}, chunks: [][]byte{[]byte(tt.body)}}, tt.end)
			if !tt.want(rec.ErrorMessage) {
				t.Errorf("error message = %q, want %s", rec.ErrorMessage, tt.desc)
			}
		})
	}
}

// TestCallHugeJSON streams a 50 MiB completion through a Call. The usage
// at its end must still be found while memory stays bounded by the stored
// head and the tail window, not by the body.
func TestCallHugeJSON(t *testing.T) {
	const bodySize = 50 << 20
	const maxStored = 1 << 20
	head := `{"id":"big","object":"chat.completion","model":"deepseek-chat","choices":[{"index":0,"message":{"role":"assistant","content":"`
	// The content quotes a usage object, which must not be taken for the
	// real one.
	filler := []byte(strings.Repeat(`lorem ipsum \"usage\":{\"prompt_tokens\":1} `, 100))
	end := `"},"finish_reason":"stop"}],"usage":` + usageJSON(9000, 500, 8000, 1000) + `,"system_fingerprint":"fp"}`

	env := newMeterEnv(t, Options{MaxStoredBody: maxStored})
	call := env.meter.Begin("big", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", false)), Attribution{})
	call.Response(200, jsonHeader())

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	buf := make([]byte, 32<<10)
	written := 0
	call.Write([]byte(head))
	written += len(head)
	for written < bodySize-len(end) {
		n := min(len(buf), bodySize-len(end)-written)
		for i := 0; i < n; i += len(filler) {
			copy(buf[i:n], filler)
		}
		call.Write(buf[:n])
		written += n
	}
	call.Write([]byte(end))
	rec := call.Finish(End{StatusCode: 200})

	runtime.ReadMemStats(&after)
	if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 16<<20 {
		t.Errorf("allocated %d MiB while metering a 50 MiB body, want under 16 MiB", allocated>>20)
	}
	if !rec.Success {
		t.Fatalf("success = false (%q), want true", rec.ErrorMessage)
	}
	if rec.PromptTokens != 9000 || rec.PromptCacheHitTokens != 8000 || rec.CompletionTokens != 500 {
		t.Errorf("prompt/hit/completion = %d/%d/%d, want 9000/8000/500", rec.PromptTokens, rec.PromptCacheHitTokens, rec.CompletionTokens)
	}
	if rec.Model != "deepseek-chat" {
		t.Errorf("model = %q, want deepseek-chat", rec.Model)
	}
	marker := truncationMarker(bodySize)
	if !strings.HasSuffix(rec.ResponseData, marker) || len(rec.ResponseData) > maxStored+len(marker) {
		t.Errorf("response data is %d bytes ending %q, want at most %d bytes ending %q",
			len(rec.ResponseData), rec.ResponseData[max(0, len(rec.ResponseData)-60):], maxStored+len(marker), marker)
	}
	if !rec.HasFlag(store.FlagResponseTruncated) {
		t.Errorf("flags = %v, want response_truncated", rec.Flags)
	}
	if got := rec.Cost.String(); got != "0.000714" {
		t.Errorf("cost = %s, want 0.000714", got)
	}
}

// TestCallUsageAcrossHeadEnd moves the end of the stored head through the
// usage object: the object is split between head and tail, and must still
// be found whole.
func TestCallUsageAcrossHeadEnd(t *testing.T) {
	body := chatCompletion("deepseek-chat", strings.Repeat("x", 300), usageJSON(1000, 200, 640, 360))
	usageAt := strings.Index(body, `"usage"`)
	for maxStored := usageAt - 5; maxStored < len(body); maxStored++ {
		env := newMeterEnv(t, Options{MaxStoredBody: maxStored})
		rec := env.run("/chat/completions", chatRequest("deepseek-chat", false),
			&response{status: 200, header: jsonHeader(), chunks: splitEvery(body, 13)}, End{})
		if rec.PromptTokens != 1000 || !rec.Success {
			t.Fatalf("head of %d bytes (usage at %d): prompt tokens = %d, success %v; want 1000, true", maxStored, usageAt, rec.PromptTokens, rec.Success)
		}
		if !rec.HasFlag(store.FlagResponseTruncated) {
			t.Fatalf("head of %d bytes: flags = %v, want response_truncated", maxStored, rec.Flags)
		}
	}
}

// TestCallCompressed decodes gzip and deflate bodies, JSON and streams,
// fed in small pieces: the client gets the compressed bytes, so the meter
// must decode its own copy to read usage.
func TestCallCompressed(t *testing.T) {
	jsonBody := chatCompletion("deepseek-chat", "Hello!", usageJSON(1000, 200, 640, 360))
	stream := typicalStream(10)
	tests := []struct {
		name     string
		header   http.Header
		encoding string
		body     []byte
		want     string // decoded body, compared to response_data for JSON
	}{
		{"gzip JSON", jsonHeader(), "gzip", gzipBytes(t, jsonBody), jsonBody},
		{"x-gzip JSON", jsonHeader(), "x-gzip", gzipBytes(t, jsonBody), jsonBody},
		{"deflate (zlib) JSON", jsonHeader(), "deflate", zlibBytes(t, jsonBody), jsonBody},
		{"raw deflate JSON", jsonHeader(), "deflate", rawDeflateBytes(t, jsonBody), jsonBody},
		{"upper-case encoding", jsonHeader(), "GZIP", gzipBytes(t, jsonBody), jsonBody},
		{"gzip stream", sseHeader(), "gzip", gzipBytes(t, stream), ""},
		{"deflate stream", sseHeader(), "deflate", zlibBytes(t, stream), ""},
		{"gzip with leading blank lines", jsonHeader(), "gzip", gzipBytes(t, "\n\n"+jsonBody), jsonBody},
		{"concatenated gzip members", jsonHeader(), "gzip", append(gzipBytes(t, jsonBody[:40]), gzipBytes(t, jsonBody[40:])...), jsonBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{len(tt.body), 7} {
				env := newMeterEnv(t, Options{})
				rec := env.run("/chat/completions", chatRequest("deepseek-chat", false),
					&response{status: 200, header: withEncoding(tt.header, tt.encoding), chunks: splitEvery(string(tt.body), size)}, End{})
				if !rec.Success {
					t.Fatalf("writes of %d bytes: success = false (%q, flags %v), want true", size, rec.ErrorMessage, rec.Flags)
				}
				if rec.PromptTokens != 1000 || rec.PromptCacheHitTokens != 640 {
					t.Errorf("writes of %d bytes: prompt, hit = %d, %d; want 1000, 640", size, rec.PromptTokens, rec.PromptCacheHitTokens)
				}
				if tt.want != "" && rec.ResponseData != tt.want {
					t.Errorf("writes of %d bytes: response data = %q, want the decoded body %q", size, rec.ResponseData, tt.want)
				}
				if len(rec.Flags) != 0 {
					t.Errorf("writes of %d bytes: flags = %v, want none", size, rec.Flags)
				}
			}
		})
	}
}

// TestCallDecodeFailures records bodies that cannot be decoded with
// FlagDecodeFailed instead of losing the call.
func TestCallDecodeFailures(t *testing.T) {
	good := gzipBytes(t, chatCompletion("deepseek-chat", "Hello!", usageJSON(1000, 200, 640, 360)))
	corrupt := bytes.Clone(good)
	for i := 20; i < 40; i++ {
		corrupt[i] ^= 0xFF
	}
	tests := []struct {
		name        string
		encoding    string
		body        []byte
		end         End
		wantFlags   []string
		wantMessage string
	}{
		{"corrupt gzip", "gzip", corrupt, End{}, []string{store.FlagDecodeFailed, store.FlagUsageMissing}, "response body could not be decoded"},
		{"not gzip at all", "gzip", []byte(`{"plain":"json"}`), End{}, []string{store.FlagDecodeFailed, store.FlagUsageMissing}, "response body could not be decoded"},
		{"gzip cut short", "gzip", good[:len(good)/2], End{}, []string{store.FlagDecodeFailed, store.FlagUsageMissing}, "response body could not be decoded"},
		{"gzip cut by client abort", "gzip", good[:len(good)/2], End{ClientAborted: true}, []string{store.FlagClientAborted, store.FlagUsageMissing}, "client closed the connection"},
		{"unsupported encoding", "br", []byte{0x1b, 0x00, 0x01}, End{}, []string{store.FlagDecodeFailed, store.FlagUsageMissing}, "unsupported content encoding br"},
		{"two encodings", "gzip, gzip", good, End{}, []string{store.FlagDecodeFailed, store.FlagUsageMissing}, "unsupported content encoding"},
		{"empty gzip body", "gzip", nil, End{}, []string{store.FlagUsageMissing}, "empty response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, Options{})
			rec := env.run("/chat/completions", chatRequest("deepseek-chat", false),
				&response{status: 200, header: withEncoding(jsonHeader(), tt.encoding), chunks: splitEvery(string(tt.body), 16)}, tt.end)
			if rec.Success {
				t.Errorf("success = true, want false")
			}
			if flagsString(rec.Flags) != flagsString(tt.wantFlags) {
				t.Errorf("flags = %v, want %v", rec.Flags, tt.wantFlags)
			}
			if !strings.Contains(rec.ErrorMessage, tt.wantMessage) {
				t.Errorf("error message = %q, want it to contain %q", rec.ErrorMessage, tt.wantMessage)
			}
		})
	}
}

// TestDecodeBodyLimit stops decoding a small deflate body that expands
// past the decoded size bound, instead of inflating it to the end.
func TestDecodeBodyLimit(t *testing.T) {
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 8; i++ {
		zw.Write(zeros)
	}
	zw.Close()

	var decoded int
	sink := writerFunc(func(p []byte) { decoded += len(p) })
	err := decodeBody("deflate", bytes.NewReader(buf.Bytes()), sink, 1<<20)
	if err == nil || !strings.Contains(err.Error(), "larger than 1048576 bytes") {
		t.Errorf("error = %v, want a size error", err)
	}
	if decoded > 1<<20 {
		t.Errorf("decoded %d bytes, want at most %d", decoded, 1<<20)
	}
}

// writerFunc adapts a function to bodyWriter.
type writerFunc func(p []byte)

func (f writerFunc) write(p []byte) { f(p) }

// TestCallPricing prices calls at the rates in force at their start,
// following the served model, with the cache split when reported. The
// expected costs are worked out by hand at 0.028 / 0.28 / 0.42 USD (and
// 0.028 / 0.14 / 0.28 for deepseek-v4-flash) per 1M tokens.
func TestCallPricing(t *testing.T) {
	tests := []struct {
		name          string
		requested     string
		served        string
		usage         string
		wantCost      string
		wantCurrency  string
		wantPriceFrom string
	}{
		{"miss and output", "deepseek-chat", "deepseek-chat", usageJSON(1500, 800, 0, 1500), "0.000756", "USD", "deepseek-chat"},
		{"hit, miss and output", "deepseek-chat", "deepseek-chat", usageJSON(10000, 500, 9000, 1000), "0.000742", "USD", "deepseek-chat"},
		{"no cache split prices the prompt as misses", "deepseek-chat", "deepseek-chat", `{"prompt_tokens":1500,"completion_tokens":800,"total_tokens":2300}`, "0.000756", "USD", "deepseek-chat"},
		{"cached_tokens fallback", "deepseek-chat", "deepseek-chat", `{"prompt_tokens":10000,"completion_tokens":500,"prompt_tokens_details":{"cached_tokens":9000}}`, "0.000742", "USD", "deepseek-chat"},
		{"reasoning is not charged twice", "deepseek-reasoner", "deepseek-reasoner", `{"prompt_tokens":1500,"completion_tokens":800,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":1500,"completion_tokens_details":{"reasoning_tokens":700}}`, "0.000756", "USD", "deepseek-chat"},
		{"served model sets the price", "deepseek-chat", "deepseek-v4-flash", usageJSON(1500, 800, 0, 1500), "0.000434", "USD", "deepseek-v4-flash"},
		{"unknown served model falls back to requested", "deepseek-chat", "deepseek-chat-2099", usageJSON(1500, 800, 0, 1500), "0.000756", "USD", "deepseek-chat"},
		{"CNY price", "deepseek-cny", "deepseek-cny", usageJSON(1500, 800, 0, 1500), "0.0054", "CNY", "deepseek-cny"},
		{"zero tokens", "deepseek-chat", "deepseek-chat", usageJSON(0, 0, 0, 0), "0", "USD", "deepseek-chat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, Options{})
			rec := env.run("/chat/completions", chatRequest(tt.requested, false),
				&response{status: 200, header: jsonHeader(), chunks: [][]byte{[]byte(chatCompletion(tt.served, "ok", tt.usage))}}, End{})
			if !rec.Priced {
				t.Fatalf("priced = false (flags %v), want true", rec.Flags)
			}
			if got := rec.Cost.String(); got != tt.wantCost {
				t.Errorf("cost = %s, want %s", got, tt.wantCost)
			}
			if rec.Currency != tt.wantCurrency || rec.PriceModel != tt.wantPriceFrom {
				t.Errorf("currency, price model = %q, %q; want %q, %q", rec.Currency, rec.PriceModel, tt.wantCurrency, tt.wantPriceFrom)
			}
			if want := time.Date(2025, 9, 29, 0, 0, 0, 0, time.UTC); !rec.PriceEffectiveFrom.Equal(want) {
				t.Errorf("price effective from = %v, want %v", rec.PriceEffectiveFrom, want)
			}
			if rec.PriceHit == 0 || rec.PriceMiss == 0 || rec.PriceOutput == 0 {
				t.Errorf("rates hit/miss/output = %s/%s/%s, want all set", rec.PriceHit, rec.PriceMiss, rec.PriceOutput)
			}
			if rec.HasFlag(store.FlagUnpriced) {
				t.Errorf("flags = %v, want no unpriced", rec.Flags)
			}
		})
	}
}

// TestCallPriceAtStart prices a call at the rates in force when it
// started: the same usage before the first price entry is unpriced.
func TestCallPriceAtStart(t *testing.T) {
	env := newMeterEnv(t, Options{})
	early := time.Date(2025, 9, 28, 23, 59, 0, 0, time.UTC)
	call := env.meter.Begin("early", early, "/chat/completions", []byte(chatRequest("deepseek-chat", false)), Attribution{})
	call.Response(200, jsonHeader())
	call.Write([]byte(chatCompletion("deepseek-chat", "ok", usageJSON(1500, 800, 0, 1500))))
	rec := call.Finish(End{})
	if rec.Priced || !rec.HasFlag(store.FlagUnpriced) {
		t.Errorf("priced, flags = %v, %v; want false with unpriced before the first price", rec.Priced, rec.Flags)
	}
	if !rec.Success {
		t.Errorf("success = false (%q), want true: an unpriced call still succeeded", rec.ErrorMessage)
	}
}

// TestCallUnpriced records calls for unknown models as unpriced, warns
// once per model and counts them, so a missing price is visible without
// flooding the log.
func TestCallUnpriced(t *testing.T) {
	var logs bytes.Buffer
	reg := newMeterEnv(t, Options{}).reg
	clock := &manualClock{now: testStart}
	m := NewMeter(testPrices(t), nil, slog.New(slog.NewTextHandler(&logs, nil)), reg, Options{Now: clock.Now})

	for i := 0; i < 3; i++ {
		call := m.Begin(fmt.Sprint(i), testStart, "/chat/completions", []byte(chatRequest("mystery-model", false)), Attribution{})
		call.Response(200, jsonHeader())
		call.Write([]byte(chatCompletion("mystery-model", "ok", usageJSON(10, 10, 0, 10))))
		rec := call.Finish(End{})
		if rec.Priced || !rec.HasFlag(store.FlagUnpriced) || rec.Currency != "" || rec.Cost != 0 {
			t.Errorf("call %d: priced, flags, currency, cost = %v, %v, %q, %s; want unpriced", i, rec.Priced, rec.Flags, rec.Currency, rec.Cost)
		}
		if !rec.Success {
			t.Errorf("call %d: success = false, want true", i)
		}
	}
	if n := strings.Count(logs.String(), "no price for model"); n != 1 {
		t.Errorf("logged %d warnings, want 1:\n%s", n, logs.String())
	}
	if got := counterValue(t, reg, "deepmeter_unpriced_calls_total", map[string]string{"model": "mystery-model"}); got != 3 {
		t.Errorf("unpriced_calls_total{model=mystery-model} = %v, want 3", got)
	}
}

// TestEstimateBounded caps an estimate at maxTokenCount in total, as
// reported usage is, so no record can overflow the stores' token sums.
func TestEstimateBounded(t *testing.T) {
	env := newMeterEnv(t, Options{})
	call := env.meter.Begin("x", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", false)), Attribution{})
	call.req.promptTokens = math.MaxInt64
	u, ok := call.estimate(outcome{completionEstimate: math.MaxInt64}, false)
	if !ok {
		t.Fatal("estimate = false, want true")
	}
	if u.total > maxTokenCount || u.prompt+u.completion != u.total {
		t.Errorf("estimate = %+v, want prompt + completion = total <= %d", u, int64(maxTokenCount))
	}
}

// TestCallFailuresCostZero prices calls that failed with an error status
// or got no usage at 0, in the currency of the model's price or USD, and
// never as unpriced. Flagged unpriced, the proxy's own 502s and 413s
// counted as calls with an unknown cost and logged "no price for model"
// for the empty model.
func TestCallFailuresCostZero(t *testing.T) {
	tests := []struct {
		name          string
		req           string
		resp          *response
		end           End
		wantCurrency  string
		wantPriceFrom string
	}{
		{"upstream 400 for priced model", chatRequest("deepseek-chat", false),
			&response{status: 400, header: jsonHeader(), chunks: [][]byte{[]byte(`{"error":{"message":"bad"}}`)}}, End{}, "USD", "deepseek-chat"},
		{"upstream 400 for unknown model", chatRequest("made-up", false),
			&response{status: 400, header: jsonHeader(), chunks: [][]byte{[]byte(`{"error":{"message":"Model Not Exist"}}`)}}, End{}, "USD", ""},
		{"upstream 500 for CNY model", chatRequest("deepseek-cny", false),
			&response{status: 500, header: jsonHeader()}, End{}, "CNY", "deepseek-cny"},
		{"proxy 502 without response", chatRequest("deepseek-chat", false), nil,
			End{StatusCode: 502, Err: errors.New("connection refused")}, "USD", "deepseek-chat"},
		{"proxy 413 without model", `{"messages":[`, nil, End{StatusCode: 413}, "USD", ""},
		{"client left before the head", chatRequest("made-up", false), nil, End{StatusCode: 499, ClientAborted: true}, "USD", ""},
		{"empty 200 has no usage", chatRequest("made-up", false), &response{status: 200, header: jsonHeader()}, End{}, "USD", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			clock := &manualClock{now: testStart}
			reg := prometheus.NewRegistry()
			m := NewMeter(testPrices(t), nil, slog.New(slog.NewTextHandler(&logs, nil)), reg, Options{Now: clock.Now})
			call := m.Begin("x", testStart, "/chat/completions", []byte(tt.req), Attribution{})
			if tt.resp != nil {
				call.Response(tt.resp.status, tt.resp.header)
				for _, c := range tt.resp.chunks {
					call.Write(c)
				}
			}
			rec := call.Finish(tt.end)

			if !rec.Priced || rec.Cost != 0 {
				t.Errorf("priced, cost = %v, %s; want true, 0", rec.Priced, rec.Cost)
			}
			if rec.HasFlag(store.FlagUnpriced) {
				t.Errorf("flags = %v, want no unpriced", rec.Flags)
			}
			if rec.Currency != tt.wantCurrency || rec.PriceModel != tt.wantPriceFrom {
				t.Errorf("currency, price model = %q, %q; want %q, %q", rec.Currency, rec.PriceModel, tt.wantCurrency, tt.wantPriceFrom)
			}
			if strings.Contains(logs.String(), "no price") {
				t.Errorf("logged a missing price:\n%s", logs.String())
			}
			if n := testutil.CollectAndCount(m.metrics.unpriced); n != 0 {
				t.Errorf("unpriced_calls_total has %d series, want 0", n)
			}
		})
	}
}

// TestCallInvalidUsage records a 2xx call whose usage is empty, negative
// or absurd as failed with the usage_invalid flag and estimated tokens.
// Taken as reported, such usage made a free success or overflowed the
// stores' token sums, which broke the admin stats for good.
func TestCallInvalidUsage(t *testing.T) {
	tests := []struct {
		name string
		path string
		req  string
		body string
	}{
		{"empty usage", "/chat/completions", chatRequest("deepseek-chat", false), chatCompletion("deepseek-chat", "ok", `{}`)},
		{"negative counts", "/chat/completions", chatRequest("deepseek-chat", false), chatCompletion("deepseek-chat", "ok", usageJSON(-5, -1, 0, 0))},
		{"absurd counts", "/chat/completions", chatRequest("deepseek-chat", false),
			chatCompletion("deepseek-chat", "ok", `{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":9223372036854775807}`)},
		{"anthropic without input", "/anthropic/v1/messages", chatRequest("deepseek-chat", false),
			`{"id":"msg_1","type":"message","model":"deepseek-chat","content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","usage":{"output_tokens":9223372036854775807}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, Options{})
			rec := env.run(tt.path, tt.req, &response{status: 200, header: jsonHeader(), chunks: [][]byte{[]byte(tt.body)}}, End{})
			if rec.Success {
				t.Errorf("success = true, want false")
			}
			if !rec.HasFlag(store.FlagUsageInvalid) || rec.HasFlag(store.FlagUsageMissing) {
				t.Errorf("flags = %v, want usage_invalid without usage_missing", rec.Flags)
			}
			if rec.UsageSource != store.UsageEstimated {
				t.Errorf("usage source = %q, want %q", rec.UsageSource, store.UsageEstimated)
			}
			if rec.ErrorMessage != msgInvalidUsage {
				t.Errorf("error message = %q, want %q", rec.ErrorMessage, msgInvalidUsage)
			}
			for _, n := range []int64{rec.PromptTokens, rec.CompletionTokens, rec.TotalTokens, rec.PromptCacheHitTokens, rec.PromptCacheMissTokens, rec.ReasoningTokens} {
				if n < 0 || n > maxTokenCount {
					t.Errorf("token count %d out of 0..%d", n, maxTokenCount)
				}
			}
			if !rec.Priced {
				t.Errorf("priced = false (flags %v), want the estimate priced", rec.Flags)
			}
		})
	}
}

// TestCallUsageMismatch flags a cache split that does not add up to the
// prompt, as some relays send, and keeps the numbers as reported.
func TestCallUsageMismatch(t *testing.T) {
	env := newMeterEnv(t, Options{})
	rec := env.run("/chat/completions", chatRequest("deepseek-chat", false),
		&response{status: 200, header: jsonHeader(), chunks: [][]byte{[]byte(chatCompletion("deepseek-chat", "ok", usageJSON(1000, 10, 640, 300)))}}, End{})
	if !rec.HasFlag(store.FlagUsageMismatch) {
		t.Errorf("flags = %v, want usage_mismatch", rec.Flags)
	}
	if rec.PromptCacheHitTokens != 640 || rec.PromptCacheMissTokens != 300 || rec.PromptTokens != 1000 {
		t.Errorf("prompt/hit/miss = %d/%d/%d, want 1000/640/300 as reported", rec.PromptTokens, rec.PromptCacheHitTokens, rec.PromptCacheMissTokens)
	}
	if !rec.Success {
		t.Errorf("success = false, want true: a mismatch is a data-quality flag")
	}
}

// TestCallTimes checks the timing fields against a pinned clock: the
// first byte, the head when the body is empty, and the end of the call.
func TestCallTimes(t *testing.T) {
	tests := []struct {
		name           string
		resp           *response
		wantTTFB       int64
		wantProcessing int64
	}{
		{"body", &response{status: 200, header: jsonHeader(), chunks: [][]byte{[]byte("{"), []byte("}")}}, 200, 260},
		{"empty body uses the head", &response{status: 200, header: jsonHeader()}, 100, 150},
		{"no response", nil, 0, 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, Options{})
			rec := env.run("/chat/completions", chatRequest("deepseek-chat", false), tt.resp, End{})
			if rec.TTFBMillis != tt.wantTTFB || rec.ProcessingTimeMillis != tt.wantProcessing {
				t.Errorf("ttfb, processing = %d, %d ms; want %d, %d", rec.TTFBMillis, rec.ProcessingTimeMillis, tt.wantTTFB, tt.wantProcessing)
			}
			if !rec.CreatedAt.Equal(testStart) || rec.CreatedAt.Location() != time.UTC {
				t.Errorf("created at = %v, want %v in UTC", rec.CreatedAt, testStart)
			}
		})
	}
}

// TestCallAttribution fills the attribution fields from the headers, the
// request body and the path, in that order.
func TestCallAttribution(t *testing.T) {
	body := `{"model":"deepseek-chat","user":"body-user","messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name         string
		attr         Attribution
		wantUser     string
		wantEndpoint string
		wantPageTab  string
	}{
		{"headers win", Attribution{UserID: "header-user", PageTab: "billing", Endpoint: "/feature/summarize"}, "header-user", "/feature/summarize", "billing"},
		{"body user and path", Attribution{}, "body-user", "/v1/chat/completions", ""},
		{"invalid UTF-8 cleaned", Attribution{UserID: "u\xff", PageTab: "t\x00ab"}, "u\uFFFD", "/v1/chat/completions", "tab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, Options{})
			call := env.meter.Begin("id-7", testStart, "/v1/chat/completions", []byte(body), tt.attr)
			rec := call.Finish(End{StatusCode: 499, ClientAborted: true})
			if rec.UserID != tt.wantUser || rec.Endpoint != tt.wantEndpoint || rec.PageTab != tt.wantPageTab {
				t.Errorf("user, endpoint, page tab = %q, %q, %q; want %q, %q, %q", rec.UserID, rec.Endpoint, rec.PageTab, tt.wantUser, tt.wantEndpoint, tt.wantPageTab)
			}
			if rec.ID != "id-7" || rec.UpstreamPath != "/v1/chat/completions" {
				t.Errorf("id, upstream path = %q, %q; want id-7, /v1/chat/completions", rec.ID, rec.UpstreamPath)
			}
		})
	}
}

// TestCallRequestTruncated keeps a capped copy of a large request body,
// for failed calls too, and flags it.
func TestCallRequestTruncated(t *testing.T) {
	env := newMeterEnv(t, Options{MaxStoredBody: 64})
	body := `{"model":"deepseek-chat","messages":[{"role":"user","content":"` + strings.Repeat("a", 500) + `"}]}`
	rec := env.run("/chat/completions", body, &response{status: 400, header: jsonHeader(), chunks: [][]byte{[]byte(`{"error":{"message":"bad"}}`)}}, End{})
	if !rec.HasFlag(store.FlagRequestTruncated) {
		t.Errorf("flags = %v, want request_truncated", rec.Flags)
	}
	want := body[:64] + truncationMarker(int64(len(body)))
	if rec.RequestData != want {
		t.Errorf("request data = %q, want %q", rec.RequestData, want)
	}
	if rec.Message != strings.Repeat("a", 100) {
		t.Errorf("message = %q, want 100 a's read from the whole body", rec.Message)
	}
}

// TestCallOverLimit marks the stored body of a request the proxy stopped
// reading at its limit with "more than" the limit, because its real size
// is unknown, whether or not the head fits the storage cap.
func TestCallOverLimit(t *testing.T) {
	head := `{"model":"deepseek-chat","messages":[{"role":"user","content":"` + strings.Repeat("a", 100)
	tests := []struct {
		name      string
		maxStored int
		want      string
	}{
		{"head fits the storage cap", 4096, head + "…[truncated, original size more than 1024 bytes]"},
		{"head cut at the storage cap", 32, head[:32] + "…[truncated, original size more than 1024 bytes]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, Options{MaxStoredBody: tt.maxStored})
			call := env.meter.BeginOverLimit("x", testStart, "/chat/completions", []byte(head), 1024, Attribution{})
			rec := call.Finish(End{StatusCode: 413})
			if rec.RequestData != tt.want {
				t.Errorf("request data = %q, want %q", rec.RequestData, tt.want)
			}
			if !rec.HasFlag(store.FlagRequestTruncated) {
				t.Errorf("flags = %v, want request_truncated", rec.Flags)
			}
		})
	}
}

// TestCallWriteDoesNotRetain overwrites each buffer right after Write, as
// the proxy's copy loop does: the record must not change.
func TestCallWriteDoesNotRetain(t *testing.T) {
	stream := typicalStream(5)
	tests := []struct {
		name   string
		header http.Header
		body   []byte
	}{
		{"json", jsonHeader(), []byte(chatCompletion("deepseek-chat", "Hello", usageJSON(10, 2, 0, 10)))},
		{"stream", sseHeader(), []byte(stream)},
		{"gzip stream", withEncoding(sseHeader(), "gzip"), gzipBytes(t, stream)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, Options{})
			want := env.run("/chat/completions", chatRequest("deepseek-chat", true),
				&response{status: 200, header: tt.header, chunks: [][]byte{tt.body}}, End{})

			call := env.meter.Begin("call-1", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", true)), Attribution{})
			call.Response(200, tt.header)
			buf := make([]byte, 10)
			for rest := tt.body; len(rest) > 0; {
				n := copy(buf, rest)
				call.Write(buf[:n])
				for i := range buf {
					buf[i] = 'X'
				}
				rest = rest[n:]
			}
			got := call.Finish(End{StatusCode: 200})
			if got.ResponseData != want.ResponseData || got.PromptTokens != want.PromptTokens || got.Success != want.Success {
				t.Errorf("record with reused buffer: data %q, prompt %d, success %v; want %q, %d, %v",
					got.ResponseData, got.PromptTokens, got.Success, want.ResponseData, want.PromptTokens, want.Success)
			}
		})
	}
}

// TestCallFinishOnOtherGoroutine writes on one goroutine and finishes on
// another after a channel handoff, the order the proxy may use; run with
// -race it checks the documented happens-before is enough, including for
// the decoder goroutine.
func TestCallFinishOnOtherGoroutine(t *testing.T) {
	env := newMeterEnv(t, Options{})
	body := gzipBytes(t, typicalStream(50))
	call := env.meter.Begin("call-1", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", true)), Attribution{})
	written := make(chan struct{})
	go func() {
		call.Response(200, withEncoding(sseHeader(), "gzip"))
		for _, c := range splitEvery(string(body), 64) {
			call.Write(c)
		}
		close(written)
	}()
	<-written
	rec := call.Finish(End{StatusCode: 200})
	if !rec.Success || rec.CompletionTokens != 50 {
		t.Errorf("success, completion = %v, %d; want true, 50", rec.Success, rec.CompletionTokens)
	}
}

// TestCallFinishTwice returns the same record and sends it only once, so
// a proxy bug cannot double-count a call.
func TestCallFinishTwice(t *testing.T) {
	env := newMeterEnv(t, Options{})
	call := env.meter.Begin("once", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", false)), Attribution{})
	first := call.Finish(End{StatusCode: 502})
	second := call.Finish(End{StatusCode: 200})
	if second.StatusCode != first.StatusCode || second.ID != first.ID {
		t.Errorf("second Finish = status %d, want the first record's %d", second.StatusCode, first.StatusCode)
	}
	if n := len(env.sink.all()); n != 1 {
		t.Errorf("sink got %d records, want 1", n)
	}
}

// TestCallSinkRejects still returns the record when the sink is full,
// so the caller can log it.
func TestCallSinkRejects(t *testing.T) {
	env := newMeterEnv(t, Options{})
	env.sink.reject = true
	rec := env.run("/chat/completions", chatRequest("deepseek-chat", false),
		&response{status: 200, header: jsonHeader(), chunks: [][]byte{[]byte(chatCompletion("deepseek-chat", "ok", usageJSON(1, 1, 0, 1)))}}, End{})
	if rec.ID != "call-1" || !rec.Success {
		t.Errorf("record = %q success %v, want call-1 and success", rec.ID, rec.Success)
	}
}

// TestCallWithoutPricesOrSink runs a Meter with every optional part nil.
func TestCallWithoutPricesOrSink(t *testing.T) {
	m := NewMeter(nil, nil, nil, nil, Options{})
	call := m.Begin("bare", time.Now(), "/chat/completions", []byte(chatRequest("deepseek-chat", false)), Attribution{})
	call.Response(200, jsonHeader())
	call.Write([]byte(chatCompletion("deepseek-chat", "ok", usageJSON(1, 1, 0, 1))))
	rec := call.Finish(End{})
	if rec.Priced || !rec.HasFlag(store.FlagUnpriced) || !rec.Success {
		t.Errorf("priced, flags, success = %v, %v, %v; want false, [unpriced], true", rec.Priced, rec.Flags, rec.Success)
	}
	m.ObservePassthrough("GET", "/models", 200, time.Millisecond)
}

// TestCallWriteWithoutResponse tolerates body bytes before the head is
// reported, reading them as a JSON body.
func TestCallWriteWithoutResponse(t *testing.T) {
	env := newMeterEnv(t, Options{})
	call := env.meter.Begin("x", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", false)), Attribution{})
	call.Write([]byte(chatCompletion("deepseek-chat", "ok", usageJSON(5, 5, 0, 5))))
	call.Response(200, sseHeader())
	rec := call.Finish(End{StatusCode: 200})
	if rec.PromptTokens != 5 {
		t.Errorf("prompt tokens = %d, want 5", rec.PromptTokens)
	}
}

// TestMeterDefaults fills the zero Options with the documented defaults.
func TestMeterDefaults(t *testing.T) {
	m := NewMeter(nil, nil, nil, nil, Options{})
	if m.maxStored != DefaultMaxStoredBody {
		t.Errorf("max stored = %d, want %d", m.maxStored, DefaultMaxStoredBody)
	}
	if m.now == nil {
		t.Errorf("clock is nil, want time.Now")
	}
}
