package standin

import (
	"crypto/sha256"
	"encoding/binary"
	"unicode"
	"unicode/utf8"
)

// Token weights in tenths of a token: an ASCII byte is 0.3 token, any other
// character 0.6.
const (
	asciiUnits    = 3
	otherUnits    = 6
	unitsPerToken = 10
)

// cacheBlockTokens is the granularity of DeepSeek's prompt cache: hits come in
// multiples of 64 tokens.
const cacheBlockTokens = 64

// EstimateTokens returns the stand-in's token count of text: 0.3 token per
// ASCII byte plus 0.6 per other character, rounded up. It returns 0 only for
// the empty string. A byte that is not valid UTF-8 counts as an other
// character.
func EstimateTokens(text string) int {
	return ceilDiv(textUnits(text), unitsPerToken)
}

// PromptTokens returns the prompt_tokens the stand-in reports for a prompt
// text: [EstimateTokens] of it, but at least 1.
func PromptTokens(text string) int {
	return max(1, EstimateTokens(text))
}

// CacheHitTokens returns the prompt_cache_hit_tokens the stand-in reports for
// promptTokens: 64 for every whole 128 prompt tokens, so hits are a multiple
// of 64 and at most half the prompt.
func CacheHitTokens(promptTokens int) int {
	return cacheBlockTokens * (promptTokens / (2 * cacheBlockTokens))
}

func runeUnits(r rune) int {
	if r < utf8.RuneSelf {
		return asciiUnits
	}
	return otherUnits
}

func textUnits(s string) int {
	units := 0
	for _, r := range s {
		units += runeUnits(r)
	}
	return units
}

func ceilDiv(a, b int) int {
	return (a + b - 1) / b
}

// hasHan reports whether s contains a Han (Chinese) character.
func hasHan(s string) bool {
	for _, r := range s {
		if unicode.Is(unicode.Han, r) {
			return true
		}
	}
	return false
}

var englishWords = []string{
	"the", "meter", "counts", "every", "token", "that", "passes", "through",
	"proxy", "and", "stores", "one", "record", "per", "call", "with",
	"cost", "timing", "model", "cache", "hit", "miss", "prompt", "answer",
	"stream", "chunk", "usage", "price", "balance", "account", "key", "request",
	"response", "server", "client", "reason", "quickly", "carefully", "again", "before",
	"after", "while", "simple", "exact", "steady", "small", "large", "clear",
	"data", "event", "line", "byte", "window", "queue", "batch", "writer",
	"reader", "table", "index", "query", "total", "daily", "limit", "value",
}

var chineseWords = []string{
	"数据", "模型", "计量", "令牌", "缓存", "命中", "请求", "响应",
	"流式", "费用", "时间", "账户", "余额", "服务", "测试", "结果",
}

// wordSource draws words from a vocabulary with a splitmix64 generator, so a
// seed always gives the same words.
type wordSource struct {
	state uint64
	vocab []string
}

func newWordSource(seed, salt string, vocab []string) *wordSource {
	sum := sha256.Sum256([]byte(salt + "\x00" + seed))
	return &wordSource{state: binary.LittleEndian.Uint64(sum[:8]), vocab: vocab}
}

func (ws *wordSource) uint64() uint64 {
	ws.state += 0x9e3779b97f4a7c15
	z := ws.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (ws *wordSource) word() string {
	return ws.vocab[ws.uint64()%uint64(len(ws.vocab))]
}

// textSource hands out a text fragment by fragment and counts its tokens. A
// budget cuts the text so that its token count reaches the budget exactly.
type textSource struct {
	fragment  func() (string, bool)
	budget    int // max tokens; negative means no cap
	units     int // token weight of the text so far, see runeUnits
	bytes     int64
	truncated bool // the budget cut the text short
	done      bool
}

func (ts *textSource) next() (string, bool) {
	if ts.done {
		return "", false
	}
	s, ok := ts.fragment()
	if !ok {
		ts.done = true
		return "", false
	}

	units := textUnits(s)
	if ts.budget >= 0 && ceilDiv(ts.units+units, unitsPerToken) > ts.budget {
		s, units = ts.fit(s)
		ts.truncated, ts.done = true, true
		if s == "" {
			return "", false
		}
	}
	ts.units += units
	ts.bytes += int64(len(s))
	return s, true
}

// fit returns the longest prefix of s that keeps the text within the budget,
// and its weight. One character adds at most one token, so the text then has
// exactly budget tokens.
func (ts *textSource) fit(s string) (string, int) {
	units := 0
	for i, r := range s {
		u := runeUnits(r)
		if ceilDiv(ts.units+units+u, unitsPerToken) > ts.budget {
			return s[:i], units
		}
		units += u
	}
	return s, units
}

// group joins up to n fragments into one.
func (ts *textSource) group(n int) (string, bool) {
	first, ok := ts.next()
	if !ok {
		return "", false
	}
	for range n - 1 {
		s, ok := ts.next()
		if !ok {
			break
		}
		first += s
	}
	return first, true
}

func (ts *textSource) tokens() int {
	return ceilDiv(ts.units, unitsPerToken)
}

// wordFragments returns a fragment function that gives limit words (no limit
// when negative), each but the first with a leading space. After the first
// word it also ends once stop, if not nil, returns true.
func wordFragments(ws *wordSource, limit int, stop func() bool) func() (string, bool) {
	n := 0
	return func() (string, bool) {
		if limit >= 0 && n >= limit {
			return "", false
		}
		if n > 0 && stop != nil && stop() {
			return "", false
		}
		w := ws.word()
		if n > 0 {
			w = " " + w
		}
		n++
		return w, true
	}
}

// stringFragments returns a fragment function that gives s in pieces of up
// to size bytes, split only between characters.
func stringFragments(s string, size int) func() (string, bool) {
	return func() (string, bool) {
		if s == "" {
			return "", false
		}
		n := min(size, len(s))
		for n < len(s) && !utf8.RuneStart(s[n]) {
			n++
		}
		piece := s[:n]
		s = s[n:]
		return piece, true
	}
}
