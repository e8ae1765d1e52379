package pricing

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// mustTime parses an RFC 3339 time or fails the test.
func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("parse time %q: %v", s, err)
	}
	return v
}

// validEntry returns an entry that NewTable accepts, for cases to break.
func validEntry(t testing.TB) Entry {
	t.Helper()
	return Entry{
		Model:         "model-a",
		Aliases:       []string{"alias-a"},
		EffectiveFrom: mustTime(t, "2025-01-01T00:00:00Z"),
		Currency:      "USD",
		Rates:         ratesOf(t, "0.1", "1", "2"),
		Windows: []Window{{
			Days:  []time.Weekday{time.Monday},
			Start: 16 * time.Hour, End: time.Hour,
			Rates: ratesOf(t, "0.05", "0.5", "1"),
			Name:  "off-peak",
		}},
	}
}

// TestNewTableInvalid checks that each kind of bad entry is rejected with an
// error naming the entry and field, because a bad price table would
// silently misprice every call.
func TestNewTableInvalid(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(es []Entry) []Entry
		wantIndex int
		wantField string
		wantMsg   string
	}{
		{name: "empty model", edit: func(es []Entry) []Entry { es[0].Model = ""; return es }, wantField: "model", wantMsg: "missing"},
		{name: "blank model", edit: func(es []Entry) []Entry { es[0].Model = "  "; return es }, wantField: "model", wantMsg: "missing"},
		{name: "padded model", edit: func(es []Entry) []Entry { es[0].Model = " m"; return es }, wantField: "model", wantMsg: "leading or trailing spaces"},
		{name: "control character", edit: func(es []Entry) []Entry { es[0].Model = "m\n"; return es }, wantField: "model", wantMsg: "spaces"},
		{name: "tab inside model", edit: func(es []Entry) []Entry { es[0].Model = "m\tx"; return es }, wantField: "model", wantMsg: "control characters"},
		{name: "empty alias", edit: func(es []Entry) []Entry { es[0].Aliases = []string{"x", ""}; return es }, wantField: "aliases[1]", wantMsg: "missing"},
		{name: "alias repeats model", edit: func(es []Entry) []Entry { es[0].Aliases = []string{"MODEL-A"}; return es }, wantField: "aliases[0]", wantMsg: "repeats model"},
		{name: "alias repeated", edit: func(es []Entry) []Entry { es[0].Aliases = []string{"x", "X"}; return es }, wantField: "aliases[1]", wantMsg: "repeats aliases[0]"},
		{name: "missing effective_from", edit: func(es []Entry) []Entry { es[0].EffectiveFrom = time.Time{}; return es }, wantField: "effective_from", wantMsg: "missing"},
		{name: "empty currency", edit: func(es []Entry) []Entry { es[0].Currency = ""; return es }, wantField: "currency", wantMsg: "missing"},
		{name: "lower-case currency", edit: func(es []Entry) []Entry { es[0].Currency = "usd"; return es }, wantField: "currency", wantMsg: `invalid currency "usd"`},
		{name: "long currency", edit: func(es []Entry) []Entry { es[0].Currency = "USDT"; return es }, wantField: "currency", wantMsg: "three upper-case letters"},
		{name: "non-ASCII currency", edit: func(es []Entry) []Entry { es[0].Currency = "ÜSD"; return es }, wantField: "currency", wantMsg: "invalid currency"},
		{name: "negative hit", edit: func(es []Entry) []Entry { es[0].Rates.Hit = -1; return es }, wantField: "hit", wantMsg: "negative price -0.000001"},
		{name: "negative miss", edit: func(es []Entry) []Entry { es[0].Rates.Miss = -1; return es }, wantField: "miss", wantMsg: "negative"},
		{name: "negative output", edit: func(es []Entry) []Entry { es[0].Rates.Output = -1; return es }, wantField: "output", wantMsg: "negative"},
		{name: "window without name", edit: func(es []Entry) []Entry { es[0].Windows[0].Name = ""; return es }, wantField: "windows[0].name", wantMsg: "missing"},
		{name: "window without days", edit: func(es []Entry) []Entry { es[0].Windows[0].Days = nil; return es }, wantField: "windows[0].days", wantMsg: "at least one day"},
		{name: "invalid weekday", edit: func(es []Entry) []Entry { es[0].Windows[0].Days = []time.Weekday{7}; return es }, wantField: "windows[0].days[0]", wantMsg: "invalid weekday 7"},
		{name: "day twice", edit: func(es []Entry) []Entry {
			es[0].Windows[0].Days = []time.Weekday{time.Monday, time.Monday}
			return es
		}, wantField: "windows[0].days[1]", wantMsg: "Monday is listed twice"},
		{name: "negative start", edit: func(es []Entry) []Entry { es[0].Windows[0].Start = -time.Second; return es }, wantField: "windows[0].start", wantMsg: "outside"},
		{name: "start after 24h", edit: func(es []Entry) []Entry { es[0].Windows[0].Start = day + 1; return es }, wantField: "windows[0].start", wantMsg: "outside"},
		{name: "end after 24h", edit: func(es []Entry) []Entry { es[0].Windows[0].End = 25 * time.Hour; return es }, wantField: "windows[0].end", wantMsg: "outside"},
		{name: "negative window rate", edit: func(es []Entry) []Entry { es[0].Windows[0].Rates.Miss = -5; return es }, wantField: "windows[0].miss", wantMsg: "negative"},
		{
			name: "overlapping windows",
			edit: func(es []Entry) []Entry {
				// Monday 16:00-01:00 overlaps Tuesday 00:30-02:00.
				w := es[0].Windows[0]
				w.Days = []time.Weekday{time.Tuesday}
				w.Start, w.End, w.Name = 30*time.Minute, 2*time.Hour, "late"
				es[0].Windows = append(es[0].Windows, w)
				return es
			},
			wantField: "windows[1]", wantMsg: `window "late" overlaps windows[0] ("off-peak")`,
		},
		{
			name: "overlap across the week end",
			edit: func(es []Entry) []Entry {
				// Saturday 23:00-01:00 runs into Sunday 00:00-00:30.
				es[0].Windows = []Window{
					{Days: []time.Weekday{time.Saturday}, Start: 23 * time.Hour, End: time.Hour, Name: "a"},
					{Days: []time.Weekday{time.Sunday}, Start: 0, End: 30 * time.Minute, Name: "b"},
				}
				return es
			},
			wantField: "windows[1]", wantMsg: "overlaps windows[0]",
		},
		{
			name: "second entry same model same time",
			edit: func(es []Entry) []Entry {
				e := es[0]
				e.Aliases = nil
				return append(es, e)
			},
			wantIndex: 1, wantField: "model", wantMsg: `duplicate price for "model-a"`,
		},
		{
			name: "same model in another case",
			edit: func(es []Entry) []Entry {
				e := es[0]
				e.Model, e.Aliases = "Model-A", nil
				return append(es, e)
			},
			wantIndex: 1, wantField: "model", wantMsg: "entry 0 (model) already prices it",
		},
		{
			name: "alias is another entry's model",
			edit: func(es []Entry) []Entry {
				e := es[0]
				e.Model, e.Aliases = "model-b", []string{"model-a"}
				return append(es, e)
			},
			wantIndex: 1, wantField: "aliases[0]", wantMsg: `alias "model-a" is the model of entry 0`,
		},
		{
			name: "model is another entry's alias",
			edit: func(es []Entry) []Entry {
				e := es[0]
				e.Model, e.Aliases = "alias-a", nil
				return append(es, e)
			},
			wantIndex: 1, wantField: "model", wantMsg: `model "alias-a" is an alias in entry 0 (aliases[0])`,
		},
		{
			name: "two entries share an alias",
			edit: func(es []Entry) []Entry {
				e := es[0]
				e.Model = "model-b"
				return append(es, e)
			},
			wantIndex: 1, wantField: "aliases[0]", wantMsg: "entry 0 (aliases[0]) already prices it",
		},
		{
			name: "two currencies at once",
			edit: func(es []Entry) []Entry {
				e := es[0]
				e.Currency, e.Aliases = "CNY", nil
				return append(es, e)
			},
			wantIndex: 1, wantField: "model", wantMsg: "ambiguous price for \"model-a\" from 2025-01-01T00:00:00Z: entry 0 prices it in USD and this entry in CNY",
		},
		{
			// The same instant in another time zone is still the same instant.
			name: "same instant in another zone",
			edit: func(es []Entry) []Entry {
				e := es[0]
				e.EffectiveFrom = e.EffectiveFrom.In(time.FixedZone("UTC+8", 8*3600))
				e.Aliases = nil
				return append(es, e)
			},
			wantIndex: 1, wantField: "model", wantMsg: "duplicate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries := tt.edit([]Entry{validEntry(t)})
			tab, err := NewTable(entries)
			if err == nil {
				t.Fatalf("NewTable accepted the entries: %+v", tab.Entries())
			}
			var ee *EntryError
			if !errors.As(err, &ee) {
				t.Fatalf("NewTable error %v (%T) is not an *EntryError", err, err)
			}
			if ee.Index != tt.wantIndex || ee.Field != tt.wantField {
				t.Errorf("error at entry %d field %q, want entry %d field %q (%v)", ee.Index, ee.Field, tt.wantIndex, tt.wantField, err)
			}
			if ee.Model != entries[tt.wantIndex].Model {
				t.Errorf("error names model %q, want %q", ee.Model, entries[tt.wantIndex].Model)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			wantPrefix := fmt.Sprintf("entry %d (model %q): %s: ", tt.wantIndex, entries[tt.wantIndex].Model, tt.wantField)
			if !strings.HasPrefix(err.Error(), wantPrefix) {
				t.Errorf("error %q does not start with %q", err, wantPrefix)
			}
		})
	}
}

