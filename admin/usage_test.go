package admin

import (
	"fmt"
	"math"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/store"
)

// TestStatsExact checks every stats field against hand-computed values
// over a mix of USD, CNY, unpriced, estimated and failed calls, including
// a call exactly at the window start and one just before it. Per day and
// per model, CNY costs and unpriced calls must show, or such a day or
// model reads as free.
func TestStatsExact(t *testing.T) {
	env := newTestEnv(t, nil)

	a := baseRecord("a", time.Date(2026, 5, 15, 10, 0, 0, 0, time.UTC), mustMoney(t, "0.000756"))
	a.PromptTokens, a.PromptCacheMissTokens, a.CompletionTokens, a.TotalTokens = 1500, 1500, 800, 2300
	a.ProcessingTimeMillis = 100

	b := baseRecord("b", time.Date(2026, 5, 15, 11, 0, 0, 0, time.UTC), mustMoney(t, "0.000742"))
	b.Model = "deepseek-reasoner"
	b.UsageSource = store.UsageEstimated
	b.PromptTokens, b.PromptCacheHitTokens, b.PromptCacheMissTokens = 10000, 9000, 1000
	b.CompletionTokens, b.ReasoningTokens, b.TotalTokens = 500, 200, 10500
	b.ProcessingTimeMillis = 200

	c := baseRecord("c", time.Date(2026, 5, 14, 9, 0, 0, 0, time.UTC), 0)
	c.Priced, c.Currency, c.PriceModel, c.PriceEffectiveFrom = false, "", "", time.Time{}
	c.PriceHit, c.PriceMiss, c.PriceOutput = 0, 0, 0
	c.Success, c.StatusCode, c.ErrorMessage = false, 500, "upstream error"
	c.Flags = []string{store.FlagUnpriced}
	c.ProcessingTimeMillis = 301

	d := baseRecord("d", time.Date(2026, 5, 14, 9, 30, 0, 0, time.UTC), mustMoney(t, "0.005"))
	d.Currency = "CNY"
	d.PromptTokens, d.PromptCacheMissTokens, d.CompletionTokens, d.TotalTokens = 100, 100, 10, 110
	d.ProcessingTimeMillis = 50

	atStart := baseRecord("at-start", time.Date(2026, 4, 16, 0, 0, 0, 0, time.UTC), mustMoney(t, "0.000001"))
	beforeStart := baseRecord("before-start", time.Date(2026, 4, 15, 23, 59, 59, 999999000, time.UTC), mustMoney(t, "1"))

	env.insert(t, a, b, c, d, atStart, beforeStart)

	resp := env.get(t, "/api/admin/api-usage/stats?days=30")
	if resp.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body: %s", resp.status, resp.body)
	}
	assertJSON(t, resp.body, `{"success":true,"data":{
		"days":30,"since":"2026-04-16T00:00:00Z",
		"total_calls":5,"successful_calls":4,"failed_calls":1,"success_rate":80,
		"currency":"USD","total_cost":0.001499,"estimated_cost":0.000742,
		"unpriced_calls":1,"estimated_calls":1,
		"avg_processing_time_ms":130.2,
		"tokens":{"prompt":11600,"completion":1310,"total":12910,"cache_hit":9000,"cache_miss":2600,"reasoning":200},
		"calls_by_day":[{"date":"2026-04-16","calls":1},{"date":"2026-05-14","calls":2},{"date":"2026-05-15","calls":2}],
		"cost_by_day":[
			{"date":"2026-04-16","cost":0.000001,"unpriced_calls":0},
			{"date":"2026-05-14","cost":0,"unpriced_calls":1,"costs_by_currency":{"CNY":0.005}},
			{"date":"2026-05-15","cost":0.001498,"unpriced_calls":0}],
		"calls_by_model":[
			{"model":"deepseek-chat","calls":4,"cost":0.000757,"unpriced_calls":1,"costs_by_currency":{"USD":0.000757,"CNY":0.005}},
			{"model":"deepseek-reasoner","calls":1,"cost":0.000742,"unpriced_calls":0}],
		"costs_by_currency":{"USD":0.001499,"CNY":0.005}
	}}`)
}

