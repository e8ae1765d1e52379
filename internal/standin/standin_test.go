package standin_test

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"
	"github.com/tidwall/gjson"

	"github.com/deepmeter/deepmeter/internal/standin"
)

const testKey = "sk-test0000wxyz"

// longPrompt is long enough (180 tokens) for a cache hit of 64 tokens.
var longPrompt = strings.Repeat("hello ", 100)

// startStandin runs a stand-in on a loopback httptest server and returns its
// base URL. Cleanup closes the stand-in first, so held requests end, and then
// the server.
func startStandin(t *testing.T, opts standin.Options) string {
	t.Helper()
	h := standin.New(opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	t.Cleanup(h.Close)
	return srv.URL
}

// rawClient does not decompress, so tests see the bytes the stand-in sent.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

// request describes one HTTP call of a test.
type request struct {
	method string // POST when empty
	path   string
	body   string
	fault  string
	header map[string]string // extra headers; an empty value removes one
}

// send makes the call with the test key and returns the response, the body
// and the error of reading the body.
func send(t *testing.T, base string, rq request) (*http.Response, []byte, error) {
	t.Helper()
	method := rq.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+rq.path, strings.NewReader(rq.body))
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set("Content-Type", "application/json")
	if rq.fault != "" {
		req.Header.Set(standin.FaultHeader, rq.fault)
	}
	for k, v := range rq.header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rq.path, err)
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(resp.Body)
	return resp, body, readErr
}

// mustSend is send for calls whose body must read completely.
func mustSend(t *testing.T, base string, rq request) (*http.Response, []byte) {
	t.Helper()
	resp, body, err := send(t, base, rq)
	if err != nil {
		t.Fatalf("read body of %s: %v (read %d bytes)", rq.path, err, len(body))
	}
	return resp, body
}

func chatBody(model, content string, extra string) string {
	b := `{"model":"` + model + `","messages":[{"role":"user","content":` + string(mustJSON(content)) + `}]`
	if extra != "" {
		b += "," + extra
	}
	return b + "}"
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// sseEvent is one parsed server-sent event.
type sseEvent struct {
	name string
	data string
}

// sseStream is a parsed event stream.
type sseStream struct {
	events   []sseEvent // data events, [DONE] not included
	comments int
	done     bool // "data: [DONE]" was seen
}

// parseSSE parses an event stream by the SSE rules: lines end with CRLF, LF
// or CR, one space after the colon is optional, a line starting with a colon
// is a comment, and a blank line ends an event.
func parseSSE(t *testing.T, body []byte) sseStream {
	t.Helper()
	text := strings.ReplaceAll(string(body), "\r\n", "\n")
	text = strings.ReplaceAll(text, "\r", "\n")
	var s sseStream
	var cur sseEvent
	var hasData bool
	for line := range strings.SplitSeq(text, "\n") {
		switch {
		case line == "":
			if hasData {
				if cur.data == "[DONE]" {
					s.done = true
				} else if cur.data != "" {
					s.events = append(s.events, cur)
				}
			}
			cur, hasData = sseEvent{}, false
		case strings.HasPrefix(line, ":"):
			s.comments++
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				cur.name = value
			case "data":
				cur.data, hasData = value, true
			default:
				t.Fatalf("unexpected SSE line %q", line)
			}
		}
	}
	return s
}

// usage is the usage object of chat and fill-in-the-middle responses.
type usage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	PromptCacheHitTokens  int `json:"prompt_cache_hit_tokens"`
	PromptCacheMissTokens int `json:"prompt_cache_miss_tokens"`
}

// String prints usage as JSON, so failures show the reasoning tokens rather
// than a pointer.
func (u usage) String() string {
	return string(mustJSON(u))
}

type toolCall struct {
	Index    int    `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type completion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Role             string     `json:"role"`
			Content          string     `json:"content"`
			ReasoningContent *string    `json:"reasoning_content"`
			ToolCalls        []toolCall `json:"tool_calls"`
		} `json:"message"`
		Delta struct {
			Role             string     `json:"role"`
			Content          *string    `json:"content"`
			ReasoningContent *string    `json:"reasoning_content"`
			ToolCalls        []toolCall `json:"tool_calls"`
		} `json:"delta"`
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}

// assembled is a chat stream put back together.
type assembled struct {
	content, reasoning, arguments string
	toolName, toolID              string
	finish                        string
	usage                         *usage
	ids                           map[string]bool
}

// assembleChat checks the framing rules of a chat stream and puts the stream
// back together. The rules are one id, a first chunk with role assistant, a
// finish reason and usage only on the last chunk, "usage":null on earlier
// chunks exactly when includeUsage, and [DONE] at the end.
func assembleChat(t *testing.T, body []byte, includeUsage bool) assembled {
	t.Helper()
	s := parseSSE(t, body)
	if !s.done {
		t.Errorf("stream has no [DONE]")
	}
	if len(s.events) < 2 {
		t.Fatalf("stream has %d data events, want at least 2:\n%s", len(s.events), body)
	}
	a := assembled{ids: map[string]bool{}}
	for i, ev := range s.events {
		c := decode[completion](t, []byte(ev.data))
		a.ids[c.ID] = true
		if c.Object != "chat.completion.chunk" {
			t.Errorf("chunk %d object = %q, want chat.completion.chunk", i, c.Object)
		}
		if len(c.Choices) != 1 {
			t.Fatalf("chunk %d has %d choices, want 1: %s", i, len(c.Choices), ev.data)
		}
		ch := c.Choices[0]
		last := i == len(s.events)-1
		if i == 0 && ch.Delta.Role != "assistant" {
			t.Errorf("first chunk role = %q, want assistant", ch.Delta.Role)
		}

		u := gjson.Get(ev.data, "usage")
		switch {
		case last && (!u.Exists() || u.Type == gjson.Null):
			t.Errorf("last chunk has no usage: %s", ev.data)
		case !last && includeUsage && (!u.Exists() || u.Type != gjson.Null):
			t.Errorf("chunk %d usage = %q, want null with include_usage", i, u.Raw)
		case !last && !includeUsage && u.Exists():
			t.Errorf("chunk %d has a usage key %q, want none without include_usage", i, u.Raw)
		}
		if (ch.FinishReason != nil) != last {
			t.Errorf("chunk %d of %d finish_reason = %v, want it only on the last", i, len(s.events), ch.FinishReason)
		}

		if ch.Delta.Content != nil {
			a.content += *ch.Delta.Content
		}
		if ch.Delta.ReasoningContent != nil {
			a.reasoning += *ch.Delta.ReasoningContent
		}
		for _, tc := range ch.Delta.ToolCalls {
			a.arguments += tc.Function.Arguments
			if tc.Function.Name != "" {
				a.toolName, a.toolID = tc.Function.Name, tc.ID
			}
		}
		if last {
			a.finish = *ch.FinishReason
			a.usage = c.Usage
		}
	}
	if len(a.ids) != 1 {
		t.Errorf("stream has ids %v, want one", a.ids)
	}
	return a
}

// checkUsage checks u against the usage rule for a prompt text and the
// generated reasoning and answer texts.
func checkUsage(t *testing.T, u *usage, prompt, reasoning, answer string) {
	t.Helper()
	if u == nil {
		t.Fatal("usage missing")
	}
	wantPrompt := standin.PromptTokens(prompt)
	wantHit := standin.CacheHitTokens(wantPrompt)
	wantReasoning := standin.EstimateTokens(reasoning)
	wantCompletion := wantReasoning + standin.EstimateTokens(answer)
	checks := []struct {
		name      string
		got, want int
	}{
		{"prompt_tokens", u.PromptTokens, wantPrompt},
		{"prompt_cache_hit_tokens", u.PromptCacheHitTokens, wantHit},
		{"prompt_cache_miss_tokens", u.PromptCacheMissTokens, wantPrompt - wantHit},
		{"cached_tokens", u.PromptTokensDetails.CachedTokens, wantHit},
		{"completion_tokens", u.CompletionTokens, wantCompletion},
		{"total_tokens", u.TotalTokens, wantPrompt + wantCompletion},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	switch {
	case reasoning == "" && u.CompletionTokensDetails != nil:
		t.Errorf("completion_tokens_details = %+v, want none without reasoning", *u.CompletionTokensDetails)
	case reasoning != "" && u.CompletionTokensDetails == nil:
		t.Errorf("completion_tokens_details missing, want reasoning_tokens %d", wantReasoning)
	case reasoning != "" && u.CompletionTokensDetails.ReasoningTokens != wantReasoning:
		t.Errorf("reasoning_tokens = %d, want %d", u.CompletionTokensDetails.ReasoningTokens, wantReasoning)
	}
}

// TestEstimateTokens checks the token rule that test authors compute
// expectations with: 0.3 per ASCII byte, 0.6 per other character, rounded up.
func TestEstimateTokens(t *testing.T) {
	tests := []struct {
		name string
		text string
		want int
	}{
		{"empty", "", 0},
		{"one ASCII byte", "a", 1},
		{"ten ASCII bytes", "abcdefghij", 3},
		{"eleven ASCII bytes round up", "abcdefghijk", 4},
		{"two Han characters", "你好", 2},
		{"five Han characters", "你好世界们", 3},
		{"mixed", "hi 你好", 3}, // 3*0.3 + 2*0.6 = 2.1
		{"invalid UTF-8 byte counts as other", "\xff", 1},
		{"emoji counts as other", "😀😀😀😀😀", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := standin.EstimateTokens(tt.text); got != tt.want {
				t.Errorf("EstimateTokens(%q) = %d, want %d", tt.text, got, tt.want)
			}
		})
	}
}

// TestPromptAndCacheTokens checks that a prompt is at least one token and
// that cache hits are multiples of 64 and never exceed the prompt.
func TestPromptAndCacheTokens(t *testing.T) {
	if got := standin.PromptTokens(""); got != 1 {
		t.Errorf("PromptTokens(\"\") = %d, want 1", got)
	}
	tests := []struct {
		prompt, want int
	}{
		{1, 0}, {127, 0}, {128, 64}, {255, 64}, {256, 128}, {1000, 448},
	}
	for _, tt := range tests {
		got := standin.CacheHitTokens(tt.prompt)
		if got != tt.want {
			t.Errorf("CacheHitTokens(%d) = %d, want %d", tt.prompt, got, tt.want)
		}
		if got%64 != 0 || got > tt.prompt {
			t.Errorf("CacheHitTokens(%d) = %d, want a multiple of 64 at most the prompt", tt.prompt, got)
		}
	}
}

// TestChatJSON checks a non-streamed chat answer: shape, served model and
// usage by the documented rule, for short, cached and Chinese prompts, and
// that the /v1 prefix serves the same answer.
func TestChatJSON(t *testing.T) {
	base := startStandin(t, standin.Options{})
	tests := []struct {
		name   string
		path   string
		prompt string
	}{
		{"short prompt", "/chat/completions", "Hello there"},
		{"prompt with cache hits", "/chat/completions", longPrompt},
		{"Chinese prompt", "/chat/completions", "请用中文回答这个问题"},
		{"v1 prefix", "/v1/chat/completions", "Hello there"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := mustSend(t, base, request{path: tt.path, body: chatBody("deepseek-chat", tt.prompt, "")})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d, want 200: %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			c := decode[completion](t, body)
			if c.Object != "chat.completion" || c.Model != "deepseek-chat" || c.ID == "" {
				t.Errorf("object, model, id = %q, %q, %q; want chat.completion, deepseek-chat, an id", c.Object, c.Model, c.ID)
			}
			msg := c.Choices[0].Message
			if msg.Role != "assistant" || msg.Content == "" {
				t.Errorf("message = %+v, want assistant text", msg)
			}
			if got := len(strings.Fields(msg.Content)); got != 12 {
				t.Errorf("content has %d words, want the default 12: %q", got, msg.Content)
			}
			if got := *c.Choices[0].FinishReason; got != "stop" {
				t.Errorf("finish_reason = %q, want stop", got)
			}
			checkUsage(t, c.Usage, tt.prompt, "", msg.Content)
		})
	}
}

// TestChatPromptTextRule checks that the prompt text is all message
// contents, array text parts included, so proxies can predict prompt_tokens.
func TestChatPromptTextRule(t *testing.T) {
	base := startStandin(t, standin.Options{})
	body := `{"model":"deepseek-chat","messages":[
		{"role":"system","content":"You are terse."},
		{"role":"user","content":[{"type":"text","text":"Part one. "},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"Part two."}]},
		{"role":"assistant","content":null},
		{"role":"user","content":"` + longPrompt + `"}]}`
	_, raw := mustSend(t, base, request{path: "/chat/completions", body: body})
	c := decode[completion](t, raw)
	prompt := "You are terse." + "Part one. " + "Part two." + longPrompt
	checkUsage(t, c.Usage, prompt, "", c.Choices[0].Message.Content)
}

// TestChatStreamFraming checks stream framing and usage placement with and
// without include_usage, and that the streamed text and usage equal the
// non-streamed ones, which lets proxies compare both paths.
func TestChatStreamFraming(t *testing.T) {
	base := startStandin(t, standin.Options{})
	_, plain := mustSend(t, base, request{path: "/chat/completions", body: chatBody("deepseek-chat", longPrompt, "")})
	want := decode[completion](t, plain)

	tests := []struct {
		name         string
		extra        string
		includeUsage bool
	}{
		{"without include_usage", `"stream":true`, false},
		{"with include_usage", `"stream":true,"stream_options":{"include_usage":true}`, true},
		{"include_usage false", `"stream":true,"stream_options":{"include_usage":false}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := mustSend(t, base, request{path: "/chat/completions", body: chatBody("deepseek-chat", longPrompt, tt.extra)})
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream; charset=utf-8" {
				t.Errorf("Content-Type = %q, want text/event-stream; charset=utf-8", ct)
			}
			if !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
				t.Errorf("body does not end with the [DONE] event: %q", body[max(0, len(body)-40):])
			}
			if n := bytes.Count(body, []byte("data: ")); n < 5 {
				t.Errorf("stream has %d data events, want the text in several chunks", n)
			}
			a := assembleChat(t, body, tt.includeUsage)
			if a.content != want.Choices[0].Message.Content {
				t.Errorf("streamed content = %q, want the JSON content %q", a.content, want.Choices[0].Message.Content)
			}
			if a.finish != "stop" {
				t.Errorf("finish_reason = %q, want stop", a.finish)
			}
			if !reflect.DeepEqual(a.usage, want.Usage) {
				t.Errorf("streamed usage = %+v, want the JSON usage %+v", *a.usage, *want.Usage)
			}
		})
	}
}

