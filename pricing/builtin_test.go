package pricing

import (
	"strings"
	"testing"
	"time"
)

// Built-in rates per 1M tokens, named by model and period.
var (
	chat2024      = [3]string{"0.014", "0.14", "0.28"}
	chatV3        = [3]string{"0.07", "0.27", "1.1"}
	chatOffPeak   = [3]string{"0.035", "0.135", "0.55"}
	reasonerR1    = [3]string{"0.14", "0.55", "2.19"}
	reasonerOff   = [3]string{"0.035", "0.1375", "0.5475"}
	v31           = [3]string{"0.07", "0.56", "1.68"}
	v32           = [3]string{"0.028", "0.28", "0.42"}
	flashApr24    = [3]string{"0.028", "0.14", "0.28"}
	proApr24      = [3]string{"0.145", "1.74", "3.48"}
	flashApr26    = [3]string{"0.0028", "0.14", "0.28"}
	proApr26      = [3]string{"0.003625", "0.435", "0.87"}
	flashAugOff   = [3]string{"0.007", "0.22", "0.66"}
	flashAugPeak  = [3]string{"0.014", "0.44", "1.32"}
	proAugOff     = [3]string{"0.022", "0.66", "1.98"}
	proAugPeak    = [3]string{"0.044", "1.32", "3.96"}
	flashSepOff   = [3]string{"0.003", "0.15", "0.6"}
	flashSepPeak  = [3]string{"0.006", "0.3", "1.2"}
	builtinModels = []string{"deepseek-chat", "deepseek-coder", "deepseek-reasoner", "deepseek-v4-flash", "deepseek-v4-pro", "deepseek-flash"}
)

// Effective times of the built-in entries.
const (
	tChat2024  = "2024-08-02T00:00:00Z"
	tR1        = "2025-01-20T00:00:00Z"
	tPromoEnd  = "2025-02-08T16:00:00Z"
	tOffPeak   = "2025-02-26T00:00:00Z"
	tV31       = "2025-09-05T16:00:00Z"
	tV32       = "2025-09-29T00:00:00Z"
	tV4        = "2026-04-24T00:00:00Z"
	tV4Cut     = "2026-04-26T12:15:00Z"
	tPeakDaily = "2026-08-16T16:00:00Z"
	tPeakWeek  = "2026-08-23T00:00:00Z"
	tV41       = "2026-09-10T00:00:00Z"
	tProMoved  = "2026-09-14T04:00:00Z"
)

