// Package storetest is the conformance suite for store.Store. Every backend
// runs Run from its own tests, so all backends return the same data for the
// same calls. The suite needs a fresh, migrated and empty store per test
// and does not run its tests in parallel.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/store"
)

// Run runs the conformance suite. open must return a new, migrated store
// with no records and no balance for each call; Run closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"SanitizeStrings", testSanitizeStrings},
		{"EmptyBatch", testEmptyBatch},
		{"ReplayedBatch", testReplayedBatch},
		{"DuplicateIDsInBatch", testDuplicateIDsInBatch},
		{"Stats", testStats},
		{"StatsNoCalls", testStatsNoCalls},
		{"DaysAcrossMidnight", testDaysAcrossMidnight},
		{"Totals", testTotals},
		{"SumsBeyondInt64", testSumsBeyondInt64},
		{"ListPaging", testListPaging},
		{"ListInvalidQuery", testListInvalidQuery},
		{"RecordNotFound", testRecordNotFound},
		{"Balance", testBalance},
		{"AuditBalance", testAuditBalance},
		{"AuditPaging", testAuditPaging},
		{"DailyLimit", testDailyLimit},
		{"ConcurrentInserts", testConcurrentInserts},
		{"CanceledContext", testCanceledContext},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.run(t, s)
		})
	}
}

// SampleRecord returns a priced, successful chat record of realistic size
// (a request body of about 3 KB and a response of about 1 KB), created at
// at, with an ID derived from i.
func SampleRecord(i int, at time.Time) store.Record {
	question := strings.Repeat("Explain how the cache hit price applies to long prompts. ", 50)
	answer := strings.Repeat("Cache hits are billed at the lower input rate. ", 20)
	return store.Record{
		ID:                    fmt.Sprintf("sample-%08d", i),
		CreatedAt:             at,
		Endpoint:              "/chat/completions",
		UpstreamPath:          "/chat/completions",
		RequestedModel:        "deepseek-chat",
		Model:                 "deepseek-chat",
		Stream:                i%2 == 0,
		StatusCode:            200,
		PromptTokens:          700,
		CompletionTokens:      250,
		TotalTokens:           950,
		PromptCacheHitTokens:  640,
		PromptCacheMissTokens: 60,
		UsageSource:           store.UsageReported,
		TTFBMillis:            320,
		ProcessingTimeMillis:  2900,
		Cost:                  pricing.Money(640*70_000 + 60*270_000 + 250*1_100_000),
		Priced:                true,
		Currency:              "USD",
		PriceModel:            "deepseek-chat",
		PriceEffectiveFrom:    time.Date(2024, 12, 26, 0, 0, 0, 0, time.UTC),
		PriceHit:              70_000,
		PriceMiss:             270_000,
		PriceOutput:           1_100_000,
		Success:               true,
		Message:               "Explain how the cache hit price applies to long prompts.",
		RequestData:           `{"model":"deepseek-chat","messages":[{"role":"user","content":"` + question + `"}]}`,
		ResponseData:          answer,
		UserID:                fmt.Sprintf("user-%d", i%7),
		PageTab:               "chat",
	}
}

// Fixed times keep the expected day names stable. day0 is a UTC midnight.
var (
	day0  = time.Date(2026, 3, 14, 0, 0, 0, 0, time.UTC)
	plus8 = time.FixedZone("UTC+8", 8*60*60)
)

// fullRecord returns a record with every field set to a distinct value.
func fullRecord(id string) store.Record {
	return store.Record{
		ID:                    id,
		CreatedAt:             day0.Add(10*time.Hour + 123456*time.Microsecond),
		Endpoint:              "/api/summarize",
		UpstreamPath:          "/chat/completions",
		RequestedModel:        "deepseek-chat",
		Model:                 "deepseek-v4-flash",
		Stream:                true,
		StatusCode:            200,
		PromptTokens:          1000,
		CompletionTokens:      300,
		TotalTokens:           1300,
		PromptCacheHitTokens:  640,
		PromptCacheMissTokens: 360,
		ReasoningTokens:       120,
		UsageSource:           store.UsageReported,
		TTFBMillis:            450,
		ProcessingTimeMillis:  5100,
		Cost:                  pricing.Money(428_800_000),
		Priced:                true,
		Currency:              "USD",
		PriceModel:            "deepseek-v4-flash",
		PriceEffectiveFrom:    time.Date(2026, 4, 24, 16, 0, 0, 0, time.UTC),
		PriceHit:              70_000,
		PriceMiss:             270_000,
		PriceOutput:           1_100_000,
		Success:               true,
		ErrorMessage:          "",
		Flags:                 []string{store.FlagResponseTruncated, store.FlagUsageMismatch},
		Message:               "Summarize this",
		RequestData:           `{"model":"deepseek-chat","messages":[{"role":"user","content":"Summarize this"}]}`,
		ResponseData:          "A short summary.",
		UserID:                "user-42",
		PageTab:               "reports",
	}
}

