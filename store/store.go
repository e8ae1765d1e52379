// Package store keeps deepmeter's records and balance. Store is the contract
// every backend meets; Postgres (through pgx) and SQLite (modernc.org/sqlite,
// no cgo) implement it and pass one conformance suite, storetest.Run. Open
// picks the backend from a database URL. A Store is safe for concurrent use.
//
// Database URLs:
//
//	postgres://user:password@host:5432/dbname?sslmode=disable
//	postgresql://user:password@host:5432/dbname
//	sqlite:/var/lib/deepmeter/deepmeter.db   an absolute path
//	sqlite:data/deepmeter.db                 relative to the working directory
//	sqlite:///var/lib/deepmeter/deepmeter.db the same as sqlite:/var/...
//
// A Postgres URL takes any pgx connection parameter and the pgxpool pool_*
// parameters. Other query parameters, such as search_path, are sent to the
// server as run-time settings. The directory of an SQLite file must exist.
// Migrate creates or upgrades the schema and Open does not, so a program
// calls Migrate once at startup, then Open. RedactURL hides the password
// of a URL for logs.
//
// Postgres writes each batch with COPY into a temporary table and then
// INSERT ... ON CONFLICT DO NOTHING, so a replayed batch is never counted
// twice. SQLite runs in WAL mode with one writer connection, so writes are
// serialized in Go and reads run beside them. Both backends keep times in
// UTC at microsecond precision and sum money exactly into pricing.Amounts.
// Before storing, both replace invalid UTF-8 with U+FFFD and drop NUL bytes
// from every string, because Postgres TEXT rejects them.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/deepmeter/deepmeter/pricing"
)

// ErrNotFound is returned by Store.Record when no record has the given id.
var ErrNotFound = errors.New("record not found")

// Usage sources: where a record's token counts come from.
const (
	UsageReported  = "reported"  // the upstream's usage object
	UsageEstimated = "estimated" // counted from the text the proxy saw
	UsageNone      = "none"      // no usage and nothing to estimate from
)

// Flags a record can carry. Record.Flags holds them sorted, without repeats.
const (
	// FlagClientAborted: the client hung up before the response ended.
	FlagClientAborted = "client_aborted"
	// FlagUsageMissing: the response ended without a usage object.
	FlagUsageMissing = "usage_missing"
	// FlagUsageMismatch: prompt_cache_hit_tokens + prompt_cache_miss_tokens
	// differs from prompt_tokens in the upstream's usage.
	FlagUsageMismatch = "usage_mismatch"
	// FlagUsageInvalid: the response's usage object lacked prompt_tokens
	// or completion_tokens (input_tokens or output_tokens in Anthropic's
	// shape), or held a count that is not an integer from 0 to 2^40. The
	// usage is treated as missing, so the tokens are estimated.
	FlagUsageInvalid = "usage_invalid"
	// FlagTimedOut: the upstream made no progress within the idle timeout.
	FlagTimedOut = "timed_out"
	// FlagDecodeFailed: the response body could not be decoded (gzip or
	// deflate) or parsed, so usage could not be read from it.
	FlagDecodeFailed = "decode_failed"
	// FlagRequestTruncated and FlagResponseTruncated: the stored body was
	// cut at the storage cap.
	FlagRequestTruncated  = "request_truncated"
	FlagResponseTruncated = "response_truncated"
	// FlagUnpriced: no price entry matched the model, so Cost is unknown.
	FlagUnpriced = "unpriced"
)

// Record is one metered call. Field names map to snake_case columns of
// api_usage and keys of the admin API, as the comments give.
type Record struct {
	ID           string    // id: unique, also sent to the client as X-DeepMeter-Request-Id
	CreatedAt    time.Time // created_at: request start, UTC, microsecond precision
	Endpoint     string    // endpoint: the caller's feature route, or the upstream path
	UpstreamPath string    // upstream_path: the path sent upstream, such as /chat/completions

	RequestedModel string // requested_model: the request body's model
	Model          string // model: the served model from the response, else the requested one
	Stream         bool   // stream
	StatusCode     int    // status_code: the status sent to the client

	PromptTokens          int64  // prompt_tokens
	CompletionTokens      int64  // completion_tokens, reasoning included
	TotalTokens           int64  // total_tokens
	PromptCacheHitTokens  int64  // prompt_cache_hit_tokens
	PromptCacheMissTokens int64  // prompt_cache_miss_tokens
	ReasoningTokens       int64  // reasoning_tokens, a part of CompletionTokens
	UsageSource           string // usage_source: UsageReported, UsageEstimated or UsageNone

	TTFBMillis           int64 // ttfb_ms: request start to the first response byte that carries content
	ProcessingTimeMillis int64 // processing_time_ms: request start to the last byte

	// Cost is the call's cost in Currency. It is meaningful only when
	// Priced is true; an unpriced record stores NULL and carries FlagUnpriced.
	Cost     pricing.Money // cost
	Priced   bool          // false when no price entry matched
	Currency string        // currency: "USD" or "CNY"; empty when unpriced

	// The price the call was charged at, so a stored cost can be checked
	// later. Rates are Money per token, which is the same number as
	// millionths of a currency unit per 1M tokens.
	PriceModel         string        // price_model: the price entry's model key
	PriceEffectiveFrom time.Time     // price_effective_from: zero when unpriced
	PriceHit           pricing.Money // price_hit: per cache-hit prompt token
	PriceMiss          pricing.Money // price_miss: per cache-miss prompt token
	PriceOutput        pricing.Money // price_output: per completion token

	Success      bool     // success: a 2xx status with a complete, readable response
	ErrorMessage string   // error_message: at most 500 characters
	Flags        []string // flags: sorted Flag* names, stored comma-separated

	// Message is the last user message for the records list: the content
	// of the last entry of messages, else prompt, else content, cut to 100
	// characters; "N/A" when there is none or the request is not JSON.
	Message string // message

	RequestData  string // request_data: valid UTF-8 without NUL bytes
	ResponseData string // response_data: assembled message, or the error body
	UserID       string // user_id
	PageTab      string // page_tab
}

