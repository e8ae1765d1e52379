package pricing

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// Limits on a price file. They are far above any real price list and bound
// the work a file can cause, including through YAML aliases that repeat a
// list many times.
const (
	maxFileSize   = 1 << 20 // bytes
	maxEntries    = 1000
	maxAliases    = 64     // per entry
	maxWindows    = 48     // per entry, enough for every half hour of a day
	maxDays       = 7      // per window, since a day cannot repeat
	maxNesting    = 100    // levels of flow lists, flow mappings or "- " on one line
	maxAliasHops  = 16     // YAML aliases, anchors and tags followed to reach one value
	maxMergeDepth = 16     // nested YAML merge keys
	maxMergedKeys = 100000 // keys read through merge keys in the whole file
)

// perMillionTokens completes "a price" in messages about a missing or
// malformed price.
const perMillionTokens = "per 1M tokens, such as 0.28"

// ParseError reports a price file that cannot be read as a price table.
type ParseError struct {
	File string // the name passed to Parse, or the path passed to LoadFile
	Line int    // 1-based line of the value at fault; 0 when unknown
	Path string // the field at fault, such as "prices[0].miss"; "" for the whole file
	Err  error
}

func (e *ParseError) Error() string {
	var parts []string
	if e.File != "" {
		parts = append(parts, e.File)
	}
	if e.Line > 0 {
		parts = append(parts, "line "+strconv.Itoa(e.Line))
	}
	if e.Path != "" {
		parts = append(parts, e.Path)
	}
	parts = append(parts, e.Err.Error())
	return strings.Join(parts, ": ")
}

func (e *ParseError) Unwrap() error { return e.Err }

// LoadFile reads a price file with Parse. Files over 1 MiB are rejected.
func LoadFile(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load prices: %w", err)
	}
	defer f.Close()

	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("load prices: %w", err)
	}
	return Parse(data, path)
}

// Parse reads a price table from YAML or JSON (JSON is valid YAML). name
// identifies the data in error messages, usually the file name. The format
// is a "prices" list of entries:
//
//	prices:
//	  - model: deepseek-flash
//	    aliases: [deepseek-v4-flash]
//	    effective_from: 2026-09-10T00:00:00Z
//	    currency: USD
//	    hit: 0.003
//	    miss: 0.15
//	    output: 0.60
//	    source: "reported by third parties"
//	    windows:
//	      - name: peak
//	        days: [mon, tue, wed, thu, fri]
//	        start: "01:00"
//	        end: "04:00"
//	        hit: 0.006
//	        miss: 0.30
//	        output: 1.20
//
// Prices are per 1M tokens, written as numbers or strings, and are read
// from their literal text, never through float64, so 0.5475 is exact. The
// effective_from time is RFC 3339. Days are mon to sun, monday to sunday,
// or "all". Window times are HH:MM or HH:MM:SS in UTC, from 00:00 to 24:00.
// aliases, source and windows are optional. Unknown fields, an empty list,
// more than 1 MiB of data and values nested more than 100 levels deep are
// errors. YAML anchors, aliases and merge keys are allowed.
//
// Errors are *ParseError values that name the file, the line and the field
// at fault, and every check of NewTable applies.
func Parse(data []byte, name string) (*Table, error) {
	if len(data) > maxFileSize {
		return nil, &ParseError{File: name, Err: fmt.Errorf("file is larger than the limit of %d bytes", maxFileSize)}
	}

	if line, ok := checkNesting(data); !ok {
		return nil, &ParseError{File: name, Line: line, Err: fmt.Errorf("values nested more than %d levels deep", maxNesting)}
	}

	d := &decoder{file: name, lines: make(map[string]int)}
	entries, err := d.decodeFile(data)
	if err != nil {
		return nil, err
	}

	t, err := NewTable(entries)
	if err != nil {
		var ee *EntryError
		if !errors.As(err, &ee) {
			return nil, &ParseError{File: name, Err: err}
		}
		path := fmt.Sprintf("prices[%d].%s", ee.Index, ee.Field)
		return nil, &ParseError{File: name, Line: d.line(path), Path: path, Err: fmt.Errorf("model %q: %w", ee.Model, ee.Err)}
	}
	return t, nil
}

// decoder turns the YAML syntax tree of a price file into entries. It reads
// scalars from their literal text and records the line of every field so
// that errors found later can point at it.
type decoder struct {
	file    string
	anchors map[string]ast.Node
	lines   map[string]int // field path, such as "prices[0].miss", to its line

	// mergedKeys counts keys read through merge keys. Merging the same
	// anchor many times can make a small file expand without bound.
	mergedKeys int
}