// TestNewTableValid checks entries that look odd but are valid, so that
// validation does not reject real price lists.
func TestNewTableValid(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(es []Entry) []Entry
		count int
	}{
		{name: "single entry", edit: func(es []Entry) []Entry { return es }, count: 1},
		{name: "no entries", edit: func(es []Entry) []Entry { return nil }, count: 0},
		{
			name: "same model at other times",
			edit: func(es []Entry) []Entry {
				e := es[0]
				e.EffectiveFrom = e.EffectiveFrom.Add(time.Nanosecond)
				return append(es, e)
			},
			count: 2,
		},
		{
			name: "two currencies at other times",
			edit: func(es []Entry) []Entry {
				e := es[0]
				e.Currency, e.EffectiveFrom = "CNY", e.EffectiveFrom.Add(time.Hour)
				return append(es, e)
			},
			count: 2,
		},
		{
			name: "windows touching",
			edit: func(es []Entry) []Entry {
				es[0].Windows = []Window{
					{Days: []time.Weekday{time.Monday}, Start: time.Hour, End: 4 * time.Hour, Name: "peak"},
					{Days: []time.Weekday{time.Monday}, Start: 4 * time.Hour, End: 6 * time.Hour, Name: "peak"},
					{Days: []time.Weekday{time.Sunday}, Start: 22 * time.Hour, End: time.Hour, Name: "night"},
				}
				return es
			},
			count: 1,
		},
		{
			name: "whole-day windows on consecutive days",
			edit: func(es []Entry) []Entry {
				es[0].Windows = []Window{{Days: []time.Weekday{time.Saturday, time.Sunday}, Start: 12 * time.Hour, End: 12 * time.Hour, Name: "weekend"}}
				return es
			},
			count: 1,
		},
		{name: "zero rates", edit: func(es []Entry) []Entry { es[0].Rates = Rates{}; return es }, count: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := NewTable(tt.edit([]Entry{validEntry(t)}))
			if err != nil {
				t.Fatalf("NewTable: %v", err)
			}
			if got := len(tab.Entries()); got != tt.count {
				t.Errorf("len(Entries()) = %d, want %d", got, tt.count)
			}
		})
	}
}

