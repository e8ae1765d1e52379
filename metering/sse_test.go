package metering

import (
	"slices"
	"strings"
	"testing"
)

// scanEvents runs an sseScanner over chunks and returns the data of each
// event and the scanner's counters.
func scanEvents(maxLine int, chunks ...[]byte) ([]string, *sseScanner) {
	var events []string
	s := &sseScanner{maxLine: maxLine, onEvent: func(data []byte) { events = append(events, string(data)) }}
	for _, c := range chunks {
		s.write(c)
	}
	s.finish()
	return events, s
}

// TestSSEScannerFraming feeds the line and event shapes that real
// upstreams and relays send. Each must yield exactly the events a browser
// EventSource would, or usage on the final event is lost.
func TestSSEScannerFraming(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"lf", "data: a\n\ndata: b\n\n", []string{"a", "b"}},
		{"crlf", "data: a\r\n\r\ndata: b\r\n\r\n", []string{"a", "b"}},
		{"cr", "data: a\r\rdata: b\r\r", []string{"a", "b"}},
		{"mixed line ends", "data: a\r\n\ndata: b\r\rdata: c\n\r\n", []string{"a", "b", "c"}},
		{"no space after colon", "data:a\n\n", []string{"a"}},
		{"only one space removed", "data:  a\n\n", []string{" a"}},
		{"multi-line data joined", "data: {\"a\":\ndata: 1}\n\n", []string{"{\"a\":\n1}"}},
		{"comment lines anywhere", ": keep-alive\n\ndata: a\n: inside an event\ndata: b\n\n: trailing\n\n", []string{"a\nb"}},
		{"only comments", ": keep-alive\n\n: keep-alive\n\n", nil},
		{"other fields ignored", "event: message\nid: 7\nretry: 100\ndata: a\n\n", []string{"a"}},
		{"field without colon", "data\n\n", []string{""}},
		{"empty data field", "data:\n\n", []string{""}},
		{"done marker", "data: [DONE]\n\n", []string{"[DONE]"}},
		{"blank lines between events", "\n\n\ndata: a\n\n\n\n", []string{"a"}},
		{"last event without blank line", "data: a\n\ndata: b", []string{"a", "b"}},
		{"last event without line end", "data: a\n\ndata: b\n", []string{"a", "b"}},
		{"leading byte order mark", "\xEF\xBB\xBFdata: a\n\n", []string{"a"}},
		{"bom later is kept", "data: a\n\n\xEF\xBB\xBFdata: b\n\n", []string{"a"}},
		{"many events in one write", strings.Repeat("data: x\n\n", 50), slices.Repeat([]string{"x"}, 50)},
		{"empty input", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := scanEvents(maxEventLine, []byte(tt.input))
			if !slices.Equal(got, tt.want) {
				t.Errorf("events = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSSEScannerSplitAnywhere cuts a stream that uses every framing form
// at every byte offset, and also feeds it one byte per write: TCP can
// split an event anywhere, and the events must not change.
func TestSSEScannerSplitAnywhere(t *testing.T) {
	input := ": keep-alive\r\n\r\n" +
		"data: {\"a\":1}\r\n\r\n" +
		"data:{\"b\":2}\r\r" +
		"data: {\"c\":\ndata: 3}\n\n" +
		": ping\n" +
		"data: not json\n\n" +
		"data: [DONE]\n\n"
	want, _ := scanEvents(maxEventLine, []byte(input))
	if len(want) != 5 {
		t.Fatalf("whole input gave %d events %q, want 5", len(want), want)
	}

	for cut := 0; cut <= len(input); cut++ {
		got, _ := scanEvents(maxEventLine, []byte(input[:cut]), []byte(input[cut:]))
		if !slices.Equal(got, want) {
			t.Fatalf("split at %d: events = %q, want %q", cut, got, want)
		}
	}
	for i := 0; i < len(input); i++ {
		for j := i; j <= len(input); j++ {
			got, _ := scanEvents(maxEventLine, []byte(input[:i]), []byte(input[i:j]), []byte(input[j:]))
			if !slices.Equal(got, want) {
				t.Fatalf("split at %d and %d: events = %q, want %q", i, j, got, want)
			}
		}
	}
	got, _ := scanEvents(maxEventLine, splitEvery(input, 1)...)
	if !slices.Equal(got, want) {
		t.Errorf("one byte per write: events = %q, want %q", got, want)
	}
}

// TestSSEScannerLongLines checks the memory bound: a line or an event
// longer than the cap is skipped and counted, whether it arrives in one
// write or in many, and the events around it still come through.
func TestSSEScannerLongLines(t *testing.T) {
	const maxLine = 64
	long := strings.Repeat("x", maxLine+1)
	tests := []struct {
		name          string
		input         string
		want          []string
		skippedLines  int
		skippedEvents int
	}{
		{"line at the cap", "data: " + strings.Repeat("y", maxLine-6) + "\n\n", []string{strings.Repeat("y", maxLine-6)}, 0, 0},
		{"long data line", "data: a\n\ndata: " + long + "\n\ndata: b\n\n", []string{"a", "b"}, 1, 0},
		{"long comment", ": " + long + "\ndata: a\n\n", []string{"a"}, 1, 0},
		{"long unterminated line", "data: a\n\ndata: " + long, []string{"a"}, 1, 0},
		{"event data past the cap", "data: " + strings.Repeat("z", 40) + "\ndata: " + strings.Repeat("z", 40) + "\n\ndata: b\n\n", []string{"b"}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, size := range []int{len(tt.input) + 1, 7, 1} {
				got, s := scanEvents(maxLine, splitEvery(tt.input, size)...)
				if !slices.Equal(got, tt.want) {
					t.Errorf("writes of %d bytes: events = %q, want %q", size, got, tt.want)
				}
				if s.skippedLines != tt.skippedLines {
					t.Errorf("writes of %d bytes: skippedLines = %d, want %d", size, s.skippedLines, tt.skippedLines)
				}
				if s.skippedEvents != tt.skippedEvents {
					t.Errorf("writes of %d bytes: skippedEvents = %d, want %d", size, s.skippedEvents, tt.skippedEvents)
				}
				if cap(s.line) > maxLine {
					t.Errorf("writes of %d bytes: line buffer grew to %d bytes, want at most %d", size, cap(s.line), maxLine)
				}
				if cap(s.data) > maxLine {
					t.Errorf("writes of %d bytes: data buffer grew to %d bytes, want at most %d", size, cap(s.data), maxLine)
				}
			}
		})
	}
}
