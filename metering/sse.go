package metering

import "bytes"

// maxEventLine is the maximum length of an event stream line, and of one
// event's data, that the parser reads. A DeepSeek chunk takes well under
// a kilobyte. A longer line is skipped and counted, so a broken upstream
// cannot make the parser buffer without limit.
const maxEventLine = 1 << 20

var (
	utf8BOM = []byte{0xEF, 0xBB, 0xBF}
	newline = []byte{'\n'}
)

// sseScanner splits a byte stream into server-sent events and passes the
// data of each one to onEvent. It accepts LF, CRLF and CR line ends, and
// lines or events split across writes at any byte. A "data:" field may
// have a space after the colon or not, and data spread over several lines
// is joined by "\n". Comment lines, which start with ':', and fields other
// than data, such as event and id, are ignored.
//
// Memory stays bounded: a line longer than maxLine is dropped as it
// arrives and counted in skippedLines, and an event whose data would pass
// maxLine is dropped and counted in skippedEvents.
type sseScanner struct {
	maxLine int
	onEvent func(data []byte) // data is valid only during the call

	line     []byte // the start of a line whose end has not arrived yet
	skipping bool   // the current line passed maxLine; drop it up to its end
	afterCR  bool   // the last byte was a CR, so an LF right after it ends nothing
	sawLine  bool   // a first line was read; only it may start with a BOM

	data     []byte // data of the event being read
	hasData  bool
	dataLong bool // the event's data passed maxLine

	skippedLines  int
	skippedEvents int
}

func (s *sseScanner) write(p []byte) {
	for len(p) > 0 {
		if s.afterCR {
			s.afterCR = false
			if p[0] == '\n' {
				p = p[1:]
				continue
			}
		}

		end := lineEnd(p)
		if end < 0 {
			s.appendPartial(p)
			return
		}
		s.afterCR = p[end] == '\r'
		if len(s.line) == 0 && !s.skipping {
			s.endLine(p[:end])
		} else {
			s.appendPartial(p[:end])
			s.endLine(s.line)
		}
		p = p[end+1:]
	}
}

// finish reads what is left when the body ends. An event is dispatched
// even without its closing blank line, because a stream cut after the
// final chunk still carries usage that was billed.
func (s *sseScanner) finish() {
	if len(s.line) > 0 || s.skipping {
		s.endLine(s.line)
	}
	s.dispatch()
}

// lineEnd returns the index of the first CR or LF in p, or -1.
func lineEnd(p []byte) int {
	lf := bytes.IndexByte(p, '\n')
	limit := lf
	if lf < 0 {
		limit = len(p)
	}
	if cr := bytes.IndexByte(p[:limit], '\r'); cr >= 0 {
		return cr
	}
	return lf
}

// appendPartial adds the start of a line to the line buffer, or starts
// skipping the line once it passes maxLine.
func (s *sseScanner) appendPartial(p []byte) {
	if s.skipping {
		return
	}
	if len(s.line)+len(p) > s.maxLine {
		s.skipping = true
		s.line = s.line[:0]
		return
	}
	s.line = appendCapped(s.line, p, s.maxLine)
}

// endLine handles a complete line and clears the line buffer.
func (s *sseScanner) endLine(line []byte) {
	switch {
	case s.skipping || len(line) > s.maxLine:
		s.skippedLines++
	default:
		s.processLine(line)
	}
	s.skipping = false
	s.line = s.line[:0]
}

func (s *sseScanner) processLine(line []byte) {
	if !s.sawLine {
		s.sawLine = true
		line = bytes.TrimPrefix(line, utf8BOM)
	}
	if len(line) == 0 {
		s.dispatch()
		return
	}
	if line[0] == ':' {
		return
	}

	field, value, found := bytes.Cut(line, []byte{':'})
	if string(field) != "data" {
		return
	}
	if found && len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch {
	case s.dataLong:
	case len(s.data)+1+len(value) > s.maxLine:
		s.dataLong = true
		s.data = s.data[:0]
	default:
		if s.hasData {
			s.data = appendCapped(s.data, newline, s.maxLine)
		}
		s.data = appendCapped(s.data, value, s.maxLine)
	}
	s.hasData = true
}

// dispatch ends the event being read, as a blank line does.
func (s *sseScanner) dispatch() {
	if !s.hasData {
		return
	}
	if s.dataLong {
		s.skippedEvents++
	} else {
		s.onEvent(s.data)
	}
	s.data = s.data[:0]
	s.hasData = false
	s.dataLong = false
}