// lookupCase is one Lookup call and the price it must return.
type lookupCase struct {
	name       string
	model      string
	at         string // RFC 3339
	wantOK     bool
	wantModel  string // the entry key
	wantFrom   string // RFC 3339
	wantRates  [3]string
	wantWindow string
}

// checkLookups runs Lookup for each case and compares every field of the
// price.
func checkLookups(t *testing.T, tab *Table, tests []lookupCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at := mustTime(t, tt.at)
			p, ok := tab.Lookup(tt.model, at)
			if ok != tt.wantOK {
				t.Fatalf("Lookup(%q, %s) ok = %v, want %v (price %+v)", tt.model, tt.at, ok, tt.wantOK, p)
			}
			if !ok {
				return
			}
			if p.Model != tt.wantModel {
				t.Errorf("Model = %q, want %q", p.Model, tt.wantModel)
			}
			if want := mustTime(t, tt.wantFrom); !p.EffectiveFrom.Equal(want) {
				t.Errorf("EffectiveFrom = %s, want %s", p.EffectiveFrom, want)
			}
			got := [3]string{FormatRate(p.Rates.Hit), FormatRate(p.Rates.Miss), FormatRate(p.Rates.Output)}
			if got != tt.wantRates {
				t.Errorf("rates = %v, want %v", got, tt.wantRates)
			}
			if p.Window != tt.wantWindow {
				t.Errorf("Window = %q, want %q", p.Window, tt.wantWindow)
			}
			if p.Currency == "" {
				t.Errorf("Currency is empty")
			}
		})
	}
}

