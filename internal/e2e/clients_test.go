// Package e2e drives the whole product, wired as `deepmeter serve` wires
// it, with the real OpenAI-compatible client libraries against the DeepSeek
// stand-in, on SQLite and on Postgres.
package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	goopenai "github.com/sashabaranov/go-openai"
	"github.com/tidwall/gjson"

	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/proxy"
	"github.com/deepmeter/deepmeter/store"
)

const apiKey = "sk-e2e0000000000000000000000000abcd"

// clientUsage is the usage a client saw in the response, with the cache
// split read from the raw JSON.
type clientUsage struct {
	prompt, completion, total, hit, miss, reasoning int64
}

func usageFromJSON(raw string) clientUsage {
	u := gjson.Get(raw, "usage")
	return clientUsage{
		prompt:     u.Get("prompt_tokens").Int(),
		completion: u.Get("completion_tokens").Int(),
		total:      u.Get("total_tokens").Int(),
		hit:        u.Get("prompt_cache_hit_tokens").Int(),
		miss:       u.Get("prompt_cache_miss_tokens").Int(),
		reasoning:  u.Get("completion_tokens_details.reasoning_tokens").Int(),
	}
}

// clientResult is what one call returned to the client.
type clientResult struct {
	content   string
	reasoning string
	model     string
	usage     clientUsage
	requestID string
}

// checkRecord compares a stored record with what the client saw.
func checkRecord(t *testing.T, rec store.Record, got clientResult, stream bool, userID, pageTab string) {
	t.Helper()
	if got.usage.prompt == 0 || got.usage.completion == 0 {
		t.Fatalf("client saw no usage: %+v", got.usage)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"success", rec.Success, true},
		{"status", rec.StatusCode, http.StatusOK},
		{"stream", rec.Stream, stream},
		{"model", rec.Model, got.model},
		{"prompt_tokens", rec.PromptTokens, got.usage.prompt},
		{"completion_tokens", rec.CompletionTokens, got.usage.completion},
		{"total_tokens", rec.TotalTokens, got.usage.total},
		{"prompt_cache_hit_tokens", rec.PromptCacheHitTokens, got.usage.hit},
		{"prompt_cache_miss_tokens", rec.PromptCacheMissTokens, got.usage.miss},
		{"reasoning_tokens", rec.ReasoningTokens, got.usage.reasoning},
		{"usage_source", rec.UsageSource, store.UsageReported},
		{"user_id", rec.UserID, userID},
		{"page_tab", rec.PageTab, pageTab},
		{"priced", rec.Priced, true},
		{"currency", rec.Currency, "USD"},
		{"flags", strings.Join(rec.Flags, ","), ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("record %s: got %v, want %v", c.name, c.got, c.want)
		}
	}
	want := pricing.Money(got.usage.hit*rateHit + got.usage.miss*rateMiss + got.usage.completion*rateOutput)
	if rec.Cost != want {
		t.Errorf("record cost: got %s, want %s", rec.Cost, want)
	}
	if stream && !strings.Contains(rec.ResponseData, got.content) {
		t.Errorf("stored stream response %q does not hold the content %q", rec.ResponseData, got.content)
	}
}

func attributionHeader(userID, pageTab string) http.Header {
	h := http.Header{}
	h.Set(proxy.UserIDHeader, userID)
	h.Set(proxy.PageTabHeader, pageTab)
	return h
}

