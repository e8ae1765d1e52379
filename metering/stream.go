package metering

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// maxToolCalls bounds the tool calls assembled from one stream. Fragments
// for a higher index are dropped and the stored message is flagged as
// truncated.
const maxToolCalls = 128

var doneData = []byte("[DONE]")

// streamParser reads a chat or text completion stream: it parses events
// as bytes arrive and assembles the message, the last usage and the
// finish reason in memory bounded by maxText plus one line.
type streamParser struct {
	scanner sseScanner

	// budget is how many more bytes of text (content, reasoning and tool
	// arguments together) the assembled message may take.
	budget    int
	truncated bool
	// cutText is the text that the budget cut first, whose end may be
	// part of a key; nil while nothing was cut.
	cutText *strings.Builder

	id           string
	model        string
	content      strings.Builder
	reasoning    strings.Builder
	tools        []*toolCall
	finishReason string
	errMsg       string // message of an error object sent as an event

	usage    usage
	usageRaw string // the last non-null usage object as sent
	hasUsage bool

	done       bool // a [DONE] event arrived, or message_stop on /anthropic
	jsonEvents int
	otherData  int // data events that were neither JSON nor [DONE]

	// anthropic holds the usage of an Anthropic-format stream, which
	// message_start and message_delta each carry a part of.
	anthropic anthropicUsage

	// completion counts all the text of content, reasoning and tool
	// arguments, also past the budget, to estimate the completion tokens
	// when no usage arrives. Each kind is rounded up on its own.
	completion [3]textTenths

	// onProgress, when set, runs for every event that carries payload:
	// JSON data or the end of the stream. Keep-alive comments, blank
	// lines and data lines without JSON do not count.
	onProgress func()
}

// Indexes of streamParser.completion.
const (
	textContent = iota
	textReasoning
	textToolArguments
)

// toolCall is one tool call merged from its streamed fragments.
type toolCall struct {
	Index    int              `json:"index"`
	ID       string           `json:"id,omitempty"`
	Type     string           `json:"type,omitempty"`
	Function toolCallFunction `json:"function"`

	args strings.Builder
}

type toolCallFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

func newStreamParser(maxText, maxLine int) *streamParser {
	p := &streamParser{budget: maxText}
	p.scanner = sseScanner{maxLine: maxLine, onEvent: p.event}
	return p
}

func (p *streamParser) write(b []byte) { p.scanner.write(b) }

// finish reads the end of a stream that stopped without a line end.
func (p *streamParser) finish() { p.scanner.finish() }

// event handles the data of one event. Data that is not a JSON object,
// such as a relay's keep-alive sent as a data line, is counted and
// skipped.
func (p *streamParser) event(data []byte) {
	data = bytes.TrimSpace(data)
	if bytes.Equal(data, doneData) {
		p.done = true
		p.progress()
		return
	}
	if len(data) == 0 || data[0] != '{' {
		p.otherData++
		return
	}
	// text shares data's memory, which the scanner reuses for the next
	// event, so every string kept past this call is copied with
	// strings.Clone. Copying the whole event instead would cost one
	// allocation per chunk.
	text := unsafe.String(unsafe.SliceData(data), len(data))
	if !gjson.Valid(text) {
		p.otherData++
		return
	}
	p.jsonEvents++
	p.progress()

	// An Anthropic-format event names its kind in "type"; a chat or text
	// completion chunk has "object" instead.
	root := gjson.Parse(text)
	if mayHaveTypeKey(data) {
		if kind := root.Get("type"); kind.Type == gjson.String {
			p.anthropicEvent(kind.Str, root)
			return
		}
	}

	// One pass over the top-level keys reads everything a chunk carries.
	root.ForEach(func(key, value gjson.Result) bool {
		switch key.Str {
		case "id":
			if p.id == "" {
				p.id = strings.Clone(cleanField(value.String()))
			}
		case "model":
			if value.Type == gjson.String && value.Str != "" && value.Str != p.model {
				p.model = strings.Clone(value.Str)
			}
		case "usage":
			// Earlier chunks carry "usage": null or no key; the last
			// object wins.
			if u, ok := parseUsage(value); ok {
				p.usage, p.usageRaw, p.hasUsage = u, strings.Clone(value.Raw), true
			}
		case "choices":
			p.choice(value)
		case "error":
			if p.errMsg == "" {
				p.errMsg = strings.Clone(errorMessage(value))
			}
		}
		return true
	})
}

