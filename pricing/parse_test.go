package pricing

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// minimalEntry is one valid entry in YAML, for cases that add to it.
const minimalEntry = `prices:
  - model: m
    effective_from: 2025-01-01T00:00:00Z
    currency: USD
    hit: 0.1
    miss: 1
    output: 2
`

// TestParseExample checks the documented example file, because operators
// copy it to write their own price files.
func TestParseExample(t *testing.T) {
	tab, err := LoadFile(filepath.Join("testdata", "prices.example.yaml"))
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	if got := len(tab.Entries()); got != 4 {
		t.Errorf("len(Entries()) = %d, want 4", got)
	}
	checkLookups(t, tab, []lookupCase{
		{name: "flash peak", model: "deepseek-v4-flash", at: "2026-09-10T02:00:00Z", wantOK: true, wantModel: "deepseek-flash", wantFrom: tV41, wantRates: flashSepPeak, wantWindow: "peak"},
		{name: "flash Saturday", model: "deepseek-flash", at: "2026-09-12T02:00:00Z", wantOK: true, wantModel: "deepseek-flash", wantFrom: tV41, wantRates: flashSepOff},
		{name: "pro peak", model: "deepseek-v4-pro", at: "2026-09-11T07:00:00Z", wantOK: true, wantModel: "deepseek-v4-pro", wantFrom: tPeakWeek, wantRates: proAugPeak, wantWindow: "peak"},
		{name: "pro as flash", model: "deepseek-v4-pro", at: "2026-09-14T07:00:00Z", wantOK: true, wantModel: "deepseek-flash", wantFrom: tProMoved, wantRates: flashSepPeak, wantWindow: "peak"},
		{name: "chat off-peak", model: "deepseek-chat", at: "2025-03-04T00:10:00Z", wantOK: true, wantModel: "deepseek-chat", wantFrom: tOffPeak, wantRates: chatOffPeak, wantWindow: "off-peak"},
		{name: "chat not listed yet", model: "deepseek-chat", at: "2025-02-25T00:00:00Z"},
	})
}