// openaiGoCall makes one chat completion with the official SDK.
func openaiGoCall(t *testing.T, baseURL, model string, stream, includeUsage bool, header http.Header) clientResult {
	t.Helper()
	opts := []option.RequestOption{option.WithBaseURL(baseURL), option.WithAPIKey(apiKey), option.WithMaxRetries(0)}
	for k := range header {
		opts = append(opts, option.WithHeader(k, header.Get(k)))
	}
	client := openai.NewClient(opts...)
	params := openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Name three rivers in Europe and say one fact about each.")},
	}
	var httpResp *http.Response
	ctx := context.Background()
	if !stream {
		resp, err := client.Chat.Completions.New(ctx, params, option.WithResponseInto(&httpResp))
		if err != nil {
			t.Fatalf("openai-go chat completion: %v", err)
		}
		return clientResult{
			content:   resp.Choices[0].Message.Content,
			reasoning: gjson.Get(resp.RawJSON(), "choices.0.message.reasoning_content").String(),
			model:     resp.Model,
			usage:     usageFromJSON(resp.RawJSON()),
			requestID: httpResp.Header.Get(proxy.RequestIDHeader),
		}
	}

	if includeUsage {
		params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	}
	s := client.Chat.Completions.NewStreaming(ctx, params, option.WithResponseInto(&httpResp))
	var res clientResult
	var content, reasoning strings.Builder
	for s.Next() {
		chunk := s.Current()
		raw := chunk.RawJSON()
		res.model = chunk.Model
		if len(chunk.Choices) > 0 {
			content.WriteString(chunk.Choices[0].Delta.Content)
		}
		reasoning.WriteString(gjson.Get(raw, "choices.0.delta.reasoning_content").String())
		if u := gjson.Get(raw, "usage"); u.Exists() && u.Type != gjson.Null {
			res.usage = usageFromJSON(raw)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("openai-go stream: %v", err)
	}
	res.content, res.reasoning = content.String(), reasoning.String()
	res.requestID = httpResp.Header.Get(proxy.RequestIDHeader)
	return res
}

// goOpenAICall makes one chat completion with sashabaranov/go-openai.
func goOpenAICall(t *testing.T, baseURL, model string, stream bool, header http.Header) clientResult {
	t.Helper()
	cfg := goopenai.DefaultConfig(apiKey)
	cfg.BaseURL = baseURL
	var lastResponse *http.Response
	cfg.HTTPClient = &http.Client{Transport: responseCapture{next: headerTransport{header: header, base: http.DefaultTransport}, last: &lastResponse}}
	client := goopenai.NewClientWithConfig(cfg)
	req := goopenai.ChatCompletionRequest{
		Model:    model,
		Messages: []goopenai.ChatCompletionMessage{{Role: goopenai.ChatMessageRoleUser, Content: "Name three rivers in Europe and say one fact about each."}},
	}
	ctx := context.Background()
	if !stream {
		resp, err := client.CreateChatCompletion(ctx, req)
		if err != nil {
			t.Fatalf("go-openai chat completion: %v", err)
		}
		u := resp.Usage
		var hit int64
		if u.PromptTokensDetails != nil {
			hit = int64(u.PromptTokensDetails.CachedTokens)
		}
		var reasoningTokens int64
		if u.CompletionTokensDetails != nil {
			reasoningTokens = int64(u.CompletionTokensDetails.ReasoningTokens)
		}
		return clientResult{
			content:   resp.Choices[0].Message.Content,
			reasoning: resp.Choices[0].Message.ReasoningContent,
			model:     resp.Model,
			usage: clientUsage{prompt: int64(u.PromptTokens), completion: int64(u.CompletionTokens), total: int64(u.TotalTokens),
				hit: hit, miss: int64(u.PromptTokens) - hit, reasoning: reasoningTokens},
			requestID: lastResponse.Header.Get(proxy.RequestIDHeader),
		}
	}

	req.Stream = true
	s, err := client.CreateChatCompletionStream(ctx, req)
	if err != nil {
		t.Fatalf("go-openai stream: %v", err)
	}
	defer s.Close()
	var res clientResult
	var content, reasoning strings.Builder
	for {
		chunk, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("go-openai stream: %v", err)
		}
		res.model = chunk.Model
		if len(chunk.Choices) > 0 {
			content.WriteString(chunk.Choices[0].Delta.Content)
			reasoning.WriteString(chunk.Choices[0].Delta.ReasoningContent)
		}
		if u := chunk.Usage; u != nil {
			var hit, reasoningTokens int64
			if u.PromptTokensDetails != nil {
				hit = int64(u.PromptTokensDetails.CachedTokens)
			}
			if u.CompletionTokensDetails != nil {
				reasoningTokens = int64(u.CompletionTokensDetails.ReasoningTokens)
			}
			res.usage = clientUsage{prompt: int64(u.PromptTokens), completion: int64(u.CompletionTokens), total: int64(u.TotalTokens),
				hit: hit, miss: int64(u.PromptTokens) - hit, reasoning: reasoningTokens}
		}
	}
	res.content, res.reasoning = content.String(), reasoning.String()
	res.requestID = lastResponse.Header.Get(proxy.RequestIDHeader)
	return res
}

