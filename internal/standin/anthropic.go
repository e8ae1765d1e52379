package standin

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/tidwall/gjson"
)

const anthropicToolPrefix = "toolu_"

// anthropicRoles are the roles the Anthropic format accepts in messages; the
// system prompt is a separate field.
var anthropicRoles = []string{"user", "assistant"}

type messagesRequest struct {
	chatFields
	System json.RawMessage `json:"system"`
}

type anthropicUsage struct {
	InputTokens              int `json:"input_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
	OutputTokens             int `json:"output_tokens"`
}

type anthropicMessage struct {
	ID           string           `json:"id"`
	Type         string           `json:"type"`
	Role         string           `json:"role"`
	Model        string           `json:"model"`
	Content      []anthropicBlock `json:"content"`
	StopReason   *string          `json:"stop_reason"`
	StopSequence *string          `json:"stop_sequence"`
	Usage        anthropicUsage   `json:"usage"`
}

// anthropicBlock is a content block, or a block delta when Type ends in
// _delta. Nil pointers are left out.
type anthropicBlock struct {
	Type        string          `json:"type"`
	Text        *string         `json:"text,omitempty"`
	Thinking    *string         `json:"thinking,omitempty"`
	Signature   *string         `json:"signature,omitempty"`
	PartialJSON *string         `json:"partial_json,omitempty"`
	ID          string          `json:"id,omitempty"`
	Name        string          `json:"name,omitempty"`
	Input       json.RawMessage `json:"input,omitempty"`
}

type anthropicEvent struct {
	Type         string            `json:"type"`
	Message      *anthropicMessage `json:"message,omitempty"`
	Index        *int              `json:"index,omitempty"`
	ContentBlock *anthropicBlock   `json:"content_block,omitempty"`
	Delta        any               `json:"delta,omitempty"`
	Usage        *anthropicUsage   `json:"usage,omitempty"`
}

type stopDelta struct {
	StopReason   string  `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
}

func (s *Server) parseMessages(f *fault, body []byte) (*plan, *apiError) {
	var req messagesRequest
	if e := decodeBody(body, &req); e != nil {
		return nil, e
	}
	var conv conversation
	system, ok := contentText(req.System)
	if !ok {
		return nil, deserializeError("system: invalid type, expected a string or an array of text blocks")
	}
	conv.prompt.WriteString(system)
	if e := s.readConversation(body, &req.chatFields, anthropicRoles, &conv); e != nil {
		return nil, e
	}

	if e := checkMaxTokens(req.MaxTokens); e != nil {
		return nil, e
	}
	tool, e := anthropicTool(req.Tools, req.ToolChoice, &conv)
	if e != nil {
		return nil, e
	}
	return s.newPlan(f, "msg_"+compactID(body), &req.chatFields, &conv, tool, req.MaxTokens), nil
}

// anthropicTool returns the tool call a message request gets, or nil for a
// text completion.
func anthropicTool(tools []json.RawMessage, choice json.RawMessage, conv *conversation) (*toolCall, *apiError) {
	if len(tools) == 0 || conv.toolResult {
		return nil, nil
	}
	tc := gjson.ParseBytes(choice)
	if tc.Get("type").Str == "none" {
		return nil, nil
	}

	wanted := ""
	if tc.Get("type").Str == "tool" {
		wanted = tc.Get("name").Str
	}
	for i, t := range tools {
		name := gjson.GetBytes(t, "name")
		if !name.Exists() {
			return nil, deserializeError("tools[%d]: missing field `name`", i)
		}
		if wanted == "" || name.Str == wanted {
			return newToolCall(conv.lastUser, name.Str, anthropicToolPrefix, gjson.GetBytes(t, "input_schema")), nil
		}
	}
	e := invalidRequest(fmt.Sprintf("Invalid tool_choice: tool %q is not in tools", wanted))
	return nil, &e
}

func (p *plan) anthropicUsage(a *completion) anthropicUsage {
	hit := CacheHitTokens(p.promptTokens)
	return anthropicUsage{
		InputTokens:          p.promptTokens - hit,
		CacheReadInputTokens: hit,
		OutputTokens:         a.completionTokens(),
	}
}

// stopReason maps the finish reason to Anthropic's stop_reason.
func stopReason(a *completion) string {
	switch a.finishReason() {
	case "length":
		return "max_tokens"
	case "tool_calls":
		return "tool_use"
	default:
		return "end_turn"
	}
}

// thinkingSignature is the signature of a thinking block, derived from the
// seed so that it is stable.
func thinkingSignature(seed string) string {
	sum := sha256.Sum256([]byte("signature\x00" + seed))
	return base64.StdEncoding.EncodeToString(sum[:])
}