// TestParseForms checks the accepted ways of writing values, because a
// file that parses but means something else would misprice silently.
func TestParseForms(t *testing.T) {
	tests := []struct {
		name  string
		data  string
		check func(t *testing.T, es []Entry)
	}{
		{
			name: "JSON with string and number prices",
			data: `{"prices": [{"model": "m", "aliases": ["n"], "effective_from": "2025-01-01T08:00:00+08:00",
				"currency": "CNY", "hit": "0.5475", "miss": 0.1375, "output": 1, "source": "s"}]}`,
			check: func(t *testing.T, es []Entry) {
				want := Entry{
					Model: "m", Aliases: []string{"n"}, EffectiveFrom: mustTime(t, "2025-01-01T00:00:00Z"),
					Currency: "CNY", Rates: Rates{Hit: 547_500, Miss: 137_500, Output: 1_000_000}, Source: "s",
				}
				checkEntry(t, es[0], want)
			},
		},
		{
			name: "exact decimals",
			data: strings.Replace(minimalEntry, "hit: 0.1", "hit: 0.003625", 1),
			check: func(t *testing.T, es []Entry) {
				if es[0].Rates.Hit != 3_625 {
					t.Errorf("hit rate = %d, want 3625", es[0].Rates.Hit)
				}
			},
		},
		{
			name: "null optional lists",
			data: minimalEntry + "    aliases: ~\n    windows:\n",
			check: func(t *testing.T, es []Entry) {
				if len(es[0].Aliases) != 0 || len(es[0].Windows) != 0 {
					t.Errorf("aliases %v, windows %v; want none", es[0].Aliases, es[0].Windows)
				}
			},
		},
		{
			name: "tags and block scalars",
			data: strings.Replace(minimalEntry, "miss: 1", "miss: !!str 1.25\n    source: |\n      line one\n      line two", 1),
			check: func(t *testing.T, es []Entry) {
				if es[0].Rates.Miss != 1_250_000 {
					t.Errorf("miss rate = %d, want 1250000", es[0].Rates.Miss)
				}
				if es[0].Source != "line one\nline two\n" {
					t.Errorf("source = %q, want %q", es[0].Source, "line one\nline two\n")
				}
			},
		},
		{
			name: "anchors aliases and merge keys",
			data: `prices:
  - &base
    model: a
    effective_from: 2025-01-01T00:00:00Z
    currency: USD
    hit: 0.1
    miss: 1
    output: 2
    windows:
      - &night {name: night, days: &days [mon, tue], start: "22:00", end: "02:00", hit: 0.05, miss: 0.5, output: 1}
  - <<: *base
    model: b
    miss: 3
    windows:
      - <<: *night
        days: *days
        output: 7
`,
			check: func(t *testing.T, es []Entry) {
				if len(es) != 2 {
					t.Fatalf("%d entries, want 2", len(es))
				}
				b := es[1]
				want := Entry{
					Model: "b", EffectiveFrom: mustTime(t, "2025-01-01T00:00:00Z"), Currency: "USD",
					Rates: Rates{Hit: 100_000, Miss: 3_000_000, Output: 2_000_000},
					Windows: []Window{{
						Days: []time.Weekday{time.Monday, time.Tuesday}, Start: 22 * time.Hour, End: 2 * time.Hour,
						Rates: Rates{Hit: 50_000, Miss: 500_000, Output: 7_000_000}, Name: "night",
					}},
				}
				checkEntry(t, b, want)
			},
		},
		{
			name: "day and clock forms",
			data: minimalEntry + `    windows:
      - {name: a, days: all, start: "00:00", end: "01:00", hit: 0, miss: 0, output: 0}
      - {name: b, days: Saturday, start: "01:00", end: "02:00", hit: 0, miss: 0, output: 0}
      - {name: c, days: [SUN, monday], start: "02:00:30", end: "24:00", hit: 0, miss: 0, output: 0}
      - {name: d, days: [fri], start: 1:00, end: "1:30", hit: 0, miss: 0, output: 0}
`,
			check: func(t *testing.T, es []Entry) {
				ws := es[0].Windows
				if len(ws) != 4 {
					t.Fatalf("%d windows, want 4", len(ws))
				}
				wantDays := [][]time.Weekday{
					{time.Sunday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday},
					{time.Saturday},
					{time.Sunday, time.Monday},
					{time.Friday},
				}
				for i, w := range ws {
					if !reflect.DeepEqual(w.Days, wantDays[i]) {
						t.Errorf("windows[%d].Days = %v, want %v", i, w.Days, wantDays[i])
					}
				}
				if ws[2].Start != 2*time.Hour+30*time.Second || ws[2].End != 24*time.Hour {
					t.Errorf("windows[2] = %s-%s, want 2h0m30s-24h0m0s", ws[2].Start, ws[2].End)
				}
				if ws[3].Start != time.Hour || ws[3].End != 90*time.Minute {
					t.Errorf("windows[3] = %s-%s, want 1h0m0s-1h30m0s", ws[3].Start, ws[3].End)
				}
			},
		},
		{
			name: "document marker and comments",
			data: "# prices\n---\n" + minimalEntry + "...\n",
			check: func(t *testing.T, es []Entry) {
				if es[0].Model != "m" {
					t.Errorf("model = %q, want m", es[0].Model)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := Parse([]byte(tt.data), "prices.yaml")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			tt.check(t, tab.Entries())
		})
	}
}

// checkEntry compares two entries field by field.
func checkEntry(t *testing.T, got, want Entry) {
	t.Helper()
	if !got.EffectiveFrom.Equal(want.EffectiveFrom) {
		t.Errorf("EffectiveFrom = %s, want %s", got.EffectiveFrom, want.EffectiveFrom)
	}
	got.EffectiveFrom, want.EffectiveFrom = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entry = %+v\nwant    %+v", got, want)
	}
}

