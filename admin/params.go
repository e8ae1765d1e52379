package admin

import (
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// intParam is an integer query parameter with a default and an inclusive
// range.
type intParam struct {
	name          string
	def, min, max int
}

var (
	daysParam  = intParam{name: "days", def: 30, min: 1, max: 3650}
	pageParam  = intParam{name: "page", def: 1, min: 1, max: 1_000_000}
	limitParam = intParam{name: "limit", def: 50, min: 1, max: 500}
)

// parse returns the parameter's value from q, or its default when absent.
// A present but empty, non-integer or out-of-range value is an error that
// names the parameter and its range.
func (p intParam) parse(q url.Values) (int, error) {
	if !q.Has(p.name) {
		return p.def, nil
	}
	raw := q.Get(p.name)
	n, err := strconv.Atoi(raw)
	if err != nil || n < p.min || n > p.max {
		return 0, fmt.Errorf("invalid %s %q: must be an integer from %d to %d", p.name, shorten(raw, 40), p.min, p.max)
	}
	return n, nil
}

// startOfDay returns midnight UTC of t's UTC day.
func startOfDay(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// windowStart returns the start of a window of days UTC days ending with
// today, so days=1 is today alone.
func windowStart(now time.Time, days int) time.Time {
	return startOfDay(now).AddDate(0, 0, -(days - 1))
}

// shorten cuts s to at most n bytes, marking the cut, so an error message
// never echoes a huge input.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
