package pricing

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// validateEntry checks one entry on its own and returns the field at fault
// with the error. Conflicts between entries are checked by NewTable.
func validateEntry(e Entry) (field string, err error) {
	if err := validateName(e.Model); err != nil {
		return "model", err
	}
	seen := map[string]string{strings.ToLower(e.Model): "model"}
	for i, a := range e.Aliases {
		field := fmt.Sprintf("aliases[%d]", i)
		if err := validateName(a); err != nil {
			return field, err
		}
		if prev, ok := seen[strings.ToLower(a)]; ok {
			return field, fmt.Errorf("%q repeats %s of the same entry", a, prev)
		}
		seen[strings.ToLower(a)] = field
	}

	if e.EffectiveFrom.IsZero() {
		return "effective_from", errors.New("missing: the instant the price takes effect is required")
	}
	if err := validateCurrency(e.Currency); err != nil {
		return "currency", err
	}
	if field, err := validateRates(e.Rates); err != nil {
		return field, err
	}

	for i, w := range e.Windows {
		if field, err := validateWindow(w); err != nil {
			return fmt.Sprintf("windows[%d].%s", i, field), err
		}
	}
	return validateOverlaps(e.Windows)
}

func validateName(name string) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("missing: a model name is required")
	}
	if strings.TrimSpace(name) != name {
		return fmt.Errorf("invalid model name %q: leading or trailing spaces", name)
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return fmt.Errorf("invalid model name %q: control characters", name)
	}
	return nil
}

// validateCurrency checks the form of an ISO 4217 code.
//
// TODO: codes are not checked against the ISO 4217 list, so a well-formed
// but unassigned code such as "XYZ" passes. golang.org/x/text/currency has
// the list; using it would make that module a direct dependency.
func validateCurrency(c string) error {
	if c == "" {
		return errors.New("missing: an ISO 4217 currency code such as USD is required")
	}
	if len(c) != 3 || strings.IndexFunc(c, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
		return fmt.Errorf("invalid currency %q: expected an ISO 4217 code of three upper-case letters such as USD", c)
	}
	return nil
}

func validateRates(r Rates) (field string, err error) {
	for _, f := range [...]struct {
		name string
		rate Money
	}{{"hit", r.Hit}, {"miss", r.Miss}, {"output", r.Output}} {
		if f.rate < 0 {
			return f.name, fmt.Errorf("negative price %s per 1M tokens", FormatRate(f.rate))
		}
	}
	return "", nil
}

func validateWindow(w Window) (field string, err error) {
	if strings.TrimSpace(w.Name) == "" {
		return "name", errors.New("missing: a window needs a name, which records show as the price's window")
	}
	if len(w.Days) == 0 {
		return "days", errors.New("missing: a window needs at least one day")
	}
	var seen [7]bool
	for i, d := range w.Days {
		if d < time.Sunday || d > time.Saturday {
			return fmt.Sprintf("days[%d]", i), fmt.Errorf("invalid weekday %d", int(d))
		}
		if seen[d] {
			return fmt.Sprintf("days[%d]", i), fmt.Errorf("%s is listed twice", d)
		}
		seen[d] = true
	}
	if w.Start < 0 || w.Start > day {
		return "start", fmt.Errorf("start %s is outside 00:00 to 24:00", w.Start)
	}
	if w.End < 0 || w.End > day {
		return "end", fmt.Errorf("end %s is outside 00:00 to 24:00", w.End)
	}
	if field, err := validateRates(w.Rates); err != nil {
		return field, err
	}
	return "", nil
}

// week is the period after which window occurrences repeat.
const week = 7 * day

// validateOverlaps rejects windows of one entry that cover the same instant,
// because Lookup could not tell which rates apply. It compares occurrences
// as intervals of the week, counted from Sunday 00:00.
func validateOverlaps(windows []Window) (field string, err error) {
	type span struct{ from, to time.Duration }
	spans := make([][]span, len(windows))
	for i, w := range windows {
		end := windowEnd(w)
		for _, d := range w.Days {
			from := time.Duration(d)*day + w.Start
			to := time.Duration(d)*day + end
			// An occurrence late on Saturday wraps to the start of the week.
			if from >= week {
				from, to = from-week, to-week
			}
			if to > week {
				spans[i] = append(spans[i], span{from, week}, span{0, to - week})
			} else {
				spans[i] = append(spans[i], span{from, to})
			}
		}
	}

	for i := range windows {
		for j := range i {
			for _, a := range spans[i] {
				for _, b := range spans[j] {
					if a.from < b.to && b.from < a.to {
						return fmt.Sprintf("windows[%d]", i),
							fmt.Errorf("window %q overlaps windows[%d] (%q)", windows[i].Name, j, windows[j].Name)
					}
				}
			}
		}
	}
	return "", nil
}