// TestParseErrors checks that each mistake in a price file is rejected with
// the file, line and field at fault, because operators fix these files by
// hand from the message alone.
func TestParseErrors(t *testing.T) {
	window := "    windows:\n      - {name: w, days: [mon], start: \"01:00\", end: \"02:00\", hit: 0, miss: 0, output: 0}\n"
	tests := []struct {
		name     string
		data     string
		wantLine int
		wantPath string
		wantMsg  string // the whole message when wantFull, else a part of it
		wantFull bool
	}{
		{
			name: "invalid amount",
			data: `# Price file
prices:
  - model: deepseek-chat
    effective_from: 2025-09-29T00:00:00Z
    currency: USD
    hit: 0.028
    miss: abc
    output: 0.42
`,
			wantLine: 7, wantPath: "prices[0].miss", wantFull: true,
			wantMsg: `prices.yaml: line 7: prices[0].miss: invalid amount "abc": expected a decimal number such as 0.28`,
		},
		{name: "empty file", data: "", wantMsg: "prices.yaml: empty file: expected a prices list", wantFull: true},
		{name: "only comments", data: "# nothing\n", wantMsg: "empty file"},
		{name: "empty list", data: "prices: []\n", wantLine: 1, wantPath: "prices", wantMsg: "empty list: at least one price entry is required"},
		{name: "null list", data: "prices:\n", wantPath: "prices", wantMsg: "empty list"},
		{name: "missing prices", data: "other: 1\n", wantLine: 1, wantPath: "other", wantMsg: "unknown field; expected one of prices"},
		{name: "top-level list", data: "- model: m\n", wantLine: 1, wantMsg: "expected a mapping of fields, found a list"},
		{name: "prices not a list", data: "prices: {model: m}\n", wantLine: 1, wantPath: "prices", wantMsg: "expected a list, found a mapping"},
		{name: "entry not a mapping", data: "prices:\n  - m\n", wantLine: 2, wantPath: "prices[0]", wantMsg: "expected a mapping of fields, found a string"},
		{name: "unknown entry field", data: minimalEntry + "    colour: red\n", wantLine: 8, wantPath: "prices[0].colour", wantMsg: "unknown field; expected one of model, aliases"},
		{name: "unknown window field", data: minimalEntry + "    windows:\n      - name: w\n        colour: red\n", wantLine: 10, wantPath: "prices[0].windows[0].colour", wantMsg: "unknown field"},
		{name: "missing model", data: strings.Replace(minimalEntry, "  - model: m\n    effective_from", "  - effective_from", 1), wantLine: 2, wantPath: "prices[0].model", wantMsg: "missing field: model is required"},
		{name: "missing output", data: strings.Replace(minimalEntry, "    output: 2\n", "", 1), wantLine: 2, wantPath: "prices[0].output", wantMsg: "missing field: output is required"},
		{name: "null hit", data: strings.Replace(minimalEntry, "hit: 0.1", "hit: ~", 1), wantLine: 5, wantPath: "prices[0].hit", wantMsg: "missing value: expected a price per 1M tokens"},
		{name: "empty hit", data: strings.Replace(minimalEntry, "hit: 0.1", "hit:", 1), wantPath: "prices[0].hit", wantMsg: "missing value"},
		{name: "list hit", data: strings.Replace(minimalEntry, "hit: 0.1", "hit: [0.1]", 1), wantLine: 5, wantPath: "prices[0].hit", wantMsg: "found a list"},
		{name: "exponent", data: strings.Replace(minimalEntry, "hit: 0.1", "hit: 1e-3", 1), wantLine: 5, wantPath: "prices[0].hit", wantMsg: `invalid amount "1e-3"`},
		{name: "hex", data: strings.Replace(minimalEntry, "hit: 0.1", "hit: 0x10", 1), wantLine: 5, wantPath: "prices[0].hit", wantMsg: `invalid amount "0x10"`},
		{name: "too precise", data: strings.Replace(minimalEntry, "hit: 0.1", "hit: 0.0000001", 1), wantLine: 5, wantPath: "prices[0].hit", wantMsg: "at most 6 digits"},
		{name: "negative", data: strings.Replace(minimalEntry, "miss: 1", "miss: -1", 1), wantLine: 6, wantPath: "prices[0].miss", wantMsg: `model "m": negative price -1 per 1M tokens`},
		{name: "bad time", data: strings.Replace(minimalEntry, "2025-01-01T00:00:00Z", "yesterday", 1), wantLine: 3, wantPath: "prices[0].effective_from", wantMsg: `invalid time "yesterday": expected RFC 3339`},
		{name: "time without zone", data: strings.Replace(minimalEntry, "2025-01-01T00:00:00Z", "2025-01-01T00:00:00", 1), wantLine: 3, wantPath: "prices[0].effective_from", wantMsg: "invalid time"},
		{name: "lower-case currency", data: strings.Replace(minimalEntry, "USD", "usd", 1), wantLine: 4, wantPath: "prices[0].currency", wantMsg: `invalid currency "usd"`},
		{name: "mapping as model", data: strings.Replace(minimalEntry, "model: m", "model: {a: b}", 1), wantLine: 2, wantPath: "prices[0].model", wantMsg: "expected a string, found a mapping"},
		{name: "empty model", data: strings.Replace(minimalEntry, "model: m", `model: ""`, 1), wantLine: 2, wantPath: "prices[0].model", wantMsg: "missing: a model name is required"},
		{
			name:     "duplicate entry",
			data:     minimalEntry + strings.TrimPrefix(minimalEntry, "prices:\n"),
			wantLine: 8, wantPath: "prices[1].model", wantMsg: `duplicate price for "m" from 2025-01-01T00:00:00Z: entry 0 (model) already prices it`,
		},
		{
			name:     "alias of another entry",
			data:     minimalEntry + strings.Replace(strings.TrimPrefix(minimalEntry, "prices:\n"), "model: m", "model: n\n    aliases: [x, M]", 1),
			wantLine: 9, wantPath: "prices[1].aliases[1]", wantMsg: `alias "M" is the model of entry 0`,
		},
		{name: "too many aliases", data: minimalEntry + "    aliases: [" + strings.Repeat("a,", 64) + "b]\n", wantLine: 8, wantPath: "prices[0].aliases", wantMsg: "too many items: 65, the limit is 64"},
		{
			name:     "too many windows",
			data:     minimalEntry + "    windows:\n" + strings.Repeat("      - {name: w, days: [mon], start: \"01:00\", end: \"02:00\", hit: 0, miss: 0, output: 0}\n", 49),
			wantLine: 9, wantPath: "prices[0].windows", wantMsg: "too many items: 49, the limit is 48",
		},
		{
			name:     "too many entries",
			data:     strings.Replace(minimalEntry, "  - model: m", "  - &e\n    model: m", 1) + strings.Repeat("  - *e\n", 1000),
			wantLine: 2, wantPath: "prices", wantMsg: "too many items: 1001, the limit is 1000",
		},
		{name: "bad day", data: minimalEntry + strings.Replace(window, "[mon]", "[mon, funday]", 1), wantLine: 9, wantPath: "prices[0].windows[0].days[1]", wantMsg: `invalid day "funday"`},
		{name: "day twice", data: minimalEntry + strings.Replace(window, "[mon]", "[mon, Monday]", 1), wantLine: 9, wantPath: "prices[0].windows[0].days[1]", wantMsg: "Monday is listed twice"},
		{name: "all and a day", data: minimalEntry + strings.Replace(window, "[mon]", "[all, sun]", 1), wantPath: "prices[0].windows[0].days[1]", wantMsg: "Sunday is listed twice"},
		{name: "too many days", data: minimalEntry + strings.Replace(window, "[mon]", "[mon, tue, wed, thu, fri, sat, sun, mon]", 1), wantPath: "prices[0].windows[0].days", wantMsg: "too many items: 8, the limit is 7"},
		{name: "no days", data: minimalEntry + strings.Replace(window, "[mon]", "[]", 1), wantPath: "prices[0].windows[0].days", wantMsg: "at least one day"},
		{name: "hour 25", data: minimalEntry + strings.Replace(window, `"02:00"`, `"25:00"`, 1), wantLine: 9, wantPath: "prices[0].windows[0].end", wantMsg: `invalid time of day "25:00"`},
		{name: "past 24:00", data: minimalEntry + strings.Replace(window, `"02:00"`, `"24:00:01"`, 1), wantPath: "prices[0].windows[0].end", wantMsg: "invalid time of day"},
		{name: "one-digit minute", data: minimalEntry + strings.Replace(window, `"01:00"`, `"1:5"`, 1), wantPath: "prices[0].windows[0].start", wantMsg: "invalid time of day"},
		{name: "second 60", data: minimalEntry + strings.Replace(window, `"01:00"`, `"01:00:60"`, 1), wantPath: "prices[0].windows[0].start", wantMsg: "invalid time of day"},
		{name: "signed hour", data: minimalEntry + strings.Replace(window, `"01:00"`, `"+1:00"`, 1), wantPath: "prices[0].windows[0].start", wantMsg: "invalid time of day"},
		{name: "missing window name", data: minimalEntry + strings.Replace(window, "name: w, ", "", 1), wantLine: 9, wantPath: "prices[0].windows[0].name", wantMsg: "missing field: name is required"},
		{
			name:     "overlapping windows",
			data:     minimalEntry + window + strings.Replace(strings.SplitAfter(window, "\n")[1], `"01:00"`, `"01:30"`, 1),
			wantLine: 10, wantPath: "prices[0].windows[1]", wantMsg: `window "w" overlaps windows[0] ("w")`,
		},
		{name: "deep flow nesting", data: "prices:\n  - " + strings.Repeat("[", 101) + strings.Repeat("]", 101) + "\n", wantLine: 2, wantMsg: "values nested more than 100 levels deep"},
		{name: "deep dash nesting", data: "prices:\n" + strings.Repeat("- ", 101) + "x\n", wantLine: 2, wantMsg: "values nested more than 100 levels deep"},
		{name: "syntax error", data: minimalEntry + "    aliases: [a, b\n", wantMsg: "invalid YAML"},
		{name: "duplicate key", data: minimalEntry + "    hit: 0.2\n", wantLine: 8, wantMsg: `invalid YAML: mapping key "hit" already defined`},
		{name: "two documents", data: minimalEntry + "---\n" + minimalEntry, wantLine: 9, wantMsg: "more than one YAML document"},
		{name: "unknown alias", data: strings.Replace(minimalEntry, "hit: 0.1", "hit: *nowhere", 1), wantLine: 5, wantPath: "prices[0].hit", wantMsg: "alias *nowhere names no anchor"},
		{name: "anchor defined twice", data: strings.Replace(strings.Replace(minimalEntry, "hit: 0.1", "hit: &a 0.1", 1), "miss: 1", "miss: &a 1", 1), wantLine: 6, wantMsg: "anchor &a is defined twice"},
		{
			// Each entry merges the one before it ten times, so the last
			// would expand to 10^8 keys without the limit.
			name: "merge expansion",
			data: "prices:\n  - &a0 {model: m, effective_from: 2025-01-01T00:00:00Z, currency: USD, hit: 0, miss: 0, output: 0}\n" + func() string {
				var b strings.Builder
				for i := 1; i <= 8; i++ {
					fmt.Fprintf(&b, "  - &a%d {<<: [%s]}\n", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 10), ","))
				}
				return b.String()
			}(),
			wantMsg: "merge keys expand to more than 100000 keys",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := Parse([]byte(tt.data), "prices.yaml")
			if err == nil {
				t.Fatalf("Parse accepted the file: %+v", tab.Entries())
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %v (%T) is not a *ParseError", err, err)
			}
			if tt.wantFull {
				if err.Error() != tt.wantMsg {
					t.Errorf("error = %q\nwant    %q", err, tt.wantMsg)
				}
			} else if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantMsg)
			}
			if pe.File != "prices.yaml" {
				t.Errorf("File = %q, want prices.yaml", pe.File)
			}
			if tt.wantLine != 0 && pe.Line != tt.wantLine {
				t.Errorf("Line = %d, want %d (%v)", pe.Line, tt.wantLine, err)
			}
			if tt.wantPath != "" && pe.Path != tt.wantPath {
				t.Errorf("Path = %q, want %q (%v)", pe.Path, tt.wantPath, err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans several lines: %q", err)
			}
		})
	}
}