var (
	typeKey       = []byte(`"type"`)
	unicodeEscape = []byte(`\u`)
)

// mayHaveTypeKey reports whether a JSON object might have a "type" key,
// so a chat chunk, which has none, is not scanned a second time to look
// for it. A key spells "type" either plainly or with \u escapes, since
// no other escape stands for a letter.
func mayHaveTypeKey(data []byte) bool {
	return bytes.Contains(data, typeKey) || bytes.Contains(data, unicodeEscape)
}

// choice merges the first choice of a chunk. One pass over the choice
// and one over its delta find the fields, where a Get per field would
// scan the object again each time. The first of duplicate keys wins, as
// with Get.
func (p *streamParser) choice(choices gjson.Result) {
	if !choices.IsArray() {
		return
	}
	c := choices.Get("0")
	if !c.IsObject() {
		return
	}
	var delta, text, reason gjson.Result
	c.ForEach(func(key, value gjson.Result) bool {
		switch key.Str {
		case "delta":
			keepFirst(&delta, value)
		case "text":
			keepFirst(&text, value)
		case "finish_reason":
			keepFirst(&reason, value)
		}
		return true
	})

	if delta.IsObject() {
		var content, reasoning, calls gjson.Result
		delta.ForEach(func(key, value gjson.Result) bool {
			switch key.Str {
			case "content":
				keepFirst(&content, value)
			case "reasoning_content":
				keepFirst(&reasoning, value)
			case "tool_calls":
				keepFirst(&calls, value)
			}
			return true
		})
		p.appendText(&p.content, textContent, content)
		p.appendText(&p.reasoning, textReasoning, reasoning)
		if calls.IsArray() {
			position := 0
			calls.ForEach(func(_, fragment gjson.Result) bool {
				p.toolFragment(position, fragment)
				position++
				return true
			})
		}
	}
	// A text completion (/beta/completions) streams choices[0].text.
	p.appendText(&p.content, textContent, text)
	if reason.Type == gjson.String && reason.Str != "" && reason.Str != p.finishReason {
		p.finishReason = strings.Clone(reason.Str)
	}
}

// keepFirst sets *first to v unless it holds a value already.
func keepFirst(first *gjson.Result, v gjson.Result) {
	if !first.Exists() {
		*first = v
	}
}

// toolFragment merges one streamed tool call fragment. Fragments with the
// same index belong to one call: the first id, type and name win, and
// arguments are appended.
func (p *streamParser) toolFragment(position int, fragment gjson.Result) {
	if !fragment.IsObject() {
		return
	}
	index := position
	if i := fragment.Get("index"); i.Type == gjson.Number {
		index = int(i.Int())
	}
	if index < 0 || index >= maxToolCalls {
		p.truncated = true
		return
	}

	call := p.toolCall(index)
	if call == nil {
		p.truncated = true
		return
	}
	if id := fragment.Get("id"); call.ID == "" && id.Type == gjson.String {
		call.ID = strings.Clone(cleanField(id.Str))
	}
	if kind := fragment.Get("type"); call.Type == "" && kind.Type == gjson.String {
		call.Type = strings.Clone(cleanField(kind.Str))
	}
	if name := fragment.Get("function.name"); call.Function.Name == "" && name.Type == gjson.String {
		call.Function.Name = strings.Clone(cleanField(name.Str))
	}
	p.appendText(&call.args, textToolArguments, fragment.Get("function.arguments"))
}