func (s *Server) writeMessagesJSON(ctx context.Context, o *output, p *plan) {
	measured := p.spec.buildForJSON(ctx, o.f.size)
	measured.drain()
	reason := stopReason(measured)

	a := p.spec.buildForJSON(ctx, o.f.size)
	var blocks []anthropicBlock
	if a.reasoning != nil {
		thinking, signature := a.reasoningText(), thinkingSignature(p.spec.seed)
		blocks = append(blocks, anthropicBlock{Type: "thinking", Thinking: &thinking, Signature: &signature})
	}
	switch {
	case a.tool != nil:
		// Arguments that max_tokens cut are not valid JSON, and the input
		// must be an object, so a cut call gets an empty input.
		input := json.RawMessage(a.bodyText())
		if !json.Valid(input) {
			input = json.RawMessage("{}")
		}
		blocks = append(blocks, anthropicBlock{Type: "tool_use", ID: a.tool.id, Name: a.tool.name, Input: input})
	case measured.body.bytes > 0:
		text := contentPlaceholder
		blocks = append(blocks, anthropicBlock{Type: "text", Text: &text})
	}

	resp := anthropicMessage{
		ID:         p.id,
		Type:       "message",
		Role:       "assistant",
		Model:      p.model,
		Content:    blocks,
		StopReason: &reason,
		Usage:      p.anthropicUsage(measured),
	}
	if resp.Content == nil {
		resp.Content = []anthropicBlock{}
	}
	s.writeCompletionJSON(ctx, o, marshal(resp), a)
}

// streamMessages writes a streamed Anthropic response: message_start, a ping,
// one block per part of the completion, message_delta with the usage, and
// message_stop.
func (s *Server) streamMessages(ctx context.Context, o *output, p *plan) {
	if !s.startOK(ctx, o) {
		return
	}
	send := func(e anthropicEvent) bool {
		return s.sendEvent(ctx, o, e.Type, marshal(e))
	}

	a := p.spec.build(s.streamStop(o))
	start := anthropicMessage{
		ID: p.id, Type: "message", Role: "assistant", Model: p.model,
		Content: []anthropicBlock{},
		Usage:   anthropicUsage{InputTokens: p.promptTokens - CacheHitTokens(p.promptTokens), CacheReadInputTokens: CacheHitTokens(p.promptTokens)},
	}
	if !send(anthropicEvent{Type: "message_start", Message: &start}) || !send(anthropicEvent{Type: "ping"}) {
		return
	}

	index, open := -1, pieceKind(-1)
	closeBlock := func() bool {
		if open == kindReasoning {
			signature := thinkingSignature(p.spec.seed)
			delta := anthropicBlock{Type: "signature_delta", Signature: &signature}
			if !send(anthropicEvent{Type: "content_block_delta", Index: &index, Delta: delta}) {
				return false
			}
		}
		return send(anthropicEvent{Type: "content_block_stop", Index: &index})
	}
	for {
		pc, ok := a.next()
		if !ok {
			break
		}
		if pc.kind != open {
			if index >= 0 && !closeBlock() {
				return
			}
			index, open = index+1, pc.kind
			block := openingBlock(pc.kind, a.tool)
			if !send(anthropicEvent{Type: "content_block_start", Index: &index, ContentBlock: &block}) {
				return
			}
		}
		delta := blockDelta(pc)
		if !send(anthropicEvent{Type: "content_block_delta", Index: &index, Delta: delta}) {
			return
		}
	}
	if index >= 0 && !closeBlock() {
		return
	}

	usage := p.anthropicUsage(a)
	if !send(anthropicEvent{Type: "message_delta", Delta: stopDelta{StopReason: stopReason(a)}, Usage: &usage}) {
		return
	}
	s.endStream(ctx, o, func() { send(anthropicEvent{Type: "message_stop"}) })
}

// openingBlock returns the empty block that content_block_start announces.
func openingBlock(kind pieceKind, tool *toolCall) anthropicBlock {
	empty := ""
	switch kind {
	case kindReasoning:
		return anthropicBlock{Type: "thinking", Thinking: &empty}
	case kindArguments:
		return anthropicBlock{Type: "tool_use", ID: tool.id, Name: tool.name, Input: json.RawMessage("{}")}
	default:
		return anthropicBlock{Type: "text", Text: &empty}
	}
}

func blockDelta(pc piece) anthropicBlock {
	text := pc.text
	switch pc.kind {
	case kindReasoning:
		return anthropicBlock{Type: "thinking_delta", Thinking: &text}
	case kindArguments:
		return anthropicBlock{Type: "input_json_delta", PartialJSON: &text}
	default:
		return anthropicBlock{Type: "text_delta", Text: &text}
	}
}