// testRoundTrip stores records that use every field, including Money at
// its limits, unpriced records, unicode and bodies of several megabytes,
// and checks that Record returns each exactly. Admins audit costs from
// these fields, so a lost or rounded value is a billing error.
func testRoundTrip(t *testing.T, s store.Store) {
	bigRequest := `{"messages":[{"role":"user","content":"` + strings.Repeat("日本語のテキスト🙂 and ASCII ", 200_000) + `"}]}`
	bigResponse := strings.Repeat("Ответ с юникодом ✓\n", 200_000)
	if len(bigRequest) < 5<<20 || len(bigResponse) < 3<<20 {
		t.Fatalf("test bodies too small: %d and %d bytes", len(bigRequest), len(bigResponse))
	}

	tests := []struct {
		name string
		in   func(r *store.Record) // changes to fullRecord
		want func(r *store.Record) // expected changes beyond in
	}{
		{name: "all fields", in: func(r *store.Record) {}},
		{
			name: "time in another zone with nanoseconds",
			in: func(r *store.Record) {
				r.CreatedAt = time.Date(2026, 3, 15, 7, 59, 59, 999_999_999, plus8)
				r.PriceEffectiveFrom = time.Date(2025, 9, 5, 16, 0, 0, 1, plus8)
			},
			want: func(r *store.Record) {
				r.CreatedAt = time.Date(2026, 3, 14, 23, 59, 59, 999_999_000, time.UTC)
				r.PriceEffectiveFrom = time.Date(2025, 9, 5, 8, 0, 0, 0, time.UTC)
			},
		},
		{
			name: "money at int64 limits",
			in: func(r *store.Record) {
				r.Cost = math.MaxInt64
				r.PriceHit = math.MinInt64
				r.PriceMiss = 1
				r.PriceOutput = math.MaxInt64
			},
		},
		{
			name: "priced at zero cost",
			in: func(r *store.Record) {
				r.Cost = 0
				r.Currency = "CNY"
			},
		},
		{
			name: "unpriced stores no cost",
			in: func(r *store.Record) {
				r.Priced = false
				r.Cost = 12345
				r.Currency = ""
				r.PriceModel = ""
				r.PriceEffectiveFrom = time.Time{}
				r.PriceHit, r.PriceMiss, r.PriceOutput = 0, 0, 0
				r.Flags = []string{store.FlagUnpriced}
			},
			want: func(r *store.Record) { r.Cost = 0 },
		},
		{
			name: "failed call without usage",
			in: func(r *store.Record) {
				r.Stream = false
				r.StatusCode = 502
				r.Success = false
				r.ErrorMessage = "upstream connection reset"
				r.UsageSource = store.UsageNone
				r.PromptTokens, r.CompletionTokens, r.TotalTokens = 0, 0, 0
				r.PromptCacheHitTokens, r.PromptCacheMissTokens, r.ReasoningTokens = 0, 0, 0
				r.ResponseData = ""
				r.Flags = []string{store.FlagClientAborted, store.FlagUsageMissing}
			},
		},
		{
			name: "empty strings and no flags",
			in: func(r *store.Record) {
				r.Endpoint, r.UpstreamPath, r.RequestedModel, r.Model = "", "", "", ""
				r.Message, r.RequestData, r.ResponseData, r.UserID, r.PageTab = "", "", "", "", ""
				r.Flags = []string{}
			},
			want: func(r *store.Record) { r.Flags = nil },
		},
		{
			name: "unsorted repeated flags",
			in: func(r *store.Record) {
				r.Flags = []string{store.FlagUsageMissing, store.FlagClientAborted, store.FlagUsageMissing}
			},
			want: func(r *store.Record) {
				r.Flags = []string{store.FlagClientAborted, store.FlagUsageMissing}
			},
		},
		{
			name: "unicode in every text field",
			in: func(r *store.Record) {
				r.Endpoint = "/api/翻訳"
				r.Model = "模型-v4"
				r.ErrorMessage = "ошибка: «тайм-аут» 🚫"
				r.Message = "こんにちは 👋 naïve café"
				r.UserID = "用户-७"
				r.PageTab = "タブ"
			},
		},
		{
			name: "bodies of several megabytes",
			in: func(r *store.Record) {
				r.RequestData = bigRequest
				r.ResponseData = bigResponse
				r.Flags = nil
			},
		},
	}

	ctx := context.Background()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := fullRecord(fmt.Sprintf("roundtrip-%02d", i))
			tt.in(&in)
			want := in
			if tt.want != nil {
				tt.want(&want)
			}

			if err := s.Insert(ctx, []store.Record{in}); err != nil {
				t.Fatalf("Insert: %v", err)
			}
			got, err := s.Record(ctx, in.ID)
			if err != nil {
				t.Fatalf("Record(%q): %v", in.ID, err)
			}
			checkRecord(t, got, want)
		})
	}
}

// testSanitizeStrings stores strings with NUL bytes and invalid UTF-8.
// Postgres rejects both in TEXT, and one bad string must not fail the
// batch it travels in, so every backend stores the cleaned text.
func testSanitizeStrings(t *testing.T, s store.Store) {
	ctx := context.Background()
	bad := fullRecord("sanitize-bad")
	bad.Message = "nul\x00byte"
	bad.ErrorMessage = "invalid \xff\xfe utf-8"
	bad.RequestData = "{\"a\":\"\x00\"}\xc3"
	bad.ResponseData = strings.Repeat("\x00", 10)
	bad.UserID = "user\x00-1"
	bad.Flags = []string{"", store.FlagDecodeFailed, "odd,flag"}
	good := fullRecord("sanitize-good")

	if err := s.Insert(ctx, []store.Record{bad, good}); err != nil {
		t.Fatalf("Insert: %v", err)
	}

	want := bad
	want.Message = "nulbyte"
	want.ErrorMessage = "invalid \uFFFD utf-8"
	want.RequestData = "{\"a\":\"\"}\uFFFD"
	want.ResponseData = ""
	want.UserID = "user-1"
	want.Flags = []string{store.FlagDecodeFailed, "odd_flag"}
	got, err := s.Record(ctx, bad.ID)
	if err != nil {
		t.Fatalf("Record(%q): %v", bad.ID, err)
	}
	checkRecord(t, got, want)

	gotGood, err := s.Record(ctx, good.ID)
	if err != nil {
		t.Fatalf("Record(%q): %v", good.ID, err)
	}
	checkRecord(t, gotGood, good)
}

// testEmptyBatch checks that an empty or nil batch is a no-op, because the
// batch writer may flush an empty queue.
func testEmptyBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, batch := range [][]store.Record{nil, {}} {
		if err := s.Insert(ctx, batch); err != nil {
			t.Errorf("Insert(%#v): %v", batch, err)
		}
	}
	if n := countRecords(t, s); n != 0 {
		t.Errorf("records after empty batches: got %d, want 0", n)
	}
}