// TestReasoning checks thinking mode: the reasoning comes first, its tokens
// are reported and included in completion_tokens, for a reasoner model and
// for "thinking" enabled on another model, streamed or not.
func TestReasoning(t *testing.T) {
	base := startStandin(t, standin.Options{})
	tests := []struct {
		name          string
		model         string
		extra         string
		wantReasoning bool
	}{
		{"reasoner model", "deepseek-reasoner", "", true},
		{"thinking enabled", "deepseek-v4-pro", `"thinking":{"type":"enabled"}`, true},
		{"thinking disabled", "deepseek-v4-flash", `"thinking":{"type":"disabled"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, raw := mustSend(t, base, request{path: "/chat/completions", body: chatBody(tt.model, "Why is the sky blue?", tt.extra)})
			c := decode[completion](t, raw)
			msg := c.Choices[0].Message
			reasoning := ""
			if msg.ReasoningContent != nil {
				reasoning = *msg.ReasoningContent
			}
			if (reasoning != "") != tt.wantReasoning {
				t.Fatalf("reasoning_content = %q, want present: %v", reasoning, tt.wantReasoning)
			}
			checkUsage(t, c.Usage, "Why is the sky blue?", reasoning, msg.Content)

			extra := `"stream":true`
			if tt.extra != "" {
				extra += "," + tt.extra
			}
			_, streamed := mustSend(t, base, request{path: "/chat/completions", body: chatBody(tt.model, "Why is the sky blue?", extra)})
			a := assembleChat(t, streamed, false)
			if a.reasoning != reasoning || a.content != msg.Content {
				t.Errorf("streamed reasoning, content = %q, %q; want %q, %q", a.reasoning, a.content, reasoning, msg.Content)
			}
			if !reflect.DeepEqual(a.usage, c.Usage) {
				t.Errorf("streamed usage = %+v, want %+v", *a.usage, *c.Usage)
			}
			if tt.wantReasoning {
				s := parseSSE(t, streamed)
				first := gjson.Get(s.events[1].data, "choices.0.delta")
				if !first.Get("reasoning_content").Exists() || first.Get("content").Type != gjson.Null {
					t.Errorf("second chunk delta = %s, want reasoning_content with content null", first.Raw)
				}
			}
		})
	}
}

// TestMaxTokens checks that max_tokens caps completion tokens exactly and
// sets finish_reason "length", also when the cap falls inside the reasoning.
func TestMaxTokens(t *testing.T) {
	base := startStandin(t, standin.Options{})
	tests := []struct {
		name       string
		model      string
		maxTokens  int
		wantFinish string
	}{
		{"cap inside the text", "deepseek-chat", 7, "length"},
		{"cap of one token", "deepseek-chat", 1, "length"},
		{"cap above the answer", "deepseek-chat", 1000, "stop"},
		{"cap inside the reasoning", "deepseek-reasoner", 4, "length"},
		{"cap inside the text after reasoning", "deepseek-reasoner", 30, "length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, stream := range []bool{false, true} {
				extra := `"max_tokens":` + mustString(tt.maxTokens)
				if stream {
					extra += `,"stream":true`
				}
				_, raw := mustSend(t, base, request{path: "/chat/completions", body: chatBody(tt.model, "Tell me a story", extra)})
				var content, reasoning, finish string
				var u *usage
				if stream {
					a := assembleChat(t, raw, false)
					content, reasoning, finish, u = a.content, a.reasoning, a.finish, a.usage
				} else {
					c := decode[completion](t, raw)
					content, finish, u = c.Choices[0].Message.Content, *c.Choices[0].FinishReason, c.Usage
					if c.Choices[0].Message.ReasoningContent != nil {
						reasoning = *c.Choices[0].Message.ReasoningContent
					}
				}
				if finish != tt.wantFinish {
					t.Errorf("stream %v: finish_reason = %q, want %q", stream, finish, tt.wantFinish)
				}
				if tt.wantFinish == "length" && u.CompletionTokens != tt.maxTokens {
					t.Errorf("stream %v: completion_tokens = %d, want the cap %d", stream, u.CompletionTokens, tt.maxTokens)
				}
				checkUsage(t, u, "Tell me a story", reasoning, content)
			}
		})
	}
}

func mustString(n int) string {
	return string(mustJSON(n))
}

// TestWordCount checks the two ways a request sets the completion length: the
// words fault and the phrase "in N words".
func TestWordCount(t *testing.T) {
	base := startStandin(t, standin.Options{})
	tests := []struct {
		name   string
		prompt string
		fault  string
		want   int
	}{
		{"words fault", "Hi", "words=40", 40},
		{"words zero", "Hi", "words=0", 0},
		{"phrase", "Answer in 5 words please", "", 5},
		{"fault wins over phrase", "Answer in 5 words please", "words=3", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, raw := mustSend(t, base, request{path: "/chat/completions", body: chatBody("deepseek-chat", tt.prompt, ""), fault: tt.fault})
			c := decode[completion](t, raw)
			if got := len(strings.Fields(c.Choices[0].Message.Content)); got != tt.want {
				t.Errorf("content has %d words, want %d: %q", got, tt.want, c.Choices[0].Message.Content)
			}
			checkUsage(t, c.Usage, tt.prompt, "", c.Choices[0].Message.Content)
		})
	}
}

const weatherTools = `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object",
	"properties":{"city":{"type":"string"},"days":{"type":"integer"},"unit":{"type":"string","enum":["c","f"]}}}}},
	{"type":"function","function":{"name":"get_time","parameters":{"type":"object","properties":{"zone":{"type":"string"}}}}}]`

// TestToolCalls checks that a request with tools gets a tool call whose
// arguments fill the schema, streamed in fragments with finish_reason
// tool_calls and usage, and that tool_choice and tool results are honoured.
func TestToolCalls(t *testing.T) {
	base := startStandin(t, standin.Options{})
	tests := []struct {
		name     string
		body     string
		wantTool string // empty for a text completion
	}{
		{"first tool", chatBody("deepseek-chat", "Weather in Paris?", weatherTools), "get_weather"},
		{"named tool_choice", chatBody("deepseek-chat", "Time?", weatherTools+`,"tool_choice":{"type":"function","function":{"name":"get_time"}}`), "get_time"},
		{"tool_choice none", chatBody("deepseek-chat", "Weather?", weatherTools+`,"tool_choice":"none"`), ""},
		{"after a tool result", `{"model":"deepseek-chat",` + weatherTools + `,"messages":[{"role":"user","content":"Weather?"},
			{"role":"assistant","content":"","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},
			{"role":"tool","tool_call_id":"call_1","content":"sunny"}]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, raw := mustSend(t, base, request{path: "/chat/completions", body: tt.body})
			c := decode[completion](t, raw)
			msg := c.Choices[0].Message
			if tt.wantTool == "" {
				if len(msg.ToolCalls) != 0 || msg.Content == "" || *c.Choices[0].FinishReason != "stop" {
					t.Errorf("message = %+v, finish %q; want text and stop", msg, *c.Choices[0].FinishReason)
				}
				return
			}
			if got := *c.Choices[0].FinishReason; got != "tool_calls" {
				t.Errorf("finish_reason = %q, want tool_calls", got)
			}
			if len(msg.ToolCalls) != 1 {
				t.Fatalf("tool_calls = %+v, want one", msg.ToolCalls)
			}
			call := msg.ToolCalls[0]
			if call.Function.Name != tt.wantTool || call.Type != "function" || !strings.HasPrefix(call.ID, "call_") {
				t.Errorf("tool call = %+v, want function %s with a call_ id", call, tt.wantTool)
			}
			if !json.Valid([]byte(call.Function.Arguments)) {
				t.Errorf("arguments %q are not valid JSON", call.Function.Arguments)
			}
			checkUsage(t, c.Usage, gjson.Get(tt.body, "messages.0.content").Str, "", call.Function.Arguments)

			streamBody := strings.Replace(tt.body, `{"model"`, `{"stream":true,"model"`, 1)
			_, streamed := mustSend(t, base, request{path: "/chat/completions", body: streamBody})
			a := assembleChat(t, streamed, false)
			if a.toolName != tt.wantTool || a.toolID != call.ID || a.arguments != call.Function.Arguments {
				t.Errorf("streamed call = %s %s %q, want %s %s %q", a.toolName, a.toolID, a.arguments, tt.wantTool, call.ID, call.Function.Arguments)
			}
			if a.finish != "tool_calls" || !reflect.DeepEqual(a.usage, c.Usage) {
				t.Errorf("streamed finish, usage = %q, %+v; want tool_calls, %+v", a.finish, *a.usage, *c.Usage)
			}
			if n := strings.Count(string(streamed), `"arguments"`); n < 4 {
				t.Errorf("arguments came in %d chunks, want several fragments", n)
			}
		})
	}
	t.Run("weather arguments follow the schema", func(t *testing.T) {
		_, raw := mustSend(t, base, request{path: "/chat/completions", body: tests[0].body})
		args := gjson.Get(string(raw), "choices.0.message.tool_calls.0.function.arguments").Str
		v := gjson.Parse(args)
		if v.Get("city").Type != gjson.String || v.Get("days").Type != gjson.Number || v.Get("unit").Str != "c" {
			t.Errorf("arguments = %s, want a string city, a number of days and the first enum unit", args)
		}
	})
}