// TestBuiltinHistory checks the built-in price of every model at each price
// change, one nanosecond before and at the change, and inside and outside
// each window, because these rates price every call by default.
func TestBuiltinHistory(t *testing.T) {
	const ns = ".999999999Z"
	checkLookups(t, Builtin(), []lookupCase{
		// deepseek-chat and deepseek-coder: 2024-08 prices, kept as a V3
		// promotion until 2025-02-08 16:00.
		{name: "chat before history", model: "deepseek-chat", at: "2024-08-01T23:59:59" + ns},
		{name: "chat 2024", model: "deepseek-chat", at: tChat2024, wantOK: true, wantModel: "deepseek-chat", wantFrom: tChat2024, wantRates: chat2024},
		{name: "coder 2024", model: "deepseek-coder", at: tChat2024, wantOK: true, wantModel: "deepseek-chat", wantFrom: tChat2024, wantRates: chat2024},
		{name: "chat V3 promotion", model: "deepseek-chat", at: "2024-12-26T00:00:00Z", wantOK: true, wantModel: "deepseek-chat", wantFrom: tChat2024, wantRates: chat2024},
		{name: "chat promotion last ns", model: "deepseek-chat", at: "2025-02-08T15:59:59" + ns, wantOK: true, wantModel: "deepseek-chat", wantFrom: tChat2024, wantRates: chat2024},
		{name: "chat V3 list price", model: "deepseek-chat", at: tPromoEnd, wantOK: true, wantModel: "deepseek-chat", wantFrom: tPromoEnd, wantRates: chatV3},
		{name: "coder V3 list price", model: "DeepSeek-Coder", at: tPromoEnd, wantOK: true, wantModel: "deepseek-chat", wantFrom: tPromoEnd, wantRates: chatV3},

		// deepseek-reasoner launch.
		{name: "reasoner before launch", model: "deepseek-reasoner", at: "2025-01-19T23:59:59" + ns},
		{name: "reasoner launch", model: "deepseek-reasoner", at: tR1, wantOK: true, wantModel: "deepseek-reasoner", wantFrom: tR1, wantRates: reasonerR1},

		// Off-peak 16:30-00:30 every day from 2025-02-26. The first
		// occurrence starts on 2025-02-26 16:30, so 00:00-00:30 that day is
		// still at the base price.
		{name: "chat before off-peak entry", model: "deepseek-chat", at: "2025-02-25T23:59:59" + ns, wantOK: true, wantModel: "deepseek-chat", wantFrom: tPromoEnd, wantRates: chatV3},
		{name: "chat off-peak entry", model: "deepseek-chat", at: tOffPeak, wantOK: true, wantModel: "deepseek-chat", wantFrom: tOffPeak, wantRates: chatV3},
		{name: "chat first night not yet", model: "deepseek-chat", at: "2025-02-26T00:10:00Z", wantOK: true, wantModel: "deepseek-chat", wantFrom: tOffPeak, wantRates: chatV3},
		{name: "chat before 16:30", model: "deepseek-chat", at: "2025-02-26T16:29:59" + ns, wantOK: true, wantModel: "deepseek-chat", wantFrom: tOffPeak, wantRates: chatV3},
		{name: "chat off-peak 16:30", model: "deepseek-chat", at: "2025-02-26T16:30:00Z", wantOK: true, wantModel: "deepseek-chat", wantFrom: tOffPeak, wantRates: chatOffPeak, wantWindow: "off-peak"},
		{name: "chat off-peak after midnight", model: "deepseek-chat", at: "2025-02-27T00:10:00Z", wantOK: true, wantModel: "deepseek-chat", wantFrom: tOffPeak, wantRates: chatOffPeak, wantWindow: "off-peak"},
		{name: "chat off-peak last ns", model: "deepseek-chat", at: "2025-02-27T00:29:59" + ns, wantOK: true, wantModel: "deepseek-chat", wantFrom: tOffPeak, wantRates: chatOffPeak, wantWindow: "off-peak"},
		{name: "chat off-peak end", model: "deepseek-chat", at: "2025-02-27T00:30:00Z", wantOK: true, wantModel: "deepseek-chat", wantFrom: tOffPeak, wantRates: chatV3},
		{name: "coder off-peak Sunday", model: "deepseek-coder", at: "2025-06-01T20:00:00Z", wantOK: true, wantModel: "deepseek-chat", wantFrom: tOffPeak, wantRates: chatOffPeak, wantWindow: "off-peak"},
		{name: "reasoner off-peak", model: "deepseek-reasoner", at: "2025-03-01T18:00:00Z", wantOK: true, wantModel: "deepseek-reasoner", wantFrom: tOffPeak, wantRates: reasonerOff, wantWindow: "off-peak"},
		{name: "reasoner peak", model: "deepseek-reasoner", at: "2025-03-01T12:00:00Z", wantOK: true, wantModel: "deepseek-reasoner", wantFrom: tOffPeak, wantRates: reasonerR1},

		// V3.1 at 2025-09-05 16:00 ends the off-peak discount.
		{name: "chat last off-peak night", model: "deepseek-chat", at: "2025-09-05T00:29:59Z", wantOK: true, wantModel: "deepseek-chat", wantFrom: tOffPeak, wantRates: chatOffPeak, wantWindow: "off-peak"},
		{name: "chat before V3.1", model: "deepseek-chat", at: "2025-09-05T15:59:59" + ns, wantOK: true, wantModel: "deepseek-chat", wantFrom: tOffPeak, wantRates: chatV3},
		{name: "chat V3.1", model: "deepseek-chat", at: tV31, wantOK: true, wantModel: "deepseek-chat", wantFrom: tV31, wantRates: v31},
		{name: "chat V3.1 no off-peak", model: "deepseek-chat", at: "2025-09-05T17:00:00Z", wantOK: true, wantModel: "deepseek-chat", wantFrom: tV31, wantRates: v31},
		{name: "reasoner before V3.1", model: "deepseek-reasoner", at: "2025-09-05T15:59:59" + ns, wantOK: true, wantModel: "deepseek-reasoner", wantFrom: tOffPeak, wantRates: reasonerR1},
		{name: "reasoner V3.1", model: "deepseek-reasoner", at: tV31, wantOK: true, wantModel: "deepseek-reasoner", wantFrom: tV31, wantRates: v31},
		{name: "reasoner V3.1 no off-peak", model: "deepseek-reasoner", at: "2025-09-06T00:10:00Z", wantOK: true, wantModel: "deepseek-reasoner", wantFrom: tV31, wantRates: v31},

		// V3.2.
		{name: "chat before V3.2", model: "deepseek-chat", at: "2025-09-28T23:59:59" + ns, wantOK: true, wantModel: "deepseek-chat", wantFrom: tV31, wantRates: v31},
		{name: "chat V3.2", model: "deepseek-chat", at: tV32, wantOK: true, wantModel: "deepseek-chat", wantFrom: tV32, wantRates: v32},
		{name: "reasoner V3.2", model: "deepseek-reasoner", at: tV32, wantOK: true, wantModel: "deepseek-reasoner", wantFrom: tV32, wantRates: v32},
		{name: "coder V3.2", model: "deepseek-coder", at: tV32, wantOK: true, wantModel: "deepseek-chat", wantFrom: tV32, wantRates: v32},

		// V4 on 2026-04-24: chat and reasoner priced as deepseek-v4-flash.
		{name: "chat before V4", model: "deepseek-chat", at: "2026-04-23T23:59:59" + ns, wantOK: true, wantModel: "deepseek-chat", wantFrom: tV32, wantRates: v32},
		{name: "chat as flash", model: "deepseek-chat", at: tV4, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tV4, wantRates: flashApr24},
		{name: "reasoner as flash", model: "deepseek-reasoner", at: tV4, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tV4, wantRates: flashApr24},
		{name: "coder as flash", model: "deepseek-coder", at: tV4, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tV4, wantRates: flashApr24},
		{name: "v4-flash before launch", model: "deepseek-v4-flash", at: "2026-04-23T23:59:59" + ns},
		{name: "v4-flash launch", model: "deepseek-v4-flash", at: tV4, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tV4, wantRates: flashApr24},
		{name: "v4-pro before launch", model: "deepseek-v4-pro", at: "2026-04-23T23:59:59" + ns},
		{name: "v4-pro launch", model: "deepseek-v4-pro", at: tV4, wantOK: true, wantModel: "deepseek-v4-pro", wantFrom: tV4, wantRates: proApr24},

		// 2026-04-26 12:15 price cut.
		{name: "flash before cut", model: "deepseek-v4-flash", at: "2026-04-26T12:14:59" + ns, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tV4, wantRates: flashApr24},
		{name: "flash cut", model: "deepseek-v4-flash", at: tV4Cut, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tV4Cut, wantRates: flashApr26},
		{name: "pro before cut", model: "deepseek-v4-pro", at: "2026-04-26T12:14:59" + ns, wantOK: true, wantModel: "deepseek-v4-pro", wantFrom: tV4, wantRates: proApr24},
		{name: "pro cut", model: "deepseek-v4-pro", at: tV4Cut, wantOK: true, wantModel: "deepseek-v4-pro", wantFrom: tV4Cut, wantRates: proApr26},
		{name: "chat cut", model: "deepseek-chat", at: tV4Cut, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tV4Cut, wantRates: flashApr26},
		{name: "chat after retirement", model: "deepseek-chat", at: "2026-07-25T00:00:00Z", wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tV4Cut, wantRates: flashApr26},

		// Peak hours from 2026-08-16 16:00 (a Sunday), every day until
		// 2026-08-23 00:00, then Monday to Friday.
		{name: "flash before peak pricing", model: "deepseek-v4-flash", at: "2026-08-16T15:59:59" + ns, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tV4Cut, wantRates: flashApr26},
		{name: "flash peak pricing starts", model: "deepseek-v4-flash", at: tPeakDaily, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakDaily, wantRates: flashAugOff},
		{name: "pro peak pricing starts", model: "deepseek-v4-pro", at: tPeakDaily, wantOK: true, wantModel: "deepseek-v4-pro", wantFrom: tPeakDaily, wantRates: proAugOff},
		{name: "flash Monday before peak", model: "deepseek-v4-flash", at: "2026-08-17T00:59:59" + ns, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakDaily, wantRates: flashAugOff},
		{name: "flash Monday peak 01:00", model: "deepseek-v4-flash", at: "2026-08-17T01:00:00Z", wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakDaily, wantRates: flashAugPeak, wantWindow: "peak"},
		{name: "flash Monday peak last ns", model: "deepseek-v4-flash", at: "2026-08-17T03:59:59" + ns, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakDaily, wantRates: flashAugPeak, wantWindow: "peak"},
		{name: "flash Monday 04:00", model: "deepseek-v4-flash", at: "2026-08-17T04:00:00Z", wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakDaily, wantRates: flashAugOff},
		{name: "flash Monday before 06:00", model: "deepseek-v4-flash", at: "2026-08-17T05:59:59" + ns, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakDaily, wantRates: flashAugOff},
		{name: "flash Monday peak 06:00", model: "deepseek-v4-flash", at: "2026-08-17T06:00:00Z", wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakDaily, wantRates: flashAugPeak, wantWindow: "peak"},
		{name: "flash Monday peak 09:59", model: "deepseek-v4-flash", at: "2026-08-17T09:59:59" + ns, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakDaily, wantRates: flashAugPeak, wantWindow: "peak"},
		{name: "flash Monday 10:00", model: "deepseek-v4-flash", at: "2026-08-17T10:00:00Z", wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakDaily, wantRates: flashAugOff},
		{name: "chat Monday peak", model: "deepseek-chat", at: "2026-08-17T02:00:00Z", wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakDaily, wantRates: flashAugPeak, wantWindow: "peak"},
		{name: "pro Monday peak", model: "deepseek-v4-pro", at: "2026-08-17T02:00:00Z", wantOK: true, wantModel: "deepseek-v4-pro", wantFrom: tPeakDaily, wantRates: proAugPeak, wantWindow: "peak"},
		{name: "flash Saturday peak daily", model: "deepseek-v4-flash", at: "2026-08-22T07:00:00Z", wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakDaily, wantRates: flashAugPeak, wantWindow: "peak"},
		{name: "pro Saturday peak daily", model: "deepseek-v4-pro", at: "2026-08-22T01:00:00Z", wantOK: true, wantModel: "deepseek-v4-pro", wantFrom: tPeakDaily, wantRates: proAugPeak, wantWindow: "peak"},
		{name: "flash before weekday peak", model: "deepseek-v4-flash", at: "2026-08-22T23:59:59" + ns, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakDaily, wantRates: flashAugOff},
		{name: "flash weekday peak entry", model: "deepseek-v4-flash", at: tPeakWeek, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakWeek, wantRates: flashAugOff},
		{name: "flash Sunday off-peak", model: "deepseek-v4-flash", at: "2026-08-23T01:00:00Z", wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakWeek, wantRates: flashAugOff},
		{name: "pro Sunday off-peak", model: "deepseek-v4-pro", at: "2026-08-23T07:00:00Z", wantOK: true, wantModel: "deepseek-v4-pro", wantFrom: tPeakWeek, wantRates: proAugOff},
		{name: "flash Monday weekday peak", model: "deepseek-v4-flash", at: "2026-08-24T01:00:00Z", wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakWeek, wantRates: flashAugPeak, wantWindow: "peak"},
		{name: "flash Friday peak", model: "deepseek-v4-flash", at: "2026-08-28T09:00:00Z", wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakWeek, wantRates: flashAugPeak, wantWindow: "peak"},
		{name: "flash Saturday off-peak", model: "deepseek-v4-flash", at: "2026-08-29T07:00:00Z", wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakWeek, wantRates: flashAugOff},
		{name: "reasoner Saturday off-peak", model: "deepseek-reasoner", at: "2026-08-29T02:00:00Z", wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakWeek, wantRates: flashAugOff},

		// V4.1 on 2026-09-10 (a Thursday): deepseek-flash, with v4-flash and
		// the old names billed as it.
		{name: "flash before V4.1", model: "deepseek-flash", at: "2026-09-09T23:59:59" + ns},
		{name: "flash V4.1", model: "deepseek-flash", at: tV41, wantOK: true, wantModel: "deepseek-flash", wantFrom: tV41, wantRates: flashSepOff},
		{name: "v4-flash before V4.1", model: "deepseek-v4-flash", at: "2026-09-09T23:59:59" + ns, wantOK: true, wantModel: "deepseek-v4-flash", wantFrom: tPeakWeek, wantRates: flashAugOff},
		{name: "v4-flash V4.1", model: "deepseek-v4-flash", at: tV41, wantOK: true, wantModel: "deepseek-flash", wantFrom: tV41, wantRates: flashSepOff},
		{name: "flash Thursday peak", model: "deepseek-flash", at: "2026-09-10T01:00:00Z", wantOK: true, wantModel: "deepseek-flash", wantFrom: tV41, wantRates: flashSepPeak, wantWindow: "peak"},
		{name: "chat Thursday peak", model: "deepseek-chat", at: "2026-09-10T08:00:00Z", wantOK: true, wantModel: "deepseek-flash", wantFrom: tV41, wantRates: flashSepPeak, wantWindow: "peak"},
		{name: "flash Saturday", model: "deepseek-flash", at: "2026-09-12T02:00:00Z", wantOK: true, wantModel: "deepseek-flash", wantFrom: tV41, wantRates: flashSepOff},

		// deepseek-v4-pro keeps its prices until 2026-09-14 04:00 (a
		// Monday, at the end of a peak window), then is priced as flash.
		{name: "pro Friday peak", model: "deepseek-v4-pro", at: "2026-09-11T07:00:00Z", wantOK: true, wantModel: "deepseek-v4-pro", wantFrom: tPeakWeek, wantRates: proAugPeak, wantWindow: "peak"},
		{name: "pro last ns", model: "deepseek-v4-pro", at: "2026-09-14T03:59:59" + ns, wantOK: true, wantModel: "deepseek-v4-pro", wantFrom: tPeakWeek, wantRates: proAugPeak, wantWindow: "peak"},
		{name: "pro as flash", model: "deepseek-v4-pro", at: tProMoved, wantOK: true, wantModel: "deepseek-flash", wantFrom: tProMoved, wantRates: flashSepOff},
		{name: "pro as flash peak", model: "deepseek-v4-pro", at: "2026-09-14T06:00:00Z", wantOK: true, wantModel: "deepseek-flash", wantFrom: tProMoved, wantRates: flashSepPeak, wantWindow: "peak"},
		{name: "flash after pro moved", model: "deepseek-flash", at: "2026-09-14T06:00:00Z", wantOK: true, wantModel: "deepseek-flash", wantFrom: tProMoved, wantRates: flashSepPeak, wantWindow: "peak"},
		{name: "pro Sunday as flash", model: "DEEPSEEK-V4-PRO", at: "2026-09-20T02:00:00Z", wantOK: true, wantModel: "deepseek-flash", wantFrom: tProMoved, wantRates: flashSepOff},

		{name: "unknown model", model: "deepseek-v5", at: "2026-10-01T00:00:00Z"},
		{name: "other vendor", model: "gpt-4o", at: "2026-10-01T00:00:00Z"},
	})
}