// testReplayedBatch inserts a batch again after a retry, partly changed.
// A replay must never count a call twice or overwrite what was stored.
func testReplayedBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	batch := make([]store.Record, 10)
	for i := range batch {
		batch[i] = SampleRecord(i, day0.Add(time.Duration(i)*time.Minute))
	}
	if err := s.Insert(ctx, batch); err != nil {
		t.Fatalf("first Insert: %v", err)
	}

	replay := slices.Clone(batch)
	replay[3].Cost = 1
	replay[3].Model = "changed"
	replay = append(replay, SampleRecord(100, day0.Add(time.Hour)))
	for attempt := range 2 {
		if err := s.Insert(ctx, replay); err != nil {
			t.Fatalf("replay %d: %v", attempt, err)
		}
	}

	if n := countRecords(t, s); n != 11 {
		t.Errorf("record count: got %d, want 11", n)
	}
	st, err := s.Stats(ctx, time.Time{})
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	wantCost := new(big.Int).Mul(big.NewInt(int64(batch[0].Cost)), big.NewInt(11))
	checkAmounts(t, "Stats.Cost", st.Cost, amounts("USD", wantCost))
	got, err := s.Record(ctx, batch[3].ID)
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	checkRecord(t, got, batch[3])
}

// testDuplicateIDsInBatch puts one ID twice in a batch; the first copy is
// stored and the call is counted once.
func testDuplicateIDsInBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := SampleRecord(1, day0)
	second := first
	second.Model = "second-copy"
	second.Cost = 999
	other := SampleRecord(2, day0)

	if err := s.Insert(ctx, []store.Record{first, other, second}); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if n := countRecords(t, s); n != 2 {
		t.Errorf("record count: got %d, want 2", n)
	}
	got, err := s.Record(ctx, first.ID)
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	checkRecord(t, got, first)
}

// statsRecord returns a small record for the stats tests.
func statsRecord(id string, at time.Time, model, currency string, cost int64, source string, success bool) store.Record {
	r := store.Record{
		ID: id, CreatedAt: at, Model: model, RequestedModel: model,
		Currency: currency, Cost: pricing.Money(cost), Priced: currency != "",
		UsageSource: source, Success: success, StatusCode: 200,
	}
	if !success {
		r.StatusCode = 500
	}
	if !r.Priced {
		r.Flags = []string{store.FlagUnpriced}
	}
	return r
}

// testStats checks every Stats field on a mix of currencies, unpriced and
// estimated records, failures and several days and models. The dashboard
// shows these numbers as they come, so each must be exact.
func testStats(t *testing.T, s store.Store) {
	ctx := context.Background()
	withUsage := func(r store.Record, prompt, hit, miss, completion, reasoning, total, procMs int64) store.Record {
		r.PromptTokens, r.PromptCacheHitTokens, r.PromptCacheMissTokens = prompt, hit, miss
		r.CompletionTokens, r.ReasoningTokens, r.TotalTokens = completion, reasoning, total
		r.ProcessingTimeMillis = procMs
		return r
	}
	day1 := day0.AddDate(0, 0, 1)
	records := []store.Record{
		withUsage(statsRecord("a", day0.Add(10*time.Hour), "deepseek-chat", "USD", 1_000_000, store.UsageReported, true), 100, 64, 36, 50, 0, 150, 1000),
		withUsage(statsRecord("b", day0.Add(11*time.Hour), "deepseek-chat", "CNY", 7_000_000, store.UsageEstimated, true), 10, 0, 10, 5, 0, 15, 2000),
		withUsage(statsRecord("c", day0.Add(12*time.Hour), "deepseek-reasoner", "USD", 3_000_000, store.UsageEstimated, false), 20, 0, 20, 40, 30, 60, 3000),
		withUsage(statsRecord("h", day0.Add(13*time.Hour), "deepseek-coder", "USD", 0, store.UsageReported, true), 1, 0, 1, 1, 0, 2, 100),
		withUsage(statsRecord("d", day1.Add(30*time.Minute), "unknown-model", "", 0, store.UsageReported, false), 5, 0, 5, 0, 0, 5, 500),
		withUsage(statsRecord("e", day1.Add(time.Hour), "deepseek-chat", "USD", 2_500_000, store.UsageReported, true), 1, 1, 0, 1, 0, 2, 1500),
		withUsage(statsRecord("g", day1.Add(2*time.Hour), "deepseek-reasoner", "", 0, store.UsageEstimated, true), 3, 0, 3, 7, 2, 10, 600),
		// Before since: only the unbounded Stats counts it.
		withUsage(statsRecord("f", day0.Add(-time.Hour), "deepseek-chat", "USD", 4_000_000, store.UsageReported, true), 2, 0, 2, 2, 0, 4, 9000),
	}
	records[4].Cost = 777 // ignored because unpriced
	if err := s.Insert(ctx, records); err != nil {
		t.Fatalf("Insert: %v", err)
	}

	want := store.Stats{
		TotalCalls:              7,
		SuccessfulCalls:         5,
		FailedCalls:             2,
		UnpricedCalls:           2,
		EstimatedCalls:          3,
		AvgProcessingTimeMillis: 8700.0 / 7,
		PromptTokens:            140,
		CompletionTokens:        104,
		TotalTokens:             244,
		PromptCacheHitTokens:    65,
		PromptCacheMissTokens:   75,
		ReasoningTokens:         32,
		Cost:                    amounts("USD", big.NewInt(6_500_000), "CNY", big.NewInt(7_000_000)),
		EstimatedCost:           amounts("USD", big.NewInt(3_000_000), "CNY", big.NewInt(7_000_000)),
		Days: []store.DayStats{
			{Day: "2026-03-14", Calls: 4, Cost: amounts("USD", big.NewInt(4_000_000), "CNY", big.NewInt(7_000_000))},
			{Day: "2026-03-15", Calls: 3, UnpricedCalls: 2, Cost: amounts("USD", big.NewInt(2_500_000))},
		},
		Models: []store.ModelStats{
			{Model: "deepseek-chat", Calls: 3, Cost: amounts("USD", big.NewInt(3_500_000), "CNY", big.NewInt(7_000_000))},
			{Model: "deepseek-reasoner", Calls: 2, UnpricedCalls: 1, Cost: amounts("USD", big.NewInt(3_000_000))},
			{Model: "deepseek-coder", Calls: 1, Cost: amounts("USD", big.NewInt(0))},
			{Model: "unknown-model", Calls: 1, UnpricedCalls: 1, Cost: amounts()},
		},
	}
	got, err := s.Stats(ctx, day0.In(plus8))
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	checkStats(t, got, want)

	// Since the zero time, record f adds a day and a chat call.
	all, err := s.Stats(ctx, time.Time{})
	if err != nil {
		t.Fatalf("Stats(zero time): %v", err)
	}
	if all.TotalCalls != 8 {
		t.Errorf("Stats(zero time).TotalCalls: got %d, want 8", all.TotalCalls)
	}
	if len(all.Days) != 3 || all.Days[0].Day != "2026-03-13" || all.Days[0].Calls != 1 {
		t.Errorf("Stats(zero time).Days: got %s, want 2026-03-13 with 1 call first of 3", formatDays(all.Days))
	}
	checkAmounts(t, "Stats(zero time).Cost", all.Cost, amounts("USD", big.NewInt(10_500_000), "CNY", big.NewInt(7_000_000)))

	// Since a time after every record, nothing is counted.
	none, err := s.Stats(ctx, day1.AddDate(0, 0, 1))
	if err != nil {
		t.Fatalf("Stats(future): %v", err)
	}
	if none.TotalCalls != 0 || len(none.Days) != 0 || len(none.Models) != 0 {
		t.Errorf("Stats(future): got %d calls, %d days, %d models, want none", none.TotalCalls, len(none.Days), len(none.Models))
	}
}