// TestStatsEmpty checks that an empty window gives zeros and empty arrays
// rather than nulls, and no division by zero in the rates.
func TestStatsEmpty(t *testing.T) {
	env := newTestEnv(t, nil)
	resp := env.get(t, "/api/admin/api-usage/stats")
	assertJSON(t, resp.body, `{"success":true,"data":{
		"days":30,"since":"2026-04-16T00:00:00Z",
		"total_calls":0,"successful_calls":0,"failed_calls":0,"success_rate":0,
		"currency":"USD","total_cost":0,"estimated_cost":0,"unpriced_calls":0,"estimated_calls":0,
		"avg_processing_time_ms":0,
		"tokens":{"prompt":0,"completion":0,"total":0,"cache_hit":0,"cache_miss":0,"reasoning":0},
		"calls_by_day":[],"cost_by_day":[],"calls_by_model":[]
	}}`)
}

// TestStatsBeyondInt64 checks that a total above the int64 range of Money
// is still exact, which a float64 or int64 path would get wrong.
func TestStatsBeyondInt64(t *testing.T) {
	env := newTestEnv(t, nil)
	env.insert(t,
		baseRecord("max-1", testNow.Add(-time.Hour), pricing.Money(math.MaxInt64)),
		baseRecord("max-2", testNow.Add(-2*time.Hour), pricing.Money(math.MaxInt64)),
	)
	data := env.get(t, "/api/admin/api-usage/stats?days=1").data(t)
	if got, want := fmt.Sprint(data["total_cost"]), "18446744.073709551614"; got != want {
		t.Errorf("total_cost = %s, want %s", got, want)
	}
}

// TestStatsSingleForeignCurrency checks that costs in a currency other than
// the configured one are reported per currency instead of being lost.
func TestStatsSingleForeignCurrency(t *testing.T) {
	env := newTestEnv(t, nil)
	r := baseRecord("cny", testNow.Add(-time.Hour), mustMoney(t, "0.02"))
	r.Currency = "CNY"
	env.insert(t, r)

	data := env.get(t, "/api/admin/api-usage/stats").data(t)
	if got := fmt.Sprint(data["total_cost"]); got != "0" {
		t.Errorf("total_cost = %s, want 0 (only USD counts)", got)
	}
	byCurrency, ok := data["costs_by_currency"].(map[string]any)
	if !ok {
		t.Fatalf("costs_by_currency = %v, want an object", data["costs_by_currency"])
	}
	if got := fmt.Sprint(byCurrency["CNY"]); got != "0.02" {
		t.Errorf("costs_by_currency.CNY = %s, want 0.02", got)
	}
}

// TestStatsDaysWindow checks the window edges: days=1 is today from UTC
// midnight, days=2 reaches back to yesterday's midnight exactly.
func TestStatsDaysWindow(t *testing.T) {
	env := newTestEnv(t, nil)
	env.insert(t,
		baseRecord("today-midnight", time.Date(2026, 5, 15, 0, 0, 0, 0, time.UTC), 1),
		baseRecord("yesterday-last", time.Date(2026, 5, 14, 23, 59, 59, 999999000, time.UTC), 1),
		baseRecord("yesterday-midnight", time.Date(2026, 5, 14, 0, 0, 0, 0, time.UTC), 1),
		baseRecord("two-days-ago-last", time.Date(2026, 5, 13, 23, 59, 59, 999999000, time.UTC), 1),
	)
	tests := []struct {
		days      int
		wantCalls string
		wantSince string
	}{
		{days: 1, wantCalls: "1", wantSince: "2026-05-15T00:00:00Z"},
		{days: 2, wantCalls: "3", wantSince: "2026-05-14T00:00:00Z"},
		{days: 3, wantCalls: "4", wantSince: "2026-05-13T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("days=%d", tt.days), func(t *testing.T) {
			data := env.get(t, fmt.Sprintf("/api/admin/api-usage/stats?days=%d", tt.days)).data(t)
			if got := fmt.Sprint(data["total_calls"]); got != tt.wantCalls {
				t.Errorf("total_calls = %s, want %s", got, tt.wantCalls)
			}
			if got := fmt.Sprint(data["since"]); got != tt.wantSince {
				t.Errorf("since = %s, want %s", got, tt.wantSince)
			}
		})
	}
}

