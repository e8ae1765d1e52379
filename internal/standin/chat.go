package standin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tidwall/gjson"
)

const chatToolPrefix = "call_0_"

// chatRoles are the roles DeepSeek accepts in messages.
var chatRoles = []string{"system", "user", "assistant", "tool"}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatRequest struct {
	chatFields
	StreamOptions       *streamOptions `json:"stream_options"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
}

// plan is a checked completion request: what to generate and how to send it.
type plan struct {
	id           string
	model        string // the served model
	stream       bool
	includeUsage bool
	promptTokens int
	spec         completionSpec
	// usageMismatch reports one cache miss more than the prompt has.
	usageMismatch bool
}

// chatUsage is the usage object of chat and fill-in-the-middle responses.
type chatUsage struct {
	PromptTokens            int                      `json:"prompt_tokens"`
	CompletionTokens        int                      `json:"completion_tokens"`
	TotalTokens             int                      `json:"total_tokens"`
	PromptTokensDetails     promptTokensDetails      `json:"prompt_tokens_details"`
	CompletionTokensDetails *completionTokensDetails `json:"completion_tokens_details,omitempty"`
	PromptCacheHitTokens    int                      `json:"prompt_cache_hit_tokens"`
	PromptCacheMissTokens   int                      `json:"prompt_cache_miss_tokens"`
}

type promptTokensDetails struct {
	CachedTokens int `json:"cached_tokens"`
}

type completionTokensDetails struct {
	ReasoningTokens int `json:"reasoning_tokens"`
}

type chatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []chatChoice `json:"choices"`
	Usage             chatUsage    `json:"usage"`
	SystemFingerprint string       `json:"system_fingerprint"`
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      chatReply       `json:"message"`
	Logprobs     json.RawMessage `json:"logprobs"` // always null
	FinishReason string          `json:"finish_reason"`
}

type chatReply struct {
	Role             string        `json:"role"`
	Content          string        `json:"content"`
	ReasoningContent *string       `json:"reasoning_content,omitempty"`
	ToolCalls        []toolCallOut `json:"tool_calls,omitempty"`
}

type toolCallOut struct {
	Index    int          `json:"index"`
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"`
	Function functionCall `json:"function"`
}

type functionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

