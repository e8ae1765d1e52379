package pricing

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// v32Price is DeepSeek V3.2's price: 0.028 / 0.28 / 0.42 USD per 1M tokens.
func v32Price(t testing.TB) Price {
	t.Helper()
	return Price{Model: "deepseek-chat", Currency: "USD", Rates: ratesOf(t, "0.028", "0.28", "0.42")}
}

// ratesOf parses prices per 1M tokens into Rates.
func ratesOf(t testing.TB, hit, miss, output string) Rates {
	t.Helper()
	var r Rates
	for _, f := range []struct {
		dst *Money
		s   string
	}{{&r.Hit, hit}, {&r.Miss, miss}, {&r.Output, output}} {
		v, err := ParseRate(f.s)
		if err != nil {
			t.Fatalf("ParseRate(%q): %v", f.s, err)
		}
		*f.dst = v
	}
	return r
}

// TestCostExact checks costs to the last unit against DeepSeek's own worked
// examples, because stored costs are summed and compared with invoices.
func TestCostExact(t *testing.T) {
	tests := []struct {
		name  string
		usage Usage
		want  string
	}{
		{
			name:  "misses and output",
			usage: Usage{PromptTokens: 1500, CacheMissTokens: 1500, CompletionTokens: 800, HasCacheSplit: true},
			want:  "0.000756",
		},
		{
			name:  "hits misses and output",
			usage: Usage{PromptTokens: 1500, CacheHitTokens: 1200, CacheMissTokens: 300, CompletionTokens: 500, HasCacheSplit: true},
			want:  "0.0003276",
		},
		{
			name:  "mostly hits",
			usage: Usage{PromptTokens: 10000, CacheHitTokens: 9000, CacheMissTokens: 1000, CompletionTokens: 500, HasCacheSplit: true},
			want:  "0.000742",
		},
		{
			// Without a hit/miss split every prompt token is a miss.
			name:  "no cache split",
			usage: Usage{PromptTokens: 1500, CompletionTokens: 800},
			want:  "0.000756",
		},
		{
			// Hit and miss counts without the split flag are ignored.
			name:  "split counts without flag",
			usage: Usage{PromptTokens: 1500, CacheHitTokens: 1500, CompletionTokens: 800},
			want:  "0.000756",
		},
		{
			// With the split, the hit and miss counts are priced even when
			// they do not add up to prompt_tokens.
			name:  "split not matching prompt tokens",
			usage: Usage{PromptTokens: 5, CacheHitTokens: 1200, CacheMissTokens: 300, CompletionTokens: 500, HasCacheSplit: true},
			want:  "0.0003276",
		},
		{name: "nothing", usage: Usage{HasCacheSplit: true}, want: "0"},
		{name: "one output token", usage: Usage{CompletionTokens: 1}, want: "0.00000042"},
	}
	p := v32Price(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Cost(tt.usage)
			if err != nil {
				t.Fatalf("Cost(%+v): %v", tt.usage, err)
			}
			if got.String() != tt.want {
				t.Errorf("Cost(%+v) = %s, want %s", tt.usage, got, tt.want)
			}
		})
	}
}

// TestCostErrors checks that bad counts and overflow fail loudly, because a
// wrapped or negative cost would corrupt totals without notice.
func TestCostErrors(t *testing.T) {
	maxRate := Price{Rates: Rates{Hit: math.MaxInt64, Miss: math.MaxInt64, Output: math.MaxInt64}}
	tests := []struct {
		name    string
		price   Price
		usage   Usage
		wantIs  error
		wantMsg string
	}{
		{name: "negative prompt", price: v32Price(t), usage: Usage{PromptTokens: -1}, wantIs: ErrInvalidUsage, wantMsg: "prompt_tokens"},
		{name: "negative hit", price: v32Price(t), usage: Usage{CacheHitTokens: -5, HasCacheSplit: true}, wantIs: ErrInvalidUsage, wantMsg: "cache_hit_tokens"},
		{name: "negative miss", price: v32Price(t), usage: Usage{CacheMissTokens: -5, HasCacheSplit: true}, wantIs: ErrInvalidUsage, wantMsg: "cache_miss_tokens"},
		{name: "negative completion", price: v32Price(t), usage: Usage{CompletionTokens: math.MinInt64}, wantIs: ErrInvalidUsage, wantMsg: "completion_tokens"},
		{name: "product overflow", price: v32Price(t), usage: Usage{CompletionTokens: math.MaxInt64}, wantIs: ErrCostOverflow, wantMsg: "output"},
		{name: "product just over", price: maxRate, usage: Usage{PromptTokens: 2}, wantIs: ErrCostOverflow, wantMsg: "miss"},
		{
			// Each product fits but their sum does not.
			name:  "sum overflow",
			price: Price{Rates: Rates{Miss: math.MaxInt64, Output: 1}},
			usage: Usage{PromptTokens: 1, CompletionTokens: 1}, wantIs: ErrCostOverflow, wantMsg: "sum",
		},
		{name: "negative rate", price: Price{Model: "m", Rates: Rates{Output: -1}}, usage: Usage{CompletionTokens: 1}, wantMsg: "output rate is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.price.Cost(tt.usage)
			if err == nil {
				t.Fatalf("Cost(%+v) = %s, want an error", tt.usage, got)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Cost error = %v, want errors.Is %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Cost error = %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

// TestCostLargestExact checks that a cost of exactly MaxInt64 units is
// returned, not reported as overflow.
func TestCostLargestExact(t *testing.T) {
	p := Price{Rates: Rates{Hit: 1, Miss: 1, Output: 1}}
	u := Usage{CacheHitTokens: math.MaxInt64 - 2, CacheMissTokens: 1, CompletionTokens: 1, HasCacheSplit: true}
	got, err := p.Cost(u)
	if err != nil {
		t.Fatalf("Cost(%+v): %v", u, err)
	}
	if got != math.MaxInt64 {
		t.Errorf("Cost(%+v) = %d, want %d", u, int64(got), int64(math.MaxInt64))
	}
}

// TestParseRate checks the per-1M-token price form used in price files,
// because a price with more precision than a rate unit cannot be stored.
func TestParseRate(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Money
		wantErr string
	}{
		{name: "miss price", in: "0.28", want: 280_000},
		{name: "exact discount", in: "0.5475", want: 547_500},
		{name: "six decimals", in: "0.003625", want: 3_625},
		{name: "smallest", in: "0.000001", want: 1},
		{name: "whole", in: "2", want: 2_000_000},
		{name: "seven decimals", in: "0.0000001", wantErr: "at most 6 digits"},
		{name: "letters", in: "cheap", wantErr: "expected a decimal number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRate(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseRate(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRate(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseRate(%q) = %d, want %d", tt.in, got, tt.want)
			}
			if back := FormatRate(got); back != tt.in {
				t.Errorf("FormatRate(%d) = %q, want %q", got, back, tt.in)
			}
		})
	}
}
