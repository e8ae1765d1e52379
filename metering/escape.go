package metering

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonText is a stored body with its JSON backslash escapes decoded, so a
// key spelled as "sk\u002d..." is found like "sk-...". The decoding runs
// over the whole text, not only inside JSON strings, because a body cut
// at the storage cap is no longer valid JSON. Outside strings, valid JSON
// has no backslash, so the result is the same.
type jsonText struct {
	raw     string
	decoded string
	// from[i] is the offset in raw of the escape or byte that produced
	// decoded[i]. from[len(decoded)] is len(raw). It is nil when raw has
	// no backslash, so decoded is raw.
	from []int32
}

// rawStart returns the offset in raw of the escape or byte that produced
// decoded[i].
func (t jsonText) rawStart(i int) int {
	if t.from == nil {
		return i
	}
	return int(t.from[i])
}

// decodeJSONEscapes decodes the escapes of raw. A backslash that starts no
// valid escape, such as one at the cut of a truncated body, is kept as it
// is, and a lone UTF-16 surrogate becomes U+FFFD.
func decodeJSONEscapes(raw string) jsonText {
	if strings.IndexByte(raw, '\\') < 0 {
		return jsonText{raw: raw, decoded: raw}
	}
	var decoded strings.Builder
	decoded.Grow(len(raw))
	from := make([]int32, 0, len(raw)+1)
	emit := func(start int, s string) {
		decoded.WriteString(s)
		for range len(s) {
			from = append(from, int32(start))
		}
	}

	for i := 0; i < len(raw); {
		if raw[i] != '\\' || i+1 >= len(raw) {
			emit(i, raw[i:i+1])
			i++
			continue
		}
		if r, ok := simpleEscapes[raw[i+1]]; ok {
			emit(i, r)
			i += 2
			continue
		}
		r, n := decodeUnicodeEscape(raw[i:])
		if n == 0 {
			emit(i, raw[i:i+1])
			i++
			continue
		}
		emit(i, string(r))
		i += n
	}
	from = append(from, int32(len(raw)))
	return jsonText{raw: raw, decoded: decoded.String(), from: from}
}

// simpleEscapes maps the character after a backslash to what it stands
// for, for every JSON escape except \u.
var simpleEscapes = map[byte]string{
	'"': `"`, '\\': `\`, '/': "/", 'b': "\b", 'f': "\f", 'n': "\n", 'r': "\r", 't': "\t",
}

// decodeUnicodeEscape decodes a \uXXXX escape at the start of s, and a
// following low surrogate escape when the first is a high surrogate. It
// returns the rune and the bytes used, or 0 bytes when s starts with no
// valid \u escape.
func decodeUnicodeEscape(s string) (rune, int) {
	first, ok := hex4(s)
	if !ok {
		return 0, 0
	}
	if !utf16.IsSurrogate(first) {
		return first, 6
	}
	if second, ok := hex4(s[6:]); ok {
		if r := utf16.DecodeRune(first, second); r != utf8.RuneError {
			return r, 12
		}
	}
	return utf8.RuneError, 6
}

// hex4 parses "\uXXXX" at the start of s.
func hex4(s string) (rune, bool) {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return 0, false
	}
	v, err := strconv.ParseUint(s[2:6], 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(v), true
}

// replaceAll replaces every match of re in the decoded text with the
// JSON-escaped result of replacement, splicing it into the raw text over
// the escapes the match came from. It returns t itself when nothing
// matches.
func (t jsonText) replaceAll(re *regexp.Regexp, replacement func(text string, match []int) string) jsonText {
	matches := re.FindAllStringSubmatchIndex(t.decoded, -1)
	if matches == nil {
		return t
	}
	var out strings.Builder
	out.Grow(len(t.raw))
	last := 0
	for _, match := range matches {
		start, end := t.rawStart(match[0]), t.rawEnd(match[1])
		if start < last {
			continue
		}
		out.WriteString(t.raw[last:start])
		appendJSONEscaped(&out, replacement(t.decoded, match))
		last = end
	}
	out.WriteString(t.raw[last:])
	return decodeJSONEscapes(out.String())
}

// rawEnd returns the offset in raw just after the escape or byte that
// produced decoded[end-1].
func (t jsonText) rawEnd(end int) int {
	if t.from == nil || end == 0 {
		return end
	}
	j := end
	for j < len(t.decoded) && t.from[j] == t.from[end-1] {
		j++
	}
	return int(t.from[j])
}

// appendJSONEscaped writes s escaped for the inside of a JSON string.
func appendJSONEscaped(out *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			out.WriteByte('\\')
			out.WriteByte(c)
		case c == '\n':
			out.WriteString(`\n`)
		case c == '\r':
			out.WriteString(`\r`)
		case c == '\t':
			out.WriteString(`\t`)
		case c < 0x20:
			out.WriteString(`\u00`)
			out.WriteByte("0123456789abcdef"[c>>4])
			out.WriteByte("0123456789abcdef"[c&0xf])
		default:
			out.WriteByte(c)
		}
	}
}

// redactBody redacts and masks request_data or response_data, which is
// JSON text, possibly cut at the storage cap. The rules and the masking
// run on the text that the JSON escapes spell, and each replacement goes
// back JSON-escaped. The rest of the body keeps its original escapes, so
// the result stays valid JSON unless a rule itself matches a quote that
// delimits a string.
//
// TODO: escapes are decoded once, so a key escaped twice, as in a tool
// call's arguments (a JSON string that holds JSON), is not found.
func (m *Meter) redactBody(s string) string {
	// Without rules, only a \u escape can spell a key character, and any
	// escape can stand for the whitespace after "bearer".
	noEscapes := !strings.Contains(s, `\`)
	if len(m.redactRules) == 0 && (noEscapes || !strings.Contains(s, `\u`) && !containsFold(s, "bearer")) {
		return MaskSecrets(s)
	}

	t := decodeJSONEscapes(s)
	for _, rule := range m.redactRules {
		t = t.replaceAll(rule.Pattern, func(text string, match []int) string {
			return string(rule.Pattern.ExpandString(nil, rule.Replacement, text, match))
		})
	}
	if strings.Contains(t.decoded, "sk-") {
		t = t.replaceAll(apiKeyPattern, func(text string, match []int) string {
			return maskKey(text[match[0]:match[1]])
		})
	}
	if containsFold(t.decoded, "bearer") {
		t = t.replaceAll(bearerPattern, func(text string, match []int) string {
			return maskBearer(text[match[2]:match[3]], text[match[4]:match[5]])
		})
	}
	return t.raw
}
