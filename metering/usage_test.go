package metering

import (
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestParseUsage reads the usage shapes DeepSeek and relays send. The
// cache split decides the price, so the top-level fields must win over
// the nested cached_tokens, and a split that does not add up is flagged
// rather than smoothed over.
func TestParseUsage(t *testing.T) {
	tests := []struct {
		name   string
		json   string
		want   usage
		wantOK bool
	}{
		{
			name:   "top-level split",
			json:   `{"prompt_tokens":1000,"completion_tokens":200,"total_tokens":1200,"prompt_cache_hit_tokens":640,"prompt_cache_miss_tokens":360}`,
			want:   usage{prompt: 1000, completion: 200, total: 1200, hit: 640, miss: 360, hasSplit: true},
			wantOK: true,
		},
		{
			name:   "top-level wins over cached_tokens",
			json:   `{"prompt_tokens":1000,"completion_tokens":200,"total_tokens":1200,"prompt_cache_hit_tokens":640,"prompt_cache_miss_tokens":360,"prompt_tokens_details":{"cached_tokens":128}}`,
			want:   usage{prompt: 1000, completion: 200, total: 1200, hit: 640, miss: 360, hasSplit: true},
			wantOK: true,
		},
		{
			name:   "cached_tokens fallback",
			json:   `{"prompt_tokens":1000,"completion_tokens":200,"total_tokens":1200,"prompt_tokens_details":{"cached_tokens":768}}`,
			want:   usage{prompt: 1000, completion: 200, total: 1200, hit: 768, miss: 232, hasSplit: true},
			wantOK: true,
		},
		{
			name:   "cached_tokens above prompt",
			json:   `{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":64}}`,
			want:   usage{prompt: 10, completion: 2, total: 12, hit: 64, miss: 0, hasSplit: true},
			wantOK: true,
		},
		{
			name:   "no split",
			json:   `{"prompt_tokens":1500,"completion_tokens":800,"total_tokens":2300}`,
			want:   usage{prompt: 1500, completion: 800, total: 2300},
			wantOK: true,
		},
		{
			name:   "only hit reported",
			json:   `{"prompt_tokens":1000,"completion_tokens":1,"prompt_cache_hit_tokens":640}`,
			want:   usage{prompt: 1000, completion: 1, total: 1001, hit: 640, miss: 360, hasSplit: true},
			wantOK: true,
		},
		{
			name:   "only miss reported",
			json:   `{"prompt_tokens":1000,"completion_tokens":1,"prompt_cache_miss_tokens":360}`,
			want:   usage{prompt: 1000, completion: 1, total: 1001, hit: 640, miss: 360, hasSplit: true},
			wantOK: true,
		},
		{
			name:   "mismatch",
			json:   `{"prompt_tokens":1000,"completion_tokens":200,"total_tokens":1200,"prompt_cache_hit_tokens":640,"prompt_cache_miss_tokens":300}`,
			want:   usage{prompt: 1000, completion: 200, total: 1200, hit: 640, miss: 300, hasSplit: true, mismatch: true},
			wantOK: true,
		},
		{
			name:   "reasoning tokens",
			json:   `{"prompt_tokens":20,"completion_tokens":500,"total_tokens":520,"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":20,"completion_tokens_details":{"reasoning_tokens":420}}`,
			want:   usage{prompt: 20, completion: 500, total: 520, miss: 20, reasoning: 420, hasSplit: true},
			wantOK: true,
		},
		{
			name:   "numeric string accepted",
			json:   `{"prompt_tokens":"5","completion_tokens":7}`,
			want:   usage{prompt: 5, completion: 7, total: 12},
			wantOK: true,
		},
		{
			name:   "negative and non-numeric counts are invalid",
			json:   `{"prompt_tokens":-5,"completion_tokens":"7","total_tokens":true}`,
			want:   usage{completion: 7, invalid: true},
			wantOK: true,
		},
		{
			name:   "fractional count is invalid",
			json:   `{"prompt_tokens":1.5,"completion_tokens":7}`,
			want:   usage{completion: 7, total: 7, invalid: true},
			wantOK: true,
		},
		{
			name:   "counts at the bound are valid",
			json:   `{"prompt_tokens":1099511627776,"completion_tokens":0}`,
			want:   usage{prompt: maxTokenCount, total: maxTokenCount},
			wantOK: true,
		},
		{
			name:   "total above the bound is invalid",
			json:   `{"prompt_tokens":1099511627776,"completion_tokens":1}`,
			want:   usage{prompt: maxTokenCount, completion: 1, total: maxTokenCount + 1, invalid: true},
			wantOK: true,
		},
		{
			name:   "counts above the bound are invalid",
			json:   `{"prompt_tokens":9223372036854775807,"completion_tokens":12,"prompt_cache_hit_tokens":1099511627777,"prompt_cache_miss_tokens":1}`,
			want:   usage{completion: 12, total: 12, miss: 1, hasSplit: true, mismatch: true, invalid: true},
			wantOK: true,
		},
		{
			name:   "missing completion is invalid",
			json:   `{"prompt_tokens":10}`,
			want:   usage{prompt: 10, total: 10, invalid: true},
			wantOK: true,
		},
		{
			name:   "empty object is invalid",
			json:   `{}`,
			want:   usage{invalid: true},
			wantOK: true,
		},
		{name: "null", json: `null`},
		{name: "array", json: `[1,2]`},
		{name: "number", json: `12`},
		{name: "missing", json: ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseUsage(gjson.Parse(tt.json))
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if got != tt.want {
				t.Errorf("usage = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestFindUsage searches the last bytes of a JSON body too large to keep
// whole. A "usage" quoted inside the message content must not be taken
// for the real object, and a window that starts mid-value must still work.
func TestFindUsage(t *testing.T) {
	real := `{"prompt_tokens":11,"completion_tokens":22,"total_tokens":33}`
	tests := []struct {
		name       string
		window     string
		wantPrompt int64
		wantOK     bool
	}{
		{"plain", `"finish_reason":"stop"}],"usage":` + real + `,"system_fingerprint":"fp"}`, 11, true},
		{"window starts mid-string", `ng text"}}],"usage" : ` + real + `}`, 11, true},
		{"quoted usage in content only", `"content":"see \"usage\":{\"prompt_tokens\":99}"}}]}`, 0, false},
		{"quoted usage before real", `"content":"\"usage\":{\"prompt_tokens\":99}"}}],"usage":` + real + `}`, 11, true},
		{"quoted usage after real", `"usage":` + real + `,"x":"\"usage\":{\"prompt_tokens\":99}"}`, 11, true},
		{"object cut at window end", `"usage":{"prompt_tokens":11,"compl`, 0, false},
		{"usage null", `"usage":null}`, 0, false},
		{"no usage", `"choices":[]}`, 0, false},
		{"nested braces in strings", `"usage":{"prompt_tokens":11,"note":"}{"}}`, 11, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, ok := findUsage([]byte(tt.window))
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v (found %s)", ok, tt.wantOK, v.Raw)
			}
			if ok {
				u, _ := parseUsage(v)
				if u.prompt != tt.wantPrompt {
					t.Errorf("prompt_tokens = %d, want %d", u.prompt, tt.wantPrompt)
				}
			}
		})
	}
}

// TestErrorMessage reads the error envelope and its variants.
func TestErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		json string
		want string
	}{
		{"envelope", `{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}`, "Insufficient Balance"},
		{"string", `"bad request"`, "bad request"},
		{"object without message", `{"code":"x"}`, `{"code":"x"}`},
		{"null", `null`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errorMessage(gjson.Parse(tt.json)); got != tt.want {
				t.Errorf("errorMessage(%s) = %q, want %q", tt.json, got, tt.want)
			}
		})
	}
}

// TestObjectLen balances brackets with strings and escapes in the way.
func TestObjectLen(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{`{}`, 2},
		{`{"a":[1,{"b":2}]}tail`, 17},
		{`{"a":"}\"}"}`, 12},
		{`{"a":"\\"}x`, 10},
		{`{"a":1`, -1},
		{strings.Repeat("[", 100) + strings.Repeat("]", 100), 200},
	}
	for _, tt := range tests {
		if got := objectLen([]byte(tt.in)); got != tt.want {
			t.Errorf("objectLen(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