// testStatsNoCalls checks Stats on an empty store: zeros, an average of 0
// rather than NaN (a division by zero would break the JSON encoding), and
// usable empty Amounts.
func testStatsNoCalls(t *testing.T, s store.Store) {
	got, err := s.Stats(context.Background(), time.Time{})
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	checkStats(t, got, store.Stats{Cost: amounts(), EstimatedCost: amounts()})
	if got.Cost == nil || got.EstimatedCost == nil {
		t.Errorf("Stats amounts: got Cost %v and EstimatedCost %v, want non-nil", got.Cost, got.EstimatedCost)
	}
}

// testDaysAcrossMidnight puts records on both sides of UTC midnight, given
// in a zone where both are the same local day, and one before 1970. Days
// must follow the UTC date whatever the zone of the input.
func testDaysAcrossMidnight(t *testing.T, s store.Store) {
	ctx := context.Background()
	records := []store.Record{
		statsRecord("before-midnight", time.Date(2026, 3, 15, 7, 59, 59, 999_999_000, plus8), "m", "USD", 1, store.UsageReported, true),
		statsRecord("at-midnight", time.Date(2026, 3, 15, 8, 0, 0, 0, plus8), "m", "USD", 2, store.UsageReported, true),
		statsRecord("after-midnight", time.Date(2026, 3, 15, 0, 0, 0, 1000, time.UTC), "m", "USD", 4, store.UsageReported, true),
		statsRecord("before-1970", time.Date(1969, 12, 31, 23, 59, 59, 500_000_000, time.UTC), "m", "USD", 8, store.UsageReported, true),
		statsRecord("at-1970", time.Unix(0, 0), "m", "USD", 16, store.UsageReported, true),
	}
	if err := s.Insert(ctx, records); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	got, err := s.Stats(ctx, time.Time{})
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	want := []store.DayStats{
		{Day: "1969-12-31", Calls: 1, Cost: amounts("USD", big.NewInt(8))},
		{Day: "1970-01-01", Calls: 1, Cost: amounts("USD", big.NewInt(16))},
		{Day: "2026-03-14", Calls: 1, Cost: amounts("USD", big.NewInt(1))},
		{Day: "2026-03-15", Calls: 2, Cost: amounts("USD", big.NewInt(6))},
	}
	checkDays(t, got.Days, want)
}

// testTotals checks that Totals counts the range [from, to). A record
// exactly at from is counted and one exactly at to is not, so adjacent
// periods never share a call.
func testTotals(t *testing.T, s store.Store) {
	ctx := context.Background()
	from := day0
	to := day0.AddDate(0, 0, 1)
	records := []store.Record{
		statsRecord("before-from", from.Add(-time.Microsecond), "m", "USD", 1, store.UsageReported, true),
		statsRecord("at-from", from, "m", "USD", 10, store.UsageReported, true),
		statsRecord("inside-cny", from.Add(time.Hour), "m", "CNY", 100, store.UsageEstimated, true),
		statsRecord("inside-estimated", from.Add(2*time.Hour), "m", "USD", 1000, store.UsageEstimated, false),
		statsRecord("inside-unpriced", from.Add(3*time.Hour), "m", "", 0, store.UsageEstimated, true),
		statsRecord("before-to", to.Add(-time.Microsecond), "m", "USD", 10_000, store.UsageReported, true),
		statsRecord("at-to", to, "m", "USD", 100_000, store.UsageReported, true),
	}
	if err := s.Insert(ctx, records); err != nil {
		t.Fatalf("Insert: %v", err)
	}

	tests := []struct {
		name          string
		from, to      time.Time
		calls         int64
		cost, estCost pricing.Amounts
	}{
		{
			name: "one day", from: from, to: to, calls: 5,
			cost:    amounts("USD", big.NewInt(11_010), "CNY", big.NewInt(100)),
			estCost: amounts("USD", big.NewInt(1000), "CNY", big.NewInt(100)),
		},
		{
			name: "same day in another zone", from: from.In(plus8), to: to.In(plus8), calls: 5,
			cost:    amounts("USD", big.NewInt(11_010), "CNY", big.NewInt(100)),
			estCost: amounts("USD", big.NewInt(1000), "CNY", big.NewInt(100)),
		},
		{
			name: "empty range", from: from, to: from, calls: 0,
			cost: amounts(), estCost: amounts(),
		},
		{
			name: "everything", from: time.Time{}, to: to.AddDate(1, 0, 0), calls: 7,
			cost:    amounts("USD", big.NewInt(111_011), "CNY", big.NewInt(100)),
			estCost: amounts("USD", big.NewInt(1000), "CNY", big.NewInt(100)),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Totals(ctx, tt.from, tt.to)
			if err != nil {
				t.Fatalf("Totals: %v", err)
			}
			if got.Calls != tt.calls {
				t.Errorf("Calls: got %d, want %d", got.Calls, tt.calls)
			}
			checkAmounts(t, "Cost", got.Cost, tt.cost)
			checkAmounts(t, "EstimatedCost", got.EstimatedCost, tt.estCost)
		})
	}
}