// toolCall returns the call with the given index, adding it when new, or
// nil when maxToolCalls calls exist already.
func (p *streamParser) toolCall(index int) *toolCall {
	for _, call := range p.tools {
		if call.Index == index {
			return call
		}
	}
	if len(p.tools) >= maxToolCalls {
		return nil
	}
	call := &toolCall{Index: index}
	p.tools = append(p.tools, call)
	return call
}

// appendText appends a string value to b within the text budget and
// counts it as completion text of the given kind. Once the budget runs
// out, text is cut at a character boundary and nothing more is appended,
// so the stored message is a prefix of the real one.
func (p *streamParser) appendText(b *strings.Builder, kind int, v gjson.Result) {
	if v.Type != gjson.String || v.Str == "" {
		return
	}
	s := v.Str
	p.completion[kind].add(s)
	if len(s) > p.budget {
		p.truncated = true
		if p.cutText == nil {
			p.cutText = b
		}
		s = s[:runeCut([]byte(s), p.budget)]
		p.budget = 0
	} else {
		p.budget -= len(s)
	}
	b.WriteString(s)
}

func (p *streamParser) progress() {
	if p.onProgress != nil {
		p.onProgress()
	}
}

// estimatedCompletion estimates the completion tokens from the text that
// arrived.
func (p *streamParser) estimatedCompletion() int64 {
	var n int64
	for _, t := range p.completion {
		n += t.tokens()
	}
	return n
}

// text returns the text of b, with a key fragment at its end masked when
// the budget cut b.
func (p *streamParser) text(b *strings.Builder) string {
	if b == p.cutText {
		return maskCutKey(b.String())
	}
	return b.String()
}

// assembledMessage is the stored form of a stream: the message put back
// together from its chunks.
type assembledMessage struct {
	ID               string          `json:"id"`
	Model            string          `json:"model"`
	Content          string          `json:"content"`
	ReasoningContent string          `json:"reasoning_content"`
	ToolCalls        []*toolCall     `json:"tool_calls"`
	FinishReason     string          `json:"finish_reason"`
	Usage            json.RawMessage `json:"usage"` // null when none arrived
}

// assembled returns the stream's message as JSON. Invalid UTF-8 in the
// text becomes U+FFFD.
func (p *streamParser) assembled() string {
	msg := assembledMessage{
		ID:               p.id,
		Model:            p.model,
		Content:          p.text(&p.content),
		ReasoningContent: p.text(&p.reasoning),
		ToolCalls:        p.tools,
		FinishReason:     p.finishReason,
	}
	if msg.ToolCalls == nil {
		msg.ToolCalls = []*toolCall{}
	}
	for _, call := range p.tools {
		call.Function.Arguments = p.text(&call.args)
	}
	if p.hasUsage {
		msg.Usage = json.RawMessage(p.usageRaw)
	}

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(msg); err != nil {
		// Every field is a string or valid JSON checked by gjson, so this
		// does not happen; keep the text rather than nothing.
		return sanitize(msg.Content)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// outcome reads what a record needs from a finished stream.
func (p *streamParser) outcome(maxStored int) outcome {
	out := outcome{
		usage:    p.usage,
		hasUsage: p.hasUsage,
		model:    cleanField(p.model),
		complete: p.done || p.finishReason != "",
		errMsg:   p.errMsg,

		completionEstimate: p.estimatedCompletion(),
	}
	if p.jsonEvents == 0 && !p.done {
		out.empty = p.otherData == 0
		out.unreadable = p.otherData > 0
	}
	out.data, out.truncated = p.assembled(), p.truncated
	if len(out.data) > maxStored {
		// Escaping can make the JSON longer than the text it holds.
		out.data, out.truncated = cutStored([]byte(out.data), int64(len(out.data)), maxStored), true
	}
	if !utf8.ValidString(out.data) {
		out.data = sanitize(out.data)
	}
	return out
}