// TestBuiltinExactCosts checks DeepSeek's worked cost examples end to end
// through the built-in table at V3.2 prices.
func TestBuiltinExactCosts(t *testing.T) {
	p, ok := Builtin().Lookup("deepseek-chat", mustTime(t, "2025-10-01T12:00:00Z"))
	if !ok {
		t.Fatal("no built-in price for deepseek-chat on 2025-10-01")
	}
	tests := []struct {
		name  string
		usage Usage
		want  string
	}{
		{name: "misses", usage: Usage{PromptTokens: 1500, CacheMissTokens: 1500, CompletionTokens: 800, HasCacheSplit: true}, want: "0.000756"},
		{name: "hits", usage: Usage{PromptTokens: 1500, CacheHitTokens: 1200, CacheMissTokens: 300, CompletionTokens: 500, HasCacheSplit: true}, want: "0.0003276"},
		{name: "mostly hits", usage: Usage{PromptTokens: 10000, CacheHitTokens: 9000, CacheMissTokens: 1000, CompletionTokens: 500, HasCacheSplit: true}, want: "0.000742"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Cost(tt.usage)
			if err != nil {
				t.Fatalf("Cost: %v", err)
			}
			if got.String() != tt.want {
				t.Errorf("Cost(%+v) = %s USD, want %s", tt.usage, got, tt.want)
			}
		})
	}
}