// testSumsBeyondInt64 stores costs near the int64 limits, whose sum does
// not fit in int64. Sums must be exact and must not fail with an
// overflow, which SQLite's SUM does on integers.
func testSumsBeyondInt64(t *testing.T, s store.Store) {
	ctx := context.Background()
	costs := []struct {
		currency string
		cost     int64
		source   string
	}{
		{"USD", math.MaxInt64, store.UsageReported},
		{"USD", math.MaxInt64, store.UsageEstimated},
		{"USD", math.MaxInt64 - 999_999, store.UsageEstimated},
		{"USD", 1, store.UsageReported},
		{"CNY", math.MinInt64, store.UsageReported},
		{"CNY", math.MinInt64 + 1, store.UsageEstimated},
		{"CNY", -1_000_001, store.UsageEstimated},
	}
	var records []store.Record
	wantCost, wantEstimated := amounts(), amounts()
	for i, c := range costs {
		records = append(records, statsRecord(fmt.Sprintf("big-%d", i), day0.Add(time.Duration(i)*time.Minute), "m", c.currency, c.cost, c.source, true))
		wantCost.Add(c.currency, big.NewInt(c.cost))
		if c.source == store.UsageEstimated {
			wantEstimated.Add(c.currency, big.NewInt(c.cost))
		}
	}
	if err := s.Insert(ctx, records); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if wantCost.Get("USD").IsInt64() || wantCost.Get("CNY").IsInt64() {
		t.Fatalf("test sums fit in int64: %v", wantCost)
	}

	st, err := s.Stats(ctx, time.Time{})
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	checkAmounts(t, "Stats.Cost", st.Cost, wantCost)
	checkAmounts(t, "Stats.EstimatedCost", st.EstimatedCost, wantEstimated)
	if len(st.Days) != 1 || len(st.Models) != 1 {
		t.Fatalf("Stats: got %d days and %d models, want 1 and 1", len(st.Days), len(st.Models))
	}
	checkAmounts(t, "Stats.Days[0].Cost", st.Days[0].Cost, wantCost)
	checkAmounts(t, "Stats.Models[0].Cost", st.Models[0].Cost, wantCost)

	tot, err := s.Totals(ctx, day0, day0.AddDate(0, 0, 1))
	if err != nil {
		t.Fatalf("Totals: %v", err)
	}
	checkAmounts(t, "Totals.Cost", tot.Cost, wantCost)
	checkAmounts(t, "Totals.EstimatedCost", tot.EstimatedCost, wantEstimated)
}

// testListPaging pages through records, some created in the same
// microsecond, and checks the order (newest first, then ID descending),
// the total, the Since filter and the body flags. A page that skipped or
// repeated a record would hide a call from an admin.
func testListPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	var records []store.Record
	for i := range 20 {
		r := SampleRecord(i, day0.Add(time.Duration(i)*time.Minute))
		if i%3 == 0 {
			r.RequestData = ""
		}
		if i%4 == 0 {
			r.ResponseData = ""
		}
		records = append(records, r)
	}
	tie := day0.Add(10*time.Minute + 500*time.Microsecond)
	for _, id := range []string{"tie-c", "tie-a", "tie-e", "tie-b", "tie-d"} {
		r := SampleRecord(0, tie)
		r.ID = id
		records = append(records, r)
	}
	if err := s.Insert(ctx, records); err != nil {
		t.Fatalf("Insert: %v", err)
	}

	byID := map[string]store.Record{}
	for _, r := range records {
		byID[r.ID] = r
	}
	tests := []struct {
		name  string
		since time.Time
		limit int
	}{
		{name: "all in pages of 7", since: time.Time{}, limit: 7},
		{name: "all in one page", since: time.Time{}, limit: 100},
		{name: "since the ties", since: tie, limit: 4},
		{name: "since after the ties", since: tie.Add(time.Microsecond), limit: 3},
		{name: "since after everything", since: day0.AddDate(0, 0, 1), limit: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, r := range records {
				if !r.CreatedAt.Before(tt.since) {
					want = append(want, r.ID)
				}
			}
			slices.SortFunc(want, func(a, b string) int {
				if c := byID[b].CreatedAt.Compare(byID[a].CreatedAt); c != 0 {
					return c
				}
				return strings.Compare(b, a)
			})

			var got []string
			for offset := 0; ; offset += tt.limit {
				page, total, err := s.List(ctx, store.ListQuery{Since: tt.since, Offset: offset, Limit: tt.limit})
				if err != nil {
					t.Fatalf("List(offset %d): %v", offset, err)
				}
				if total != int64(len(want)) {
					t.Errorf("List(offset %d) total: got %d, want %d", offset, total, len(want))
				}
				if len(page) > tt.limit {
					t.Fatalf("List(offset %d): got %d records, want at most %d", offset, len(page), tt.limit)
				}
				for _, lr := range page {
					got = append(got, lr.ID)
					checkListed(t, lr, byID[lr.ID])
				}
				if len(page) < tt.limit {
					break
				}
				if offset > len(records) {
					t.Fatalf("List does not stop: offset %d is past %d records", offset, len(records))
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("listed IDs:\n got %v\nwant %v", got, want)
			}
		})
	}

	// Limit 0 returns only the total.
	page, total, err := s.List(ctx, store.ListQuery{})
	if err != nil {
		t.Fatalf("List(limit 0): %v", err)
	}
	if len(page) != 0 || total != int64(len(records)) {
		t.Errorf("List(limit 0): got %d records and total %d, want 0 and %d", len(page), total, len(records))
	}
}

// testListInvalidQuery checks that a negative offset or limit is an error
// rather than a database-specific surprise.
func testListInvalidQuery(t *testing.T, s store.Store) {
	tests := []struct {
		name string
		q    store.ListQuery
	}{
		{name: "negative offset", q: store.ListQuery{Offset: -1, Limit: 10}},
		{name: "negative limit", q: store.ListQuery{Limit: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := s.List(context.Background(), tt.q); err == nil {
				t.Errorf("List(%+v): got no error, want one", tt.q)
			}
		})
	}
}

