package metering

import (
	"bytes"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Limits on the text fields of a record, in characters.
const (
	maxMessageRunes = 100 // Record.Message
	maxErrorRunes   = 500 // Record.ErrorMessage
	maxFieldRunes   = 256 // model names, user ids, ids and other short fields
)

// requestInfo is the part of a record that comes from the request body.
type requestInfo struct {
	model     string
	stream    bool
	user      string
	message   string // "N/A" when the request has none
	data      string // the stored request body
	truncated bool   // data was cut at the storage cap
	// promptTokens is the estimate of the prompt from the request's
	// text, used when no usage arrives.
	promptTokens int64
}

// parseRequest reads the request fields a record needs from body and
// keeps a stored copy of at most maxStored bytes.
func parseRequest(body []byte, maxStored int) requestInfo {
	info := requestInfo{message: "N/A"}
	info.data, info.truncated = storedBody(body, maxStored)

	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' || !gjson.ValidBytes(trimmed) {
		return info
	}
	root := gjson.ParseBytes(trimmed)
	info.model = cleanField(root.Get("model").String())
	info.stream = root.Get("stream").Type == gjson.True
	// Only a string user is an id. gjson's String would return the raw
	// JSON text of an object or a number.
	if user := root.Get("user"); user.Type == gjson.String {
		info.user = cleanField(user.Str)
	}
	if msg := messageText(root); msg != "" {
		info.message = msg
	}
	info.promptTokens = estimatePromptTokens(root)
	return info
}

// messageText returns the text a records list shows for a request: the
// content of the last entry of messages, else prompt, else content, cut to
// maxMessageRunes characters. It returns "" when there is none.
func messageText(root gjson.Result) string {
	var text string
	if msgs := root.Get("messages"); msgs.IsArray() {
		var last gjson.Result
		msgs.ForEach(func(_, v gjson.Result) bool {
			last = v
			return true
		})
		text = contentText(last.Get("content"))
	}
	if strings.TrimSpace(text) == "" {
		text = contentText(root.Get("prompt"))
	}
	if strings.TrimSpace(text) == "" {
		text = contentText(root.Get("content"))
	}
	return cutRunesMasked(strings.TrimSpace(sanitize(text)), maxMessageRunes)
}

// contentText returns the text of a message content: a string as it is,
// or the text parts of an array joined by newlines. Parts are either
// {"type":"text","text":...} objects or plain strings, as a completion
// prompt array has.
func contentText(v gjson.Result) string {
	switch {
	case v.Type == gjson.String:
		return v.Str
	case v.IsArray():
		var parts []string
		v.ForEach(func(_, part gjson.Result) bool {
			switch {
			case part.Type == gjson.String:
				parts = append(parts, part.Str)
			case part.IsObject():
				kind := part.Get("type")
				text := part.Get("text")
				if (!kind.Exists() || kind.Str == "text") && text.Type == gjson.String {
					parts = append(parts, text.Str)
				}
			}
			return true
		})
		return strings.Join(parts, "\n")
	}
	return ""
}

// truncationMarker ends a stored body that was cut at the storage cap.
func truncationMarker(size int64) string {
	return "…[truncated, original size " + strconv.FormatInt(size, 10) + " bytes]"
}

// storedBody returns body as stored text: valid UTF-8 without NUL bytes and
// at most maxStored bytes before the truncation marker. The bool reports
// whether the body was cut.
func storedBody(body []byte, maxStored int) (string, bool) {
	if len(body) <= maxStored {
		return sanitizeBytes(body), false
	}
	return cutStored(body, int64(len(body)), maxStored), true
}

// overLimitMarker ends a stored request body that the proxy stopped
// reading at its limit, so only a lower bound of its size is known.
func overLimitMarker(limit int64) string {
	return "…[truncated, original size more than " + strconv.FormatInt(limit, 10) + " bytes]"
}

// cutStored keeps the first maxStored bytes of head and adds the marker
// with the original size.
func cutStored(head []byte, size int64, maxStored int) string {
	return storedHead(head, maxStored) + truncationMarker(size)
}

// storedHead returns the first maxStored bytes of head as stored text,
// cut between UTF-8 sequences, with a key fragment at the cut masked.
func storedHead(head []byte, maxStored int) string {
	if len(head) > maxStored {
		head = head[:runeCut(head, maxStored)]
	}
	s := sanitizeBytes(head)
	if len(s) > maxStored {
		// Replacement characters for invalid bytes take three bytes each.
		s = s[:runeCut([]byte(s), maxStored)]
	}
	return maskCutKey(s)
}

// runeCut returns the largest n <= limit at which b can be cut without
// splitting a UTF-8 sequence. Invalid bytes count as whole characters.
func runeCut(b []byte, limit int) int {
	if limit >= len(b) {
		return len(b)
	}
	n := limit
	for n > 0 && n > limit-utf8.UTFMax && !utf8.RuneStart(b[n]) {
		n--
	}
	if n <= limit-utf8.UTFMax {
		// Not a sequence that was split, just invalid bytes.
		return limit
	}
	return n
}

// sanitizeBytes returns b as valid UTF-8 without NUL bytes, which text
// columns reject. Invalid sequences become U+FFFD.
func sanitizeBytes(b []byte) string {
	if utf8.Valid(b) && bytes.IndexByte(b, 0) < 0 {
		return string(b)
	}
	return sanitize(string(b))
}

// sanitize is sanitizeBytes for a string.
func sanitize(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}

// cutRunes returns s cut to at most n characters.
func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	count := 0
	for i := range s {
		if count == n {
			return s[:i]
		}
		count++
	}
	return s
}

// cutRunesMasked is cutRunes for a stored column: a key or bearer token
// that the cut splits is masked, and the result is still at most n
// characters.
func cutRunesMasked(s string, n int) string {
	cut := cutRunes(s, n)
	if len(cut) == len(s) {
		return s
	}
	return cutRunes(maskCutKey(cut), n)
}

// cleanField makes an upstream or client string safe to store in a short
// column.
func cleanField(s string) string {
	return cutRunesMasked(sanitize(s), maxFieldRunes)
}

// isEventStream reports whether a response body is a stream of
// server-sent events. An error status always has a plain body. A response
// without a Content-Type is taken as a stream when the request asked for
// one.
func isEventStream(header http.Header, status int, requestedStream bool) bool {
	if status >= 400 {
		return false
	}
	ct := header.Get("Content-Type")
	if ct == "" {
		return requestedStream
	}
	mediaType, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mediaType, _, _ = strings.Cut(ct, ";")
		mediaType = strings.ToLower(strings.TrimSpace(mediaType))
	}
	return mediaType == "text/event-stream"
}

// contentEncoding returns the response's Content-Encoding in lower case,
// with several values joined by ", ".
func contentEncoding(header http.Header) string {
	values := header.Values("Content-Encoding")
	return strings.ToLower(strings.TrimSpace(strings.Join(values, ", ")))
}
