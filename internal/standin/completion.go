package standin

import (
	"context"
	"regexp"
	"strconv"
)

const (
	defaultWords = 12
	maxWords     = 1_000_000

	// wordsPerChunk is how many words one stream chunk carries.
	wordsPerChunk = 3
	// argumentFragmentBytes is the size of the tool-call argument fragments
	// that a stream carries one per chunk.
	argumentFragmentBytes = 8
)

// wordCountPhrase matches "in N words" in the last user message.
var wordCountPhrase = regexp.MustCompile(`(?i)\bin (\d{1,9}) words\b`)

// pieceKind is the part of a completion that a piece belongs to.
type pieceKind int

const (
	kindReasoning pieceKind = iota
	kindContent
	kindArguments
)

// piece is one streamed fragment of a completion.
type piece struct {
	kind pieceKind
	text string
}

// toolCall is the function call a completion makes instead of text.
type toolCall struct {
	id        string
	name      string
	arguments string
}

// completionSpec describes a completion, and build turns it into one. Building
// twice gives the same completion, which lets a JSON body be measured before it
// is written.
type completionSpec struct {
	seed      string // the text the words are drawn from, usually the last user message
	words     int    // words of text and of reasoning
	unlimited bool   // size-driven: the text ends only when stop returns true
	thinking  bool
	tool      *toolCall
	maxTokens int // 0 means no cap
}

// completion generates the reasoning, then the text or the tool-call arguments.
type completion struct {
	reasoning     *textSource // nil without thinking
	body          *textSource // the text or the tool-call arguments
	bodyKind      pieceKind
	tool          *toolCall
	maxTokens     int
	reasoningDone bool
}

// wordsFor returns the completion length in words: the words fault if set, else a phrase
// "in N words" in the last user message, else the default.
func wordsFor(f *fault, lastUser string) int {
	if f.words >= 0 {
		return f.words
	}
	if m := wordCountPhrase.FindStringSubmatch(lastUser); m != nil {
		n, err := strconv.Atoi(m[1])
		if err == nil {
			return min(n, maxWords)
		}
	}
	return defaultWords
}

// build returns a fresh completion. stop, if not nil, ends an unlimited text.
func (sp *completionSpec) build(stop func() bool) *completion {
	vocab := englishWords
	if hasHan(sp.seed) {
		vocab = chineseWords
	}
	a := &completion{tool: sp.tool, maxTokens: sp.maxTokens}

	budget := -1
	if sp.maxTokens > 0 {
		budget = sp.maxTokens
	}
	if sp.thinking {
		words := sp.words
		if sp.unlimited {
			words = defaultWords
		}
		a.reasoning = &textSource{
			fragment: wordFragments(newWordSource(sp.seed, "reasoning", vocab), words, nil),
			budget:   budget,
		}
	} else {
		a.reasoningDone = true
	}

	switch {
	case sp.tool != nil:
		a.body = &textSource{fragment: stringFragments(sp.tool.arguments, argumentFragmentBytes)}
		a.bodyKind = kindArguments
	case sp.unlimited:
		a.body = &textSource{fragment: wordFragments(newWordSource(sp.seed, "content", vocab), -1, stop)}
		a.bodyKind = kindContent
	default:
		a.body = &textSource{fragment: wordFragments(newWordSource(sp.seed, "content", vocab), sp.words, nil)}
		a.bodyKind = kindContent
	}
	a.body.budget = budget
	return a
}

// next returns the next stream piece: reasoning first, a few words each, then
// the text a few words each or the arguments a fragment each.
func (a *completion) next() (piece, bool) {
	if !a.reasoningDone {
		if text, ok := a.reasoning.group(wordsPerChunk); ok {
			return piece{kind: kindReasoning, text: text}, true
		}
		a.finishReasoning()
	}

	n := wordsPerChunk
	if a.bodyKind == kindArguments {
		n = 1
	}
	text, ok := a.body.group(n)
	return piece{kind: a.bodyKind, text: text}, ok
}

// reasoningText drains the reasoning and returns it whole.
func (a *completion) reasoningText() string {
	var text string
	for !a.reasoningDone {
		s, ok := a.reasoning.next()
		if !ok {
			a.finishReasoning()
			break
		}
		text += s
	}
	return text
}

// finishReasoning ends the reasoning and leaves the body what remains of the
// max_tokens cap.
func (a *completion) finishReasoning() {
	a.reasoningDone = true
	if a.maxTokens > 0 {
		a.body.budget = max(0, a.maxTokens-a.reasoning.tokens())
	}
}

// drain consumes the rest of the completion, so that its counts are final.
func (a *completion) drain() {
	for {
		if _, ok := a.next(); !ok {
			return
		}
	}
}

// truncated reports whether max_tokens cut the completion short.
func (a *completion) truncated() bool {
	return a.body.truncated || (a.reasoning != nil && a.reasoning.truncated)
}

// finishReason returns the OpenAI-style finish reason.
func (a *completion) finishReason() string {
	switch {
	case a.truncated():
		return "length"
	case a.tool != nil:
		return "tool_calls"
	default:
		return "stop"
	}
}

func (a *completion) reasoningTokens() int {
	if a.reasoning == nil {
		return 0
	}
	return a.reasoning.tokens()
}

func (a *completion) completionTokens() int {
	return a.reasoningTokens() + a.body.tokens()
}

// jsonEnvelopeBytes estimates the bytes of a JSON response besides its text,
// used to aim size=BYTES at the whole body.
const jsonEnvelopeBytes = 400

// buildForJSON returns a fresh completion for a JSON body. With size set, the
// text ends once it is long enough for the body to be about size bytes, or
// early when ctx ends, so that a client that leaves stops the generation.
func (sp *completionSpec) buildForJSON(ctx context.Context, size int64) *completion {
	if !sp.unlimited {
		return sp.build(nil)
	}
	target := max(size-jsonEnvelopeBytes, 1)
	var a *completion
	a = sp.build(func() bool { return a.body.bytes >= target || ctx.Err() != nil })
	return a
}

// bodyText drains the body and returns it whole; it is for tool-call
// arguments, which are short.
func (a *completion) bodyText() string {
	a.reasoningText()
	var text string
	for {
		p, ok := a.next()
		if !ok {
			return text
		}
		text += p.text
	}
}