// TestLookupRules checks name matching, effective times and windows on a
// small table, because every stored cost depends on picking the right
// entry.
func TestLookupRules(t *testing.T) {
	base := [3]string{"0.1", "1", "2"}
	night := [3]string{"0.05", "0.5", "1"}
	later := [3]string{"0.2", "2", "4"}
	day := [3]string{"0.3", "3", "6"}

	tab, err := NewTable([]Entry{
		{
			// Monday 16:00 to Tuesday 01:00 is the "night" window.
			Model: "Model-A", Aliases: []string{"alias-a"}, Currency: "USD",
			EffectiveFrom: mustTime(t, "2025-01-06T20:00:00Z"), // a Monday, inside the window
			Rates:         ratesOf(t, base[0], base[1], base[2]),
			Windows: []Window{{
				Days: []time.Weekday{time.Monday}, Start: 16 * time.Hour, End: time.Hour,
				Rates: ratesOf(t, night[0], night[1], night[2]), Name: "night",
			}},
		},
		{
			// Listed after an older entry on purpose: order must not matter.
			Model: "model-a", Currency: "USD",
			EffectiveFrom: mustTime(t, "2025-02-01T00:00:00Z"),
			Rates:         ratesOf(t, later[0], later[1], later[2]),
			Windows: []Window{
				{Days: []time.Weekday{time.Saturday}, Start: 23 * time.Hour, End: 30 * time.Minute,
					Rates: ratesOf(t, night[0], night[1], night[2]), Name: "week-end"},
				{Days: []time.Weekday{time.Wednesday}, Start: 0, End: 0,
					Rates: ratesOf(t, day[0], day[1], day[2]), Name: "all-day"},
				{Days: []time.Weekday{time.Friday}, Start: 24 * time.Hour, End: time.Hour,
					Rates: ratesOf(t, day[0], day[1], day[2]), Name: "midnight-start"},
			},
		},
		{
			Model: "model-a", Currency: "USD",
			EffectiveFrom: mustTime(t, "2024-12-01T00:00:00Z"),
			Rates:         ratesOf(t, "1", "1", "1"),
		},
	})
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}

	const (
		first  = "2024-12-01T00:00:00Z"
		second = "2025-01-06T20:00:00Z"
		third  = "2025-02-01T00:00:00Z"
	)
	one := [3]string{"1", "1", "1"}
	checkLookups(t, tab, []lookupCase{
		{name: "unknown model", model: "model-z", at: third},
		{name: "empty model", model: "", at: third},
		{name: "before first entry", model: "model-a", at: "2024-11-30T23:59:59.999999999Z"},
		{name: "at first entry", model: "model-a", at: first, wantOK: true, wantModel: "model-a", wantFrom: first, wantRates: one},
		{name: "alias before it exists", model: "alias-a", at: "2025-01-06T19:59:59Z"},
		{
			// The entry takes effect at 20:00 inside Monday's 16:00 window.
			// That occurrence started under the older prices, so it does
			// not apply.
			name: "alias at its entry", model: "ALIAS-A", at: second,
			wantOK: true, wantModel: "Model-A", wantFrom: second, wantRates: base,
		},
		{name: "upper case name", model: "MODEL-A", at: second, wantOK: true, wantModel: "Model-A", wantFrom: second, wantRates: base},
		{name: "before entry", model: "model-a", at: "2025-01-06T19:59:59.999999999Z", wantOK: true, wantModel: "model-a", wantFrom: first, wantRates: one},
		{name: "first occurrence late", model: "model-a", at: "2025-01-06T23:59:59Z", wantOK: true, wantModel: "Model-A", wantFrom: second, wantRates: base},
		{name: "first occurrence after midnight", model: "model-a", at: "2025-01-07T00:10:00Z", wantOK: true, wantModel: "Model-A", wantFrom: second, wantRates: base},
		{name: "night just before", model: "model-a", at: "2025-01-13T15:59:59.999999999Z", wantOK: true, wantModel: "Model-A", wantFrom: second, wantRates: base},
		{name: "night start", model: "model-a", at: "2025-01-13T16:00:00Z", wantOK: true, wantModel: "Model-A", wantFrom: second, wantRates: night, wantWindow: "night"},
		{name: "night before midnight", model: "model-a", at: "2025-01-13T23:59:59Z", wantOK: true, wantModel: "Model-A", wantFrom: second, wantRates: night, wantWindow: "night"},
		{name: "night after midnight", model: "model-a", at: "2025-01-14T00:10:00Z", wantOK: true, wantModel: "Model-A", wantFrom: second, wantRates: night, wantWindow: "night"},
		{name: "night last nanosecond", model: "model-a", at: "2025-01-14T00:59:59.999999999Z", wantOK: true, wantModel: "Model-A", wantFrom: second, wantRates: night, wantWindow: "night"},
		{name: "night end", model: "model-a", at: "2025-01-14T01:00:00Z", wantOK: true, wantModel: "Model-A", wantFrom: second, wantRates: base},
		{
			// The window belongs to Monday, so it does not start on Tuesday.
			name: "Tuesday evening", model: "model-a", at: "2025-01-07T17:00:00Z",
			wantOK: true, wantModel: "Model-A", wantFrom: second, wantRates: base,
		},
		{
			// A time in another zone is compared as UTC: this is Monday
			// 17:00 UTC, although it is Tuesday in UTC+8.
			name: "other time zone", model: "model-a", at: "2025-01-14T01:00:00+08:00",
			wantOK: true, wantModel: "Model-A", wantFrom: second, wantRates: night, wantWindow: "night",
		},
		{name: "alias keeps old entry", model: "alias-a", at: "2025-03-01T12:00:00Z", wantOK: true, wantModel: "Model-A", wantFrom: second, wantRates: base},
		{name: "newest entry for model", model: "model-a", at: "2025-02-03T17:00:00Z", wantOK: true, wantModel: "model-a", wantFrom: third, wantRates: later},
		{name: "Saturday late", model: "model-a", at: "2025-02-01T23:30:00Z", wantOK: true, wantModel: "model-a", wantFrom: third, wantRates: night, wantWindow: "week-end"},
		{name: "Sunday early", model: "model-a", at: "2025-02-02T00:29:59Z", wantOK: true, wantModel: "model-a", wantFrom: third, wantRates: night, wantWindow: "week-end"},
		{name: "Sunday after window", model: "model-a", at: "2025-02-02T00:30:00Z", wantOK: true, wantModel: "model-a", wantFrom: third, wantRates: later},
		{name: "whole Wednesday start", model: "model-a", at: "2025-02-05T00:00:00Z", wantOK: true, wantModel: "model-a", wantFrom: third, wantRates: day, wantWindow: "all-day"},
		{name: "whole Wednesday end", model: "model-a", at: "2025-02-05T23:59:59.999999999Z", wantOK: true, wantModel: "model-a", wantFrom: third, wantRates: day, wantWindow: "all-day"},
		{name: "Thursday after whole day", model: "model-a", at: "2025-02-06T00:00:00Z", wantOK: true, wantModel: "model-a", wantFrom: third, wantRates: later},
		{
			// A window starting at 24:00 on Friday covers Saturday 00:00-01:00.
			name: "start at 24:00", model: "model-a", at: "2025-02-08T00:30:00Z",
			wantOK: true, wantModel: "model-a", wantFrom: third, wantRates: day, wantWindow: "midnight-start",
		},
		{name: "Friday before 24:00", model: "model-a", at: "2025-02-07T23:59:59Z", wantOK: true, wantModel: "model-a", wantFrom: third, wantRates: later},
	})
}

