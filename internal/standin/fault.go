package standin

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FaultHeader is the request header that selects injected faults. Its value
// is a comma-separated list of key=value pairs; the package documentation
// lists the keys.
const FaultHeader = "X-Standin-Fault"

// fault is a parsed FaultHeader value. The zero value of each field means the
// fault is off, except where the field's comment gives another meaning.
type fault struct {
	keys []string // the keys given, in header order, without booleans set to 0

	reset  bool
	status int // 0 when unset
	plain  bool
	empty  bool

	delay          time.Duration
	keepaliveDelay time.Duration
	chunkDelay     time.Duration
	hang           time.Duration // 0 holds until the client leaves

	keepalive         int
	dataKeepalive     int
	trailingKeepalive int

	cutAfter int64 // negative when unset
	words    int   // negative when unset
	size     int64

	gzip, deflate bool
	badEncoding   bool
	usageMismatch bool
	multiline     bool
	crlf, cr      bool
	nospace       bool
	split         bool
}

// responseMode is the kind of response a request gets, which decides the
// fault keys that apply.
type responseMode int

const (
	modeReset responseMode = iota
	modeError
	modeEmpty
	modeJSON
	modeStream
)

func (m responseMode) String() string {
	switch m {
	case modeReset:
		return "reset=1"
	case modeError:
		return "status"
	case modeEmpty:
		return "empty=1"
	case modeJSON:
		return "a JSON response"
	default:
		return "a streamed response"
	}
}

// valueKind is the type of a fault value, which sets how it is parsed and
// bounded.
type valueKind int

const (
	kindBool valueKind = iota
	kindMillis
	kindCount
	kindBytes
	kindStatus
)

// faultKey describes one key of the fault header.
type faultKey struct {
	kind           valueKind
	modes          []responseMode // responses the key applies to
	completionOnly bool           // applies to completion endpoints only
	set            func(f *fault, v int64)
}

var (
	allModes        = []responseMode{modeReset, modeError, modeEmpty, modeJSON, modeStream}
	bodyModes       = []responseMode{modeError, modeJSON, modeStream}
	completionModes = []responseMode{modeJSON, modeStream}
	streamModes     = []responseMode{modeStream}
)

var faultKeys = map[string]faultKey{
	"delay":              {kind: kindMillis, modes: allModes, set: func(f *fault, v int64) { f.delay = millis(v) }},
	"reset":              {kind: kindBool, modes: []responseMode{modeReset}, set: func(f *fault, v int64) { f.reset = v == 1 }},
	"status":             {kind: kindStatus, modes: []responseMode{modeError}, set: func(f *fault, v int64) { f.status = int(v) }},
	"plain":              {kind: kindBool, modes: []responseMode{modeError}, set: func(f *fault, v int64) { f.plain = v == 1 }},
	"empty":              {kind: kindBool, modes: []responseMode{modeEmpty}, set: func(f *fault, v int64) { f.empty = v == 1 }},
	"keepalive":          {kind: kindCount, modes: []responseMode{modeEmpty, modeJSON, modeStream}, set: func(f *fault, v int64) { f.keepalive = int(v) }},
	"keepalive_delay":    {kind: kindMillis, modes: []responseMode{modeEmpty, modeJSON, modeStream}, set: func(f *fault, v int64) { f.keepaliveDelay = millis(v) }},
	"data_keepalive":     {kind: kindCount, modes: streamModes, set: func(f *fault, v int64) { f.dataKeepalive = int(v) }},
	"trailing_keepalive": {kind: kindCount, modes: streamModes, set: func(f *fault, v int64) { f.trailingKeepalive = int(v) }},
	"hang":               {kind: kindMillis, modes: streamModes, set: func(f *fault, v int64) { f.hang = millis(v) }},
	"chunk_delay":        {kind: kindMillis, modes: streamModes, set: func(f *fault, v int64) { f.chunkDelay = millis(v) }},
	"cut_after":          {kind: kindBytes, modes: bodyModes, set: func(f *fault, v int64) { f.cutAfter = v }},
	"words":              {kind: kindCount, modes: completionModes, completionOnly: true, set: func(f *fault, v int64) { f.words = int(v) }},
	"size":               {kind: kindBytes, modes: completionModes, completionOnly: true, set: func(f *fault, v int64) { f.size = v }},
	"gzip":               {kind: kindBool, modes: bodyModes, set: func(f *fault, v int64) { f.gzip = v == 1 }},
	"deflate":            {kind: kindBool, modes: bodyModes, set: func(f *fault, v int64) { f.deflate = v == 1 }},
	"bad_encoding":       {kind: kindBool, modes: completionModes, set: func(f *fault, v int64) { f.badEncoding = v == 1 }},
	"usage_mismatch":     {kind: kindBool, modes: completionModes, completionOnly: true, set: func(f *fault, v int64) { f.usageMismatch = v == 1 }},
	"multiline":          {kind: kindBool, modes: streamModes, set: func(f *fault, v int64) { f.multiline = v == 1 }},
	"crlf":               {kind: kindBool, modes: streamModes, set: func(f *fault, v int64) { f.crlf = v == 1 }},
	"cr":                 {kind: kindBool, modes: streamModes, set: func(f *fault, v int64) { f.cr = v == 1 }},
	"nospace":            {kind: kindBool, modes: streamModes, set: func(f *fault, v int64) { f.nospace = v == 1 }},
	"split":              {kind: kindBool, modes: bodyModes, set: func(f *fault, v int64) { f.split = v == 1 }},
}

