package metering

import (
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// DeepSeek documents about 0.3 tokens per English character and 0.6 per
// Chinese character. Text is counted in tenths of a token: an ASCII byte
// adds asciiTenths and any other character otherTenths, so text in other
// scripts is priced like Chinese, the higher rate.
const (
	asciiTenths = 3
	otherTenths = 6
)

// textTenths counts the tenths of a token that text is estimated at.
type textTenths int64

// add counts s.
func (t *textTenths) add(s string) {
	var n int64
	for _, r := range s {
		if r < utf8.RuneSelf {
			n += asciiTenths
		} else {
			n += otherTenths
		}
	}
	*t += textTenths(n)
}

// tokens rounds the count up to whole tokens.
func (t textTenths) tokens() int64 {
	return (int64(t) + 9) / 10
}

// estimatePromptTokens estimates the prompt tokens of a request body from
// its text: the system prompt, every message's content (strings and text
// parts), a completion prompt and its suffix. It returns 0 when the body
// has no text.
func estimatePromptTokens(root gjson.Result) int64 {
	var t textTenths
	t.add(contentText(root.Get("system")))
	if msgs := root.Get("messages"); msgs.IsArray() {
		msgs.ForEach(func(_, msg gjson.Result) bool {
			t.add(contentText(msg.Get("content")))
			return true
		})
	}
	t.add(contentText(root.Get("prompt")))
	t.add(contentText(root.Get("suffix")))
	return t.tokens()
}