// Fields of an entry and of a window, all of them and the required ones.
var (
	entryFields          = []string{"model", "aliases", "effective_from", "currency", "hit", "miss", "output", "source", "windows"}
	requiredEntryFields  = []string{"model", "effective_from", "currency", "hit", "miss", "output"}
	windowFields         = []string{"name", "days", "start", "end", "hit", "miss", "output"}
	requiredWindowFields = windowFields
)

func (d *decoder) decodeFile(data []byte) ([]Entry, error) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, d.syntaxError(err)
	}

	var root ast.Node
	for _, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if root != nil {
			return nil, d.errorAt(doc.Body, "", errors.New("more than one YAML document; put every entry in one prices list"))
		}
		root = doc.Body
	}
	if root == nil {
		return nil, &ParseError{File: d.file, Err: errors.New("empty file: expected a prices list")}
	}
	if err := d.collectAnchors(root); err != nil {
		return nil, err
	}

	fields, err := d.mapping(root, "", []string{"prices"}, nil)
	if err != nil {
		return nil, err
	}
	prices, ok := fields["prices"]
	if !ok {
		return nil, d.errorAt(root, "prices", errors.New("missing field: the file must contain a prices list"))
	}
	items, err := d.sequence(prices, "prices", maxEntries)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, d.errorAt(prices, "prices", errors.New("empty list: at least one price entry is required"))
	}

	entries := make([]Entry, 0, len(items))
	for i, item := range items {
		e, err := d.entry(item, fmt.Sprintf("prices[%d]", i))
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func (d *decoder) entry(n ast.Node, path string) (Entry, error) {
	var e Entry
	fields, err := d.mapping(n, path, entryFields, requiredEntryFields)
	if err != nil {
		return e, err
	}

	if e.Model, err = d.text(fields["model"], path+".model"); err != nil {
		return e, err
	}
	if e.Aliases, err = decodeList(d, fields["aliases"], path+".aliases", maxAliases, d.text); err != nil {
		return e, err
	}
	if e.EffectiveFrom, err = d.instant(fields["effective_from"], path+".effective_from"); err != nil {
		return e, err
	}
	if e.Currency, err = d.text(fields["currency"], path+".currency"); err != nil {
		return e, err
	}
	if e.Rates, err = d.rates(fields, path); err != nil {
		return e, err
	}
	if v, ok := fields["source"]; ok {
		if e.Source, err = d.text(v, path+".source"); err != nil {
			return e, err
		}
	}
	if e.Windows, err = decodeList(d, fields["windows"], path+".windows", maxWindows, d.window); err != nil {
		return e, err
	}
	return e, nil
}

// decodeList decodes each item of an optional list with decode. A missing
// or null list is empty.
func decodeList[T any](d *decoder, n ast.Node, path string, max int, decode func(ast.Node, string) (T, error)) ([]T, error) {
	if n == nil {
		return nil, nil
	}
	items, err := d.sequence(n, path, max)
	if err != nil {
		return nil, err
	}
	var out []T
	for i, item := range items {
		v, err := decode(item, fmt.Sprintf("%s[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (d *decoder) window(n ast.Node, path string) (Window, error) {
	var w Window
	fields, err := d.mapping(n, path, windowFields, requiredWindowFields)
	if err != nil {
		return w, err
	}

	if w.Name, err = d.text(fields["name"], path+".name"); err != nil {
		return w, err
	}
	if w.Days, err = d.days(fields["days"], path+".days"); err != nil {
		return w, err
	}
	if w.Start, err = d.clock(fields["start"], path+".start"); err != nil {
		return w, err
	}
	if w.End, err = d.clock(fields["end"], path+".end"); err != nil {
		return w, err
	}
	if w.Rates, err = d.rates(fields, path); err != nil {
		return w, err
	}
	return w, nil
}

func (d *decoder) rates(fields map[string]ast.Node, path string) (Rates, error) {
	var r Rates
	var err error
	if r.Hit, err = d.rate(fields["hit"], path+".hit"); err != nil {
		return r, err
	}
	if r.Miss, err = d.rate(fields["miss"], path+".miss"); err != nil {
		return r, err
	}
	if r.Output, err = d.rate(fields["output"], path+".output"); err != nil {
		return r, err
	}
	return r, nil
}

func (d *decoder) rate(n ast.Node, path string) (Money, error) {
	s, err := d.scalar(n, path, "a price "+perMillionTokens)
	if err != nil {
		return 0, err
	}
	r, err := ParseRate(s)
	if err != nil {
		return 0, d.errorAt(n, path, err)
	}
	return r, nil
}

func (d *decoder) instant(n ast.Node, path string) (time.Time, error) {
	s, err := d.scalar(n, path, "an RFC 3339 time such as 2026-09-10T00:00:00Z")
	if err != nil {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, d.errorAt(n, path, fmt.Errorf("invalid time %q: expected RFC 3339 such as 2026-09-10T00:00:00Z", s))
	}
	return t.UTC(), nil
}

// days reads a list of day names, a single day name, or "all".
func (d *decoder) days(n ast.Node, path string) ([]time.Weekday, error) {
	n, err := d.resolve(n, path)
	if err != nil {
		return nil, err
	}
	items := []ast.Node{n}
	if _, ok := n.(*ast.SequenceNode); ok {
		// Each item adds at least one day and days cannot repeat.
		if items, err = d.sequence(n, path, maxDays); err != nil {
			return nil, err
		}
	}

	var out []time.Weekday
	var seen [7]bool
	for i, item := range items {
		itemPath := path
		if len(items) > 1 || n != item {
			itemPath = fmt.Sprintf("%s[%d]", path, i)
		}
		s, err := d.scalar(item, itemPath, "a day such as mon")
		if err != nil {
			return nil, err
		}
		days, ok := parseDays(s)
		if !ok {
			return nil, d.errorAt(item, itemPath, fmt.Errorf("invalid day %q: expected mon to sun, monday to sunday, or all", s))
		}
		for _, wd := range days {
			if seen[wd] {
				return nil, d.errorAt(item, itemPath, fmt.Errorf("%s is listed twice", wd))
			}
			seen[wd] = true
			out = append(out, wd)
		}
	}
	if len(out) == 0 {
		return nil, d.errorAt(n, path, errors.New("empty list: a window needs at least one day"))
	}
	return out, nil
}

// clock reads a time of day, HH:MM or HH:MM:SS from 00:00 to 24:00.
func (d *decoder) clock(n ast.Node, path string) (time.Duration, error) {
	s, err := d.scalar(n, path, "a time of day such as 01:00")
	if err != nil {
		return 0, err
	}
	v, ok := parseClock(s)
	if !ok {
		return 0, d.errorAt(n, path, fmt.Errorf("invalid time of day %q: expected HH:MM from 00:00 to 24:00, such as 01:00", s))
	}
	return v, nil
}

// text reads a string field. Unquoted numbers and booleans are taken as
// written.
func (d *decoder) text(n ast.Node, path string) (string, error) {
	return d.scalar(n, path, "a string")
}

// scalar returns the literal text of a scalar value: the unquoted text of
// a string, or a number exactly as written. want describes the expected
// value for errors.
func (d *decoder) scalar(n ast.Node, path, want string) (string, error) {
	n, err := d.resolve(n, path)
	if err != nil {
		return "", err
	}
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, nil
	case *ast.LiteralNode:
		return v.Value.Value, nil
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		return v.GetToken().Value, nil
	case *ast.NullNode:
		return "", d.errorAt(n, path, fmt.Errorf("missing value: expected %s", want))
	default:
		return "", d.errorAt(n, path, fmt.Errorf("expected %s, found %s", want, kindName(n)))
	}
}

// sequence returns the items of a list, at most max of them. A null value
// is an empty list.
func (d *decoder) sequence(n ast.Node, path string, max int) ([]ast.Node, error) {
	n, err := d.resolve(n, path)
	if err != nil {
		return nil, err
	}
	d.record(path, n)
	switch v := n.(type) {
	case *ast.NullNode:
		return nil, nil
	case *ast.SequenceNode:
		if len(v.Values) > max {
			return nil, d.errorAt(n, path, fmt.Errorf("too many items: %d, the limit is %d", len(v.Values), max))
		}
		for i, item := range v.Values {
			d.record(fmt.Sprintf("%s[%d]", path, i), item)
		}
		return v.Values, nil
	default:
		return nil, d.errorAt(n, path, fmt.Errorf("expected a list, found %s", kindName(n)))
	}
}

// mapping returns the fields of a mapping by key. It rejects keys not in
// allowed and a mapping without every key in required. Keys merged in with
// "<<" apply only where the mapping does not set the key itself.
func (d *decoder) mapping(n ast.Node, path string, allowed, required []string) (map[string]ast.Node, error) {
	fields := make(map[string]ast.Node)
	if err := d.mergeMapping(fields, n, path, allowed, 0); err != nil {
		return nil, err
	}
	for _, name := range required {
		if _, ok := fields[name]; !ok {
			return nil, d.errorAt(n, joinPath(path, name), fmt.Errorf("missing field: %s is required", name))
		}
	}
	return fields, nil
}

func (d *decoder) mergeMapping(fields map[string]ast.Node, n ast.Node, path string, allowed []string, depth int) error {
	if depth > maxMergeDepth {
		return d.errorAt(n, path, fmt.Errorf("merge keys nested more than %d deep", maxMergeDepth))
	}
	n, err := d.resolve(n, path)
	if err != nil {
		return err
	}
	values, err := d.mappingValues(n, path)
	if err != nil {
		return err
	}
	if depth > 0 {
		d.mergedKeys += len(values) + 1
		if d.mergedKeys > maxMergedKeys {
			return d.errorAt(n, path, fmt.Errorf("merge keys expand to more than %d keys", maxMergedKeys))
		}
	}

	// Explicit keys first, so that merged keys cannot replace them.
	var merges []ast.Node
	for _, mv := range values {
		if _, ok := mv.Key.(*ast.MergeKeyNode); ok {
			merges = append(merges, mv.Value)
			continue
		}
		key, err := d.scalar(mv.Key, path, "a field name")
		if err != nil {
			return err
		}
		fieldPath := joinPath(path, key)
		if !contains(allowed, key) {
			return d.errorAt(mv.Key, fieldPath, fmt.Errorf("unknown field; expected one of %s", strings.Join(allowed, ", ")))
		}
		if _, ok := fields[key]; ok && depth == 0 {
			return d.errorAt(mv.Key, fieldPath, errors.New("field is set twice"))
		}
		if _, ok := fields[key]; !ok {
			fields[key] = mv.Value
			d.record(fieldPath, mv.Key)
		}
	}

	for _, m := range merges {
		m, err := d.resolve(m, path)
		if err != nil {
			return err
		}
		sources := []ast.Node{m}
		if seq, ok := m.(*ast.SequenceNode); ok {
			sources = seq.Values
		}
		for _, src := range sources {
			if err := d.mergeMapping(fields, src, path, allowed, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *decoder) mappingValues(n ast.Node, path string) ([]*ast.MappingValueNode, error) {
	switch v := n.(type) {
	case *ast.MappingNode:
		return v.Values, nil
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{v}, nil
	default:
		return nil, d.errorAt(n, path, fmt.Errorf("expected a mapping of fields, found %s", kindName(n)))
	}
}

// resolve follows tags, anchors and aliases to the value they mark or name.
// Tags are ignored: every value is read by the type its field expects.
func (d *decoder) resolve(n ast.Node, path string) (ast.Node, error) {
	for range maxAliasHops {
		switch v := n.(type) {
		case *ast.TagNode:
			n = v.Value
		case *ast.AnchorNode:
			n = v.Value
		case *ast.AliasNode:
			name := nodeText(v.Value)
			target, ok := d.anchors[name]
			if !ok {
				return nil, d.errorAt(n, path, fmt.Errorf("alias *%s names no anchor", name))
			}
			n = target
		default:
			if n == nil {
				return nil, &ParseError{File: d.file, Line: d.line(path), Path: path, Err: errors.New("missing value")}
			}
			return n, nil
		}
	}
	return nil, d.errorAt(n, path, fmt.Errorf("more than %d aliases, anchors or tags in a row", maxAliasHops))
}

// collectAnchors indexes the document's anchors by name. A name defined
// twice is rejected, because which definition an alias means would depend
// on its position.
func (d *decoder) collectAnchors(root ast.Node) error {
	d.anchors = make(map[string]ast.Node)
	for _, n := range ast.Filter(ast.AnchorType, root) {
		a, ok := n.(*ast.AnchorNode)
		if !ok {
			continue
		}
		name := nodeText(a.Name)
		if _, dup := d.anchors[name]; dup {
			return d.errorAt(a, "", fmt.Errorf("anchor &%s is defined twice", name))
		}
		d.anchors[name] = a.Value
	}
	return nil
}

// syntaxError converts a YAML parser error into a one-line *ParseError.
func (d *decoder) syntaxError(err error) error {
	var te interface {
		GetToken() *token.Token
		GetMessage() string
	}
	if errors.As(err, &te) {
		line := 0
		if tk := te.GetToken(); tk != nil && tk.Position != nil {
			line = tk.Position.Line
		}
		return &ParseError{File: d.file, Line: line, Err: fmt.Errorf("invalid YAML: %s", te.GetMessage())}
	}
	return &ParseError{File: d.file, Err: fmt.Errorf("invalid YAML: %w", err)}
}

func (d *decoder) errorAt(n ast.Node, path string, err error) error {
	line := nodeLine(n)
	if line == 0 {
		line = d.line(path)
	}
	return &ParseError{File: d.file, Line: line, Path: path, Err: err}
}

func (d *decoder) record(path string, n ast.Node) {
	if line := nodeLine(n); line > 0 {
		if _, ok := d.lines[path]; !ok {
			d.lines[path] = line
		}
	}
}

// line returns the line recorded for path or, failing that, for the
// nearest enclosing field, such as prices[2] for prices[2].windows[0].
func (d *decoder) line(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		cut := strings.LastIndexAny(path, ".[")
		if cut < 0 {
			break
		}
		path = path[:cut]
	}
	return 0
}

func nodeLine(n ast.Node) int {
	if n == nil {
		return 0
	}
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return 0
	}
	return tk.Position.Line
}

func nodeText(n ast.Node) string {
	if n == nil || n.GetToken() == nil {
		return ""
	}
	return n.GetToken().Value
}

// kindName describes the kind of a value for errors, with an article.
func kindName(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	default:
		return "a " + strings.ToLower(n.Type().String()) + " node"
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// checkNesting reports whether data nests values at most maxNesting levels
// deep, and otherwise the line where it goes deeper. The YAML parser takes
// seconds for input nested tens of thousands of levels deep, and a price
// file needs fewer than ten. The check counts every bracket and brace, even
// inside strings, so it can only overestimate the depth.
func checkNesting(data []byte) (line int, ok bool) {
	line = 1
	depth := 0
	dashes := 0 // "- " sequence starts since the start of the line
	atLineStart := true
	for i, c := range data {
		switch c {
		case '\n':
			line++
			dashes, atLineStart = 0, true
			continue
		case '[', '{':
			depth++
		case ']', '}':
			depth = max(depth-1, 0)
		case '-':
			if atLineStart && (i+1 == len(data) || data[i+1] == ' ' || data[i+1] == '\t') {
				dashes++
			}
		}
		if c != ' ' && c != '\t' && c != '-' {
			atLineStart = false
		}
		if depth > maxNesting || dashes > maxNesting {
			return line, false
		}
	}
	return line, true
}

// weekdayNames maps lower-case day names and abbreviations to weekdays.
var weekdayNames = func() map[string]time.Weekday {
	m := make(map[string]time.Weekday, 14)
	for wd := time.Sunday; wd <= time.Saturday; wd++ {
		name := strings.ToLower(wd.String())
		m[name] = wd
		m[name[:3]] = wd
	}
	return m
}()

// parseDays parses a day name, ignoring case, or "all" for every day.
func parseDays(s string) ([]time.Weekday, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "all" {
		return []time.Weekday{time.Sunday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday}, true
	}
	wd, ok := weekdayNames[s]
	if !ok {
		return nil, false
	}
	return []time.Weekday{wd}, true
}

// parseClock parses HH:MM or HH:MM:SS from 00:00 to 24:00 as an offset
// from midnight. The hour may have one digit.
func parseClock(s string) (time.Duration, bool) {
	parts := strings.Split(strings.TrimSpace(s), ":")
	if len(parts) < 2 || len(parts) > 3 || len(parts[0]) < 1 || len(parts[0]) > 2 {
		return 0, false
	}
	limits := []int{24, 59, 59}
	units := []time.Duration{time.Hour, time.Minute, time.Second}
	var v time.Duration
	for i, p := range parts {
		if (i > 0 && len(p) != 2) || !allDigits(p) {
			return 0, false
		}
		n, err := strconv.Atoi(p)
		if err != nil || n > limits[i] {
			return 0, false
		}
		v += time.Duration(n) * units[i]
	}
	if v > day {
		return 0, false
	}
	return v, true
}