var faultStatuses = []int64{400, 401, 402, 422, 429, 500, 503}

// Value bounds. maxMillis is an hour, longer than any test should wait;
// maxBytes is 16 GiB.
const (
	maxMillis = 3_600_000
	maxCount  = 1_000_000
	maxBytes  = 1 << 34
)

func millis(v int64) time.Duration {
	return time.Duration(v) * time.Millisecond
}

// parseFault parses the values of all FaultHeader lines, joined as one list.
// Empty items are skipped. It checks syntax, value ranges and keys that
// exclude each other; checkMode later checks that the keys fit the response.
func parseFault(values []string) (*fault, error) {
	f := &fault{cutAfter: -1, words: -1}
	var seen []string
	for item := range strings.SplitSeq(strings.Join(values, ","), ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, raw, ok := strings.Cut(item, "=")
		name, raw = strings.TrimSpace(name), strings.TrimSpace(raw)
		if !ok {
			return nil, fmt.Errorf("item %q has no value; write key=value", item)
		}
		key, known := faultKeys[name]
		if !known {
			return nil, fmt.Errorf("unknown key %q; known keys are %s", name, knownFaultKeys())
		}
		if slices.Contains(seen, name) {
			return nil, fmt.Errorf("key %q is given twice", name)
		}
		seen = append(seen, name)
		v, err := parseFaultValue(key.kind, raw)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", name, err)
		}

		// A boolean key set to 0 is the same as a key not given.
		if key.kind == kindBool && v == 0 {
			continue
		}
		key.set(f, v)
		f.keys = append(f.keys, name)
	}
	if err := f.checkCombinations(); err != nil {
		return nil, err
	}
	return f, nil
}

func knownFaultKeys() string {
	names := make([]string, 0, len(faultKeys))
	for name := range faultKeys {
		names = append(names, name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func parseFaultValue(kind valueKind, raw string) (int64, error) {
	if kind == kindBool {
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return 0, fmt.Errorf("invalid boolean %q; use 1 or 0", raw)
		}
		if b {
			return 1, nil
		}
		return 0, nil
	}

	v, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid integer %q", raw)
	}
	switch kind {
	case kindStatus:
		if !slices.Contains(faultStatuses, v) {
			return 0, fmt.Errorf("status %d is not one of 400, 401, 402, 422, 429, 500, 503", v)
		}
	case kindMillis:
		if v < 0 || v > maxMillis {
			return 0, fmt.Errorf("%d ms is out of range 0 to %d", v, maxMillis)
		}
	case kindCount:
		if v < 0 || v > maxCount {
			return 0, fmt.Errorf("%d is out of range 0 to %d", v, maxCount)
		}
	case kindBytes:
		if v < 0 || v > maxBytes {
			return 0, fmt.Errorf("%d bytes is out of range 0 to %d", v, int64(maxBytes))
		}
	}
	return v, nil
}

// checkCombinations rejects keys that exclude or need each other.
func (f *fault) checkCombinations() error {
	ending := 0
	for _, on := range []bool{f.reset, f.status != 0, f.empty} {
		if on {
			ending++
		}
	}
	switch {
	case ending > 1:
		return fmt.Errorf("reset, status and empty exclude each other")
	case f.gzip && f.deflate:
		return fmt.Errorf("gzip and deflate exclude each other")
	case f.badEncoding && (f.gzip || f.deflate):
		return fmt.Errorf("bad_encoding excludes gzip and deflate")
	case f.crlf && f.cr:
		return fmt.Errorf("crlf and cr exclude each other")
	case f.has("words") && f.has("size"):
		return fmt.Errorf("words and size exclude each other")
	case f.has("size") && f.size == 0:
		return fmt.Errorf("size must be at least 1")
	case f.plain && f.status != 422:
		return fmt.Errorf("plain=1 needs status=422")
	case f.has("hang") && f.trailingKeepalive == 0:
		return fmt.Errorf("hang needs trailing_keepalive")
	case f.has("keepalive_delay") && f.keepalive+f.dataKeepalive+f.trailingKeepalive == 0:
		return fmt.Errorf("keepalive_delay needs keepalive, data_keepalive or trailing_keepalive")
	}
	return nil
}

func (f *fault) has(name string) bool {
	return slices.Contains(f.keys, name)
}

// checkMode rejects keys that do not apply to a response of mode m.
// completion reports whether the endpoint generates a completion.
func (f *fault) checkMode(m responseMode, completion bool) error {
	for _, name := range f.keys {
		key := faultKeys[name]
		if !slices.Contains(key.modes, m) {
			return fmt.Errorf("key %q does not apply to %s", name, m)
		}
		if key.completionOnly && !completion {
			return fmt.Errorf("key %q applies only to /chat/completions, /beta/completions and /anthropic/v1/messages", name)
		}
	}
	return nil
}
