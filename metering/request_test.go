package metering

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestParseRequestMessage extracts the text shown in the records list
// from every request shape the metered endpoints accept. The cut must
// count characters, not bytes, or a multi-byte character is split.
func TestParseRequestMessage(t *testing.T) {
	long := strings.Repeat("日本語", 40) // 120 characters, 360 bytes
	tests := []struct {
		name string
		body string
		want string
	}{
		{"string content", `{"messages":[{"role":"system","content":"sys"},{"role":"user","content":"  Hello there  "}]}`, "Hello there"},
		{"parts array", `{"messages":[{"role":"user","content":[{"type":"text","text":"first"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"second"}]}]}`, "first\nsecond"},
		{"last entry wins", `{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]}`, "a"},
		{"null content falls back to prompt", `{"messages":[{"role":"assistant","content":null}],"prompt":"p"}`, "p"},
		{"prompt", `{"model":"deepseek-chat","prompt":"def fib(n):","suffix":"return"}`, "def fib(n):"},
		{"prompt array", `{"prompt":["a","b"]}`, "a\nb"},
		{"content", `{"content":"plain"}`, "plain"},
		{"empty messages", `{"messages":[]}`, "N/A"},
		{"no text at all", `{"model":"deepseek-chat"}`, "N/A"},
		{"not JSON", `model=deepseek-chat`, "N/A"},
		{"truncated JSON", `{"messages":[{"content":"hi"`, "N/A"},
		{"JSON array", `[{"content":"x"}]`, "N/A"},
		{"empty body", ``, "N/A"},
		{"100-character cut", `{"messages":[{"content":"` + long + `"}]}`, string([]rune(long)[:100])},
		{"NUL removed", `{"content":"a\u0000b"}`, "ab"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseRequest([]byte(tt.body), DefaultMaxStoredBody).message
			if got != tt.want {
				t.Errorf("message = %q, want %q", got, tt.want)
			}
			if n := utf8.RuneCountInString(got); n > maxMessageRunes {
				t.Errorf("message has %d characters, want at most %d", n, maxMessageRunes)
			}
		})
	}
}

// TestParseRequestFields reads model, stream and user, which attribute
// and price the call. A user that is not a string would otherwise be
// stored as raw JSON text in user_id.
func TestParseRequestFields(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantModel  string
		wantStream bool
		wantUser   string
	}{
		{"all set", `{"model":"deepseek-chat","stream":true,"user":"u-1"}`, "deepseek-chat", true, "u-1"},
		{"stream false", `{"model":"deepseek-reasoner","stream":false}`, "deepseek-reasoner", false, ""},
		{"stream as string is not a stream", `{"stream":"true"}`, "", false, ""},
		{"leading whitespace", "\n\n  {\"model\":\"m\"}", "m", false, ""},
		{"not JSON", `nope`, "", false, ""},
		{"user object is not an id", `{"model":"m","user":{"id":"u-1"}}`, "m", false, ""},
		{"user number is not an id", `{"model":"m","user":12345}`, "m", false, ""},
		{"user array is not an id", `{"model":"m","user":["u-1"]}`, "m", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseRequest([]byte(tt.body), DefaultMaxStoredBody)
			if got.model != tt.wantModel || got.stream != tt.wantStream || got.user != tt.wantUser {
				t.Errorf("model, stream, user = %q, %v, %q; want %q, %v, %q", got.model, got.stream, got.user, tt.wantModel, tt.wantStream, tt.wantUser)
			}
		})
	}
}

// TestStoredBody keeps request_data storable: valid UTF-8 without NUL
// bytes (Postgres text rejects NUL), and cut at the cap with a marker that
// gives the original size.
func TestStoredBody(t *testing.T) {
	tests := []struct {
		name          string
		body          string
		max           int
		want          string
		wantTruncated bool
	}{
		{"fits", `{"a":1}`, 16, `{"a":1}`, false},
		{"exactly the cap", "abcd", 4, "abcd", false},
		{"cut", "abcdefgh", 4, "abcd…[truncated, original size 8 bytes]", true},
		{"cut before a split character", "ab日本", 4, "ab…[truncated, original size 8 bytes]", true},
		{"invalid UTF-8 replaced", "a\xffb", 16, "a\uFFFDb", false},
		{"NUL removed", "a\x00b", 16, "ab", false},
		{"invalid bytes at the cut", "\xff\xff\xff\xff\xff\xff", 4, "\uFFFD…[truncated, original size 6 bytes]", true},
		{"empty", "", 4, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, truncated := storedBody([]byte(tt.body), tt.max)
			if got != tt.want || truncated != tt.wantTruncated {
				t.Errorf("storedBody = %q, %v; want %q, %v", got, truncated, tt.want, tt.wantTruncated)
			}
			if !utf8.ValidString(got) || strings.IndexByte(got, 0) >= 0 {
				t.Errorf("storedBody = %q is not valid UTF-8 without NUL", got)
			}
		})
	}
}

// TestRuneCut never splits a UTF-8 sequence and never cuts more than a
// split character needs.
func TestRuneCut(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		want  int
	}{
		{"abc", 5, 3},
		{"abc", 2, 2},
		{"a日", 2, 1},
		{"a日", 3, 1},
		{"a日", 4, 4},
		{"😀x", 3, 0},
		{"😀x", 4, 4},
		{"\x80\x80\x80\x80\x80\x80", 5, 5},
	}
	for _, tt := range tests {
		if got := runeCut([]byte(tt.in), tt.limit); got != tt.want {
			t.Errorf("runeCut(%q, %d) = %d, want %d", tt.in, tt.limit, got, tt.want)
		}
	}
}