// TestDeterminism checks that two identical requests get identical bytes,
// which tests and benchmarks of deepmeter depend on.
func TestDeterminism(t *testing.T) {
	base := startStandin(t, standin.Options{})
	tests := []struct {
		name string
		rq   request
	}{
		{"chat JSON", request{path: "/chat/completions", body: chatBody("deepseek-chat", longPrompt, "")}},
		{"chat stream", request{path: "/chat/completions", body: chatBody("deepseek-reasoner", "Hi", `"stream":true`)}},
		{"tool stream", request{path: "/chat/completions", body: chatBody("deepseek-chat", "Hi", `"stream":true,`+weatherTools)}},
		{"fill in the middle", request{path: "/beta/completions", body: `{"model":"deepseek-chat","prompt":"def f(","suffix":"return 1"}`}},
		{"anthropic stream", request{path: "/anthropic/v1/messages", body: chatBody("deepseek-reasoner", "Hi", `"stream":true`)}},
		{"gzip stream", request{path: "/chat/completions", body: chatBody("deepseek-chat", "Hi", `"stream":true`), fault: "gzip=1", header: map[string]string{"Accept-Encoding": "gzip"}}},
		{"models", request{method: http.MethodGet, path: "/models"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, first := mustSend(t, base, tt.rq)
			_, second := mustSend(t, base, tt.rq)
			if !bytes.Equal(first, second) {
				t.Errorf("responses differ:\n%s\n%s", first, second)
			}
		})
	}
	t.Run("different bodies get different ids", func(t *testing.T) {
		_, a := mustSend(t, base, request{path: "/chat/completions", body: chatBody("deepseek-chat", "one", "")})
		_, b := mustSend(t, base, request{path: "/chat/completions", body: chatBody("deepseek-chat", "two", "")})
		if gjson.GetBytes(a, "id").Str == gjson.GetBytes(b, "id").Str {
			t.Errorf("both ids are %s, want different ids", gjson.GetBytes(a, "id").Str)
		}
	})
}

// TestStatusFaults checks each injected error status against DeepSeek's
// envelope, and the old plain-text 422.
func TestStatusFaults(t *testing.T) {
	base := startStandin(t, standin.Options{})
	tests := []struct {
		fault       string
		wantStatus  int
		wantType    string
		wantMessage string
	}{
		{"status=400", 400, "invalid_request_error", "Invalid request format"},
		{"status=401", 401, "authentication_error", "Authentication Fails, Your api key: ****wxyz is invalid"},
		{"status=402", 402, "unknown_error", "Insufficient Balance"},
		{"status=422", 422, "invalid_request_error", "Invalid Parameters"},
		{"status=429", 429, "rate_limit_error", "Too many concurrent requests"},
		{"status=500", 500, "server_error", "Internal Server Error"},
		{"status=503", 503, "server_error", "Server overloaded, please try again later"},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			resp, body := mustSend(t, base, request{path: "/chat/completions", body: chatBody("deepseek-chat", "Hi", `"stream":true`), fault: tt.fault})
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			e := gjson.GetBytes(body, "error")
			if e.Get("type").Str != tt.wantType || e.Get("message").Str != tt.wantMessage {
				t.Errorf("error = %s, want type %q and message %q", e.Raw, tt.wantType, tt.wantMessage)
			}
			if !e.Get("param").Exists() || e.Get("param").Type != gjson.Null || e.Get("code").Str == "" {
				t.Errorf("error = %s, want param null and a code", e.Raw)
			}
		})
	}
	t.Run("plain 422", func(t *testing.T) {
		resp, body := mustSend(t, base, request{path: "/chat/completions", body: "{}", fault: "status=422,plain=1"})
		if resp.StatusCode != 422 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
			t.Errorf("status, Content-Type = %d, %q; want 422, text/plain", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if json.Valid(body) || len(body) == 0 {
			t.Errorf("body = %q, want plain text", body)
		}
	})
}