// TestQueryParamsRejected checks that every bad days, page or limit value
// is a 400 naming the parameter and its range, never a silent default.
func TestQueryParamsRejected(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name      string
		path      string
		wantParam string
	}{
		{name: "stats days text", path: "/stats?days=abc", wantParam: "days"},
		{name: "stats days zero", path: "/stats?days=0", wantParam: "days"},
		{name: "stats days negative", path: "/stats?days=-1", wantParam: "days"},
		{name: "stats days too big", path: "/stats?days=99999", wantParam: "days"},
		{name: "stats days just over", path: "/stats?days=3651", wantParam: "days"},
		{name: "stats days empty", path: "/stats?days=", wantParam: "days"},
		{name: "stats days fraction", path: "/stats?days=1.5", wantParam: "days"},
		{name: "stats days overflow", path: "/stats?days=99999999999999999999999", wantParam: "days"},
		{name: "stats days spaces", path: "/stats?days=%201", wantParam: "days"},
		{name: "records days", path: "/records?days=0", wantParam: "days"},
		{name: "records page zero", path: "/records?page=0", wantParam: "page"},
		{name: "records page negative", path: "/records?page=-3", wantParam: "page"},
		{name: "records page text", path: "/records?page=first", wantParam: "page"},
		{name: "records page too big", path: "/records?page=1000001", wantParam: "page"},
		{name: "records limit zero", path: "/records?limit=0", wantParam: "limit"},
		{name: "records limit over", path: "/records?limit=501", wantParam: "limit"},
		{name: "records limit negative", path: "/records?limit=-1", wantParam: "limit"},
		{name: "records limit hex", path: "/records?limit=0x10", wantParam: "limit"},
	}
	ranges := map[string]string{"days": "from 1 to 3650", "page": "from 1 to 1000000", "limit": "from 1 to 500"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.get(t, "/api/admin/api-usage"+tt.path)
			resp.assertError(t, http.StatusBadRequest, "invalid "+tt.wantParam, ranges[tt.wantParam])
		})
	}
}

// TestQueryParamsAccepted checks the range edges and that unknown
// parameters are ignored.
func TestQueryParamsAccepted(t *testing.T) {
	env := newTestEnv(t, nil)
	for _, p := range []string{
		"/stats?days=1",
		"/stats?days=3650",
		"/stats?days=%2B7",
		"/stats?days=7&unknown=x",
		"/records?days=3650&page=1000000&limit=500",
		"/records?limit=1&page=1&days=1&sort=desc",
	} {
		t.Run(p, func(t *testing.T) {
			if resp := env.get(t, "/api/admin/api-usage"+p); resp.status != http.StatusOK {
				t.Errorf("status = %d, want 200; body: %s", resp.status, resp.body)
			}
		})
	}
}

// TestDailyLimit checks today's spend against the configured limit: none,
// under, exactly at and over it, with calls just outside the UTC day and
// in another currency left out.
func TestDailyLimit(t *testing.T) {
	tests := []struct {
		name  string
		limit string
		want  string
	}{
		{
			name:  "no limit",
			limit: "0",
			want:  `"daily_limit":null,"remaining":null,"percentage_used":null,"limit_reached":false`,
		},
		{
			name:  "under limit",
			limit: "2",
			want:  `"daily_limit":2,"remaining":1.5,"percentage_used":25,"limit_reached":false`,
		},
		{
			name:  "exactly at limit",
			limit: "0.5",
			want:  `"daily_limit":0.5,"remaining":0,"percentage_used":100,"limit_reached":true`,
		},
		{
			name:  "over limit",
			limit: "0.3",
			want:  `"daily_limit":0.3,"remaining":0,"percentage_used":166.67,"limit_reached":true`,
		},
		{
			name:  "one unit under",
			limit: "0.500000000001",
			want:  `"daily_limit":0.500000000001,"remaining":0.000000000001,"percentage_used":100,"limit_reached":false`,
		},
		{
			name:  "tiny limit",
			limit: "0.000003",
			want:  `"daily_limit":0.000003,"remaining":0,"percentage_used":16666666.67,"limit_reached":true`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit := mustMoney(t, tt.limit)
			env := newTestEnv(t, func(c *Config) { c.DailyLimit = limit })

			cny := baseRecord("cny", time.Date(2026, 5, 15, 1, 0, 0, 0, time.UTC), mustMoney(t, "2"))
			cny.Currency = "CNY"
			env.insert(t,
				baseRecord("midnight", time.Date(2026, 5, 15, 0, 0, 0, 0, time.UTC), mustMoney(t, "0.3")),
				baseRecord("later", time.Date(2026, 5, 15, 11, 59, 0, 0, time.UTC), mustMoney(t, "0.2")),
				baseRecord("yesterday", time.Date(2026, 5, 14, 23, 59, 59, 999999000, time.UTC), mustMoney(t, "1")),
				baseRecord("tomorrow", time.Date(2026, 5, 16, 0, 0, 0, 0, time.UTC), mustMoney(t, "1")),
				cny,
			)

			resp := env.get(t, "/api/admin/api-usage/daily-limit")
			assertJSON(t, resp.body, `{"success":true,"data":{"date":"2026-05-15","currency":"USD","today_cost":0.5,`+
				tt.want+`,"costs_by_currency":{"USD":0.5,"CNY":2}}}`)
		})
	}
}

