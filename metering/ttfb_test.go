package metering

import (
	"net/http"
	"testing"
	"time"
)

// Time to first byte counts from the first byte that carries content.
// DeepSeek sends blank lines or keep-alive comments while a request waits
// in its queue; counting those would report a fast first byte for a call
// that waited minutes.
func TestTTFBSkipsKeepAlives(t *testing.T) {
	cases := []struct {
		name      string
		header    func() http.Header
		keepAlive string
		payload   string
	}{
		{"json after blank lines", jsonHeader, "\n\n\n",
			`{"id":"x","model":"deepseek-chat","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":` + usageJSON(10, 2, 0, 10) + `}`},
		{"stream after keep-alive comments", sseHeader, ": keep-alive\n\n: keep-alive\n\n",
			sseBody(chunk("deepseek-chat", "hi", "stop", usageJSON(10, 2, 0, 10)), "[DONE]")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clock := &manualClock{now: testStart}
			m := NewMeter(testPrices(t), nil, nil, nil, Options{Now: clock.Now})
			stream := c.header().Get("Content-Type") != "application/json"
			call := m.Begin("ttfb", testStart, "/chat/completions", []byte(chatRequest("deepseek-chat", stream)), Attribution{})
			clock.Advance(50 * time.Millisecond)
			call.Response(200, c.header())
			clock.Advance(50 * time.Millisecond)
			call.Write([]byte(c.keepAlive))
			clock.Advance(400 * time.Millisecond)
			call.Write([]byte(c.payload))
			clock.Advance(20 * time.Millisecond)
			rec := call.Finish(End{StatusCode: 200})

			if rec.TTFBMillis != 500 {
				t.Errorf("ttfb_ms %d, want 500 (the first payload byte, not the keep-alive at 100)", rec.TTFBMillis)
			}
			if rec.ProcessingTimeMillis != 520 || !rec.Success {
				t.Errorf("processing %d success %v, want 520 true", rec.ProcessingTimeMillis, rec.Success)
			}
		})
	}
}
