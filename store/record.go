package store

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/deepmeter/deepmeter/pricing"
)

// usageColumns lists the api_usage columns in the order both backends
// write and read them. The bodies come last so List can leave them out.
var usageColumns = []string{
	"id", "created_at", "endpoint", "upstream_path",
	"requested_model", "model", "stream", "status_code",
	"prompt_tokens", "completion_tokens", "total_tokens",
	"prompt_cache_hit_tokens", "prompt_cache_miss_tokens", "reasoning_tokens", "usage_source",
	"ttfb_ms", "processing_time_ms",
	"cost", "currency",
	"price_model", "price_effective_from", "price_hit", "price_miss", "price_output",
	"success", "error_message", "flags", "message",
	"user_id", "page_tab",
	"request_data", "response_data",
}

// listColumns selects every column but the bodies, and whether each body
// is non-empty.
var listColumns = strings.Join(usageColumns[:len(usageColumns)-2], ", ") +
	", request_data <> '', response_data <> ''"

// prepareBatch returns the records to write: the first record of each ID,
// sorted by ID, with times in UTC at microsecond precision, flags sorted
// without repeats, Cost zero when unpriced, and every string made valid
// UTF-8 without NUL bytes. Sorting by ID makes concurrent Postgres batches
// that share IDs take row locks in the same order, so one waits for the
// other instead of deadlocking.
// The caller's records are not modified.
func prepareBatch(records []Record) []Record {
	seen := make(map[string]bool, len(records))
	out := make([]Record, 0, len(records))
	for _, r := range records {
		r = cleanRecord(r)
		if seen[r.ID] {
			continue
		}
		seen[r.ID] = true
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// cleanRecord sanitizes r for storage. Postgres TEXT rejects NUL bytes and
// invalid UTF-8, and one such string would fail the whole batch. So both
// backends replace invalid bytes with U+FFFD and drop NUL bytes, and return
// the same strings.
func cleanRecord(r Record) Record {
	for _, s := range []*string{
		&r.ID, &r.Endpoint, &r.UpstreamPath, &r.RequestedModel, &r.Model,
		&r.UsageSource, &r.Currency, &r.PriceModel, &r.ErrorMessage, &r.Message,
		&r.RequestData, &r.ResponseData, &r.UserID, &r.PageTab,
	} {
		*s = cleanString(*s)
	}
	r.CreatedAt = storedTime(r.CreatedAt)
	r.PriceEffectiveFrom = storedTime(r.PriceEffectiveFrom)
	if !r.Priced {
		r.Cost = 0
	}
	r.Flags = cleanFlags(r.Flags)
	return r
}

// cleanString returns s as valid UTF-8 without NUL bytes.
func cleanString(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}

// cleanFlags returns flags sorted without repeats or empty names, and nil
// when none is left. A comma would split a flag when read back, so it is
// replaced by an underscore.
func cleanFlags(flags []string) []string {
	var out []string
	for _, f := range flags {
		f = strings.ReplaceAll(cleanString(f), ",", "_")
		if f != "" {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// joinFlags returns the flags column value.
func joinFlags(flags []string) string {
	return strings.Join(flags, ",")
}

// splitFlags parses the flags column value; it returns nil for "".
func splitFlags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// storedTime returns t as both backends store it: UTC, cut to whole
// microseconds. The zero time stays zero.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// checkListQuery rejects a negative offset or limit.
func checkListQuery(q ListQuery) error {
	if q.Offset < 0 || q.Limit < 0 {
		return fmt.Errorf("list records: invalid offset %d or limit %d: both must be 0 or more", q.Offset, q.Limit)
	}
	return nil
}

// cleanBalance returns b as stored. A zero UpdatedAt becomes the current
// time, because a zero UpdatedAt read back means no balance was ever set.
func cleanBalance(b Balance) Balance {
	b.Currency = cleanString(b.Currency)
	if b.UpdatedAt.IsZero() {
		b.UpdatedAt = time.Now()
	}
	b.UpdatedAt = storedTime(b.UpdatedAt)
	return b
}

// columnValues returns r's column values in usageColumns order, with times
// converted by timeValue. Cost and PriceEffectiveFrom are nil, which is
// NULL, when the record is unpriced or has no price date.
func columnValues(r *Record, timeValue func(time.Time) any) []any {
	var cost, priceFrom any
	if r.Priced {
		cost = int64(r.Cost)
	}
	if !r.PriceEffectiveFrom.IsZero() {
		priceFrom = timeValue(r.PriceEffectiveFrom)
	}
	return []any{
		r.ID, timeValue(r.CreatedAt), r.Endpoint, r.UpstreamPath,
		r.RequestedModel, r.Model, r.Stream, int64(r.StatusCode),
		r.PromptTokens, r.CompletionTokens, r.TotalTokens,
		r.PromptCacheHitTokens, r.PromptCacheMissTokens, r.ReasoningTokens, r.UsageSource,
		r.TTFBMillis, r.ProcessingTimeMillis,
		cost, r.Currency,
		r.PriceModel, priceFrom, int64(r.PriceHit), int64(r.PriceMiss), int64(r.PriceOutput),
		r.Success, r.ErrorMessage, joinFlags(r.Flags), r.Message,
		r.UserID, r.PageTab,
		r.RequestData, r.ResponseData,
	}
}

// recordScan holds the scan targets of the columns whose type differs from
// the Record field. T is the backend's time column type.
type recordScan[T any] struct {
	createdAt T
	cost      *int64
	priceFrom *T
	flags     string
}

// targets returns scan destinations for usageColumns, without the two
// bodies unless withBodies is set.
func (rs *recordScan[T]) targets(r *Record, withBodies bool) []any {
	dest := []any{
		&r.ID, &rs.createdAt, &r.Endpoint, &r.UpstreamPath,
		&r.RequestedModel, &r.Model, &r.Stream, &r.StatusCode,
		&r.PromptTokens, &r.CompletionTokens, &r.TotalTokens,
		&r.PromptCacheHitTokens, &r.PromptCacheMissTokens, &r.ReasoningTokens, &r.UsageSource,
		&r.TTFBMillis, &r.ProcessingTimeMillis,
		&rs.cost, &r.Currency,
		&r.PriceModel, &rs.priceFrom, (*int64)(&r.PriceHit), (*int64)(&r.PriceMiss), (*int64)(&r.PriceOutput),
		&r.Success, &r.ErrorMessage, &rs.flags, &r.Message,
		&r.UserID, &r.PageTab,
	}
	if withBodies {
		dest = append(dest, &r.RequestData, &r.ResponseData)
	}
	return dest
}

// finish moves the scanned values into r, converting times with toTime.
func (rs *recordScan[T]) finish(r *Record, toTime func(T) time.Time) {
	r.CreatedAt = toTime(rs.createdAt)
	if rs.cost != nil {
		r.Cost, r.Priced = pricing.Money(*rs.cost), true
	}
	if rs.priceFrom != nil {
		r.PriceEffectiveFrom = toTime(*rs.priceFrom)
	}
	r.Flags = splitFlags(rs.flags)
}

// rowScanner is the part of pgx.Rows and *sql.Rows that readListed uses.
type rowScanner interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// readListed reads the rows of a List query, which selects listColumns.
func readListed[T any](rows rowScanner, toTime func(T) time.Time) ([]ListedRecord, error) {
	page := []ListedRecord{}
	for rows.Next() {
		var lr ListedRecord
		var scan recordScan[T]
		dest := append(scan.targets(&lr.Record, false), &lr.HasRequestData, &lr.HasResponseData)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read listed record: %w", err)
		}
		scan.finish(&lr.Record, toTime)
		page = append(page, lr)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list records: %w", err)
	}
	return page, nil
}
