package metering

import (
	"bytes"
	"math"
	"strconv"

	"github.com/tidwall/gjson"
)

// usage holds the token counts of one upstream usage object.
type usage struct {
	prompt     int64
	completion int64 // reasoning included
	total      int64
	hit        int64 // prompt tokens served from the context cache
	miss       int64
	reasoning  int64

	// hasSplit is set when the upstream reported how the prompt divides
	// into cache hits and misses, so the two can be priced apart.
	hasSplit bool
	// mismatch is set when prompt_cache_hit_tokens and
	// prompt_cache_miss_tokens were both reported and do not add up to
	// prompt_tokens.
	mismatch bool
	// invalid is set when the prompt or completion count is missing, or
	// any count is not an integer from 0 to maxTokenCount. Such a usage
	// is not taken as reported, and its invalid counts read as 0.
	invalid bool
}

// maxTokenCount bounds every token count of one call, the total
// included, and a usage over it is invalid. It is far above any real call,
// and it keeps the stores' token sums within int64 for 8 million records
// even if every one of them carries the maximum (8e6 * 2^40 < 2^63).
const maxTokenCount = 1 << 40

// parseUsage reads a usage object. It returns false when v is not an
// object, such as the "usage": null of every chunk but the last.
//
// The cache split comes from the top-level prompt_cache_hit_tokens and
// prompt_cache_miss_tokens. Only when neither is present does
// prompt_tokens_details.cached_tokens give the hits, with the rest of the
// prompt as misses. A usage object in Anthropic's shape, without
// prompt_tokens, is mapped by anthropicUsage. A usage without
// prompt_tokens and completion_tokens, or with a count that tokenCount
// rejects, is marked invalid.
func parseUsage(v gjson.Result) (usage, bool) {
	if !v.IsObject() {
		return usage{}, false
	}
	if isAnthropicUsage(v) {
		var a anthropicUsage
		a.merge(v)
		return a.usage(), true
	}

	var u usage
	// count reads an optional count and marks u invalid when it is
	// present but out of range.
	count := func(x gjson.Result) int64 {
		n, ok := tokenCount(x)
		if !ok && x.Exists() {
			u.invalid = true
		}
		return n
	}
	prompt, completion := v.Get("prompt_tokens"), v.Get("completion_tokens")
	if !prompt.Exists() || !completion.Exists() {
		u.invalid = true
	}
	u.prompt = count(prompt)
	u.completion = count(completion)
	u.reasoning = count(v.Get("completion_tokens_details.reasoning_tokens"))
	if total := v.Get("total_tokens"); total.Exists() {
		u.total = count(total)
	} else {
		u.total = u.prompt + u.completion
		if u.total > maxTokenCount {
			u.invalid = true
		}
	}

	hit, miss := v.Get("prompt_cache_hit_tokens"), v.Get("prompt_cache_miss_tokens")
	switch {
	case hit.Exists() && miss.Exists():
		u.hit, u.miss = count(hit), count(miss)
		u.hasSplit = true
		u.mismatch = u.hit+u.miss != u.prompt
	case hit.Exists():
		u.hit = count(hit)
		u.miss = max(u.prompt-u.hit, 0)
		u.hasSplit = true
	case miss.Exists():
		u.miss = count(miss)
		u.hit = max(u.prompt-u.miss, 0)
		u.hasSplit = true
	default:
		if cached := v.Get("prompt_tokens_details.cached_tokens"); cached.Exists() {
			u.hit = count(cached)
			u.miss = max(u.prompt-u.hit, 0)
			u.hasSplit = true
		}
	}
	return u, true
}

// tokenCount reads a token count: a JSON integer, or a string containing
// one, from 0 to maxTokenCount. It returns 0 and false for anything else,
// a missing value included.
func tokenCount(v gjson.Result) (int64, bool) {
	var text string
	switch v.Type {
	case gjson.Number:
		text = v.Raw
	case gjson.String:
		text = v.Str
	default:
		return 0, false
	}
	n, err := strconv.ParseInt(text, 10, 64)
	if err != nil || n < 0 || n > maxTokenCount {
		return 0, false
	}
	return n, true
}

// saturatingAdd adds two non-negative counts, stopping at MaxInt64
// instead of wrapping to a negative number.
func saturatingAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

var usageKey = []byte(`"usage"`)

// findUsage finds the usage object in the last part of a JSON body that is
// too large to keep whole. window holds the body's last bytes and may
// start in the middle of a value. It returns the object after the last
// "usage" key outside a string that is followed by a complete object.
//
// A quote inside a JSON string is always escaped, so a "usage" preceded by
// a backslash is text inside a string, such as message content quoting
// JSON, and is skipped.
func findUsage(window []byte) (gjson.Result, bool) {
	end := len(window)
	for {
		i := bytes.LastIndex(window[:end], usageKey)
		if i < 0 {
			return gjson.Result{}, false
		}
		end = i
		if i > 0 && window[i-1] == '\\' {
			continue
		}
		rest := skipSpace(window[i+len(usageKey):])
		if len(rest) == 0 || rest[0] != ':' {
			continue
		}
		rest = skipSpace(rest[1:])
		if len(rest) == 0 || rest[0] != '{' {
			continue
		}
		n := objectLen(rest)
		if n < 0 || !gjson.ValidBytes(rest[:n]) {
			continue
		}
		return gjson.ParseBytes(rest[:n]), true
	}
}

// objectLen returns the length of the JSON object or array at the start
// of b, or -1 when it does not end within b. It only balances brackets
// outside strings; the caller validates the result.
func objectLen(b []byte) int {
	depth := 0
	inString, escaped := false, false
	for i, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

func skipSpace(b []byte) []byte {
	for len(b) > 0 && isJSONSpace(b[0]) {
		b = b[1:]
	}
	return b
}

func isJSONSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// errorMessage returns the message of an error value from a JSON body:
// the "message" of an {"error": {...}} envelope's object, or the error
// itself when it is a string.
func errorMessage(errValue gjson.Result) string {
	switch {
	case errValue.IsObject():
		if msg := errValue.Get("message"); msg.Type == gjson.String {
			return msg.Str
		}
		return errValue.Raw
	case errValue.Type == gjson.String:
		return errValue.Str
	}
	return ""
}