// TestLookupNilTable checks that nil and zero tables price nothing instead
// of panicking, so a caller without prices can still run.
func TestLookupNilTable(t *testing.T) {
	at := mustTime(t, "2026-01-01T00:00:00Z")
	for _, tc := range []struct {
		name string
		tab  *Table
	}{{"nil", nil}, {"zero", &Table{}}} {
		t.Run(tc.name, func(t *testing.T) {
			if p, ok := tc.tab.Lookup("deepseek-chat", at); ok {
				t.Errorf("Lookup = %+v, true; want false", p)
			}
			if got := tc.tab.Entries(); len(got) != 0 {
				t.Errorf("Entries() = %v, want none", got)
			}
		})
	}
}

// TestTableImmutable checks that changing the entries passed to NewTable or
// returned by Entries leaves the table alone, because tables are shared
// between goroutines without locks.
func TestTableImmutable(t *testing.T) {
	in := []Entry{validEntry(t)}
	tab, err := NewTable(in)
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	at := mustTime(t, "2025-01-06T17:00:00Z") // Monday, inside the window

	in[0].Aliases[0] = "changed"
	in[0].Windows[0].Days[0] = time.Friday
	in[0].Rates.Miss = 0
	out := tab.Entries()
	out[0].Aliases[0] = "changed-too"
	out[0].Windows[0].Days[0] = time.Friday
	out[0].Windows[0].Name = "changed"

	p, ok := tab.Lookup("alias-a", at)
	if !ok {
		t.Fatalf("Lookup(alias-a) found nothing after the inputs changed")
	}
	if p.Window != "off-peak" {
		t.Errorf("Window = %q, want %q", p.Window, "off-peak")
	}
	if _, ok := tab.Lookup("changed", at); ok {
		t.Errorf("Lookup(changed) found a price; the table followed a change to its input")
	}
	again := tab.Entries()
	if again[0].Aliases[0] != "alias-a" || again[0].Windows[0].Days[0] != time.Monday || again[0].Windows[0].Name != "off-peak" {
		t.Errorf("Entries() = %+v, want the original entry", again[0])
	}
}

// TestLookupConcurrent runs lookups from many goroutines, so that the race
// detector (go test -race) catches any shared state that Lookup writes.
func TestLookupConcurrent(t *testing.T) {
	tab := Builtin()
	start := mustTime(t, "2025-01-01T00:00:00Z")
	models := []string{"deepseek-chat", "deepseek-reasoner", "deepseek-v4-pro", "DeepSeek-Flash"}

	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				at := start.Add(time.Duration(i*g) * 17 * time.Minute)
				p, ok := tab.Lookup(models[i%len(models)], at)
				if ok && p.Currency != "USD" {
					errs <- fmt.Sprintf("Lookup returned currency %q", p.Currency)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