// responseCapture keeps the last response so a test can read its headers.
type responseCapture struct {
	next http.RoundTripper
	last **http.Response
}

func (c responseCapture) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(r)
	if err == nil {
		*c.last = resp
	}
	return resp, err
}

// The official SDK and go-openai, streaming and not, see through the proxy
// exactly what they see from the upstream directly, and every call leaves
// a record whose tokens and cost match the usage the client received.
func TestClientsThroughProxy(t *testing.T) {
	forEachStore(t, func(t *testing.T, databaseURL string) {
		s := newStack(t, databaseURL)
		cases := []struct {
			name         string
			client       string
			model        string
			stream       bool
			includeUsage bool
		}{
			{"openai-go plain", "openai-go", "deepseek-chat", false, false},
			{"openai-go stream", "openai-go", "deepseek-chat", true, false},
			{"openai-go stream include_usage", "openai-go", "deepseek-chat", true, true},
			{"openai-go reasoner stream", "openai-go", "deepseek-reasoner", true, true},
			{"openai-go reasoner plain", "openai-go", "deepseek-reasoner", false, false},
			{"go-openai plain", "go-openai", "deepseek-chat", false, false},
			{"go-openai stream", "go-openai", "deepseek-chat", true, false},
			{"go-openai reasoner stream", "go-openai", "deepseek-reasoner", true, false},
		}
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				userID, pageTab := "user-"+c.client, "tab-"+string(rune('a'+i))
				call := func(baseURL string, header http.Header) clientResult {
					if c.client == "openai-go" {
						return openaiGoCall(t, baseURL, c.model, c.stream, c.includeUsage, header)
					}
					return goOpenAICall(t, baseURL, c.model, c.stream, header)
				}
				direct := call(s.upstream.URL, http.Header{})
				viaProxy := call(s.proxy.URL, attributionHeader(userID, pageTab))

				if viaProxy.content != direct.content || viaProxy.reasoning != direct.reasoning || viaProxy.model != direct.model {
					t.Errorf("through the proxy: content %q reasoning %q model %q; directly: %q %q %q",
						viaProxy.content, viaProxy.reasoning, viaProxy.model, direct.content, direct.reasoning, direct.model)
				}
				if viaProxy.usage != direct.usage {
					t.Errorf("usage through the proxy %+v, directly %+v", viaProxy.usage, direct.usage)
				}
				if viaProxy.requestID == "" {
					t.Fatalf("no %s header through the proxy", proxy.RequestIDHeader)
				}
				if strings.HasPrefix(c.model, "deepseek-reasoner") && viaProxy.usage.reasoning == 0 {
					t.Errorf("reasoner call reported no reasoning tokens")
				}
				rec := s.recordByID(t, viaProxy.requestID)
				checkRecord(t, rec, viaProxy, c.stream, userID, pageTab)
			})
		}
		if recs := s.waitRecords(t, len(cases)); len(recs) != len(cases) {
			t.Errorf("%d records, want %d", len(recs), len(cases))
		}
	})
}