// TestBuiltinEntries checks the properties every built-in entry must have:
// USD, a source that states whether DeepSeek documents the price, and reported
// prices marked as such.
func TestBuiltinEntries(t *testing.T) {
	reportedFrom := mustTime(t, tV4)
	for i, e := range Builtin().Entries() {
		if e.Currency != "USD" {
			t.Errorf("entry %d (%s): currency %q, want USD", i, e.Model, e.Currency)
		}
		if e.EffectiveFrom.Location() != time.UTC {
			t.Errorf("entry %d (%s): effective_from %s is not in UTC", i, e.Model, e.EffectiveFrom)
		}
		reported := !e.EffectiveFrom.Before(reportedFrom)
		wantSource := sourceDocs
		if reported {
			wantSource = sourceReported
		}
		if !strings.HasPrefix(e.Source, wantSource) {
			t.Errorf("entry %d (%s from %s): source %q, want it to start with %q", i, e.Model, e.EffectiveFrom, e.Source, wantSource)
		}
	}

	// The reasoner's off-peak entry must state that it uses the exact
	// discount rather than the rounded figures.
	p, ok := Builtin().Lookup("deepseek-reasoner", mustTime(t, "2025-03-01T18:00:00Z"))
	if !ok {
		t.Fatal("no built-in price for deepseek-reasoner on 2025-03-01")
	}
	for _, e := range Builtin().Entries() {
		if e.Model == p.Model && e.EffectiveFrom.Equal(p.EffectiveFrom) && !strings.Contains(e.Source, "0.1375") {
			t.Errorf("reasoner off-peak source %q does not state the exact rates", e.Source)
		}
	}

	// Every model name resolves at the end of the history.
	end := mustTime(t, "2027-01-01T00:00:00Z")
	for _, m := range builtinModels {
		if _, ok := Builtin().Lookup(m, end); !ok {
			t.Errorf("Lookup(%q, %s) found no price", m, end)
		}
	}
}

// TestBuiltinShared checks that Builtin builds its table once, so callers
// can use it on every request without rebuilding.
func TestBuiltinShared(t *testing.T) {
	if a, b := Builtin(), Builtin(); a != b {
		t.Errorf("Builtin() returned two different tables")
	}
}
