package pricing

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

const day = 24 * time.Hour

// Table is a validated set of price entries. It is immutable after
// construction and safe for concurrent use. A nil *Table and the zero Table
// contain no prices.
type Table struct {
	entries []Entry // deep copies, in the order given to NewTable

	// byName maps a lower-case model name or alias to the entries for it,
	// sorted by effective time, oldest first.
	byName map[string][]*compiledEntry
}

// EntryError reports an invalid entry passed to NewTable.
type EntryError struct {
	Index int    // position of the entry in the slice passed to NewTable
	Model string // the entry's Model, as given
	Field string // such as "currency" or "windows[1].start"
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("entry %d (model %q): %s: %v", e.Index, e.Model, e.Field, e.Err)
}

func (e *EntryError) Unwrap() error { return e.Err }

// NewTable validates entries and builds a table from copies of them. It
// returns an *EntryError naming the first invalid entry and field. An entry
// is invalid when its model or effective time is missing, its currency is
// not three upper-case letters, or a rate is negative. A window is invalid
// when it has no name, no days or repeated days, a start or end outside
// [0, 24h], or overlaps another window of the entry. Two entries that price the same model name
// (as Model or alias, ignoring case) from the same instant are an error.
func NewTable(entries []Entry) (*Table, error) {
	t := &Table{
		entries: make([]Entry, 0, len(entries)),
		byName:  make(map[string][]*compiledEntry),
	}

	// owner records which entry prices each name from each instant, so
	// that a second claim can name the first.
	type claim struct {
		name string
		sec  int64
		nsec int
	}
	type owner struct {
		index int
		field string
	}
	owners := make(map[claim]owner)

	for i, e := range entries {
		if field, err := validateEntry(e); err != nil {
			return nil, &EntryError{Index: i, Model: e.Model, Field: field, Err: err}
		}
		e = cloneEntry(e)
		t.entries = append(t.entries, e)
		c := compileEntry(e)

		for k, name := range entryNames(e) {
			field := "model"
			if k > 0 {
				field = fmt.Sprintf("aliases[%d]", k-1)
			}
			key := claim{strings.ToLower(name), e.EffectiveFrom.Unix(), e.EffectiveFrom.Nanosecond()}
			if prev, ok := owners[key]; ok {
				return nil, &EntryError{Index: i, Model: e.Model, Field: field,
					Err: conflictError(name, field, e, entries[prev.index], prev.index, prev.field)}
			}
			owners[key] = owner{index: i, field: field}
			t.byName[key.name] = append(t.byName[key.name], c)
		}
	}

	for _, versions := range t.byName {
		slices.SortFunc(versions, func(a, b *compiledEntry) int { return a.from.Compare(b.from) })
	}
	return t, nil
}

// Lookup returns the price of model at the instant at. The model matches an
// entry's Model or one of its Aliases, ignoring case. Of the entries for
// that name with EffectiveFrom <= at, the latest applies. When at falls in
// one of that entry's windows, the window's rates and name apply instead of
// the base rates. A window occurrence that started before the entry took
// effect does not apply, because it belongs to the prices before it.
// Lookup returns false for an unknown model and for an instant before the
// model's first entry.
func (t *Table) Lookup(model string, at time.Time) (Price, bool) {
	if t == nil {
		return Price{}, false
	}
	versions := t.byName[strings.ToLower(model)]

	// The first entry that is not yet in effect bounds the search.
	n := sort.Search(len(versions), func(i int) bool { return versions[i].from.After(at) })
	if n == 0 {
		return Price{}, false
	}
	c := versions[n-1]

	p := c.price
	if w := c.window(at); w != nil {
		p.Rates = w.rates
		p.Window = w.name
	}
	return p, true
}

// Entries returns copies of the table's entries, in the order given to
// NewTable.
func (t *Table) Entries() []Entry {
	if t == nil {
		return nil
	}
	out := make([]Entry, len(t.entries))
	for i, e := range t.entries {
		out[i] = cloneEntry(e)
	}
	return out
}

// compiledEntry is an entry in the form Lookup reads.
type compiledEntry struct {
	from    time.Time
	price   Price // with the base rates and no window
	windows []compiledWindow
}

// compiledWindow is a Window whose end is an offset from the start day's
// midnight, so an occurrence that crosses midnight ends after 24h.
type compiledWindow struct {
	days       [7]bool
	start, end time.Duration
	rates      Rates
	name       string
}

func compileEntry(e Entry) *compiledEntry {
	c := &compiledEntry{
		from: e.EffectiveFrom,
		price: Price{
			Model:         e.Model,
			EffectiveFrom: e.EffectiveFrom,
			Currency:      e.Currency,
			Rates:         e.Rates,
		},
	}
	for _, w := range e.Windows {
		cw := compiledWindow{start: w.Start, end: windowEnd(w), rates: w.Rates, name: w.Name}
		for _, d := range w.Days {
			cw.days[d] = true
		}
		c.windows = append(c.windows, cw)
	}
	return c
}

// window returns the window occurrence that contains at, or nil. An
// occurrence lasts at most 24h, so only the ones starting on the day of at
// and on the day before can contain it.
func (c *compiledEntry) window(at time.Time) *compiledWindow {
	if len(c.windows) == 0 {
		return nil
	}
	at = at.UTC()
	y, m, d := at.Date()
	midnight := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	sinceMidnight := at.Sub(midnight)
	weekday := at.Weekday()

	for i := range c.windows {
		w := &c.windows[i]
		for back := range 2 {
			startDay := (weekday + 7 - time.Weekday(back)) % 7
			offset := sinceMidnight + time.Duration(back)*day
			if !w.days[startDay] || offset < w.start || offset >= w.end {
				continue
			}
			occurrence := midnight.Add(w.start - time.Duration(back)*day)
			if occurrence.Before(c.from) {
				continue
			}
			return w
		}
	}
	return nil
}

// windowEnd returns w's end as an offset from the midnight of the day an
// occurrence starts on.
func windowEnd(w Window) time.Duration {
	if w.End <= w.Start {
		return w.End + day
	}
	return w.End
}

// entryNames returns the entry's Model followed by its Aliases.
func entryNames(e Entry) []string {
	return append([]string{e.Model}, e.Aliases...)
}

func cloneEntry(e Entry) Entry {
	e.Aliases = slices.Clone(e.Aliases)
	e.Windows = slices.Clone(e.Windows)
	for i := range e.Windows {
		e.Windows[i].Days = slices.Clone(e.Windows[i].Days)
	}
	return e
}

// conflictError describes why entry e cannot price name through field:
// other, at index otherIndex, already prices it from the same instant
// through otherField.
func conflictError(name, field string, e, other Entry, otherIndex int, otherField string) error {
	at := e.EffectiveFrom.UTC().Format(time.RFC3339Nano)
	switch {
	case e.Currency != other.Currency:
		return fmt.Errorf("ambiguous price for %q from %s: entry %d prices it in %s and this entry in %s",
			name, at, otherIndex, other.Currency, e.Currency)
	case field != "model" && otherField == "model":
		return fmt.Errorf("alias %q is the model of entry %d from the same instant %s", name, otherIndex, at)
	case field == "model" && otherField != "model":
		return fmt.Errorf("model %q is an alias in entry %d (%s) from the same instant %s", name, otherIndex, otherField, at)
	default:
		return fmt.Errorf("duplicate price for %q from %s: entry %d (%s) already prices it", name, at, otherIndex, otherField)
	}
}