// TestAuthentication checks that calls without a valid key get 401 with only
// the last four characters of the key echoed, on every endpoint.
func TestAuthentication(t *testing.T) {
	base := startStandin(t, standin.Options{})
	tests := []struct {
		name        string
		path        string
		method      string
		header      map[string]string
		wantStatus  int
		wantMessage string
	}{
		{"missing key", "/chat/completions", "", map[string]string{"Authorization": ""}, 401, "Authentication Fails, Your api key: **** is invalid"},
		{"key without sk- prefix", "/chat/completions", "", map[string]string{"Authorization": "Bearer pk-secretabcd"}, 401, "Authentication Fails, Your api key: ****abcd is invalid"},
		{"basic scheme", "/models", http.MethodGet, map[string]string{"Authorization": "Basic sk-abcdefgh"}, 401, "Authentication Fails, Your api key: **** is invalid"},
		{"balance needs a key", "/user/balance", http.MethodGet, map[string]string{"Authorization": ""}, 401, "Authentication Fails, Your api key: **** is invalid"},
		{"anthropic x-api-key", "/anthropic/v1/messages", "", map[string]string{"Authorization": "", "x-api-key": "sk-anthropic1"}, 200, ""},
		{"anthropic bad x-api-key", "/anthropic/v1/messages", "", map[string]string{"Authorization": "", "x-api-key": "bad-key9876"}, 401, "Authentication Fails, Your api key: ****9876 is invalid"},
		{"lower-case bearer", "/models", http.MethodGet, map[string]string{"Authorization": "bearer " + testKey}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := mustSend(t, base, request{method: tt.method, path: tt.path, body: chatBody("deepseek-chat", "Hi", ""), header: tt.header})
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus != 401 {
				return
			}
			e := gjson.GetBytes(body, "error")
			if e.Get("message").Str != tt.wantMessage || e.Get("type").Str != "authentication_error" {
				t.Errorf("error = %s, want message %q and type authentication_error", e.Raw, tt.wantMessage)
			}
			if strings.Contains(string(body), "secret") {
				t.Errorf("error body %s repeats more of the key than its last four characters", body)
			}
		})
	}
}

// TestRequestErrors checks the 4xx answers to bad requests: their status and
// that the message names the problem.
func TestRequestErrors(t *testing.T) {
	base := startStandin(t, standin.Options{})
	tests := []struct {
		name        string
		rq          request
		wantStatus  int
		wantMessage string // a substring of error.message
	}{
		{"malformed JSON", request{path: "/chat/completions", body: `{"model":`}, 400, "Failed to parse the request body as JSON"},
		{"empty body", request{path: "/chat/completions", body: ``}, 400, "Failed to parse the request body as JSON"},
		{"trailing garbage", request{path: "/chat/completions", body: chatBody("deepseek-chat", "Hi", "") + "x"}, 400, "Failed to parse the request body as JSON"},
		{"wrong type", request{path: "/chat/completions", body: `{"model":"deepseek-chat","messages":"hi"}`}, 400, "Failed to deserialize the JSON body into the target type: messages: invalid type: string, expected a sequence"},
		{"missing messages", request{path: "/chat/completions", body: `{"model":"deepseek-chat"}`}, 400, "missing field `messages`"},
		{"missing model", request{path: "/chat/completions", body: `{"messages":[]}`}, 400, "missing field `model`"},
		{"empty messages", request{path: "/chat/completions", body: `{"model":"deepseek-chat","messages":[]}`}, 400, "at least one message"},
		{"unknown model", request{path: "/chat/completions", body: chatBody("gpt-4o", "Hi", "")}, 400, "Model Not Exist"},
		{"unknown role", request{path: "/chat/completions", body: `{"model":"deepseek-chat","messages":[{"role":"robot","content":"x"}]}`}, 400, "unknown variant `robot`"},
		{"content of wrong type", request{path: "/chat/completions", body: `{"model":"deepseek-chat","messages":[{"role":"user","content":5}]}`}, 400, "messages[0].content"},
		{"max_tokens zero", request{path: "/chat/completions", body: chatBody("deepseek-chat", "Hi", `"max_tokens":0`)}, 400, "max_tokens"},
		{"tool without name", request{path: "/chat/completions", body: chatBody("deepseek-chat", "Hi", `"tools":[{"type":"function","function":{}}]`)}, 400, "missing field `name`"},
		{"unknown tool_choice", request{path: "/chat/completions", body: chatBody("deepseek-chat", "Hi", weatherTools+`,"tool_choice":{"type":"function","function":{"name":"nope"}}`)}, 400, `"nope"`},
		{"FIM without prompt", request{path: "/beta/completions", body: `{"model":"deepseek-chat"}`}, 400, "missing field `prompt`"},
		{"anthropic user role only", request{path: "/anthropic/v1/messages", body: `{"model":"deepseek-chat","messages":[{"role":"system","content":"x"}]}`}, 400, "unknown variant `system`"},
		{"GET on chat", request{method: http.MethodGet, path: "/chat/completions"}, 405, "Method Not Allowed"},
		{"POST on models", request{path: "/models", body: "{}"}, 405, "Method Not Allowed"},
		{"unknown path", request{path: "/completions", body: "{}"}, 404, "Not Found"},
		{"unknown path under v1", request{method: http.MethodGet, path: "/v1/files"}, 404, "Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := mustSend(t, base, tt.rq)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			e := gjson.GetBytes(body, "error")
			if !strings.Contains(e.Get("message").Str, tt.wantMessage) || e.Get("type").Str != "invalid_request_error" {
				t.Errorf("error = %s, want type invalid_request_error and a message containing %q", body, tt.wantMessage)
			}
		})
	}
}

// TestRequestTooLarge checks that a body over MaxRequestBytes gets 413
// instead of being read whole.
func TestRequestTooLarge(t *testing.T) {
	base := startStandin(t, standin.Options{MaxRequestBytes: 1024})
	resp, body := mustSend(t, base, request{path: "/chat/completions", body: chatBody("deepseek-chat", strings.Repeat("x", 2000), "")})
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status = %d, want 413: %s", resp.StatusCode, body)
	}
}

