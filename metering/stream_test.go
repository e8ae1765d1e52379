package metering

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// parseStream feeds chunks to a streamParser and returns its outcome.
func parseStream(maxText int, chunks ...[]byte) (outcome, *streamParser) {
	p := newStreamParser(maxText, maxEventLine)
	for _, c := range chunks {
		p.write(c)
	}
	p.finish()
	return p.outcome(maxText), p
}

// storedMessage decodes the assembled message of a stream.
func storedMessage(t *testing.T, data string) assembledMessage {
	t.Helper()
	var msg assembledMessage
	if err := json.Unmarshal([]byte(data), &msg); err != nil {
		t.Fatalf("response_data is not JSON: %v\n%s", err, data)
	}
	return msg
}

// TestStreamUsage covers where usage sits in a stream. DeepSeek sends it
// only on the final chunk, which may also carry content. Earlier chunks
// carry "usage": null or no key. A parser that misses it bills nothing.
func TestStreamUsage(t *testing.T) {
	final := usageJSON(1000, 3, 640, 360)
	tests := []struct {
		name         string
		body         string
		wantUsage    bool
		wantPrompt   int64
		wantHit      int64
		wantComplete bool
		wantContent  string
	}{
		{
			name:         "usage on final chunk with include_usage",
			body:         sseBody(chunk("deepseek-chat", "a", "", "null"), chunk("deepseek-chat", "b", "", "null"), chunk("deepseek-chat", "", "stop", final), "[DONE]"),
			wantUsage:    true,
			wantPrompt:   1000,
			wantHit:      640,
			wantComplete: true,
			wantContent:  "ab",
		},
		{
			name:         "usage without include_usage",
			body:         sseBody(chunk("deepseek-chat", "a", "", ""), chunk("deepseek-chat", "", "stop", final), "[DONE]"),
			wantUsage:    true,
			wantPrompt:   1000,
			wantHit:      640,
			wantComplete: true,
			wantContent:  "a",
		},
		{
			name:         "final chunk carries content and usage",
			body:         sseBody(chunk("deepseek-chat", "a", "", "null"), chunk("deepseek-chat", "end", "stop", final)),
			wantUsage:    true,
			wantPrompt:   1000,
			wantHit:      640,
			wantComplete: true,
			wantContent:  "aend",
		},
		{
			name:         "last non-null usage wins",
			body:         sseBody(chunk("deepseek-chat", "a", "", usageJSON(5, 1, 0, 5)), chunk("deepseek-chat", "b", "stop", final), chunk("deepseek-chat", "", "", "null"), "[DONE]"),
			wantUsage:    true,
			wantPrompt:   1000,
			wantHit:      640,
			wantComplete: true,
			wantContent:  "ab",
		},
		{
			name:         "cached_tokens fallback",
			body:         sseBody(chunk("deepseek-chat", "", "stop", `{"prompt_tokens":100,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":64}}`)),
			wantUsage:    true,
			wantPrompt:   100,
			wantHit:      64,
			wantComplete: true,
		},
		{
			name:         "cut before the final chunk",
			body:         sseBody(chunk("deepseek-chat", "a", "", "null"), chunk("deepseek-chat", "b", "", "null")),
			wantContent:  "ab",
			wantComplete: false,
		},
		{
			name:         "done without usage",
			body:         sseBody(chunk("deepseek-chat", "a", "", ""), "[DONE]"),
			wantContent:  "a",
			wantComplete: true,
		},
		{
			name:         "keep-alives and non-JSON data skipped",
			body:         ": keep-alive\n\ndata: ping\n\n" + sseBody(chunk("deepseek-chat", "a", "", "null")) + ": keep-alive\n\ndata: \n\n" + sseBody(chunk("deepseek-chat", "", "stop", final)),
			wantUsage:    true,
			wantPrompt:   1000,
			wantHit:      640,
			wantComplete: true,
			wantContent:  "a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := parseStream(DefaultMaxStoredBody, []byte(tt.body))
			if out.hasUsage != tt.wantUsage {
				t.Fatalf("hasUsage = %v, want %v", out.hasUsage, tt.wantUsage)
			}
			if out.usage.prompt != tt.wantPrompt || out.usage.hit != tt.wantHit {
				t.Errorf("prompt, hit = %d, %d; want %d, %d", out.usage.prompt, out.usage.hit, tt.wantPrompt, tt.wantHit)
			}
			if out.complete != tt.wantComplete {
				t.Errorf("complete = %v, want %v", out.complete, tt.wantComplete)
			}
			if msg := storedMessage(t, out.data); msg.Content != tt.wantContent {
				t.Errorf("content = %q, want %q", msg.Content, tt.wantContent)
			}
		})
	}
}

