package standin_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/deepmeter/deepmeter/internal/standin"
)

// TestWireFaults checks the faults that shape a body for the proxy's wire
// tests: a body labelled gzip but sent plain, a usage whose cache split
// does not add up, and events split over data lines with a comment
// between them. Keys that do not fit the response are rejected, so a test
// never runs another case by mistake.
func TestWireFaults(t *testing.T) {
	base := startStandin(t, standin.Options{})
	plain := chatBody("deepseek-chat", "Say hello", "")
	stream := chatBody("deepseek-chat", "Say hello", `"stream":true`)
	fault := func(v string) map[string]string { return map[string]string{standin.FaultHeader: v} }

	t.Run("bad_encoding", func(t *testing.T) {
		resp, body := mustSend(t, base, request{path: "/chat/completions", body: plain, header: fault("bad_encoding=1")})
		if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
			t.Errorf("Content-Encoding %q, want gzip", got)
		}
		if !gjson.ValidBytes(body) {
			t.Errorf("body %q, want the plain JSON", body)
		}
	})

	t.Run("usage_mismatch", func(t *testing.T) {
		_, body := mustSend(t, base, request{path: "/chat/completions", body: plain, header: fault("usage_mismatch=1")})
		u := gjson.GetBytes(body, "usage")
		prompt, hit, miss := u.Get("prompt_tokens").Int(), u.Get("prompt_cache_hit_tokens").Int(), u.Get("prompt_cache_miss_tokens").Int()
		if hit+miss != prompt+1 {
			t.Errorf("hit %d + miss %d = %d, want prompt %d + 1", hit, miss, hit+miss, prompt)
		}
	})

	t.Run("multiline", func(t *testing.T) {
		_, body := mustSend(t, base, request{path: "/chat/completions", body: stream, header: fault("multiline=1")})
		if !bytes.Contains(body, []byte(",\n: multiline\ndata: ")) {
			t.Errorf("stream %.300q, want events split over two data lines around a comment", body)
		}
		if !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
			t.Errorf("stream ends %q, want [DONE]", body[max(0, len(body)-40):])
		}
	})

	for _, tt := range []struct{ name, body, fault string }{
		{"bad_encoding with gzip", plain, "bad_encoding=1,gzip=1"},
		{"multiline on JSON", plain, "multiline=1"},
		{"usage_mismatch on an error", plain, "usage_mismatch=1,status=500"},
	} {
		t.Run("rejects "+tt.name, func(t *testing.T) {
			resp, body := mustSend(t, base, request{path: "/chat/completions", body: tt.body, header: fault(tt.fault)})
			key, _, _ := strings.Cut(tt.fault, "=")
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
			if !strings.Contains(string(body), key) {
				t.Errorf("body %s, want a message naming %s", body, key)
			}
		})
	}
}