// testRecordNotFound checks that a missing ID returns an error matching
// store.ErrNotFound, which the admin API turns into 404.
func testRecordNotFound(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.Insert(ctx, []store.Record{SampleRecord(1, day0)}); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	for _, id := range []string{"missing", "", "sample-00000001 ", "SAMPLE-00000001"} {
		_, err := s.Record(ctx, id)
		if !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Record(%q): got error %v, want store.ErrNotFound", id, err)
		}
	}
}

// testBalance checks the balance before any was set, a round trip, and
// that a second SetBalance replaces the first.
func testBalance(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.Balance(ctx)
	if err != nil {
		t.Fatalf("Balance before SetBalance: %v", err)
	}
	if got != (store.Balance{}) {
		t.Errorf("Balance before SetBalance: got %+v, want the zero Balance", got)
	}

	tests := []struct {
		name string
		in   store.Balance
		want store.Balance
	}{
		{
			name: "first",
			in:   store.Balance{Amount: 12_345_670_000_000, Currency: "CNY", UpdatedAt: time.Date(2026, 3, 15, 9, 30, 0, 123_456_789, plus8)},
			want: store.Balance{Amount: 12_345_670_000_000, Currency: "CNY", UpdatedAt: time.Date(2026, 3, 15, 1, 30, 0, 123_456_000, time.UTC)},
		},
		{
			name: "replaced",
			in:   store.Balance{Amount: math.MaxInt64, Currency: "USD", UpdatedAt: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
			want: store.Balance{Amount: math.MaxInt64, Currency: "USD", UpdatedAt: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)},
		},
		{
			name: "negative",
			in:   store.Balance{Amount: -5, Currency: "USD", UpdatedAt: time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)},
			want: store.Balance{Amount: -5, Currency: "USD", UpdatedAt: time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.SetBalance(ctx, tt.in, "conformance"); err != nil {
				t.Fatalf("SetBalance: %v", err)
			}
			got, err := s.Balance(ctx)
			if err != nil {
				t.Fatalf("Balance: %v", err)
			}
			if got != tt.want {
				t.Errorf("Balance: got %+v, want %+v", got, tt.want)
			}
		})
	}

	// A zero UpdatedAt would read back as "never set", so it becomes now.
	before := time.Now().Add(-time.Second)
	if err := s.SetBalance(ctx, store.Balance{Amount: 1, Currency: "USD"}, "conformance"); err != nil {
		t.Fatalf("SetBalance(zero UpdatedAt): %v", err)
	}
	got, err = s.Balance(ctx)
	if err != nil {
		t.Fatalf("Balance: %v", err)
	}
	if got.UpdatedAt.Before(before) || got.UpdatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("Balance.UpdatedAt after SetBalance with zero time: got %v, want about now", got.UpdatedAt)
	}
}

// testAuditBalance checks that each SetBalance adds one audit entry with
// the token name, the balance it replaced and the new one, because the
// audit is the only record of who changed the money an admin sees.
func testAuditBalance(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := store.Balance{Amount: 25_000_000_000_000, Currency: "USD", UpdatedAt: day0}
	second := store.Balance{Amount: 1_500_000_000_000, Currency: "USD", UpdatedAt: day0.Add(time.Hour)}
	if err := s.SetBalance(ctx, first, "ops-alice"); err != nil {
		t.Fatalf("SetBalance(first): %v", err)
	}
	if err := s.SetBalance(ctx, second, "ci\x00-bot"); err != nil {
		t.Fatalf("SetBalance(second): %v", err)
	}

	entries, total, err := s.Audit(ctx, store.AuditQuery{Limit: 10})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if total != 2 || len(entries) != 2 {
		t.Fatalf("Audit: got %d entries of %d, want 2 of 2", len(entries), total)
	}
	firstJSON := `{"balance":25,"currency":"USD","updated_at":"` + day0.Format(time.RFC3339Nano) + `"}`
	secondJSON := `{"balance":1.5,"currency":"USD","updated_at":"` + day0.Add(time.Hour).Format(time.RFC3339Nano) + `"}`
	want := []store.AuditEntry{
		{CreatedAt: day0.Add(time.Hour), TokenName: "ci-bot", Action: store.AuditSetBalance, OldValue: firstJSON, NewValue: secondJSON},
		{CreatedAt: day0, TokenName: "ops-alice", Action: store.AuditSetBalance, OldValue: "null", NewValue: firstJSON},
	}
	for i := range want {
		got := entries[i]
		got.ID = 0
		if got != want[i] {
			t.Errorf("entry %d:\ngot  %+v\nwant %+v", i, got, want[i])
		}
	}
	if entries[0].ID <= entries[1].ID {
		t.Errorf("entry ids: got %d then %d, want the newer entry to have the larger id", entries[0].ID, entries[1].ID)
	}
}

// testDailyLimit checks the daily limit before any was set, a round trip,
// its audit entries, and that it is kept apart from the balance.
func testDailyLimit(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.DailyLimit(ctx)
	if err != nil {
		t.Fatalf("DailyLimit before SetDailyLimit: %v", err)
	}
	if got != (store.Balance{}) {
		t.Errorf("DailyLimit before SetDailyLimit: got %+v, want the zero value", got)
	}

	first := store.Balance{Amount: 10_000_000_000_000, Currency: "USD", UpdatedAt: day0}
	second := store.Balance{Amount: 0, Currency: "USD", UpdatedAt: day0.Add(time.Minute)}
	for _, limit := range []store.Balance{first, second} {
		if err := s.SetDailyLimit(ctx, limit, "ops"); err != nil {
			t.Fatalf("SetDailyLimit(%s): %v", limit.Amount, err)
		}
	}
	if got, err = s.DailyLimit(ctx); err != nil || got != second {
		t.Errorf("DailyLimit: got %+v, %v; want %+v", got, err, second)
	}
	if b, err := s.Balance(ctx); err != nil || !b.UpdatedAt.IsZero() {
		t.Errorf("Balance after SetDailyLimit: got %+v, %v; want none set", b, err)
	}

	entries, _, err := s.Audit(ctx, store.AuditQuery{Limit: 10})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	firstJSON := `{"daily_limit":10,"currency":"USD","updated_at":"` + day0.Format(time.RFC3339Nano) + `"}`
	want := []string{
		store.AuditSetDailyLimit + " " + firstJSON + ` {"daily_limit":0,"currency":"USD","updated_at":"` + day0.Add(time.Minute).Format(time.RFC3339Nano) + `"}`,
		store.AuditSetDailyLimit + " null " + firstJSON,
	}
	var gotEntries []string
	for _, e := range entries {
		gotEntries = append(gotEntries, e.Action+" "+e.OldValue+" "+e.NewValue)
	}
	if !slices.Equal(gotEntries, want) {
		t.Errorf("audit entries:\ngot  %q\nwant %q", gotEntries, want)
	}
}