// TestStreamReasoning checks that a thinking-mode stream keeps reasoning
// apart from the content and reads reasoning_tokens.
func TestStreamReasoning(t *testing.T) {
	body := sseBody(
		`{"id":"r1","model":"deepseek-reasoner","choices":[{"index":0,"delta":{"role":"assistant","content":null,"reasoning_content":"Let me think"}}]}`,
		`{"id":"r1","model":"deepseek-reasoner","choices":[{"index":0,"delta":{"content":null,"reasoning_content":" twice."}}]}`,
		`{"id":"r1","model":"deepseek-reasoner","choices":[{"index":0,"delta":{"content":"42"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":30,"total_tokens":40,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":10,"completion_tokens_details":{"reasoning_tokens":25}}}`,
		"[DONE]")
	out, _ := parseStream(DefaultMaxStoredBody, []byte(body))
	msg := storedMessage(t, out.data)
	if msg.ReasoningContent != "Let me think twice." {
		t.Errorf("reasoning_content = %q, want %q", msg.ReasoningContent, "Let me think twice.")
	}
	if msg.Content != "42" {
		t.Errorf("content = %q, want %q", msg.Content, "42")
	}
	if out.usage.reasoning != 25 || out.usage.completion != 30 {
		t.Errorf("reasoning, completion = %d, %d; want 25, 30", out.usage.reasoning, out.usage.completion)
	}
	if msg.Model != "deepseek-reasoner" || msg.ID != "r1" || msg.FinishReason != "stop" {
		t.Errorf("model, id, finish_reason = %q, %q, %q; want deepseek-reasoner, r1, stop", msg.Model, msg.ID, msg.FinishReason)
	}
}

// TestStreamToolCalls merges tool call fragments by index, as a client
// would, so the stored message shows the calls the model made.
func TestStreamToolCalls(t *testing.T) {
	body := sseBody(
		`{"id":"t1","model":"deepseek-chat","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}`,
		`{"id":"t1","model":"deepseek-chat","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}`,
		`{"id":"t1","model":"deepseek-chat","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{}"}}]}}]}`,
		`{"id":"t1","model":"deepseek-chat","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]}`,
		`{"id":"t1","model":"deepseek-chat","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":`+usageJSON(50, 20, 0, 50)+`}`,
		"[DONE]")
	out, _ := parseStream(DefaultMaxStoredBody, []byte(body))
	msg := storedMessage(t, out.data)

	want := []struct{ id, name, args string }{
		{"call_a", "get_weather", `{"city":"Paris"}`},
		{"call_b", "get_time", `{}`},
	}
	if len(msg.ToolCalls) != len(want) {
		t.Fatalf("got %d tool calls, want %d: %s", len(msg.ToolCalls), len(want), out.data)
	}
	for i, w := range want {
		got := msg.ToolCalls[i]
		if got.Index != i || got.ID != w.id || got.Type != "function" || got.Function.Name != w.name || got.Function.Arguments != w.args {
			t.Errorf("tool call %d = {index %d, id %q, type %q, name %q, args %q}, want {index %d, id %q, type function, name %q, args %q}",
				i, got.Index, got.ID, got.Type, got.Function.Name, got.Function.Arguments, i, w.id, w.name, w.args)
		}
	}
	if msg.FinishReason != "tool_calls" {
		t.Errorf("finish_reason = %q, want tool_calls", msg.FinishReason)
	}
	if !out.hasUsage || out.usage.prompt != 50 {
		t.Errorf("usage = %+v (has %v), want prompt 50", out.usage, out.hasUsage)
	}
}

// TestStreamToolCallIndexBound drops fragments with an index past the
// bound, so a broken upstream cannot grow the tool call list without end.
func TestStreamToolCallIndexBound(t *testing.T) {
	body := sseBody(
		fmt.Sprintf(`{"choices":[{"delta":{"tool_calls":[{"index":%d,"function":{"name":"x","arguments":"{}"}}]}}]}`, maxToolCalls),
		`{"choices":[{"delta":{"tool_calls":[{"index":-1,"function":{"name":"y"}}]}}]}`,
		`{"choices":[{"delta":{"tool_calls":[{"function":{"name":"by_position","arguments":"1"}}]}}]}`,
	)
	out, p := parseStream(DefaultMaxStoredBody, []byte(body))
	if len(p.tools) != 1 || p.tools[0].Function.Name != "by_position" || p.tools[0].Index != 0 {
		t.Errorf("tool calls = %s, want only by_position at index 0", out.data)
	}
	if !out.truncated {
		t.Errorf("truncated = false, want true after dropped fragments")
	}
}

// TestStreamTextCompletion reads a /beta/completions stream, which sends
// choices[0].text instead of a delta.
func TestStreamTextCompletion(t *testing.T) {
	body := sseBody(
		`{"id":"f1","object":"text_completion","model":"deepseek-chat","choices":[{"index":0,"text":"def ","finish_reason":null}]}`,
		`{"id":"f1","object":"text_completion","model":"deepseek-chat","choices":[{"index":0,"text":"add(a, b):","finish_reason":"stop"}],"usage":`+usageJSON(12, 5, 0, 12)+`}`,
		"[DONE]")
	out, _ := parseStream(DefaultMaxStoredBody, []byte(body))
	msg := storedMessage(t, out.data)
	if msg.Content != "def add(a, b):" {
		t.Errorf("content = %q, want %q", msg.Content, "def add(a, b):")
	}
	if !out.hasUsage || out.usage.completion != 5 {
		t.Errorf("usage = %+v (has %v), want completion 5", out.usage, out.hasUsage)
	}
}

