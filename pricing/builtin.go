package pricing

import (
	"fmt"
	"sync"
	"time"
)

// Sources of the built-in prices.
const (
	sourceDocs     = "DeepSeek API docs, Models & Pricing"
	sourceReported = "reported by third parties, not confirmed by DeepSeek; correct it with --prices"
)

// Builtin returns DeepSeek's price history in USD from 2024-08-02 on.
// Prices from 2026-04-24 on were
// reported by third parties and not confirmed by DeepSeek, and their
// entries' Source marks them as reported. The table is built once and shared.
func Builtin() *Table {
	return builtinTable()
}

var builtinTable = sync.OnceValue(func() *Table {
	t, err := NewTable(builtinEntries())
	if err != nil {
		panic(fmt.Sprintf("pricing: invalid built-in price table: %v", err))
	}
	return t
})

// builtinEntries lists the price history. Each model name follows its own
// chain of entries, so a model that became an alias of another keeps that
// alias in every later entry. deepseek-coder was merged into deepseek-chat
// and is priced as deepseek-chat throughout.
func builtinEntries() []Entry {
	allDays := []time.Weekday{time.Sunday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday}
	weekdays := []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
	chatNames := []string{"deepseek-chat", "deepseek-coder", "deepseek-reasoner"}

	return []Entry{
		// deepseek-chat became V3 on 2024-12-26 with list prices of
		// 0.07 / 0.27 / 1.10, but these prices stayed as a promotion until
		// 2025-02-08 16:00 UTC.
		{
			Model: "deepseek-chat", Aliases: []string{"deepseek-coder"},
			EffectiveFrom: utc("2024-08-02T00:00:00Z"), Currency: "USD",
			Rates: rates("0.014", "0.14", "0.28"), Source: sourceDocs,
		},
		{
			Model:         "deepseek-reasoner",
			EffectiveFrom: utc("2025-01-20T00:00:00Z"), Currency: "USD",
			Rates: rates("0.14", "0.55", "2.19"), Source: sourceDocs,
		},
		{
			Model: "deepseek-chat", Aliases: []string{"deepseek-coder"},
			EffectiveFrom: utc("2025-02-08T16:00:00Z"), Currency: "USD",
			Rates: rates("0.07", "0.27", "1.10"), Source: sourceDocs,
		},

		// Off-peak discount every day 16:30-00:30 UTC until 2025-09-05
		// 16:00: 50% off deepseek-chat, 75% off deepseek-reasoner.
		{
			Model: "deepseek-chat", Aliases: []string{"deepseek-coder"},
			EffectiveFrom: utc("2025-02-26T00:00:00Z"), Currency: "USD",
			Rates:   rates("0.07", "0.27", "1.10"),
			Windows: []Window{offPeak(allDays, rates("0.035", "0.135", "0.55"))},
			Source:  sourceDocs,
		},
		{
			Model:         "deepseek-reasoner",
			EffectiveFrom: utc("2025-02-26T00:00:00Z"), Currency: "USD",
			Rates:   rates("0.14", "0.55", "2.19"),
			Windows: []Window{offPeak(allDays, rates("0.035", "0.1375", "0.5475"))},
			Source: sourceDocs + "; off-peak rates are the exact 75% discount 0.035 / 0.1375 / 0.5475," +
				" which the page rounded to 0.035 / 0.135 / 0.55",
		},

		// V3.1, off-peak discount ended.
		{
			Model: "deepseek-chat", Aliases: []string{"deepseek-coder"},
			EffectiveFrom: utc("2025-09-05T16:00:00Z"), Currency: "USD",
			Rates: rates("0.07", "0.56", "1.68"), Source: sourceDocs,
		},
		{
			Model:         "deepseek-reasoner",
			EffectiveFrom: utc("2025-09-05T16:00:00Z"), Currency: "USD",
			Rates: rates("0.07", "0.56", "1.68"), Source: sourceDocs,
		},

		// V3.2.
		{
			Model: "deepseek-chat", Aliases: []string{"deepseek-coder"},
			EffectiveFrom: utc("2025-09-29T00:00:00Z"), Currency: "USD",
			Rates: rates("0.028", "0.28", "0.42"), Source: sourceDocs,
		},
		{
			Model:         "deepseek-reasoner",
			EffectiveFrom: utc("2025-09-29T00:00:00Z"), Currency: "USD",
			Rates: rates("0.028", "0.28", "0.42"), Source: sourceDocs,
		},

		// V4: deepseek-chat and deepseek-reasoner are served by
		// deepseek-v4-flash and priced as it. DeepSeek retired both names on
		// 2026-07-24 and has rejected them since, but late records still price.
		{
			Model: "deepseek-v4-flash", Aliases: chatNames,
			EffectiveFrom: utc("2026-04-24T00:00:00Z"), Currency: "USD",
			Rates: rates("0.028", "0.14", "0.28"), Source: sourceReported,
		},
		{
			Model:         "deepseek-v4-pro",
			EffectiveFrom: utc("2026-04-24T00:00:00Z"), Currency: "USD",
			Rates: rates("0.145", "1.74", "3.48"), Source: sourceReported,
		},
		{
			Model: "deepseek-v4-flash", Aliases: chatNames,
			EffectiveFrom: utc("2026-04-26T12:15:00Z"), Currency: "USD",
			Rates: rates("0.0028", "0.14", "0.28"), Source: sourceReported,
		},
		{
			Model:         "deepseek-v4-pro",
			EffectiveFrom: utc("2026-04-26T12:15:00Z"), Currency: "USD",
			Rates: rates("0.003625", "0.435", "0.87"), Source: sourceReported,
		},

		// Peak hours at twice the base (off-peak) rates: every day until
		// 2026-08-23 00:00 UTC, weekdays only from then on.
		{
			Model: "deepseek-v4-flash", Aliases: chatNames,
			EffectiveFrom: utc("2026-08-16T16:00:00Z"), Currency: "USD",
			Rates:   rates("0.007", "0.22", "0.66"),
			Windows: peak(allDays, rates("0.014", "0.44", "1.32")),
			Source:  sourceReported,
		},
		{
			Model:         "deepseek-v4-pro",
			EffectiveFrom: utc("2026-08-16T16:00:00Z"), Currency: "USD",
			Rates:   rates("0.022", "0.66", "1.98"),
			Windows: peak(allDays, rates("0.044", "1.32", "3.96")),
			Source:  sourceReported,
		},
		{
			Model: "deepseek-v4-flash", Aliases: chatNames,
			EffectiveFrom: utc("2026-08-23T00:00:00Z"), Currency: "USD",
			Rates:   rates("0.007", "0.22", "0.66"),
			Windows: peak(weekdays, rates("0.014", "0.44", "1.32")),
			Source:  sourceReported,
		},
		{
			Model:         "deepseek-v4-pro",
			EffectiveFrom: utc("2026-08-23T00:00:00Z"), Currency: "USD",
			Rates:   rates("0.022", "0.66", "1.98"),
			Windows: peak(weekdays, rates("0.044", "1.32", "3.96")),
			Source:  sourceReported,
		},

		// V4.1: deepseek-flash, with deepseek-v4-flash billed as it. From
		// 2026-09-14 04:00 UTC deepseek-v4-pro is served by deepseek-flash
		// and priced as it too.
		{
			Model: "deepseek-flash", Aliases: append([]string{"deepseek-v4-flash"}, chatNames...),
			EffectiveFrom: utc("2026-09-10T00:00:00Z"), Currency: "USD",
			Rates:   rates("0.003", "0.15", "0.60"),
			Windows: peak(weekdays, rates("0.006", "0.30", "1.20")),
			Source:  sourceReported,
		},
		{
			Model: "deepseek-flash", Aliases: append([]string{"deepseek-v4-flash", "deepseek-v4-pro"}, chatNames...),
			EffectiveFrom: utc("2026-09-14T04:00:00Z"), Currency: "USD",
			Rates:   rates("0.003", "0.15", "0.60"),
			Windows: peak(weekdays, rates("0.006", "0.30", "1.20")),
			Source:  sourceReported,
		},
	}
}

func offPeak(days []time.Weekday, r Rates) Window {
	return Window{Days: days, Start: 16*time.Hour + 30*time.Minute, End: 30 * time.Minute, Rates: r, Name: "off-peak"}
}

// peak returns the two daily peak windows, 01:00-04:00 and 06:00-10:00 UTC.
func peak(days []time.Weekday, r Rates) []Window {
	return []Window{
		{Days: days, Start: 1 * time.Hour, End: 4 * time.Hour, Rates: r, Name: "peak"},
		{Days: days, Start: 6 * time.Hour, End: 10 * time.Hour, Rates: r, Name: "peak"},
	}
}

// rates parses built-in prices per 1M tokens. It panics on a malformed
// literal, which a test would catch.
func rates(hit, miss, output string) Rates {
	return Rates{Hit: mustRate(hit), Miss: mustRate(miss), Output: mustRate(output)}
}

func mustRate(s string) Money {
	r, err := ParseRate(s)
	if err != nil {
		panic(fmt.Sprintf("pricing: built-in rate: %v", err))
	}
	return r
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(fmt.Sprintf("pricing: built-in time: %v", err))
	}
	return t
}
