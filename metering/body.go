package metering

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/tidwall/gjson"
)

// tailWindow is how many bytes from the end of a JSON body are kept when
// the body is larger than its stored head. The usage object sits near the
// end of a completion, behind the choices, and takes a few hundred bytes.
const tailWindow = 64 << 10

// jsonBody captures a non-stream response body (a completion or an error)
// in bounded memory. It keeps a head of at most maxHead bytes, stored as
// response_data, and a window over the last bytes, which is searched for
// usage when the body does not fit in the head. Whitespace before the
// first value is dropped, because DeepSeek sends blank lines while a
// request waits for capacity.
type jsonBody struct {
	maxHead int
	started bool  // a byte other than whitespace arrived
	size    int64 // bytes after the leading whitespace
	head    []byte

	tail      []byte // last bytes after the head; up to 2*tailWindow before a shift
	afterHead int64  // bytes that did not fit in the head

	// onProgress, when set, runs for every write that carries bytes past
	// the leading whitespace.
	onProgress func()
}

func newJSONBody(maxHead int) *jsonBody {
	return &jsonBody{maxHead: maxHead}
}

func (j *jsonBody) write(p []byte) {
	if !j.started {
		i := 0
		for i < len(p) && isJSONSpace(p[i]) {
			i++
		}
		if i == len(p) {
			return
		}
		j.started = true
		p = p[i:]
	}
	if j.onProgress != nil {
		j.onProgress()
	}
	j.size += int64(len(p))

	if room := j.maxHead - len(j.head); room > 0 {
		n := min(room, len(p))
		j.head = appendCapped(j.head, p[:n], j.maxHead)
		p = p[n:]
	}
	if len(p) > 0 {
		j.appendTail(p)
	}
}

// appendCapped appends p to b, growing b at most to limit bytes of
// capacity, so a head never holds more memory than the cap.
func appendCapped(b, p []byte, limit int) []byte {
	if need := len(b) + len(p); need > cap(b) {
		grown := make([]byte, len(b), min(max(2*cap(b), need, 512), limit))
		copy(grown, b)
		b = grown
	}
	return append(b, p...)
}

// appendTail keeps at least the last tailWindow bytes after the head in
// a buffer of 2*tailWindow, shifting it down when full.
func (j *jsonBody) appendTail(p []byte) {
	j.afterHead += int64(len(p))
	if len(p) >= tailWindow {
		j.tail = append(j.tail[:0], p[len(p)-tailWindow:]...)
		return
	}
	if j.tail == nil {
		j.tail = make([]byte, 0, 2*tailWindow)
	}
	if len(j.tail)+len(p) > cap(j.tail) {
		keep := tailWindow - len(p)
		n := copy(j.tail, j.tail[len(j.tail)-keep:])
		j.tail = j.tail[:n]
	}
	j.tail = append(j.tail, p...)
}

// whole reports whether the entire body is in the head.
func (j *jsonBody) whole() bool {
	return j.afterHead == 0
}

// window returns the last bytes of a body that did not fit in the head.
// When no byte was dropped between head and tail, the end of the head
// comes first, so a usage object across the boundary is still whole.
func (j *jsonBody) window() []byte {
	if j.afterHead > int64(len(j.tail)) {
		return j.tail
	}
	k := min(len(j.head), tailWindow)
	w := make([]byte, 0, k+len(j.tail))
	w = append(w, j.head[len(j.head)-k:]...)
	return append(w, j.tail...)
}

// stored returns the head as response_data and whether it was cut.
func (j *jsonBody) stored() (string, bool) {
	if j.whole() {
		return sanitizeBytes(j.head), false
	}
	return cutStored(j.head, j.size, j.maxHead), true
}

// outcome reads what a record needs from a captured JSON body.
// upstreamStatus selects between a completion and an error body.
func (j *jsonBody) outcome(upstreamStatus int) outcome {
	var out outcome
	out.data, out.truncated = j.stored()
	if !j.started {
		out.empty = true
		return out
	}
	if upstreamStatus >= 400 {
		out.errMsg = j.errorText(upstreamStatus)
		return out
	}

	if j.whole() {
		if !gjson.ValidBytes(j.head) {
			// A body cut midway still shows the text generated so far.
			out.unreadable = true
			out.completionEstimate = partialAnswerTokens(j.head)
			return out
		}
		root := gjson.ParseBytes(j.head)
		out.model = cleanField(root.Get("model").String())
		out.usage, out.hasUsage = parseUsage(root.Get("usage"))
		if e := root.Get("error"); e.Exists() {
			out.errMsg = errorMessage(e)
		}
		out.complete = true
		return out
	}

	// The body is larger than the head: the model is read from the
	// well-formed prefix in the head, the usage from the window at the
	// end. gjson reads a prefix lazily, so a key before the cut is found.
	if m := gjson.GetBytes(j.head, "model"); m.Type == gjson.String {
		out.model = cleanField(m.Str)
	}
	if u, ok := findUsage(j.window()); ok {
		out.usage, out.hasUsage = parseUsage(u)
		out.complete = out.hasUsage
	}
	return out
}

// errorText returns the message of an error response: error.message of a
// JSON envelope, the body itself when it is not JSON (DeepSeek sent 422
// errors as plain text until early 2025), or the status text for an empty
// body.
func (j *jsonBody) errorText(status int) string {
	if j.whole() && gjson.ValidBytes(j.head) {
		if msg := errorMessage(gjson.GetBytes(j.head, "error")); msg != "" {
			return msg
		}
		if msg := gjson.GetBytes(j.head, "message"); msg.Type == gjson.String && msg.Str != "" {
			return msg.Str
		}
	} else if !j.whole() {
		if msg := gjson.GetBytes(j.head, "error.message"); msg.Type == gjson.String && msg.Str != "" {
			return msg.Str
		}
	}
	if !gjson.ValidBytes(j.head) {
		if text := strings.TrimSpace(sanitizeBytes(j.head)); text != "" {
			return text
		}
	}
	return statusText(status)
}

// statusText returns the reason phrase of an HTTP status, or "HTTP n" for
// a status without one.
func statusText(status int) string {
	if text := http.StatusText(status); text != "" {
		return text
	}
	return "HTTP " + strconv.Itoa(status)
}

// outcome is the part of a record that comes from the response body.
type outcome struct {
	usage    usage
	hasUsage bool
	model    string // the served model; "" when the body has none
	// complete reports that the response reached its end: a whole JSON
	// body, or a stream that sent [DONE] or a finish_reason.
	complete   bool
	empty      bool   // nothing but whitespace or comments arrived
	unreadable bool   // the body is not valid JSON or carries no JSON event
	errMsg     string // an error message carried in the body
	data       string // response_data
	truncated  bool   // data was cut at the storage cap
	// completionEstimate is the completion tokens estimated from the
	// text that arrived; only a stream gives one.
	completionEstimate int64
}