// TestFaultHeaderErrors checks that a fault header the stand-in cannot honour
// gets 400 naming the key, so a test never silently runs another case.
func TestFaultHeaderErrors(t *testing.T) {
	base := startStandin(t, standin.Options{})
	jsonChat := request{path: "/chat/completions", body: chatBody("deepseek-chat", "Hi", "")}
	streamChat := request{path: "/chat/completions", body: chatBody("deepseek-chat", "Hi", `"stream":true`)}
	models := request{method: http.MethodGet, path: "/models"}
	tests := []struct {
		name        string
		rq          request
		fault       string
		wantMessage string
	}{
		{"unknown key", jsonChat, "bogus=1", `unknown key "bogus"`},
		{"no value", jsonChat, "gzip", "no value"},
		{"bad boolean", jsonChat, "gzip=yes", `key "gzip": invalid boolean`},
		{"bad integer", jsonChat, "delay=fast", `key "delay": invalid integer`},
		{"negative count", jsonChat, "keepalive=-1", "out of range"},
		{"unsupported status", jsonChat, "status=418", "418 is not one of"},
		{"repeated key", jsonChat, "words=3,words=4", "given twice"},
		{"gzip with deflate", jsonChat, "gzip=1,deflate=1", "exclude each other"},
		{"reset with status", jsonChat, "reset=1,status=500", "exclude each other"},
		{"plain without 422", jsonChat, "status=500,plain=1", "plain=1 needs status=422"},
		{"hang without trailing keep-alives", streamChat, "hang=10", "hang needs trailing_keepalive"},
		{"words with size", jsonChat, "words=3,size=9000", "exclude each other"},
		{"stream key on JSON", jsonChat, "crlf=1", `key "crlf" does not apply to a JSON response`},
		{"chunk_delay on JSON", jsonChat, "chunk_delay=5", `key "chunk_delay" does not apply`},
		{"keepalive with status", jsonChat, "status=500,keepalive=2", `key "keepalive" does not apply to status`},
		{"words on models", models, "words=3", "applies only to /chat/completions"},
		{"size with a tool call", request{path: "/chat/completions", body: chatBody("deepseek-chat", "Hi", weatherTools)}, "size=5000", "tool call"},
		{"multiple header lines joined", jsonChat, "words=2, bogus=3", `unknown key "bogus"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rq := tt.rq
			rq.fault = tt.fault
			resp, body := mustSend(t, base, rq)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status = %d, want 400: %s", resp.StatusCode, body)
			}
			msg := gjson.GetBytes(body, "error.message").Str
			if !strings.Contains(msg, standin.FaultHeader) || !strings.Contains(msg, tt.wantMessage) {
				t.Errorf("message = %q, want it to name %s and contain %q", msg, standin.FaultHeader, tt.wantMessage)
			}
		})
	}
	t.Run("boolean zero is off", func(t *testing.T) {
		resp, body := mustSend(t, base, request{path: jsonChat.path, body: jsonChat.body, fault: "crlf=0,reset=0"})
		if resp.StatusCode != http.StatusOK {
			t.Errorf("status = %d, want 200: %s", resp.StatusCode, body)
		}
	})
}

// TestCompression checks gzip and deflate: the body decodes to the same
// bytes as the uncompressed answer, for JSON and streams, and no coding is
// used when Accept-Encoding does not allow it.
func TestCompression(t *testing.T) {
	base := startStandin(t, standin.Options{})
	decoders := map[string]func(io.Reader) (io.Reader, error){
		"gzip":    func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
		"deflate": func(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) },
	}
	tests := []struct {
		name           string
		body           string
		fault          string
		acceptEncoding string
		wantEncoding   string
	}{
		{"gzip JSON", chatBody("deepseek-chat", "Hi", ""), "gzip=1", "gzip, deflate", "gzip"},
		{"gzip stream", chatBody("deepseek-reasoner", "Hi", `"stream":true`), "gzip=1", "gzip", "gzip"},
		{"gzip stream split with keep-alives", chatBody("deepseek-chat", "Hi", `"stream":true`), "gzip=1,split=1,keepalive=2", "br;q=1, gzip;q=0.5", "gzip"},
		{"deflate stream", chatBody("deepseek-chat", "Hi", `"stream":true`), "deflate=1", "deflate", "deflate"},
		{"wildcard accepts gzip", chatBody("deepseek-chat", "Hi", ""), "gzip=1", "*", "gzip"},
		{"gzip refused with q=0", chatBody("deepseek-chat", "Hi", ""), "gzip=1", "gzip;q=0", ""},
		{"no Accept-Encoding", chatBody("deepseek-chat", "Hi", ""), "gzip=1", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plainFault := strings.TrimPrefix(strings.TrimPrefix(strings.ReplaceAll(strings.ReplaceAll(tt.fault, "gzip=1", ""), "deflate=1", ""), ","), ",")
			_, want := mustSend(t, base, request{path: "/chat/completions", body: tt.body, fault: plainFault})

			resp, raw := mustSend(t, base, request{path: "/chat/completions", body: tt.body, fault: tt.fault, header: map[string]string{"Accept-Encoding": tt.acceptEncoding}})
			if got := resp.Header.Get("Content-Encoding"); got != tt.wantEncoding {
				t.Fatalf("Content-Encoding = %q, want %q", got, tt.wantEncoding)
			}
			got := raw
			if tt.wantEncoding != "" {
				r, err := decoders[tt.wantEncoding](bytes.NewReader(raw))
				if err != nil {
					t.Fatalf("open %s body: %v", tt.wantEncoding, err)
				}
				if got, err = io.ReadAll(r); err != nil {
					t.Fatalf("decode %s body: %v", tt.wantEncoding, err)
				}
			}
			if !bytes.Equal(got, want) {
				t.Errorf("decoded body differs from the plain body:\n%s\n%s", got, want)
			}
		})
	}
}

// TestCutAfter checks that cut_after drops the connection mid-body so the
// client sees an unexpected EOF, after exactly the requested events or
// bytes, and with no [DONE].
func TestCutAfter(t *testing.T) {
	base := startStandin(t, standin.Options{})
	streamBody := chatBody("deepseek-chat", "Hi", `"stream":true`)
	tests := []struct {
		name       string
		body       string
		fault      string
		header     map[string]string
		wantEvents int // for streams
		wantBytes  int // for JSON
	}{
		{"stream after two events", streamBody, "cut_after=2", nil, 2, 0},
		{"stream before any event", streamBody, "cut_after=0", nil, 0, 0},
		{"stream longer than the answer", streamBody, "cut_after=1000", nil, 5, 0}, // role chunk and 4 chunks of 3 words
		{"gzip stream", streamBody, "cut_after=3,gzip=1", map[string]string{"Accept-Encoding": "gzip"}, 3, 0},
		{"JSON after ten bytes", chatBody("deepseek-chat", "Hi", ""), "cut_after=10", nil, 0, 10},
		{"JSON with keep-alive lines", chatBody("deepseek-chat", "Hi", ""), "cut_after=5,keepalive=3", nil, 0, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body, err := send(t, base, request{path: "/chat/completions", body: tt.body, fault: tt.fault, header: tt.header})
			if resp.Header.Get("Content-Encoding") == "gzip" {
				zr, zerr := gzip.NewReader(bytes.NewReader(body))
				if zerr != nil {
					t.Fatalf("open gzip body: %v", zerr)
				}
				body, _ = io.ReadAll(zr) // the gzip stream is cut, so an error is expected
			}
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("read error = %v, want unexpected EOF", err)
			}
			if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				s := parseSSE(t, body)
				if len(s.events) != tt.wantEvents || s.done {
					t.Errorf("got %d events and [DONE] %v, want %d events and no [DONE]:\n%s", len(s.events), s.done, tt.wantEvents, body)
				}
				return
			}
			if len(body) != tt.wantBytes {
				t.Errorf("got %d bytes %q, want %d", len(body), body, tt.wantBytes)
			}
		})
	}
}

// TestReset checks that reset=1 closes the connection before any head.
func TestReset(t *testing.T) {
	base := startStandin(t, standin.Options{})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/chat/completions", strings.NewReader(chatBody("deepseek-chat", "Hi", "")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	req.Header.Set(standin.FaultHeader, "reset=1")
	resp, err := rawClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got status %d, want a connection error", resp.StatusCode)
	}
}

// TestKeepAlives checks the waiting signals: blank lines before a JSON body,
// comment and data keep-alives before stream events, which parsers must
// skip.
func TestKeepAlives(t *testing.T) {
	base := startStandin(t, standin.Options{})
	t.Run("blank lines before JSON", func(t *testing.T) {
		_, body := mustSend(t, base, request{path: "/chat/completions", body: chatBody("deepseek-chat", "Hi", ""), fault: "keepalive=3"})
		if !bytes.HasPrefix(body, []byte("\n\n\n{")) {
			t.Errorf("body starts %q, want three blank lines and then JSON", body[:min(len(body), 10)])
		}
		if !json.Valid(body) {
			t.Errorf("body with leading blank lines is not valid JSON: %q", body)
		}
	})
	t.Run("comments and data lines before stream events", func(t *testing.T) {
		_, body := mustSend(t, base, request{path: "/chat/completions", body: chatBody("deepseek-chat", "Hi", `"stream":true`), fault: "keepalive=2,data_keepalive=2"})
		wantPrefix := ": keep-alive\n\n: keep-alive\n\ndata: \n\ndata: \n\ndata: {"
		if !bytes.HasPrefix(body, []byte(wantPrefix)) {
			t.Errorf("body starts %q, want %q", body[:min(len(body), len(wantPrefix))], wantPrefix)
		}
		s := parseSSE(t, body)
		if s.comments != 2 || !s.done {
			t.Errorf("comments, done = %d, %v; want 2, true", s.comments, s.done)
		}
		assembleChat(t, body, false)
	})
	t.Run("models with keep-alives", func(t *testing.T) {
		_, body := mustSend(t, base, request{method: http.MethodGet, path: "/models", fault: "keepalive=1"})
		if !bytes.HasPrefix(body, []byte("\n{")) {
			t.Errorf("body starts %q, want a blank line and then JSON", body[:min(len(body), 10)])
		}
	})
}

// TestTrailingKeepAlives checks the idle-timeout case: the last chunk with
// usage, keep-alive comments, then no [DONE] while the connection is held.
func TestTrailingKeepAlives(t *testing.T) {
	base := startStandin(t, standin.Options{})
	body := chatBody("deepseek-chat", "Hi", `"stream":true`)

	t.Run("held for hang then ended", func(t *testing.T) {
		_, raw := mustSend(t, base, request{path: "/chat/completions", body: body, fault: "trailing_keepalive=2,hang=20"})
		s := parseSSE(t, raw)
		if s.done || s.comments != 2 {
			t.Errorf("done, comments = %v, %d; want no [DONE] and 2 comments", s.done, s.comments)
		}
		last := s.events[len(s.events)-1].data
		if !gjson.Get(last, "usage.total_tokens").Exists() {
			t.Errorf("last event %s has no usage", last)
		}
		if !bytes.HasSuffix(raw, []byte(": keep-alive\n\n: keep-alive\n\n")) {
			t.Errorf("body ends %q, want the two keep-alives last", raw[max(0, len(raw)-40):])
		}
	})

	t.Run("held until the client leaves", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/chat/completions", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set(standin.FaultHeader, "trailing_keepalive=1")
		resp, err := rawClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()

		// Read up to the keep-alive; the connection then stays open and
		// silent until the client cancels.
		var got []byte
		buf := make([]byte, 4096)
		for !bytes.Contains(got, []byte(": keep-alive")) {
			n, err := resp.Body.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("read before the keep-alive: %v (got %q)", err, got)
			}
		}
		cancel()
		if _, err := io.ReadAll(resp.Body); err == nil {
			t.Errorf("read after cancel ended cleanly, want an error")
		}
		if bytes.Contains(got, []byte("[DONE]")) {
			t.Errorf("held stream sent [DONE]: %q", got)
		}
	})
}

// TestServerCloseEndsWaits checks that Close ends requests that wait, so an
// http.Server shutdown is not held up by an hour-long delay.
func TestServerCloseEndsWaits(t *testing.T) {
	h := standin.New(standin.Options{})
	srv := httptest.NewServer(h)
	defer srv.Close()

	errc := make(chan error, 1) // buffered so the goroutine can exit if the test has failed
	go func() {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/chat/completions", strings.NewReader(chatBody("deepseek-chat", "Hi", "")))
		if err != nil {
			errc <- err
			return
		}
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set(standin.FaultHeader, "delay=3600000")
		resp, err := rawClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the request reach its delay
	h.Close()
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("request still waiting 10s after Close")
	}
}

// TestDelays checks that delay, chunk_delay and keepalive_delay wait at
// least as long as requested. Only lower bounds are checked, so the test
// cannot flake on a slow machine.
func TestDelays(t *testing.T) {
	base := startStandin(t, standin.Options{})
	tests := []struct {
		name    string
		body    string
		fault   string
		minWait time.Duration
	}{
		{"delay", chatBody("deepseek-chat", "Hi", ""), "delay=100", 100 * time.Millisecond},
		{"chunk_delay", chatBody("deepseek-chat", "Hi", `"stream":true`), "chunk_delay=20", 4 * 20 * time.Millisecond}, // 5 events, 4 gaps,
		{"keepalive_delay", chatBody("deepseek-chat", "Hi", ""), "keepalive=3,keepalive_delay=30", 3 * 30 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			mustSend(t, base, request{path: "/chat/completions", body: tt.body, fault: tt.fault})
			if got := time.Since(start); got < tt.minWait {
				t.Errorf("answer took %v, want at least %v", got, tt.minWait)
			}
		})
	}
}

// TestEmptyBody checks the overload answer: 200 with no body, optionally
// after blank keep-alive lines.
func TestEmptyBody(t *testing.T) {
	base := startStandin(t, standin.Options{})
	tests := []struct {
		fault string
		want  string
	}{
		{"empty=1", ""},
		{"empty=1,delay=10", ""},
		{"empty=1,keepalive=2", "\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			resp, body := mustSend(t, base, request{path: "/chat/completions", body: chatBody("deepseek-chat", "Hi", ""), fault: tt.fault})
			if resp.StatusCode != http.StatusOK || string(body) != tt.want {
				t.Errorf("status, body = %d, %q; want 200, %q", resp.StatusCode, body, tt.want)
			}
		})
	}
}

// TestStreamLineVariants checks the framing variants parsers must accept:
// CRLF and CR line endings, no space after the colon and events split across
// writes all carry the same events as the plain stream.
func TestStreamLineVariants(t *testing.T) {
	base := startStandin(t, standin.Options{})
	body := chatBody("deepseek-chat", "Hi", `"stream":true`)
	_, plain := mustSend(t, base, request{path: "/chat/completions", body: body})
	want := parseSSE(t, plain)

	tests := []struct {
		fault   string
		check   func([]byte) bool
		explain string
	}{
		{"crlf=1", func(b []byte) bool { return bytes.Count(b, []byte("\r\n\r\n")) == len(want.events)+1 }, "every event ends with CRLF CRLF"},
		{"cr=1", func(b []byte) bool { return !bytes.Contains(b, []byte("\n")) && bytes.Contains(b, []byte("\r\r")) }, "lines end with CR only"},
		{"nospace=1", func(b []byte) bool {
			return bytes.HasPrefix(b, []byte("data:{")) && !bytes.Contains(b, []byte("data: "))
		}, "no space after data:"},
		{"split=1", func(b []byte) bool { return bytes.Equal(b, plain) }, "the bytes equal the plain stream"},
		{"crlf=1,split=1,keepalive=1", func(b []byte) bool { return bytes.HasPrefix(b, []byte(": keep-alive\r\n\r\n")) }, "the keep-alive ends with CRLF too"},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			_, raw := mustSend(t, base, request{path: "/chat/completions", body: body, fault: tt.fault})
			if !tt.check(raw) {
				t.Errorf("want %s, got %q", tt.explain, raw)
			}
			got := parseSSE(t, raw)
			if !got.done || len(got.events) != len(want.events) {
				t.Fatalf("got %d events, done %v; want %d, true", len(got.events), got.done, len(want.events))
			}
			for i := range got.events {
				if got.events[i] != want.events[i] {
					t.Errorf("event %d = %q, want %q", i, got.events[i].data, want.events[i].data)
				}
			}
		})
	}
}

// writeRecorder is a ResponseWriter that records each Write, so a test can
// see how a body was cut into writes.
type writeRecorder struct {
	header  http.Header
	writes  [][]byte
	flushes int
}

func (w *writeRecorder) Header() http.Header { return w.header }
func (w *writeRecorder) WriteHeader(int)     {}
func (w *writeRecorder) Flush()              { w.flushes++ }
func (w *writeRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(p))
	return len(p), nil
}

// TestSplitWrites checks that split=1 writes and flushes the body in pieces
// of at most 13 bytes, so events reach the client split across reads.
func TestSplitWrites(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"stream", chatBody("deepseek-chat", "Hi", `"stream":true`)},
		{"JSON", chatBody("deepseek-chat", "Hi", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/chat/completions", strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+testKey)
			req.Header.Set(standin.FaultHeader, "split=1")
			w := &writeRecorder{header: http.Header{}}
			standin.New(standin.Options{}).ServeHTTP(w, req)

			total := 0
			for i, p := range w.writes {
				total += len(p)
				if len(p) > 13 {
					t.Errorf("write %d has %d bytes, want at most 13", i, len(p))
				}
			}
			if len(w.writes) < total/13 || w.flushes < len(w.writes) {
				t.Errorf("%d bytes in %d writes with %d flushes, want one flush per small write", total, len(w.writes), w.flushes)
			}
		})
	}
}

// TestSize checks huge answers: the body is about the requested size, still
// parses, and its usage matches its text.
func TestSize(t *testing.T) {
	base := startStandin(t, standin.Options{})
	tests := []struct {
		name   string
		path   string
		body   string
		size   int
		stream bool
	}{
		{"chat JSON 4 MB", "/chat/completions", chatBody("deepseek-chat", "Hi", ""), 4 << 20, false},
		{"chat JSON small", "/chat/completions", chatBody("deepseek-chat", "Hi", ""), 2000, false},
		{"chat stream 1 MB", "/chat/completions", chatBody("deepseek-chat", "Hi", `"stream":true`), 1 << 20, true},
		{"FIM JSON 1 MB", "/beta/completions", `{"model":"deepseek-chat","prompt":"x"}`, 1 << 20, false},
		{"anthropic JSON 1 MB", "/anthropic/v1/messages", chatBody("deepseek-chat", "Hi", ""), 1 << 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, raw := mustSend(t, base, request{path: tt.path, body: tt.body, fault: "size=" + mustString(tt.size)})
			if diff := len(raw) - tt.size; diff < -tt.size/50-300 || diff > tt.size/50+300 {
				t.Errorf("body is %d bytes, want about %d", len(raw), tt.size)
			}

			var text string
			var completionTokens int
			switch {
			case tt.stream:
				a := assembleChat(t, raw, false)
				text, completionTokens = a.content, a.usage.CompletionTokens
			case tt.path == "/anthropic/v1/messages":
				text = gjson.GetBytes(raw, "content.0.text").Str
				completionTokens = int(gjson.GetBytes(raw, "usage.output_tokens").Int())
			case tt.path == "/beta/completions":
				text = gjson.GetBytes(raw, "choices.0.text").Str
				completionTokens = int(gjson.GetBytes(raw, "usage.completion_tokens").Int())
			default:
				text = gjson.GetBytes(raw, "choices.0.message.content").Str
				completionTokens = int(gjson.GetBytes(raw, "usage.completion_tokens").Int())
			}
			if !tt.stream && !json.Valid(raw) {
				t.Fatalf("body is not valid JSON")
			}
			if want := standin.EstimateTokens(text); completionTokens != want {
				t.Errorf("completion tokens = %d, want %d for %d bytes of text", completionTokens, want, len(text))
			}
		})
	}
}

// TestFillInTheMiddle checks /beta/completions: object text_completion,
// choices[].text, and usage over prompt plus suffix, streamed or not.
func TestFillInTheMiddle(t *testing.T) {
	base := startStandin(t, standin.Options{})
	body := `{"model":"deepseek-chat","prompt":"def add(a, b):\n    ","suffix":"\n    return c","max_tokens":64}`
	_, raw := mustSend(t, base, request{path: "/beta/completions", body: body})
	c := decode[completion](t, raw)
	if c.Object != "text_completion" || c.Choices[0].Text == "" {
		t.Fatalf("answer = %s, want a text_completion with text", raw)
	}
	checkUsage(t, c.Usage, "def add(a, b):\n    "+"\n    return c", "", c.Choices[0].Text)

	streamBody := strings.Replace(body, `{`, `{"stream":true,"stream_options":{"include_usage":true},`, 1)
	_, streamed := mustSend(t, base, request{path: "/beta/completions", body: streamBody})
	s := parseSSE(t, streamed)
	if !s.done {
		t.Errorf("stream has no [DONE]")
	}
	var text string
	for i, ev := range s.events {
		chunk := decode[completion](t, []byte(ev.data))
		text += chunk.Choices[0].Text
		last := i == len(s.events)-1
		if chunk.Object != "text_completion" || (chunk.Usage != nil) != last {
			t.Errorf("chunk %d = %s, want object text_completion and usage only last", i, ev.data)
		}
		if !last && gjson.Get(ev.data, "usage").Type != gjson.Null {
			t.Errorf("chunk %d usage = %s, want null with include_usage", i, gjson.Get(ev.data, "usage").Raw)
		}
		if last && !reflect.DeepEqual(chunk.Usage, c.Usage) {
			t.Errorf("streamed usage = %+v, want %+v", *chunk.Usage, *c.Usage)
		}
	}
	if text != c.Choices[0].Text {
		t.Errorf("streamed text = %q, want %q", text, c.Choices[0].Text)
	}
}

type anthropicUsage struct {
	InputTokens              int `json:"input_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	OutputTokens             int `json:"output_tokens"`
}

type anthropicMessage struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	Model      string `json:"model"`
	StopReason string `json:"stop_reason"`
	Content    []struct {
		Type     string          `json:"type"`
		Text     string          `json:"text"`
		Thinking string          `json:"thinking"`
		Name     string          `json:"name"`
		Input    json.RawMessage `json:"input"`
	} `json:"content"`
	Usage anthropicUsage `json:"usage"`
}

// checkAnthropicUsage checks u against the usage rule in Anthropic's shape:
// input_tokens are the misses, cache_read_input_tokens the hits.
func checkAnthropicUsage(t *testing.T, u anthropicUsage, prompt string, outputs ...string) {
	t.Helper()
	promptTokens := standin.PromptTokens(prompt)
	hit := standin.CacheHitTokens(promptTokens)
	output := 0
	for _, o := range outputs {
		output += standin.EstimateTokens(o)
	}
	want := anthropicUsage{InputTokens: promptTokens - hit, CacheReadInputTokens: hit, OutputTokens: output}
	if u != want {
		t.Errorf("usage = %+v, want %+v", u, want)
	}
}

// TestAnthropicMessages checks /anthropic/v1/messages: blocks, stop reasons
// and usage in Anthropic's shape, for text, thinking and tool use.
func TestAnthropicMessages(t *testing.T) {
	base := startStandin(t, standin.Options{})
	anthropicTools := `"tools":[{"name":"lookup","input_schema":{"type":"object","properties":{"q":{"type":"string"}}}}]`
	tests := []struct {
		name       string
		body       string
		prompt     string
		wantBlocks []string
		wantStop   string
	}{
		{"text", `{"model":"deepseek-chat","max_tokens":512,"system":"Be brief.","messages":[{"role":"user","content":"` + longPrompt + `"}]}`,
			"Be brief." + longPrompt, []string{"text"}, "end_turn"},
		{"system blocks", `{"model":"deepseek-chat","system":[{"type":"text","text":"Be brief."}],"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]}]}`,
			"Be brief.Hi", []string{"text"}, "end_turn"},
		{"thinking", chatBody("deepseek-chat", "Hi", `"thinking":{"type":"enabled","budget_tokens":1024}`), "Hi", []string{"thinking", "text"}, "end_turn"},
		{"tool use", chatBody("deepseek-chat", "Look it up", anthropicTools), "Look it up", []string{"tool_use"}, "tool_use"},
		{"after a tool result", `{"model":"deepseek-chat",` + anthropicTools + `,"messages":[{"role":"user","content":"Look it up"},
			{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"lookup","input":{}}]},
			{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"found"}]}]}`,
			"Look it upfound", []string{"text"}, "end_turn"},
		{"max_tokens", chatBody("deepseek-chat", "Hi", `"max_tokens":3`), "Hi", []string{"text"}, "max_tokens"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, raw := mustSend(t, base, request{path: "/anthropic/v1/messages", body: tt.body, header: map[string]string{"Authorization": "", "x-api-key": testKey}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status = %d: %s", resp.StatusCode, raw)
			}
			m := decode[anthropicMessage](t, raw)
			if m.Type != "message" || !strings.HasPrefix(m.ID, "msg_") || m.StopReason != tt.wantStop {
				t.Errorf("type, id, stop_reason = %q, %q, %q; want message, msg_…, %q", m.Type, m.ID, m.StopReason, tt.wantStop)
			}
			var types, outputs []string
			for _, b := range m.Content {
				types = append(types, b.Type)
				outputs = append(outputs, b.Thinking, b.Text)
			}
			if strings.Join(types, ",") != strings.Join(tt.wantBlocks, ",") {
				t.Fatalf("blocks = %v, want %v", types, tt.wantBlocks)
			}
			if tt.wantStop == "tool_use" {
				if !json.Valid(m.Content[0].Input) || m.Content[0].Name != "lookup" {
					t.Errorf("tool_use block = %+v, want lookup with JSON input", m.Content[0])
				}
				outputs = append(outputs, string(m.Content[0].Input))
			}
			if tt.wantStop == "max_tokens" && m.Usage.OutputTokens != 3 {
				t.Errorf("output_tokens = %d, want the cap 3", m.Usage.OutputTokens)
			}
			checkAnthropicUsage(t, m.Usage, tt.prompt, outputs...)

			streamBody := strings.Replace(tt.body, `{`, `{"stream":true,`, 1)
			_, streamed := mustSend(t, base, request{path: "/anthropic/v1/messages", body: streamBody, header: map[string]string{"Authorization": "", "x-api-key": testKey}})
			checkAnthropicStream(t, streamed, m)
		})
	}
}

// checkAnthropicStream checks the event order of a streamed Anthropic answer
// and that it carries the same blocks, stop reason and usage as want.
func checkAnthropicStream(t *testing.T, body []byte, want anthropicMessage) {
	t.Helper()
	s := parseSSE(t, body)

	// Collect the event names, the text of each block and the final usage.
	var names []string
	texts := map[int]string{}
	var deltaUsage anthropicUsage
	var stop string
	for _, ev := range s.events {
		if got := gjson.Get(ev.data, "type").Str; got != ev.name {
			t.Errorf("event %q has data type %q, want them equal", ev.name, got)
		}
		names = append(names, ev.name)
		d := gjson.Get(ev.data, "delta")
		i := int(gjson.Get(ev.data, "index").Int())
		switch ev.name {
		case "content_block_delta":
			texts[i] += d.Get("text").Str + d.Get("thinking").Str + d.Get("partial_json").Str
		case "message_delta":
			deltaUsage = decode[anthropicUsage](t, []byte(gjson.Get(ev.data, "usage").Raw))
			stop = d.Get("stop_reason").Str
		}
	}

	order := strings.Join(names, " ")
	if !strings.HasPrefix(order, "message_start ping content_block_start") || !strings.HasSuffix(order, "content_block_stop message_delta message_stop") {
		t.Errorf("event order = %s, want message_start ping content_block_start … content_block_stop message_delta message_stop", order)
	}
	if n := strings.Count(order, "content_block_start"); n != len(want.Content) {
		t.Errorf("stream has %d blocks, want %d", n, len(want.Content))
	}
	for i, b := range want.Content {
		wantText := b.Text + b.Thinking
		if b.Type == "tool_use" {
			wantText = string(b.Input)
		}
		if texts[i] != wantText {
			t.Errorf("block %d streamed %q, want %q", i, texts[i], wantText)
		}
	}
	if deltaUsage != want.Usage || stop != want.StopReason {
		t.Errorf("message_delta usage, stop = %+v, %q; want %+v, %q", deltaUsage, stop, want.Usage, want.StopReason)
	}
}

// TestModelsAndBalance checks the two GET endpoints with default and custom
// options.
func TestModelsAndBalance(t *testing.T) {
	tests := []struct {
		name        string
		opts        standin.Options
		wantModels  []string
		wantBalance string
	}{
		{"defaults", standin.Options{}, standin.DefaultModels,
			`{"is_available":true,"balance_infos":[{"currency":"USD","total_balance":"110.00","granted_balance":"10.00","topped_up_balance":"100.00"}]}`},
		{"custom", standin.Options{
			Models:   []string{"deepseek-flash"},
			Balances: []standin.BalanceInfo{{Currency: "CNY", TotalBalance: "5.00", GrantedBalance: "0.00", ToppedUpBalance: "5.00"}},
		}, []string{"deepseek-flash"},
			`{"is_available":true,"balance_infos":[{"currency":"CNY","total_balance":"5.00","granted_balance":"0.00","topped_up_balance":"5.00"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := startStandin(t, tt.opts)
			_, raw := mustSend(t, base, request{method: http.MethodGet, path: "/models"})
			var got []string
			for _, m := range gjson.GetBytes(raw, "data").Array() {
				if m.Get("object").Str != "model" || m.Get("owned_by").Str != "deepseek" {
					t.Errorf("model entry %s, want object model owned by deepseek", m.Raw)
				}
				got = append(got, m.Get("id").Str)
			}
			if gjson.GetBytes(raw, "object").Str != "list" || strings.Join(got, ",") != strings.Join(tt.wantModels, ",") {
				t.Errorf("models = %s, want a list of %v", raw, tt.wantModels)
			}
			_, balance := mustSend(t, base, request{method: http.MethodGet, path: "/v1/user/balance"})
			if string(balance) != tt.wantBalance {
				t.Errorf("balance = %s, want %s", balance, tt.wantBalance)
			}
		})
	}
}

// TestServedAs checks that a requested model can come back as another one,
// as deepseek-chat came back as deepseek-v4-flash, and that a model only in
// ServedAs is accepted.
func TestServedAs(t *testing.T) {
	base := startStandin(t, standin.Options{
		Models:   []string{"deepseek-v4-flash"},
		ServedAs: map[string]string{"deepseek-chat": "deepseek-v4-flash"},
	})
	tests := []struct {
		requested, want string
	}{
		{"deepseek-chat", "deepseek-v4-flash"},
		{"deepseek-v4-flash", "deepseek-v4-flash"},
	}
	for _, tt := range tests {
		t.Run(tt.requested, func(t *testing.T) {
			_, raw := mustSend(t, base, request{path: "/chat/completions", body: chatBody(tt.requested, "Hi", `"stream":true`)})
			s := parseSSE(t, raw)
			for _, ev := range s.events {
				if got := gjson.Get(ev.data, "model").Str; got != tt.want {
					t.Fatalf("chunk model = %q, want %q", got, tt.want)
				}
			}
		})
	}
	resp, _ := mustSend(t, base, request{path: "/chat/completions", body: chatBody("deepseek-reasoner", "Hi", "")})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("status for a model outside Models and ServedAs = %d, want 400", resp.StatusCode)
	}
}

// TestOpenAIGoSDK checks that the official openai-go client parses plain and
// streamed answers and reads the usage, DeepSeek's cache fields included.
func TestOpenAIGoSDK(t *testing.T) {
	base := startStandin(t, standin.Options{})
	client := openai.NewClient(option.WithBaseURL(base+"/v1"), option.WithAPIKey(testKey), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{
		Model:    "deepseek-chat",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(longPrompt)},
	}
	wantPrompt := standin.PromptTokens(longPrompt)
	wantHit := standin.CacheHitTokens(wantPrompt)

	resp, err := client.Chat.Completions.New(t.Context(), params)
	if err != nil {
		t.Fatalf("create completion: %v", err)
	}
	content := resp.Choices[0].Message.Content
	if resp.Usage.PromptTokens != int64(wantPrompt) || resp.Usage.CompletionTokens != int64(standin.EstimateTokens(content)) {
		t.Errorf("usage = %+v, want prompt %d and completion %d", resp.Usage, wantPrompt, standin.EstimateTokens(content))
	}
	if got := resp.Usage.JSON.ExtraFields["prompt_cache_hit_tokens"].Raw(); got != mustString(wantHit) {
		t.Errorf("prompt_cache_hit_tokens = %s, want %d", got, wantHit)
	}
	if resp.Usage.PromptTokensDetails.CachedTokens != int64(wantHit) {
		t.Errorf("cached_tokens = %d, want %d", resp.Usage.PromptTokensDetails.CachedTokens, wantHit)
	}

	stream := client.Chat.Completions.NewStreaming(t.Context(), params)
	var acc openai.ChatCompletionAccumulator
	var lastHit string
	for stream.Next() {
		chunk := stream.Current()
		acc.AddChunk(chunk)
		if f, ok := chunk.Usage.JSON.ExtraFields["prompt_cache_hit_tokens"]; ok {
			lastHit = f.Raw()
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	if acc.Choices[0].Message.Content != content || acc.Usage.TotalTokens != resp.Usage.TotalTokens {
		t.Errorf("streamed content, total = %q, %d; want %q, %d", acc.Choices[0].Message.Content, acc.Usage.TotalTokens, content, resp.Usage.TotalTokens)
	}
	if lastHit != mustString(wantHit) {
		t.Errorf("streamed prompt_cache_hit_tokens = %q, want %d", lastHit, wantHit)
	}

	_, err = client.Chat.Completions.New(t.Context(), params, option.WithHeader(standin.FaultHeader, "status=402"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusPaymentRequired {
		t.Errorf("error = %v, want an API error with status 402", err)
	}
}

// TestGoOpenAISDK checks that the sashabaranov/go-openai client parses plain
// and streamed answers and reads the usage.
func TestGoOpenAISDK(t *testing.T) {
	base := startStandin(t, standin.Options{})
	cfg := goopenai.DefaultConfig(testKey)
	cfg.BaseURL = base + "/v1"
	client := goopenai.NewClientWithConfig(cfg)
	req := goopenai.ChatCompletionRequest{
		Model:    "deepseek-reasoner",
		Messages: []goopenai.ChatCompletionMessage{{Role: goopenai.ChatMessageRoleUser, Content: longPrompt}},
	}
	wantPrompt := standin.PromptTokens(longPrompt)
	wantHit := standin.CacheHitTokens(wantPrompt)

	resp, err := client.CreateChatCompletion(t.Context(), req)
	if err != nil {
		t.Fatalf("create completion: %v", err)
	}
	msg := resp.Choices[0].Message
	wantCompletion := standin.EstimateTokens(msg.ReasoningContent) + standin.EstimateTokens(msg.Content)
	if resp.Usage.PromptTokens != wantPrompt || resp.Usage.CompletionTokens != wantCompletion {
		t.Errorf("usage = %+v, want prompt %d and completion %d", resp.Usage, wantPrompt, wantCompletion)
	}
	if resp.Usage.PromptTokensDetails == nil || resp.Usage.PromptTokensDetails.CachedTokens != wantHit {
		t.Errorf("prompt_tokens_details = %+v, want cached_tokens %d", resp.Usage.PromptTokensDetails, wantHit)
	}
	if resp.Usage.CompletionTokensDetails == nil || resp.Usage.CompletionTokensDetails.ReasoningTokens != standin.EstimateTokens(msg.ReasoningContent) {
		t.Errorf("completion_tokens_details = %+v, want reasoning_tokens %d", resp.Usage.CompletionTokensDetails, standin.EstimateTokens(msg.ReasoningContent))
	}

	req.Stream = true
	req.StreamOptions = &goopenai.StreamOptions{IncludeUsage: true}
	stream, err := client.CreateChatCompletionStream(t.Context(), req)
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	defer stream.Close()
	var content, reasoning string
	var last *goopenai.Usage
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if chunk.Usage != nil {
			last = chunk.Usage
		}
		if len(chunk.Choices) > 0 {
			content += chunk.Choices[0].Delta.Content
			reasoning += chunk.Choices[0].Delta.ReasoningContent
		}
	}
	if content != msg.Content || reasoning != msg.ReasoningContent {
		t.Errorf("streamed content, reasoning = %q, %q; want %q, %q", content, reasoning, msg.Content, msg.ReasoningContent)
	}
	if last == nil || last.TotalTokens != resp.Usage.TotalTokens {
		t.Errorf("streamed usage = %+v, want total %d", last, resp.Usage.TotalTokens)
	}
}

// FuzzFaultHeader checks that no fault header value makes the handler fail
// other than by the quiet abort that reset and cut_after use on purpose, and
// that every answer is 200 or one of the documented error statuses.
func FuzzFaultHeader(f *testing.F) {
	for _, seed := range []string{"", "gzip=1", "status=503", "words=5,size=9", "cut_after=3", "reset=1", "a=b=c", ",,,", "keepalive=2,keepalive_delay=0", "split=true"} {
		f.Add(seed)
	}
	h := standin.New(standin.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // every wait ends at once, so a large delay cannot stall the fuzzer
	allowed := map[int]bool{200: true, 400: true, 401: true, 402: true, 422: true, 429: true, 500: true, 503: true}
	f.Fuzz(func(t *testing.T, value string) {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/chat/completions", strings.NewReader(chatBody("deepseek-chat", "Hi", "")))
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set(standin.FaultHeader, value)
		rec := httptest.NewRecorder()
		defer func() {
			if r := recover(); r != nil && r != http.ErrAbortHandler {
				t.Fatalf("header %q: panic %v", value, r)
			}
		}()
		h.ServeHTTP(rec, req)
		if !allowed[rec.Code] {
			t.Errorf("header %q: status %d", value, rec.Code)
		}
	})
}

// BenchmarkChatStream measures one streamed chat answer of 120 words over
// loopback HTTP, the baseline for proxy benchmarks.
func BenchmarkChatStream(b *testing.B) {
	benchmarkChat(b, chatBody("deepseek-chat", "Hi", `"stream":true`))
}

// BenchmarkChatJSON measures one non-streamed chat answer of 120 words over
// loopback HTTP.
func BenchmarkChatJSON(b *testing.B) {
	benchmarkChat(b, chatBody("deepseek-chat", "Hi", ""))
}

func benchmarkChat(b *testing.B, body string) {
	h := standin.New(standin.Options{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := srv.Client()
	for b.Loop() {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/chat/completions", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+testKey)
		req.Header.Set(standin.FaultHeader, "words=120")
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d, read %d bytes: %v", resp.StatusCode, n, err)
		}
		b.SetBytes(n)
	}
}
