package metering

import (
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// FuzzSSE feeds arbitrary bytes to the stream parser, whole and cut at two
// points. Parsing must never panic, the cuts must not change the outcome,
// and the stored message must stay valid UTF-8 within its cap.
func FuzzSSE(f *testing.F) {
	f.Add([]byte(typicalStream(3)), uint16(10), uint16(200))
	f.Add([]byte("data: {\"a\":\r\ndata: 1}\r\r: c\n\ndata: [DONE]\n\n"), uint16(3), uint16(17))
	f.Add([]byte("\xEF\xBB\xBFdata:"+chunk("m", "é", "stop", usageJSON(1, 2, 0, 1))+"\r\n\r\n"), uint16(1), uint16(2))
	f.Add([]byte(sseBody(`{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}`)), uint16(0), uint16(5))

	const maxText = 256
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2 uint16) {
		whole, _ := parseStream(maxText, data)

		i, j := int(cut1), int(cut2)
		if len(data) > 0 {
			i, j = i%(len(data)+1), j%(len(data)+1)
		} else {
			i, j = 0, 0
		}
		if i > j {
			i, j = j, i
		}
		split, _ := parseStream(maxText, data[:i], data[i:j], data[j:])
		if split != whole {
			t.Fatalf("cut at %d and %d changed the outcome:\n got %+v\nwant %+v", i, j, split, whole)
		}
		if !utf8.ValidString(whole.data) || strings.IndexByte(whole.data, 0) >= 0 {
			t.Fatalf("stored message is not valid UTF-8 without NUL: %q", whole.data)
		}
		if len(whole.data) > maxText+len(truncationMarker(1<<40)) {
			t.Fatalf("stored message is %d bytes, over the cap of %d", len(whole.data), maxText)
		}
	})
}

// FuzzUsage feeds arbitrary bytes as a usage object, as a body tail and as
// a whole response. Nothing may panic, counts are never negative and a
// record's text fields stay storable.
func FuzzUsage(f *testing.F) {
	f.Add([]byte(usageJSON(1000, 200, 640, 360)))
	f.Add([]byte(`{"prompt_tokens":10,"prompt_tokens_details":{"cached_tokens":64},"completion_tokens_details":{"reasoning_tokens":-1}}`))
	f.Add([]byte(`"usage":{"prompt_tokens":1e30,"completion_tokens":"12"}}`))
	f.Add([]byte(`x\"usage\":{"usage" : {"prompt_tokens":[]}}`))
	f.Add([]byte(chatCompletion("deepseek-chat", "\u0000\xff", usageJSON(1, 1, 1, 0))))

	m := NewMeter(testPrices(f), nil, nil, nil, Options{MaxStoredBody: 128})
	f.Fuzz(func(t *testing.T, data []byte) {
		if u, ok := parseUsage(gjson.ParseBytes(data)); ok {
			checkUsage(t, u)
		}
		if v, ok := findUsage(data); ok {
			if !v.IsObject() || !gjson.Valid(v.Raw) {
				t.Fatalf("findUsage returned %q, want a valid object", v.Raw)
			}
			u, _ := parseUsage(v)
			checkUsage(t, u)
		}

		call := m.Begin("fuzz", testStart, "/chat/completions", data, Attribution{})
		call.Response(http.StatusOK, jsonHeader())
		call.Write(data)
		rec := call.Finish(End{})
		for name, s := range map[string]string{
			"request_data": rec.RequestData, "response_data": rec.ResponseData, "message": rec.Message,
			"error_message": rec.ErrorMessage, "model": rec.Model, "requested_model": rec.RequestedModel, "user_id": rec.UserID,
		} {
			if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
				t.Fatalf("%s = %q is not valid UTF-8 without NUL", name, s)
			}
		}
		if rec.PromptTokens < 0 || rec.CompletionTokens < 0 || rec.Cost < 0 {
			t.Fatalf("negative tokens or cost: %+v", rec)
		}
		if utf8.RuneCountInString(rec.Message) > maxMessageRunes || utf8.RuneCountInString(rec.ErrorMessage) > maxErrorRunes {
			t.Fatalf("message or error message over its length limit: %q / %q", rec.Message, rec.ErrorMessage)
		}
	})
}

func checkUsage(t *testing.T, u usage) {
	t.Helper()
	if u.prompt < 0 || u.completion < 0 || u.total < 0 || u.hit < 0 || u.miss < 0 || u.reasoning < 0 {
		t.Fatalf("negative count in %+v", u)
	}
	if u.mismatch && !u.hasSplit {
		t.Fatalf("mismatch without a cache split in %+v", u)
	}
}
