package store

import (
	"cmp"
	"math/big"
	"slices"

	"github.com/deepmeter/deepmeter/pricing"
)

// statsGroup is one row of the grouped Stats query: the records of one
// UTC day, served model and currency. Both backends read their groups in
// one scan and buildStats folds them, so totals, days and models always
// agree with each other.
type statsGroup struct {
	day      string // YYYY-MM-DD, UTC
	model    string
	currency string

	calls, successful, unpriced, estimated int64
	processingTimeMillis                   int64 // sum

	promptTokens, completionTokens, totalTokens int64
	promptCacheHitTokens, promptCacheMissTokens int64
	reasoningTokens                             int64
	cost, estimatedCost                         *big.Int // nil when no record of the group is priced
}

// buildStats folds groups into Stats.
func buildStats(groups []statsGroup) Stats {
	s := Stats{Cost: pricing.NewAmounts(), EstimatedCost: pricing.NewAmounts()}
	days := map[string]*DayStats{}
	models := map[string]*ModelStats{}
	var processingTime big.Int

	for _, g := range groups {
		s.TotalCalls += g.calls
		s.SuccessfulCalls += g.successful
		s.UnpricedCalls += g.unpriced
		s.EstimatedCalls += g.estimated
		processingTime.Add(&processingTime, big.NewInt(g.processingTimeMillis))
		s.PromptTokens += g.promptTokens
		s.CompletionTokens += g.completionTokens
		s.TotalTokens += g.totalTokens
		s.PromptCacheHitTokens += g.promptCacheHitTokens
		s.PromptCacheMissTokens += g.promptCacheMissTokens
		s.ReasoningTokens += g.reasoningTokens

		d := days[g.day]
		if d == nil {
			d = &DayStats{Day: g.day, Cost: pricing.NewAmounts()}
			days[g.day] = d
		}
		m := models[g.model]
		if m == nil {
			m = &ModelStats{Model: g.model, Cost: pricing.NewAmounts()}
			models[g.model] = m
		}
		d.Calls += g.calls
		m.Calls += g.calls
		d.UnpricedCalls += g.unpriced
		m.UnpricedCalls += g.unpriced

		if g.cost != nil {
			s.Cost.Add(g.currency, g.cost)
			d.Cost.Add(g.currency, g.cost)
			m.Cost.Add(g.currency, g.cost)
		}
		if g.estimatedCost != nil {
			s.EstimatedCost.Add(g.currency, g.estimatedCost)
		}
	}

	s.FailedCalls = s.TotalCalls - s.SuccessfulCalls
	if s.TotalCalls > 0 {
		avg := new(big.Rat).SetFrac(&processingTime, big.NewInt(s.TotalCalls))
		s.AvgProcessingTimeMillis, _ = avg.Float64()
	}

	s.Days = make([]DayStats, 0, len(days))
	for _, d := range days {
		s.Days = append(s.Days, *d)
	}
	slices.SortFunc(s.Days, func(a, b DayStats) int { return cmp.Compare(a.Day, b.Day) })

	s.Models = make([]ModelStats, 0, len(models))
	for _, m := range models {
		s.Models = append(s.Models, *m)
	}
	slices.SortFunc(s.Models, func(a, b ModelStats) int {
		if c := cmp.Compare(b.Calls, a.Calls); c != 0 {
			return c
		}
		return cmp.Compare(a.Model, b.Model)
	})
	return s
}

// splitSum combines the two halves of an SQLite money sum, high*divisor +
// low, where high sums cost / splitDivisor and low sums cost % splitDivisor.
// It returns nil when high is nil, which means no priced row was summed.
func splitSum(high, low *int64) *big.Int {
	if high == nil {
		return nil
	}
	v := new(big.Int).Mul(big.NewInt(*high), big.NewInt(splitDivisor))
	if low != nil {
		v.Add(v, big.NewInt(*low))
	}
	return v
}

// splitDivisor splits each SQLite cost into cost / splitDivisor and
// cost % splitDivisor before summing, because SQLite's SUM fails on int64
// overflow. The high half of a cost is at most about 9.2e12, so the high
// sum overflows only past a million rows that each cost the int64 maximum.
// A realistic cost, under one currency unit (10^12), adds under 10^6.
const splitDivisor = 1_000_000