// TestStreamTextBudget caps the assembled text: once the cap is passed
// nothing more is appended, the text is cut on a character boundary and
// the record is flagged, while usage on the last chunk is still read.
func TestStreamTextBudget(t *testing.T) {
	const maxText = 100
	var events []string
	for i := 0; i < 30; i++ {
		events = append(events, chunk("deepseek-chat", "héllo ", "", "null"))
	}
	events = append(events, chunk("deepseek-chat", "", "stop", usageJSON(10, 30, 0, 10)), "[DONE]")
	out, p := parseStream(maxText, []byte(sseBody(events...)))

	if !out.truncated {
		t.Errorf("truncated = false, want true")
	}
	if got := p.content.Len(); got > maxText {
		t.Errorf("assembled %d bytes of content, want at most %d", got, maxText)
	}
	if content := p.content.String(); !strings.HasPrefix(strings.Repeat("héllo ", 30), content) {
		t.Errorf("content %q is not a prefix of the streamed text", content)
	}
	if !out.hasUsage || out.usage.completion != 30 {
		t.Errorf("usage = %+v (has %v), want completion 30", out.usage, out.hasUsage)
	}
	if len(out.data) > maxText+len(truncationMarker(0))+20 {
		t.Errorf("stored %d bytes, want about %d at most", len(out.data), maxText)
	}
}

// TestStreamEmpty distinguishes a stream that carried nothing from one
// that carried only data the parser cannot read.
func TestStreamEmpty(t *testing.T) {
	tests := []struct {
		name           string
		body           string
		wantEmpty      bool
		wantUnreadable bool
	}{
		{"nothing", "", true, false},
		{"only keep-alives", ": keep-alive\n\n: keep-alive\n\n\n", true, false},
		{"only non-JSON data", "data: ping\n\ndata: pong\n\n", false, true},
		{"done only", "data: [DONE]\n\n", false, false},
		{"error event", sseBody(`{"error":{"message":"overloaded"}}`), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := parseStream(DefaultMaxStoredBody, []byte(tt.body))
			if out.empty != tt.wantEmpty || out.unreadable != tt.wantUnreadable {
				t.Errorf("empty, unreadable = %v, %v; want %v, %v", out.empty, out.unreadable, tt.wantEmpty, tt.wantUnreadable)
			}
		})
	}
}

// TestStreamSplitAnywhere cuts a realistic stream at every byte offset:
// the assembled message and the usage must not depend on how TCP split
// the bytes.
func TestStreamSplitAnywhere(t *testing.T) {
	body := strings.ReplaceAll(typicalStream(5), "\n", "\r\n")
	body += ": keep-alive\r\n\r\n"
	want, _ := parseStream(DefaultMaxStoredBody, []byte(body))
	if !want.hasUsage || !want.complete {
		t.Fatalf("whole body: hasUsage %v, complete %v; want both", want.hasUsage, want.complete)
	}
	for cut := 0; cut <= len(body); cut++ {
		got, _ := parseStream(DefaultMaxStoredBody, []byte(body[:cut]), []byte(body[cut:]))
		if got != want {
			t.Fatalf("split at %d: outcome = %+v\nwant %+v", cut, got, want)
		}
	}
}

// TestStreamTypeKeyCheck runs events past the cheap check that skips the
// search for a "type" key in chat chunks. A key spelled with \u escapes
// must still mark an Anthropic-format event, and a "type" inside a value
// or a nested object must not.
func TestStreamTypeKeyCheck(t *testing.T) {
	tests := []struct {
		name     string
		event    string
		wantDone bool // message_stop was read as an Anthropic-format event
	}{
		{"plain key", `{"type":"message_stop"}`, true},
		{"escaped key", `{"typ\u0065":"message_stop"}`, true},
		{"fully escaped key", `{"\u0074\u0079\u0070\u0065":"message_stop"}`, true},
		{"after other keys", `{"id":"x","choices":[],"type":"message_stop"}`, true},
		{"chat chunk", chunk("deepseek-chat", "message_stop", "", ""), false},
		{"nested type key", `{"choices":[{"delta":{"tool_calls":[{"type":"message_stop"}]}}]}`, false},
		{"escape in value", `{"choices":[{"delta":{"content":"\u0074ype"}}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, p := parseStream(DefaultMaxStoredBody, []byte(sseBody(tt.event)))
			if p.done != tt.wantDone {
				t.Errorf("done = %v, want %v for %s", p.done, tt.wantDone, tt.event)
			}
		})
	}
}