type chatChunk struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	SystemFingerprint string          `json:"system_fingerprint"`
	Choices           []chunkChoice   `json:"choices"`
	Usage             json.RawMessage `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int             `json:"index"`
	Delta        chunkDelta      `json:"delta"`
	Logprobs     json.RawMessage `json:"logprobs"` // always null
	FinishReason *string         `json:"finish_reason"`
}

// chunkDelta is a stream delta. Its RawMessage fields are left out when nil
// and sent as JSON null when set to jsonNull.
type chunkDelta struct {
	Role             string          `json:"role,omitempty"`
	Content          json.RawMessage `json:"content,omitempty"`
	ReasoningContent json.RawMessage `json:"reasoning_content,omitempty"`
	ToolCalls        []toolCallOut   `json:"tool_calls,omitempty"`
}

var jsonNull = json.RawMessage("null")

// contentPlaceholder marks the completion text in a marshaled JSON body, so
// that the text can be written piece by piece in its place.
const contentPlaceholder = "\x00standin-content\x00"

func (s *Server) parseChat(f *fault, body []byte) (*plan, *apiError) {
	var req chatRequest
	if e := decodeBody(body, &req); e != nil {
		return nil, e
	}
	var conv conversation
	if e := s.readConversation(body, &req.chatFields, chatRoles, &conv); e != nil {
		return nil, e
	}

	maxTokens := req.MaxTokens
	if maxTokens == nil {
		maxTokens = req.MaxCompletionTokens
	}
	if e := checkMaxTokens(maxTokens); e != nil {
		return nil, e
	}
	tool, e := chatTool(req.Tools, req.ToolChoice, &conv)
	if e != nil {
		return nil, e
	}

	p := s.newPlan(f, requestID(body), &req.chatFields, &conv, tool, maxTokens)
	p.includeUsage = req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	return p, nil
}

// thinkingOn reports whether a completion reasons first: always for a reasoner
// model, otherwise when the request enables thinking.
func thinkingOn(model string, enabled bool) bool {
	return strings.Contains(model, "reasoner") || enabled
}

// chatTool returns the tool call a chat request gets, or nil for a text
// completion.
func chatTool(tools []json.RawMessage, choice json.RawMessage, conv *conversation) (*toolCall, *apiError) {
	if len(tools) == 0 || conv.toolResult {
		return nil, nil
	}
	tc := gjson.ParseBytes(choice)
	if tc.Type == gjson.String && tc.Str == "none" {
		return nil, nil
	}

	wanted := tc.Get("function.name").Str
	for i, t := range tools {
		fn := gjson.GetBytes(t, "function")
		name := fn.Get("name")
		if !name.Exists() {
			return nil, deserializeError("tools[%d].function: missing field `name`", i)
		}
		if wanted == "" || name.Str == wanted {
			return newToolCall(conv.lastUser, name.Str, chatToolPrefix, fn.Get("parameters")), nil
		}
	}
	e := invalidRequest(fmt.Sprintf("Invalid tool_choice: function %q is not in tools", wanted))
	return nil, &e
}

func (p *plan) chatUsage(a *completion) chatUsage {
	hit := CacheHitTokens(p.promptTokens)
	completion := a.completionTokens()
	u := chatUsage{
		PromptTokens:          p.promptTokens,
		CompletionTokens:      completion,
		TotalTokens:           p.promptTokens + completion,
		PromptTokensDetails:   promptTokensDetails{CachedTokens: hit},
		PromptCacheHitTokens:  hit,
		PromptCacheMissTokens: p.promptTokens - hit,
	}
	if p.usageMismatch {
		u.PromptCacheMissTokens++
	}
	if a.reasoning != nil {
		u.CompletionTokensDetails = &completionTokensDetails{ReasoningTokens: a.reasoningTokens()}
	}
	return u
}

// writeChatJSON writes a non-streamed chat response. A first pass measures
// the completion for its usage, a second writes it.
func (s *Server) writeChatJSON(ctx context.Context, o *output, p *plan) {
	measured := p.spec.buildForJSON(ctx, o.f.size)
	measured.drain()

	a := p.spec.buildForJSON(ctx, o.f.size)
	reply := chatReply{Role: "assistant", Content: contentPlaceholder}
	if a.reasoning != nil {
		reasoning := a.reasoningText()
		reply.ReasoningContent = &reasoning
	}
	if a.tool != nil {
		reply.Content = ""
		reply.ToolCalls = []toolCallOut{{
			ID:       a.tool.id,
			Type:     "function",
			Function: functionCall{Name: a.tool.name, Arguments: a.bodyText()},
		}}
	}

	resp := chatCompletion{
		ID:                p.id,
		Object:            "chat.completion",
		Created:           s.created,
		Model:             p.model,
		Choices:           []chatChoice{{Message: reply, FinishReason: measured.finishReason()}},
		Usage:             p.chatUsage(measured),
		SystemFingerprint: systemFingerprint,
	}
	s.writeCompletionJSON(ctx, o, marshal(resp), a)
}

// writeCompletionJSON writes a JSON response: the head, the keep-alives, then
// body with the completion text written piece by piece in place of
// contentPlaceholder, so a huge text is never held whole.
func (s *Server) writeCompletionJSON(ctx context.Context, o *output, body []byte, a *completion) {
	if !s.startOK(ctx, o) {
		return
	}

	placeholder := marshal(contentPlaceholder)
	i := bytes.Index(body, placeholder)
	if i < 0 {
		o.write(body)
		o.finish()
		return
	}
	o.write(body[:i+1]) // up to the opening quote
	for o.err == nil {
		p, ok := a.next()
		if !ok {
			break
		}
		quoted := marshal(p.text)
		o.write(quoted[1 : len(quoted)-1])
	}
	o.write(body[i+len(placeholder)-1:]) // from the closing quote
	o.finish()
}

// streamChat writes a streamed chat response.
func (s *Server) streamChat(ctx context.Context, o *output, p *plan) {
	if !s.startOK(ctx, o) {
		return
	}

	a := p.spec.build(s.streamStop(o))
	chunk := chatChunk{ID: p.id, Object: "chat.completion.chunk", Created: s.created, Model: p.model, SystemFingerprint: systemFingerprint}
	send := func(delta chunkDelta, finish *string, usage json.RawMessage) bool {
		if usage == nil && p.includeUsage {
			usage = jsonNull
		}
		chunk.Choices = []chunkChoice{{Delta: delta, FinishReason: finish}}
		chunk.Usage = usage
		return s.sendEvent(ctx, o, "", marshal(chunk))
	}

	first := chunkDelta{Role: "assistant", Content: json.RawMessage(`""`)}
	if a.reasoning != nil {
		first = chunkDelta{Role: "assistant", Content: jsonNull, ReasoningContent: json.RawMessage(`""`)}
	}
	if !send(first, nil, nil) {
		return
	}

	toolHeaderSent := false
	emit := func(pc *piece, final bool) bool {
		if pc != nil && pc.kind == kindArguments && !toolHeaderSent {
			toolHeaderSent = true
			header := toolCallOut{ID: a.tool.id, Type: "function", Function: functionCall{Name: a.tool.name}}
			if !send(chunkDelta{ToolCalls: []toolCallOut{header}}, nil, nil) {
				return false
			}
		}
		delta := chatDelta(pc, a)
		if !final {
			return send(delta, nil, nil)
		}
		reason := a.finishReason()
		return send(delta, &reason, marshal(p.chatUsage(a)))
	}
	if !s.streamPieces(o, a, emit) {
		return
	}
	s.endStream(ctx, o, o.done)
}

// chatDelta returns the stream delta for a piece; nil gives the empty
// content delta of a final chunk with no text left.
func chatDelta(pc *piece, a *completion) chunkDelta {
	if pc == nil {
		if a.tool != nil {
			return chunkDelta{}
		}
		return chunkDelta{Content: json.RawMessage(`""`)}
	}
	text := marshal(pc.text)
	switch pc.kind {
	case kindReasoning:
		return chunkDelta{Content: jsonNull, ReasoningContent: text}
	case kindArguments:
		return chunkDelta{ToolCalls: []toolCallOut{{Function: functionCall{Arguments: pc.text}}}}
	}
	if a.reasoning != nil {
		return chunkDelta{Content: text, ReasoningContent: jsonNull}
	}
	return chunkDelta{Content: text}
}

// streamPieces emits the pieces of a with one piece of lookahead. The last
// piece goes out with final set, in the chunk that carries the usage, and a
// completion with no pieces at all gets one call with nil and final. It
// reports false when the request ended.
func (s *Server) streamPieces(o *output, a *completion, emit func(pc *piece, final bool) bool) bool {
	cur, ok := a.next()
	for ok {
		next, more := a.next()
		if !more {
			break
		}
		if !emit(&cur, false) {
			return false
		}
		cur = next
	}
	if !ok {
		return emit(nil, true)
	}
	return emit(&cur, true)
}

// sendEvent waits chunk_delay before every data event but the first, then
// writes it. It reports false when the request ended.
func (s *Server) sendEvent(ctx context.Context, o *output, name string, data []byte) bool {
	if o.events > 0 && !s.sleep(ctx, o.f.chunkDelay) {
		return false
	}
	o.event(name, data)
	return o.err == nil
}

// streamStop returns the end condition of a size-driven stream: the body
// has reached size bytes.
func (s *Server) streamStop(o *output) func() bool {
	if o.f.size == 0 {
		return nil
	}
	return func() bool { return o.written >= o.f.size }
}