// TestParseErrorFormat checks the message layout with and without a file
// name and line, because callers print it as it is.
func TestParseErrorFormat(t *testing.T) {
	base := errors.New("boom")
	tests := []struct {
		name string
		err  *ParseError
		want string
	}{
		{name: "everything", err: &ParseError{File: "p.yaml", Line: 3, Path: "prices[0].hit", Err: base}, want: "p.yaml: line 3: prices[0].hit: boom"},
		{name: "no line", err: &ParseError{File: "p.yaml", Path: "prices", Err: base}, want: "p.yaml: prices: boom"},
		{name: "no file", err: &ParseError{Line: 2, Err: base}, want: "line 2: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if !errors.Is(tt.err, base) {
				t.Errorf("errors.Is(%v, base) = false, want true", tt.err)
			}
		})
	}
}

// TestLoadFileErrors checks file-level failures: a missing file must keep
// fs.ErrNotExist for callers, and an oversized file is rejected before it
// is parsed.
func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	data := []byte(minimalEntry + "#" + strings.Repeat("x", maxFileSize) + "\n")
	if err := os.WriteFile(big, data, 0o600); err != nil {
		t.Fatalf("write %s: %v", big, err)
	}

	t.Run("missing file", func(t *testing.T) {
		_, err := LoadFile(filepath.Join(dir, "none.yaml"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LoadFile error = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		_, err := LoadFile(big)
		if err == nil || !strings.Contains(err.Error(), "larger than the limit of 1048576 bytes") {
			t.Errorf("LoadFile error = %v, want the size limit", err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), big+": ") {
			t.Errorf("LoadFile error = %q, want it to start with the path", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		if _, err := LoadFile(dir); err == nil {
			t.Errorf("LoadFile(directory) succeeded, want an error")
		}
	})
}

// TestParseBuiltinRoundTrip writes the built-in table as a price file and
// reads it back, so every built-in feature (aliases, windows crossing
// midnight, exact rates) also works from a file.
func TestParseBuiltinRoundTrip(t *testing.T) {
	want := Builtin().Entries()
	data := formatPriceFile(want)
	tab, err := Parse([]byte(data), "builtin.yaml")
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, data)
	}
	got := tab.Entries()
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d", len(got), len(want))
	}
	for i := range want {
		t.Run(fmt.Sprintf("entry %d %s", i, want[i].Model), func(t *testing.T) {
			checkEntry(t, got[i], want[i])
		})
	}
}

