package metering

import (
	"bytes"
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

// answerKeys are the keys whose string values hold generated text in a
// chat or text completion body.
var answerKeys = [][]byte{[]byte(`"content":"`), []byte(`"reasoning_content":"`), []byte(`"text":"`)}

// partialAnswerTokens estimates the completion tokens of a JSON body that
// was cut midway, from the generated text before the cut: the value of
// each answer key up to its closing quote or the end of the body. An
// escape sequence counts as its characters, which slightly overcounts.
func partialAnswerTokens(body []byte) int64 {
	var t textTenths
	for _, key := range answerKeys {
		rest := body
		for {
			i := bytes.Index(rest, key)
			if i < 0 {
				break
			}
			rest = rest[i+len(key):]
			end := closingQuote(rest)
			t.add(string(rest[:end]))
			rest = rest[end:]
		}
	}
	return t.tokens()
}

// closingQuote returns the index of the first unescaped quote in b, or
// len(b) when the string runs to the end.
func closingQuote(b []byte) int {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return len(b)
}