// TestDailyLimitNoCalls checks a limit with nothing spent today: full
// remaining, 0 percent, no per-currency map.
func TestDailyLimitNoCalls(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.DailyLimit = 10 * pricing.MoneyScale })
	resp := env.get(t, "/api/admin/api-usage/daily-limit")
	assertJSON(t, resp.body, `{"success":true,"data":{"date":"2026-05-15","currency":"USD","today_cost":0,
		"daily_limit":10,"remaining":10,"percentage_used":0,"limit_reached":false}}`)
}

// TestCurrentMonth checks the UTC month window at both of its edges,
// including the turn of the year.
func TestCurrentMonth(t *testing.T) {
	env := newTestEnv(t, nil)
	env.insert(t,
		baseRecord("may-last", time.Date(2026, 5, 31, 23, 59, 59, 999999000, time.UTC), mustMoney(t, "1")),
		baseRecord("june-first", time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), mustMoney(t, "0.25")),
		baseRecord("june-later", time.Date(2026, 6, 1, 0, 10, 0, 0, time.UTC), mustMoney(t, "0.5")),
		baseRecord("may-first", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), mustMoney(t, "0.125")),
		baseRecord("april-last", time.Date(2026, 4, 30, 23, 59, 59, 0, time.UTC), mustMoney(t, "8")),
		baseRecord("december", time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC), mustMoney(t, "3")),
		baseRecord("january", time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), mustMoney(t, "5")),
	)
	tests := []struct {
		name      string
		now       time.Time
		wantMonth string
		wantCost  string
	}{
		{name: "start of june", now: time.Date(2026, 6, 1, 0, 30, 0, 0, time.UTC), wantMonth: "2026-06", wantCost: "0.75"},
		{name: "end of may", now: time.Date(2026, 5, 31, 23, 59, 59, 0, time.UTC), wantMonth: "2026-05", wantCost: "1.125"},
		{name: "end of year", now: time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC), wantMonth: "2026-12", wantCost: "3"},
		{name: "new year", now: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), wantMonth: "2027-01", wantCost: "5"},
		{name: "empty month", now: time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), wantMonth: "2026-03", wantCost: "0"},
		{name: "clock in another zone", now: time.Date(2026, 6, 1, 2, 0, 0, 0, time.FixedZone("UTC+3", 3*3600)), wantMonth: "2026-05", wantCost: "1.125"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env.clock.Set(tt.now)
			resp := env.get(t, "/api/admin/api-usage/current-month")
			assertJSON(t, resp.body, fmt.Sprintf(`{"success":true,"data":{"month":%q,"currency":"USD","total_cost":%s}}`, tt.wantMonth, tt.wantCost))
		})
	}
}

// TestPercentNumber checks rounding half up to two decimals with exact
// integer math.
func TestPercentNumber(t *testing.T) {
	tests := []struct {
		part, whole int64
		want        string
	}{
		{0, 0, "0"},
		{0, 5, "0"},
		{1, 3, "33.33"},
		{2, 3, "66.67"},
		{1, 8, "12.5"},
		{1, 40000, "0"},
		{1, 20000, "0.01"},
		{3, 3, "100"},
		{7, 2, "350"},
		{math.MaxInt64, math.MaxInt64, "100"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%d", tt.part, tt.whole), func(t *testing.T) {
			if got := percentNumber(big.NewInt(tt.part), big.NewInt(tt.whole)); string(got) != tt.want {
				t.Errorf("percentNumber(%d, %d) = %s, want %s", tt.part, tt.whole, got, tt.want)
			}
		})
	}
}