// formatPriceFile writes entries in the price file format.
func formatPriceFile(entries []Entry) string {
	var b strings.Builder
	b.WriteString("prices:\n")
	for _, e := range entries {
		fmt.Fprintf(&b, "  - model: %s\n", e.Model)
		if len(e.Aliases) > 0 {
			fmt.Fprintf(&b, "    aliases: [%s]\n", strings.Join(e.Aliases, ", "))
		}
		fmt.Fprintf(&b, "    effective_from: %s\n", e.EffectiveFrom.Format(time.RFC3339Nano))
		fmt.Fprintf(&b, "    currency: %s\n", e.Currency)
		fmt.Fprintf(&b, "    hit: %s\n    miss: %s\n    output: %s\n", FormatRate(e.Rates.Hit), FormatRate(e.Rates.Miss), FormatRate(e.Rates.Output))
		fmt.Fprintf(&b, "    source: %q\n", e.Source)
		if len(e.Windows) > 0 {
			b.WriteString("    windows:\n")
		}
		for _, w := range e.Windows {
			days := make([]string, len(w.Days))
			for i, d := range w.Days {
				days[i] = strings.ToLower(d.String()[:3])
			}
			fmt.Fprintf(&b, "      - name: %s\n        days: [%s]\n", w.Name, strings.Join(days, ", "))
			fmt.Fprintf(&b, "        start: %q\n        end: %q\n", formatClock(w.Start), formatClock(w.End))
			fmt.Fprintf(&b, "        hit: %s\n        miss: %s\n        output: %s\n", FormatRate(w.Rates.Hit), FormatRate(w.Rates.Miss), FormatRate(w.Rates.Output))
		}
	}
	return b.String()
}