// testAuditPaging checks newest-first order, offsets and the total, and
// that an invalid query is rejected.
func testAuditPaging(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 5 {
		b := store.Balance{Amount: pricing.Money(i), Currency: "USD", UpdatedAt: day0.Add(time.Duration(i) * time.Minute)}
		if err := s.SetBalance(ctx, b, fmt.Sprintf("token-%d", i)); err != nil {
			t.Fatalf("SetBalance %d: %v", i, err)
		}
	}
	tests := []struct {
		name  string
		q     store.AuditQuery
		names []string
	}{
		{"first page", store.AuditQuery{Limit: 2}, []string{"token-4", "token-3"}},
		{"last page", store.AuditQuery{Offset: 4, Limit: 2}, []string{"token-0"}},
		{"past the end", store.AuditQuery{Offset: 10, Limit: 2}, nil},
		{"count only", store.AuditQuery{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, total, err := s.Audit(ctx, tt.q)
			if err != nil {
				t.Fatalf("Audit: %v", err)
			}
			if total != 5 {
				t.Errorf("total: got %d, want 5", total)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.TokenName)
			}
			if !slices.Equal(names, tt.names) {
				t.Errorf("token names: got %v, want %v", names, tt.names)
			}
		})
	}
	if _, _, err := s.Audit(ctx, store.AuditQuery{Offset: -1}); err == nil {
		t.Error("Audit with offset -1: got no error, want one")
	}
}

// testConcurrentInserts runs batches from several goroutines at once, part
// of them sharing IDs in different orders, as replicas replaying the same
// batch would. Every call must be stored once, with no lost batch and no
// deadlock.
func testConcurrentInserts(t *testing.T, s store.Store) {
	const (
		writers          = 8
		batchesPerWriter = 5
		batchSize        = 20
		shared           = 30
	)
	ctx := context.Background()
	sharedRecords := make([]store.Record, shared)
	for i := range sharedRecords {
		sharedRecords[i] = SampleRecord(1_000_000+i, day0.Add(time.Duration(i)*time.Second))
	}

	var wg sync.WaitGroup
	errs := make(chan error, writers*(batchesPerWriter+1))
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for b := range batchesPerWriter {
				batch := make([]store.Record, batchSize)
				for i := range batch {
					n := (w*batchesPerWriter+b)*batchSize + i
					batch[i] = SampleRecord(n, day0.Add(time.Duration(n)*time.Millisecond))
				}
				if err := s.Insert(ctx, batch); err != nil {
					errs <- fmt.Errorf("writer %d batch %d: %w", w, b, err)
				}
			}
			mine := slices.Clone(sharedRecords)
			rng.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
			if err := s.Insert(ctx, mine); err != nil {
				errs <- fmt.Errorf("writer %d shared batch: %w", w, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	want := int64(writers*batchesPerWriter*batchSize + shared)
	if n := countRecords(t, s); n != want {
		t.Errorf("record count: got %d, want %d", n, want)
	}
	st, err := s.Stats(ctx, time.Time{})
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.TotalCalls != want {
		t.Errorf("Stats.TotalCalls: got %d, want %d", st.TotalCalls, want)
	}
}

// testCanceledContext calls every method with a canceled context. Each
// must return an error instead of blocking or acting, and the canceled
// Insert must store nothing.
func testCanceledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := []struct {
		name string
		call func() error
	}{
		{"Insert", func() error { return s.Insert(ctx, []store.Record{SampleRecord(1, day0)}) }},
		{"Stats", func() error { _, err := s.Stats(ctx, time.Time{}); return err }},
		{"Totals", func() error { _, err := s.Totals(ctx, time.Time{}, day0); return err }},
		{"List", func() error { _, _, err := s.List(ctx, store.ListQuery{Limit: 10}); return err }},
		{"Record", func() error { _, err := s.Record(ctx, "sample-00000001"); return err }},
		{"Balance", func() error { _, err := s.Balance(ctx); return err }},
		{"SetBalance", func() error {
			return s.SetBalance(ctx, store.Balance{Amount: 1, Currency: "USD", UpdatedAt: day0}, "conformance")
		}},
		{"Audit", func() error { _, _, err := s.Audit(ctx, store.AuditQuery{Limit: 10}); return err }},
		{"DailyLimit", func() error { _, err := s.DailyLimit(ctx); return err }},
		{"SetDailyLimit", func() error {
			return s.SetDailyLimit(ctx, store.Balance{Amount: 1, Currency: "USD", UpdatedAt: day0}, "conformance")
		}},
		{"Ping", func() error { return s.Ping(ctx) }},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); err == nil {
				t.Errorf("%s with a canceled context: got no error, want one", c.name)
			}
		})
	}

	if n := countRecords(t, s); n != 0 {
		t.Errorf("records after canceled Insert: got %d, want 0", n)
	}
	b, err := s.Balance(context.Background())
	if err != nil {
		t.Fatalf("Balance: %v", err)
	}
	if !b.UpdatedAt.IsZero() {
		t.Errorf("Balance after canceled SetBalance: got %+v, want none", b)
	}
}

// countRecords returns the number of stored records, through List.
func countRecords(t *testing.T, s store.Store) int64 {
	t.Helper()
	_, total, err := s.List(context.Background(), store.ListQuery{})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return total
}

