package pricing

import (
	"testing"
	"time"
)

// BenchmarkLookup measures a lookup in the built-in table, which runs once
// per metered call.
func BenchmarkLookup(b *testing.B) {
	tab := Builtin()
	cases := []struct {
		name  string
		model string
		at    string
	}{
		{name: "no windows", model: "deepseek-chat", at: "2025-10-01T12:00:00Z"},
		{name: "in a window", model: "deepseek-v4-pro", at: "2026-09-11T07:00:00Z"},
		{name: "mixed case alias", model: "DeepSeek-Chat", at: "2026-09-20T02:00:00Z"},
		{name: "unknown model", model: "gpt-4o", at: "2026-09-20T02:00:00Z"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			at, err := time.Parse(time.RFC3339, c.at)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				tab.Lookup(c.model, at)
			}
		})
	}
}

// BenchmarkCost measures the cost of one call, which runs once per priced
// record.
func BenchmarkCost(b *testing.B) {
	p := v32Price(b)
	u := Usage{PromptTokens: 10000, CacheHitTokens: 9000, CacheMissTokens: 1000, CompletionTokens: 500, HasCacheSplit: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Cost(u); err != nil {
			b.Fatal(err)
		}
	}
}
