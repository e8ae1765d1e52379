package metering

import (
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// anthropicUsage is the usage of an Anthropic-format response, as served
// by DeepSeek's /anthropic/v1/messages: input_tokens are the cache misses,
// cache_read_input_tokens the cache hits and output_tokens the completion.
// A stream reports the input counts in message_start and the final output
// count in message_delta, so the parts are merged as they arrive.
type anthropicUsage struct {
	input, cacheRead, cacheCreation, output int64

	// hasInput and hasOutput are set once input_tokens and
	// output_tokens arrived, and invalid once any count was out of range.
	hasInput, hasOutput, invalid bool
}

// isAnthropicUsage reports whether a usage object has Anthropic's shape
// rather than the OpenAI shape with prompt_tokens.
func isAnthropicUsage(v gjson.Result) bool {
	if v.Get("prompt_tokens").Exists() {
		return false
	}
	return v.Get("input_tokens").Exists() || v.Get("output_tokens").Exists()
}

// merge sets the counts present in v and keeps the others. A count that
// tokenCount rejects reads as 0 and marks the usage invalid.
func (a *anthropicUsage) merge(v gjson.Result) {
	for key, field := range map[string]*int64{
		"input_tokens":                &a.input,
		"cache_read_input_tokens":     &a.cacheRead,
		"cache_creation_input_tokens": &a.cacheCreation,
		"output_tokens":               &a.output,
	} {
		if x := v.Get(key); x.Exists() {
			n, ok := tokenCount(x)
			*field = n
			a.invalid = a.invalid || !ok
		}
	}
	a.hasInput = a.hasInput || v.Get("input_tokens").Exists()
	a.hasOutput = a.hasOutput || v.Get("output_tokens").Exists()
}

// usage maps the counts to the usage a record stores. A cache write is
// priced as an ordinary input token, which is a cache miss. DeepSeek
// reports it as 0.
func (a anthropicUsage) usage() usage {
	u := usage{
		hit:        a.cacheRead,
		miss:       saturatingAdd(a.input, a.cacheCreation),
		completion: a.output,
		hasSplit:   true,
		invalid:    a.invalid || !a.hasInput || !a.hasOutput,
	}
	u.prompt = saturatingAdd(u.hit, u.miss)
	u.total = saturatingAdd(u.prompt, u.completion)
	u.invalid = u.invalid || u.total > maxTokenCount
	return u
}

// raw returns the merged counts as an Anthropic usage object.
func (a anthropicUsage) raw() string {
	return `{"input_tokens":` + strconv.FormatInt(a.input, 10) +
		`,"cache_creation_input_tokens":` + strconv.FormatInt(a.cacheCreation, 10) +
		`,"cache_read_input_tokens":` + strconv.FormatInt(a.cacheRead, 10) +
		`,"output_tokens":` + strconv.FormatInt(a.output, 10) + `}`
}

// anthropicEvent merges one event of an Anthropic-format stream:
// message_start, content_block_start, content_block_delta, message_delta
// (with the final usage), message_stop (the end) or error. root shares
// memory the scanner reuses, so a string kept is copied.
func (p *streamParser) anthropicEvent(kind string, root gjson.Result) {
	switch kind {
	case "message_start":
		msg := root.Get("message")
		if p.id == "" {
			p.id = strings.Clone(cleanField(msg.Get("id").String()))
		}
		if m := msg.Get("model"); m.Type == gjson.String && m.Str != "" {
			p.model = strings.Clone(m.Str)
		}
		if u := msg.Get("usage"); u.IsObject() {
			p.anthropic.merge(u)
		}
	case "content_block_start":
		block := root.Get("content_block")
		if block.Get("type").Str != "tool_use" {
			p.appendText(&p.content, textContent, block.Get("text"))
			return
		}
		call := p.anthropicToolCall(root.Get("index"))
		if call == nil {
			return
		}
		if call.ID == "" {
			call.ID = strings.Clone(cleanField(block.Get("id").String()))
		}
		if call.Function.Name == "" {
			call.Function.Name = strings.Clone(cleanField(block.Get("name").String()))
		}
		call.Type = "tool_use"
	case "content_block_delta":
		delta := root.Get("delta")
		switch delta.Get("type").Str {
		case "text_delta":
			p.appendText(&p.content, textContent, delta.Get("text"))
		case "thinking_delta":
			p.appendText(&p.reasoning, textReasoning, delta.Get("thinking"))
		case "input_json_delta":
			if call := p.anthropicToolCall(root.Get("index")); call != nil {
				p.appendText(&call.args, textToolArguments, delta.Get("partial_json"))
			}
		}
	case "message_delta":
		if reason := root.Get("delta.stop_reason"); reason.Type == gjson.String && reason.Str != "" {
			p.finishReason = strings.Clone(reason.Str)
		}
		if u := root.Get("usage"); u.IsObject() {
			p.anthropic.merge(u)
			p.usage, p.usageRaw, p.hasUsage = p.anthropic.usage(), p.anthropic.raw(), true
		}
	case "message_stop":
		p.done = true
	case "error":
		if p.errMsg == "" {
			p.errMsg = strings.Clone(errorMessage(root.Get("error")))
		}
	}
}

// anthropicToolCall returns the tool call of a content block index, or nil
// for an index out of range, which marks the message truncated.
func (p *streamParser) anthropicToolCall(index gjson.Result) *toolCall {
	i := int(index.Int())
	if index.Type != gjson.Number || i < 0 || i >= maxToolCalls {
		p.truncated = true
		return nil
	}
	call := p.toolCall(i)
	if call == nil {
		p.truncated = true
	}
	return call
}