func formatClock(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}

// FuzzParse feeds arbitrary bytes to Parse. It must never panic, must
// return a *ParseError on failure, and on success must return a table that
// prices every entry's names at the entry's effective time.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile(filepath.Join("testdata", "prices.example.yaml"))
	if err != nil {
		f.Fatalf("read example: %v", err)
	}
	f.Add(example)
	f.Add([]byte(minimalEntry))
	f.Add([]byte(`{"prices":[{"model":"m","effective_from":"2025-01-01T00:00:00Z","currency":"USD","hit":"0.5475","miss":0.1,"output":1}]}`))
	f.Add([]byte(minimalEntry + "    windows:\n      - {name: w, days: all, start: \"16:30\", end: \"00:30\", hit: 0, miss: 0, output: 0}\n"))
	f.Add([]byte("prices:\n  - &a {model: m}\n  - <<: *a\n"))
	f.Add([]byte("prices: [\n"))
	f.Add([]byte(""))

	f.Fuzz(func(t *testing.T, data []byte) {
		tab, err := Parse(data, "fuzz.yaml")
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %v (%T) is not a *ParseError", err, err)
			}
			return
		}
		entries := tab.Entries()
		if len(entries) == 0 {
			t.Fatalf("Parse returned a table with no entries")
		}
		for _, e := range entries {
			for _, name := range append([]string{e.Model}, e.Aliases...) {
				p, ok := tab.Lookup(name, e.EffectiveFrom)
				if !ok {
					t.Fatalf("Lookup(%q, %s) found no price for a parsed entry", name, e.EffectiveFrom)
				}
				if p.Currency != e.Currency {
					t.Fatalf("Lookup(%q) currency %q, want %q", name, p.Currency, e.Currency)
				}
			}
		}
	})
}
