package pricing

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"math/bits"
	"time"
)

// ErrInvalidUsage is returned, wrapped, by Price.Cost when a token count is
// negative.
var ErrInvalidUsage = errors.New("invalid usage")

// ErrCostOverflow is returned, wrapped, by Price.Cost when the cost does not
// fit in Money.
var ErrCostOverflow = errors.New("cost overflows Money")

// Rates are the prices of one token in Money. A rate is the price per 1M
// tokens in millionths of a currency unit: 0.28 USD per 1M tokens is 280,000.
type Rates struct {
	Hit    Money // per prompt token read from the context cache
	Miss   Money // per prompt token not read from the cache
	Output Money // per completion token, reasoning tokens included
}

// Window is a recurring time of day with its own rates, such as off-peak
// hours. Times are UTC. An occurrence starts on each of Days at Start and
// ends at End on the same day, or at End on the next day when End <= Start.
// An occurrence that crosses midnight belongs to the day it starts on:
// 16:30-00:30 on Monday covers Tuesday 00:10.
type Window struct {
	Days  []time.Weekday
	Start time.Duration // offset from 00:00 UTC, in [0, 24h]
	End   time.Duration // offset from 00:00 UTC, in [0, 24h]
	Rates Rates
	Name  string // reported as Price.Window, such as "off-peak" or "peak"
}

// Entry is the price of a model from an instant until the next entry for the
// same model name takes effect.
type Entry struct {
	Model         string   // the key reported as Price.Model; matched case-insensitively
	Aliases       []string // other model names priced by this entry
	EffectiveFrom time.Time
	Currency      string // ISO 4217 code, such as USD or CNY
	Rates         Rates  // base rates, outside every window
	Windows       []Window
	Source        string // origin of the price, for people reading the table
}

// Price is the price that applies to one call.
type Price struct {
	Model         string // the matching entry's Model
	EffectiveFrom time.Time
	Currency      string
	Rates         Rates
	Window        string // name of the window that applied, "" for the base rates
}

// Usage is the token counts of one call as the upstream reported them.
type Usage struct {
	PromptTokens     int64
	CacheHitTokens   int64
	CacheMissTokens  int64
	CompletionTokens int64 // reasoning tokens included
	// HasCacheSplit is false when the upstream did not report the cache
	// hit and miss counts. Then every prompt token is priced as a miss.
	HasCacheSplit bool
}

// Cost returns the exact cost of u at p's rates: hit tokens times the hit
// rate, plus miss tokens times the miss rate, plus completion tokens times
// the output rate. Reasoning tokens are part of the completion tokens and are
// not charged again, and there is no charge for writing to the cache. When
// u.HasCacheSplit is true, PromptTokens is not used.
//
// Cost returns an error wrapping ErrInvalidUsage when a count is negative,
// and one wrapping ErrCostOverflow when the cost does not fit in Money. A
// negative rate, which NewTable never produces, is also an error.
func (p Price) Cost(u Usage) (Money, error) {
	counts := [...]struct {
		name string
		n    int64
	}{
		{"prompt_tokens", u.PromptTokens},
		{"cache_hit_tokens", u.CacheHitTokens},
		{"cache_miss_tokens", u.CacheMissTokens},
		{"completion_tokens", u.CompletionTokens},
	}
	for _, c := range counts {
		if c.n < 0 {
			return 0, fmt.Errorf("%w: %s is negative: %d", ErrInvalidUsage, c.name, c.n)
		}
	}

	hit, miss := u.CacheHitTokens, u.CacheMissTokens
	if !u.HasCacheSplit {
		hit, miss = 0, u.PromptTokens
	}
	terms := [...]struct {
		name string
		n    int64
		rate Money
	}{
		{"hit", hit, p.Rates.Hit},
		{"miss", miss, p.Rates.Miss},
		{"output", u.CompletionTokens, p.Rates.Output},
	}

	var sum uint64
	for _, t := range terms {
		if t.rate < 0 {
			return 0, fmt.Errorf("price of %s: %s rate is negative: %s", p.Model, t.name, t.rate)
		}
		hi, lo := bits.Mul64(uint64(t.n), uint64(t.rate))
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("%w: %d %s tokens at %s per token", ErrCostOverflow, t.n, t.name, t.rate)
		}
		var carry uint64
		sum, carry = bits.Add64(sum, lo, 0)
		if carry != 0 || sum > math.MaxInt64 {
			return 0, fmt.Errorf("%w: sum of the %s cost and the costs before it", ErrCostOverflow, t.name)
		}
	}
	return Money(sum), nil
}

// tokensPerRateUnit is the number of tokens a price is quoted for: prices
// are per 1M tokens, and a rate is per token.
const tokensPerRateUnit = 1_000_000

// ParseRate parses a price per 1M tokens in currency units, such as "0.28",
// into a per-token rate. The price may have at most 6 digits after the
// decimal point, because a rate of 1 Money per token is 0.000001 per 1M
// tokens.
func ParseRate(s string) (Money, error) {
	m, err := ParseMoney(s)
	if err != nil {
		return 0, err
	}
	if m%tokensPerRateUnit != 0 {
		return 0, fmt.Errorf("invalid price %q: at most 6 digits after the decimal point, because prices are per 1M tokens", s)
	}
	return m / tokensPerRateUnit, nil
}

// FormatRate formats a per-token rate as a price per 1M tokens in currency
// units, such as "0.28". It is the inverse of ParseRate.
func FormatRate(rate Money) string {
	v := big.NewInt(int64(rate))
	return formatScaled(v.Mul(v, big.NewInt(tokensPerRateUnit)))
}
