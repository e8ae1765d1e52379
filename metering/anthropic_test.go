package metering

import (
	"net/http"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/deepmeter/deepmeter/store"
)

// anthropicStream is an Anthropic-format stream as DeepSeek's
// /anthropic/v1/messages sends it: input counts in message_start, the
// final output count in message_delta, text and tool input in between.
const anthropicStream = "event: message_start\n" +
	`data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"deepseek-chat","content":[],"usage":{"input_tokens":100,"cache_creation_input_tokens":0,"cache_read_input_tokens":128,"output_tokens":1}}}` + "\n\n" +
	"event: ping\ndata: {\"type\":\"ping\"}\n\n" +
	`data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}` + "\n\n" +
	`data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}` + "\n\n" +
	`data: {"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}` + "\n\n" +
	`data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Hello "}}` + "\n\n" +
	`data: {"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"world"}}` + "\n\n" +
	`data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}` + "\n\n" +
	`data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\":"}}` + "\n\n" +
	`data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"\"Paris\"}"}}` + "\n\n" +
	`data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}` + "\n\n" +
	`data: {"type":"message_stop"}` + "\n\n"

// TestAnthropicUsageShape maps Anthropic's usage fields: input_tokens are
// cache misses, cache_read_input_tokens hits, and the prompt is both. An
// OpenAI-shaped object with prompt_tokens keeps its own mapping.
func TestAnthropicUsageShape(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want usage
	}{
		{"with cache hits", `{"input_tokens":100,"cache_creation_input_tokens":0,"cache_read_input_tokens":128,"output_tokens":42}`,
			usage{prompt: 228, completion: 42, total: 270, hit: 128, miss: 100, hasSplit: true}},
		{"output only is invalid", `{"output_tokens":7}`, usage{completion: 7, total: 7, hasSplit: true, invalid: true}},
		{"cache write counts as miss", `{"input_tokens":10,"cache_creation_input_tokens":5,"output_tokens":1}`,
			usage{prompt: 15, completion: 1, total: 16, miss: 15, hasSplit: true}},
		{"negative is invalid", `{"input_tokens":-5,"output_tokens":3}`, usage{completion: 3, total: 3, hasSplit: true, invalid: true}},
		{"above the bound is invalid", `{"input_tokens":9223372036854775807,"output_tokens":3}`, usage{completion: 3, total: 3, hasSplit: true, invalid: true}},
		{"OpenAI shape wins", `{"prompt_tokens":10,"completion_tokens":2,"input_tokens":99}`, usage{prompt: 10, completion: 2, total: 12}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseUsage(gjson.Parse(tt.raw))
			if !ok || got != tt.want {
				t.Errorf("parseUsage(%s) = %+v, %v; want %+v, true", tt.raw, got, ok, tt.want)
			}
		})
	}
}

// TestAnthropicStream assembles an Anthropic-format stream: usage merged
// from message_start and message_delta, text, thinking and tool input,
// and message_stop as the end. Cut before message_delta, the stream has
// no reported usage and the completion is estimated from its text.
func TestAnthropicStream(t *testing.T) {
	out, _ := parseStream(1<<20, []byte(anthropicStream))
	want := usage{prompt: 228, completion: 42, total: 270, hit: 128, miss: 100, hasSplit: true}
	if !out.hasUsage || out.usage != want {
		t.Errorf("usage = %+v, %v; want %+v", out.usage, out.hasUsage, want)
	}
	if !out.complete || out.model != "deepseek-chat" {
		t.Errorf("complete, model = %v, %q; want true, deepseek-chat", out.complete, out.model)
	}
	msg := gjson.Parse(out.data)
	for path, want := range map[string]string{
		"id":                              "msg_1",
		"content":                         "Hello world",
		"reasoning_content":               "hmm",
		"finish_reason":                   "tool_use",
		"tool_calls.0.id":                 "toolu_1",
		"tool_calls.0.function.name":      "get_weather",
		"tool_calls.0.function.arguments": `{"city":"Paris"}`,
		"usage.output_tokens":             "42",
		"usage.input_tokens":              "100",
	} {
		if got := msg.Get(path).String(); got != want {
			t.Errorf("response data %s = %q, want %q", path, got, want)
		}
	}

	cut := anthropicStream[:len(anthropicStream)-len(`data: {"type":"message_stop"}`+"\n\n")]
	cut = cut[:len(cut)-len(`data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":42}}`+"\n\n")]
	out, _ = parseStream(1<<20, []byte(cut))
	if out.hasUsage || out.complete {
		t.Errorf("cut stream: hasUsage, complete = %v, %v; want false, false", out.hasUsage, out.complete)
	}
	// "hmm" is 1 token, "Hello world" 4 and {"city":"Paris"} 5.
	if out.completionEstimate != 10 {
		t.Errorf("cut stream: completion estimate = %d, want 10", out.completionEstimate)
	}
}