// HasFlag reports whether r carries flag.
func (r *Record) HasFlag(flag string) bool {
	for _, f := range r.Flags {
		if f == flag {
			return true
		}
	}
	return false
}

// Balance is the account balance an admin last set. Amount is in Currency.
type Balance struct {
	Amount    pricing.Money
	Currency  string
	UpdatedAt time.Time // zero when no balance was ever set
}

// Totals sums priced records. Cost and EstimatedCost are per currency;
// EstimatedCost is the part of Cost whose tokens were estimated.
type Totals struct {
	Calls         int64
	Cost          pricing.Amounts
	EstimatedCost pricing.Amounts
}

// Stats summarizes the records created at or after a time.
type Stats struct {
	TotalCalls      int64
	SuccessfulCalls int64
	FailedCalls     int64
	UnpricedCalls   int64
	EstimatedCalls  int64 // records whose usage_source is estimated

	// AvgProcessingTimeMillis is the mean processing_time_ms, 0 with no calls.
	AvgProcessingTimeMillis float64

	PromptTokens          int64
	CompletionTokens      int64
	TotalTokens           int64
	PromptCacheHitTokens  int64
	PromptCacheMissTokens int64
	ReasoningTokens       int64

	Cost          pricing.Amounts // per currency, priced records only
	EstimatedCost pricing.Amounts // the estimated part of Cost

	Days   []DayStats   // oldest first, only days with calls
	Models []ModelStats // most calls first, then by model name
}

// DayStats is one UTC day of Stats.
type DayStats struct {
	Day           string // YYYY-MM-DD, UTC
	Calls         int64
	UnpricedCalls int64 // calls left out of Cost because no price matched
	Cost          pricing.Amounts
}

// ModelStats is one served model of Stats.
type ModelStats struct {
	Model         string
	Calls         int64
	UnpricedCalls int64 // calls left out of Cost because no price matched
	Cost          pricing.Amounts
}

// ListQuery selects a page of records, newest first.
type ListQuery struct {
	Since  time.Time // created_at >= Since
	Offset int
	Limit  int
}

// Store is the persistence contract. Every method is safe for concurrent
// use. Times passed in may be in any location; stored times are UTC.
type Store interface {
	// Insert stores records in one batch and skips any whose ID is already
	// stored, so a replayed batch is never counted twice. On error nothing
	// of the batch is stored.
	Insert(ctx context.Context, records []Record) error

	// Stats summarizes records created at or after since.
	Stats(ctx context.Context, since time.Time) (Stats, error)

	// Totals sums records created in [from, to).
	Totals(ctx context.Context, from, to time.Time) (Totals, error)

	// List returns a page of records, newest first (ties by ID), without
	// RequestData and ResponseData but with HasRequestData and
	// HasResponseData set, and the count of all records matching q.Since.
	List(ctx context.Context, q ListQuery) ([]ListedRecord, int64, error)

	// Record returns one record with its bodies, or ErrNotFound.
	Record(ctx context.Context, id string) (Record, error)

	// Balance returns the balance last set; its UpdatedAt is zero when none
	// was ever set.
	Balance(ctx context.Context) (Balance, error)

	// SetBalance replaces the balance and sets UpdatedAt to b.UpdatedAt.
	// In the same transaction it adds an AuditSetBalance entry at
	// b.UpdatedAt with the previous and the new balance, naming the admin
	// token tokenName.
	SetBalance(ctx context.Context, b Balance, tokenName string) error

	// DailyLimit returns the daily limit last set through SetDailyLimit;
	// its UpdatedAt is zero when none was ever set. Amount 0 means no
	// limit.
	DailyLimit(ctx context.Context) (Balance, error)

	// SetDailyLimit replaces the daily limit and adds an
	// AuditSetDailyLimit entry, as SetBalance does for the balance.
	SetDailyLimit(ctx context.Context, limit Balance, tokenName string) error

	// Audit returns a page of audit entries, newest first (ties by ID),
	// and the count of all entries.
	Audit(ctx context.Context, q AuditQuery) ([]AuditEntry, int64, error)

	// Ping checks that the database answers and that the api_usage table
	// can be read. The SQLite store also fails when its file was deleted
	// or replaced since Open.
	Ping(ctx context.Context) error

	// Close releases the connections.
	Close() error
}

// ListedRecord is a record in a list page: every column but the bodies.
type ListedRecord struct {
	Record
	HasRequestData  bool
	HasResponseData bool
}