// amounts builds pricing.Amounts from currency, value pairs.
func amounts(pairs ...any) pricing.Amounts {
	a := pricing.NewAmounts()
	for i := 0; i+1 < len(pairs); i += 2 {
		a.Add(pairs[i].(string), pairs[i+1].(*big.Int))
	}
	return a
}

// checkRecord reports each field of got that differs from want. Long
// strings are shortened in the message.
func checkRecord(t *testing.T, got, want store.Record) {
	t.Helper()
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		name := gv.Type().Field(i).Name
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if gt, ok := g.(time.Time); ok {
			wt := w.(time.Time)
			if !gt.Equal(wt) || gt.Location() != time.UTC {
				t.Errorf("%s: got %v, want %v in UTC", name, gt, wt.UTC())
			}
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: got %s, want %s", name, shorten(g), shorten(w))
		}
	}
}

// checkListed compares a listed record with the stored one: every field
// but the bodies, and the body flags.
func checkListed(t *testing.T, got store.ListedRecord, stored store.Record) {
	t.Helper()
	want := stored
	want.RequestData, want.ResponseData = "", ""
	checkRecord(t, got.Record, want)
	if got.HasRequestData != (stored.RequestData != "") {
		t.Errorf("%s HasRequestData: got %v, want %v", stored.ID, got.HasRequestData, stored.RequestData != "")
	}
	if got.HasResponseData != (stored.ResponseData != "") {
		t.Errorf("%s HasResponseData: got %v, want %v", stored.ID, got.HasResponseData, stored.ResponseData != "")
	}
}

func shorten(v any) string {
	s := fmt.Sprintf("%#v", v)
	if len(s) > 200 {
		return fmt.Sprintf("%s...(%d bytes)", s[:200], len(s))
	}
	return s
}

// checkStats compares every field of got with want.
func checkStats(t *testing.T, got, want store.Stats) {
	t.Helper()
	ints := []struct {
		name      string
		got, want int64
	}{
		{"TotalCalls", got.TotalCalls, want.TotalCalls},
		{"SuccessfulCalls", got.SuccessfulCalls, want.SuccessfulCalls},
		{"FailedCalls", got.FailedCalls, want.FailedCalls},
		{"UnpricedCalls", got.UnpricedCalls, want.UnpricedCalls},
		{"EstimatedCalls", got.EstimatedCalls, want.EstimatedCalls},
		{"PromptTokens", got.PromptTokens, want.PromptTokens},
		{"CompletionTokens", got.CompletionTokens, want.CompletionTokens},
		{"TotalTokens", got.TotalTokens, want.TotalTokens},
		{"PromptCacheHitTokens", got.PromptCacheHitTokens, want.PromptCacheHitTokens},
		{"PromptCacheMissTokens", got.PromptCacheMissTokens, want.PromptCacheMissTokens},
		{"ReasoningTokens", got.ReasoningTokens, want.ReasoningTokens},
	}
	for _, f := range ints {
		if f.got != f.want {
			t.Errorf("Stats.%s: got %d, want %d", f.name, f.got, f.want)
		}
	}
	if math.Abs(got.AvgProcessingTimeMillis-want.AvgProcessingTimeMillis) > 1e-9 || math.IsNaN(got.AvgProcessingTimeMillis) {
		t.Errorf("Stats.AvgProcessingTimeMillis: got %v, want %v", got.AvgProcessingTimeMillis, want.AvgProcessingTimeMillis)
	}
	checkAmounts(t, "Stats.Cost", got.Cost, want.Cost)
	checkAmounts(t, "Stats.EstimatedCost", got.EstimatedCost, want.EstimatedCost)
	checkDays(t, got.Days, want.Days)

	if len(got.Models) != len(want.Models) {
		t.Errorf("Stats.Models: got %s, want %s", formatModels(got.Models), formatModels(want.Models))
		return
	}
	for i := range want.Models {
		g, w := got.Models[i], want.Models[i]
		if g.Model != w.Model || g.Calls != w.Calls || g.UnpricedCalls != w.UnpricedCalls || !amountsEqual(g.Cost, w.Cost) {
			t.Errorf("Stats.Models[%d]: got %s, want %s", i, formatModels(got.Models[i:i+1]), formatModels(want.Models[i:i+1]))
		}
	}
}

func checkDays(t *testing.T, got, want []store.DayStats) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("Stats.Days: got %s, want %s", formatDays(got), formatDays(want))
		return
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Day != w.Day || g.Calls != w.Calls || g.UnpricedCalls != w.UnpricedCalls || !amountsEqual(g.Cost, w.Cost) {
			t.Errorf("Stats.Days[%d]: got %s, want %s", i, formatDays(got[i:i+1]), formatDays(want[i:i+1]))
		}
	}
}

func checkAmounts(t *testing.T, name string, got, want pricing.Amounts) {
	t.Helper()
	if !amountsEqual(got, want) {
		t.Errorf("%s: got %s, want %s", name, formatAmounts(got), formatAmounts(want))
	}
}

// amountsEqual reports whether a and b hold the same total for every
// currency; a missing currency counts as zero.
func amountsEqual(a, b pricing.Amounts) bool {
	for c := range a {
		if a.Get(c).Cmp(b.Get(c)) != 0 {
			return false
		}
	}
	for c := range b {
		if a.Get(c).Cmp(b.Get(c)) != 0 {
			return false
		}
	}
	return true
}

func formatAmounts(a pricing.Amounts) string {
	if a == nil {
		return "nil"
	}
	var parts []string
	for c, v := range a {
		parts = append(parts, c+" "+v.String())
	}
	slices.Sort(parts)
	return "{" + strings.Join(parts, ", ") + "}"
}

func formatDays(days []store.DayStats) string {
	var parts []string
	for _, d := range days {
		parts = append(parts, fmt.Sprintf("%s: %d calls, %d unpriced %s", d.Day, d.Calls, d.UnpricedCalls, formatAmounts(d.Cost)))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

func formatModels(models []store.ModelStats) string {
	var parts []string
	for _, m := range models {
		parts = append(parts, fmt.Sprintf("%s: %d calls, %d unpriced %s", m.Model, m.Calls, m.UnpricedCalls, formatAmounts(m.Cost)))
	}
	return "[" + strings.Join(parts, "; ") + "]"
}
