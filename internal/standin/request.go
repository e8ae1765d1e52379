package standin

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/tidwall/gjson"
)

// maxToolArguments is how many schema properties a generated tool call
// fills.
const maxToolArguments = 4

// message is a chat or Anthropic message as far as the stand-in reads it.
type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// chatFields are the request fields that chat and Anthropic message requests
// share.
type chatFields struct {
	Model      *string           `json:"model"`
	Messages   *[]message        `json:"messages"`
	Stream     bool              `json:"stream"`
	MaxTokens  *int              `json:"max_tokens"`
	Tools      []json.RawMessage `json:"tools"`
	ToolChoice json.RawMessage   `json:"tool_choice"`
	Thinking   *struct {
		Type string `json:"type"`
	} `json:"thinking"`
}

// readConversation checks the model and messages of a request and adds the
// messages to conv, after what conv already contains. roles are the message
// roles the endpoint accepts.
func (s *Server) readConversation(body []byte, req *chatFields, roles []string, conv *conversation) *apiError {
	switch {
	case req.Model == nil:
		return missingField(body, "model")
	case req.Messages == nil:
		return missingField(body, "messages")
	}
	if e := s.checkModel(*req.Model); e != nil {
		return e
	}
	if len(*req.Messages) == 0 {
		e := invalidRequest("Invalid request: messages must contain at least one message")
		return &e
	}

	for i, m := range *req.Messages {
		if !slices.Contains(roles, m.Role) {
			return deserializeError("messages[%d].role: unknown variant `%s`, expected one of `%s`", i, m.Role, strings.Join(roles, "`, `"))
		}
		if e := conv.add(i, m); e != nil {
			return e
		}
	}
	return nil
}

// newPlan returns the plan of a checked chat or message request.
func (s *Server) newPlan(f *fault, id string, req *chatFields, conv *conversation, tool *toolCall, maxTokens *int) *plan {
	p := &plan{
		id:           id,
		model:        s.servedModel(*req.Model),
		stream:       req.Stream,
		promptTokens: PromptTokens(conv.prompt.String()),
		spec: completionSpec{
			seed:      conv.lastUser,
			words:     wordsFor(f, conv.lastUser),
			unlimited: f.size > 0,
			thinking:  thinkingOn(*req.Model, req.Thinking != nil && req.Thinking.Type == "enabled"),
			tool:      tool,
		},
		usageMismatch: f.usageMismatch,
	}
	if maxTokens != nil {
		p.spec.maxTokens = *maxTokens
	}
	return p
}

// conversation is the part of a request that the completion depends on: the
// prompt text, the last user message and the role of the last message.
type conversation struct {
	prompt   strings.Builder
	lastUser string
	lastRole string
	// toolResult is set when the last message carries a tool result, so the
	// completion is text rather than another tool call.
	toolResult bool
}

// add appends a message. It returns an error for a content of the wrong
// JSON type.
func (c *conversation) add(i int, m message) *apiError {
	text, ok := contentText(m.Content)
	if !ok {
		return deserializeError("messages[%d].content: invalid type, expected a string or an array of content parts", i)
	}
	c.prompt.WriteString(text)
	c.lastRole = m.Role
	c.toolResult = m.Role == "tool" || hasToolResult(m.Content)
	if m.Role == "user" {
		c.lastUser = text
	}
	return nil
}

// contentText returns the text of a message content: a string, null, or an
// array of parts whose "text" parts and "tool_result" contents count. It
// reports false for any other JSON type.
func contentText(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 {
		return "", true
	}
	v := gjson.ParseBytes(raw)
	switch {
	case v.Type == gjson.Null:
		return "", true
	case v.Type == gjson.String:
		return v.Str, true
	case v.IsArray():
		var b strings.Builder
		for _, part := range v.Array() {
			switch part.Get("type").Str {
			case "text":
				b.WriteString(part.Get("text").Str)
			case "tool_result":
				inner, _ := contentText(json.RawMessage(part.Get("content").Raw))
				b.WriteString(inner)
			}
		}
		return b.String(), true
	}
	return "", false
}

func hasToolResult(raw json.RawMessage) bool {
	found := false
	gjson.ParseBytes(raw).ForEach(func(_, part gjson.Result) bool {
		found = part.Get("type").Str == "tool_result"
		return !found
	})
	return found
}

// requestID returns the completion id for a request body: a name-based UUID
// of the body, so the same body always gets the same id.
func requestID(body []byte) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, body).String()
}

// compactID returns requestID without dashes, for the msg_ and toolu_ ids
// of the Anthropic format.
func compactID(data []byte) string {
	return strings.ReplaceAll(requestID(data), "-", "")
}

// newToolCall returns the call of the tool named name with the parameter
// schema params, its arguments drawn from seed.
func newToolCall(seed, name, idPrefix string, params gjson.Result) *toolCall {
	vocab := englishWords
	if hasHan(seed) {
		vocab = chineseWords
	}
	ws := newWordSource(seed, "arguments:"+name, vocab)
	key := []byte(seed + "\x00" + name)
	id := idPrefix + requestID(key)
	if idPrefix == anthropicToolPrefix {
		id = idPrefix + compactID(key)
	}
	return &toolCall{id: id, name: name, arguments: toolArguments(ws, params)}
}

// toolArguments returns a JSON object that fills up to maxToolArguments of
// the schema's properties, in schema order: the first enum value where there
// is one, else a value of the property's type.
func toolArguments(ws *wordSource, schema gjson.Result) string {
	var b strings.Builder
	b.WriteByte('{')
	n := 0
	schema.Get("properties").ForEach(func(name, prop gjson.Result) bool {
		if n == maxToolArguments {
			return false
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.Write(marshal(name.String()))
		b.WriteByte(':')
		b.WriteString(argumentValue(ws, prop))
		n++
		return true
	})
	b.WriteByte('}')
	return b.String()
}

func argumentValue(ws *wordSource, prop gjson.Result) string {
	if first := prop.Get("enum.0"); first.Exists() {
		return first.Raw
	}
	switch prop.Get("type").Str {
	case "integer":
		return strconv.FormatUint(ws.uint64()%100, 10)
	case "number":
		return fmt.Sprintf("%d.5", ws.uint64()%100)
	case "boolean":
		return strconv.FormatBool(ws.uint64()%2 == 0)
	case "array":
		return "[" + string(marshal(ws.word())) + "]"
	case "object":
		return "{}"
	case "null":
		return "null"
	default:
		return string(marshal(ws.word() + " " + ws.word()))
	}
}

// checkMaxTokens returns the 400 for a max_tokens below 1.
func checkMaxTokens(v *int) *apiError {
	if v != nil && *v < 1 {
		e := invalidRequest(fmt.Sprintf("Invalid max_tokens value %d: max_tokens must be at least 1", *v))
		return &e
	}
	return nil
}