// TestEstimateTokens checks the documented rates: 0.3 tokens per ASCII
// character and 0.6 per Chinese character, rounded up once per text.
func TestEstimateTokens(t *testing.T) {
	tests := []struct {
		name string
		body string
		want int64
	}{
		{"ten ASCII letters", `{"messages":[{"role":"user","content":"abcdefghij"}]}`, 3},
		{"two Han characters", `{"messages":[{"role":"user","content":"你好"}]}`, 2},
		{"mixed is summed before rounding", `{"messages":[{"role":"user","content":"ab你"}]}`, 2},
		{"system, messages and text parts", `{"system":"abc","messages":[{"role":"user","content":[{"type":"text","text":"defg"},{"type":"image","source":{}}]},{"role":"assistant","content":"hij"}]}`, 3},
		{"FIM prompt and suffix", `{"prompt":"def f(","suffix":")"}`, 3},
		{"no text", `{"model":"deepseek-chat"}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseRequest([]byte(tt.body), 1<<20).promptTokens; got != tt.want {
				t.Errorf("prompt tokens of %s = %d, want %d", tt.body, got, tt.want)
			}
		})
	}
}

// TestCallAnthropicNonStream meters a whole Anthropic message: usage from
// its shape, the message text from the request's last message.
func TestCallAnthropicNonStream(t *testing.T) {
	env := newMeterEnv(t, Options{})
	body := `{"id":"msg_2","type":"message","role":"assistant","model":"deepseek-chat","content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,` +
		`"usage":{"input_tokens":1500,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":800}}`
	request := `{"model":"deepseek-chat","max_tokens":100,"system":"terse","messages":[{"role":"user","content":[{"type":"text","text":"Say hi"}]}]}`
	rec := env.run("/anthropic/v1/messages", request, &response{status: 200, header: jsonHeader(), chunks: splitEvery(body, 7)}, End{})
	if !rec.Success || rec.UsageSource != store.UsageReported {
		t.Fatalf("success, usage source = %v, %q (%q); want true, reported", rec.Success, rec.UsageSource, rec.ErrorMessage)
	}
	if rec.PromptTokens != 1500 || rec.PromptCacheMissTokens != 1500 || rec.CompletionTokens != 800 {
		t.Errorf("prompt, miss, completion = %d, %d, %d; want 1500, 1500, 800", rec.PromptTokens, rec.PromptCacheMissTokens, rec.CompletionTokens)
	}
	// 1,500 misses and 800 output tokens at 0.28 and 0.42 USD per 1M.
	if rec.Cost.String() != "0.000756" {
		t.Errorf("cost = %s, want 0.000756", rec.Cost)
	}
	if rec.Message != "Say hi" {
		t.Errorf("message = %q, want the last message's text", rec.Message)
	}
}

// TestCallProgress moves LastProgress only for payload: the head and JSON
// events, never keep-alive comments, blank lines or data lines without
// JSON.
func TestCallProgress(t *testing.T) {
	env := newMeterEnv(t, Options{})
	call := env.meter.Begin("p", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", true)), Attribution{})
	began := call.LastProgress()
	steps := []struct {
		name     string
		do       func()
		progress bool
	}{
		{"head", func() { call.Response(http.StatusOK, sseHeader()) }, true},
		{"comment", func() { call.Write([]byte(": keep-alive\n\n")) }, false},
		{"blank lines", func() { call.Write([]byte("\n\n\n")) }, false},
		{"data without JSON", func() { call.Write([]byte("data: \n\ndata: ping\n\n")) }, false},
		{"JSON event", func() { call.Write([]byte(sseBody(chunk("deepseek-chat", "a", "", "null")))) }, true},
		{"event without its end", func() { call.Write([]byte("data: {\"choices\":[]}")) }, false},
	}
	last := began
	for _, step := range steps {
		// Sleep so that a new progress mark cannot equal the last one.
		time.Sleep(2 * time.Millisecond)
		step.do()
		got := call.LastProgress()
		if moved := got.After(last); moved != step.progress {
			t.Errorf("%s: progress moved = %v, want %v", step.name, moved, step.progress)
		}
		last = got
	}
	call.Finish(End{})
}

// TestCallStreamFinished is true from the final chunk of a stream on, the
// one with a finish reason, so the proxy can tell a client that left
// after the whole answer from one that missed part of it.
func TestCallStreamFinished(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		body   string
		want   bool
	}{
		{"chat before the final chunk", sseHeader(), sseBody(chunk("deepseek-chat", "a", "", "null")), false},
		{"chat final chunk", sseHeader(), sseBody(chunk("deepseek-chat", "a", "stop", usageJSON(1, 1, 0, 1))), true},
		{"chat DONE", sseHeader(), sseBody(chunk("deepseek-chat", "a", "", "null"), "[DONE]"), true},
		{"Anthropic before message_delta", sseHeader(), "data: {\"type\":\"message_start\",\"message\":{}}\n\n", false},
		{"Anthropic message_delta", sseHeader(), "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":1}}\n\n", true},
		{"JSON body", jsonHeader(), chatCompletion("deepseek-chat", "a", usageJSON(1, 1, 0, 1)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newMeterEnv(t, Options{})
			call := env.meter.Begin("f", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", true)), Attribution{})
			call.Response(http.StatusOK, tt.header)
			call.Write([]byte(tt.body))
			if got := call.StreamFinished(); got != tt.want {
				t.Errorf("StreamFinished() = %v, want %v", got, tt.want)
			}
			call.Finish(End{})
		})
	}
}
