// Package pricing prices metered DeepSeek calls.
//
// Amounts are Money: exact int64 counts of 10^-12 of a currency unit. A
// per-token rate in Money is the same number as the price per 1M tokens in
// millionths of a currency unit, so 0.28 USD per 1M tokens is a rate of
// 280,000. Costs are computed with integer arithmetic only and report
// overflow as an error instead of wrapping.
//
// A Table maps a model name and an instant to a Price: the entry in effect
// for that name at that instant, with the rates of a time-of-day window
// (such as off-peak or peak hours) when one applies. Tables come from
// Builtin (DeepSeek's price history), NewTable, or a YAML or JSON file read
// by Parse or LoadFile. A Table is immutable after construction and safe for
// concurrent use. A nil *Table and the zero Table contain no prices.
package pricing
