package metering

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/deepmeter/deepmeter/store"
)

// BenchmarkSSEScan measures framing and parsing per event of a typical
// chat stream; ns/op is per event.
func BenchmarkSSEScan(b *testing.B) {
	body := []byte(typicalStream(200))
	events := 202 // 200 content chunks, the final chunk and [DONE]
	b.SetBytes(int64(len(body)) / int64(events))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += events {
		p := newStreamParser(DefaultMaxStoredBody, maxEventLine)
		for _, c := range splitEvery(string(body), 4096) {
			p.write(c)
		}
		p.finish()
	}
}

// BenchmarkParseUsage measures reading one usage object.
func BenchmarkParseUsage(b *testing.B) {
	v := gjson.Parse(`{"prompt_tokens":10000,"completion_tokens":500,"total_tokens":10500,"prompt_cache_hit_tokens":9000,"prompt_cache_miss_tokens":1000,"completion_tokens_details":{"reasoning_tokens":200}}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseUsage(v); !ok {
			b.Fatal("no usage")
		}
	}
}

// BenchmarkFindUsage measures the search of a 64 KiB tail window.
func BenchmarkFindUsage(b *testing.B) {
	window := make([]byte, 0, tailWindow)
	for len(window) < tailWindow-300 {
		window = append(window, `lorem ipsum \"usage\" dolor `...)
	}
	window = append(window, `"}}],"usage":{"prompt_tokens":11,"completion_tokens":22,"total_tokens":33},"system_fingerprint":"fp"}`...)
	b.SetBytes(int64(len(window)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := findUsage(window); !ok {
			b.Fatal("no usage")
		}
	}
}

// BenchmarkCall measures a whole Call from Begin to Finish, with pricing
// and metrics, for the common response shapes.
func BenchmarkCall(b *testing.B) {
	stream := typicalStream(200)
	cases := []struct {
		name   string
		header http.Header
		body   []byte
	}{
		{"stream 200 chunks", sseHeader(), []byte(stream)},
		{"gzip stream 200 chunks", withEncoding(sseHeader(), "gzip"), gzipBytes(b, stream)},
		{"json", jsonHeader(), []byte(chatCompletion("deepseek-chat", "Hello there, how can I help?", usageJSON(1000, 200, 640, 360)))},
	}
	request := []byte(chatRequest("deepseek-chat", true))
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			m := NewMeter(testPrices(b), nil, nil, nil, Options{})
			chunks := splitEvery(string(tc.body), 512)
			b.SetBytes(int64(len(tc.body)))
			b.ReportAllocs()
			for b.Loop() {
				call := m.Begin("bench", testStart, "/chat/completions", request, Attribution{PageTab: "chat"})
				call.Response(200, tc.header)
				for _, c := range chunks {
					call.Write(c)
				}
				if rec := call.Finish(End{StatusCode: 200}); !rec.Success {
					b.Fatalf("call failed: %s", rec.ErrorMessage)
				}
			}
		})
	}
}

// BenchmarkWriter measures records per second through a Writer into
// SQLite, from Enqueue until Close has written the last batch.
func BenchmarkWriter(b *testing.B) {
	st := openSQLite(b)
	w := NewWriter(st, WriterOptions{QueueSize: 1 << 20}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	records := make([]store.Record, b.N)
	for i := range records {
		records[i] = testRecord(i)
		records[i].ID = fmt.Sprintf("bench-%d", i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range records {
		for !w.Enqueue(records[i]) {
			time.Sleep(time.Millisecond)
		}
	}
	if err := w.Close(context.Background()); err != nil {
		b.Fatalf("Close: %v", err)
	}
}
