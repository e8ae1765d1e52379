package metering

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/deepmeter/deepmeter/store"
)

// BodyStorage selects what a record keeps of the request and response
// bodies.
type BodyStorage int

const (
	// BodiesStored keeps each body up to Options.MaxStoredBody bytes.
	BodiesStored BodyStorage = iota
	// BodiesNone keeps no body: request_data and response_data are empty
	// and message is "N/A". The metering columns are kept.
	BodiesNone
)

// Limits of a redaction rule file, so a mistaken or hostile file cannot
// make every record slow to build.
const (
	MaxRedactFileSize   = 1 << 20
	maxRedactRules      = 200
	maxRedactPatternLen = 1000
)

// RedactRule replaces every match of Pattern in the stored bodies, the
// message, the error message, the user id, the page tab and the endpoint
// of a record with Replacement, which may refer to submatches as
// regexp.Regexp.Expand does ($1, ${name}).
type RedactRule struct {
	Pattern     *regexp.Regexp
	Replacement string
}

// ParseRedactRules parses a redaction rule file: a YAML or JSON list of
// objects with the keys pattern (an RE2 regular expression) and
// replacement. Errors name the rule by its 1-based position and pattern.
func ParseRedactRules(data []byte) ([]RedactRule, error) {
	if len(data) > MaxRedactFileSize {
		return nil, fmt.Errorf("redaction rules are larger than %d bytes", MaxRedactFileSize)
	}
	raw, err := decodeRedactFile(data)
	if err != nil {
		return nil, err
	}
	if len(raw) > maxRedactRules {
		return nil, fmt.Errorf("%d redaction rules: at most %d are allowed", len(raw), maxRedactRules)
	}

	rules := make([]RedactRule, 0, len(raw))
	for i, r := range raw {
		n := i + 1
		switch {
		case r.Pattern == nil || *r.Pattern == "":
			return nil, fmt.Errorf("redaction rule %d: missing pattern", n)
		case r.Replacement == nil:
			return nil, fmt.Errorf("redaction rule %d (pattern %q): missing replacement; use \"\" to delete matches", n, cutRunes(*r.Pattern, 60))
		case len(*r.Pattern) > maxRedactPatternLen:
			return nil, fmt.Errorf("redaction rule %d: pattern is %d bytes, at most %d are allowed", n, len(*r.Pattern), maxRedactPatternLen)
		}
		re, err := regexp.Compile(*r.Pattern)
		if err != nil {
			return nil, fmt.Errorf("redaction rule %d (pattern %q): invalid regular expression: %w", n, cutRunes(*r.Pattern, 60), err)
		}
		if matchesEmpty(*r.Pattern) {
			return nil, fmt.Errorf("redaction rule %d (pattern %q): the pattern can match the empty string, so it would insert the replacement between characters; make it consume at least one character", n, cutRunes(*r.Pattern, 60))
		}
		rules = append(rules, RedactRule{Pattern: re, Replacement: *r.Replacement})
	}
	if len(rules) == 0 {
		return nil, errors.New("redaction rules are empty: list at least one {pattern, replacement} object")
	}
	return rules, nil
}

// matchesEmpty reports whether pattern can match an empty string
// anywhere in a text. Empty-width assertions such as \b, ^ and $ count
// as satisfiable, so a pattern made only of them is rejected although
// regexp.MatchString("") is false for \b. The pattern must already
// compile.
func matchesEmpty(pattern string) bool {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return true
	}
	return canBeEmpty(re.Simplify())
}

// canBeEmpty reports whether re can match without consuming a character.
func canBeEmpty(re *syntax.Regexp) bool {
	switch re.Op {
	case syntax.OpNoMatch, syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return false
	case syntax.OpLiteral:
		return len(re.Rune) == 0
	case syntax.OpCapture, syntax.OpPlus:
		return canBeEmpty(re.Sub[0])
	case syntax.OpStar, syntax.OpQuest:
		return true
	case syntax.OpRepeat:
		return re.Min == 0 || canBeEmpty(re.Sub[0])
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if !canBeEmpty(sub) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if canBeEmpty(sub) {
				return true
			}
		}
		return false
	}
	// OpEmptyMatch and the assertions: ^, $, \A, \z, \b, \B.
	return true
}

// rawRedactRule is one entry of a rule file before validation.
type rawRedactRule struct {
	Pattern     *string `yaml:"pattern"`
	Replacement *string `yaml:"replacement"`
}

// decodeRedactFile decodes the list of rules. Anchors, aliases and tags are
// rejected before decoding, because a rule file has no use for them and
// go-yaml v1.19.2 panics on some of them (a self-referencing alias, a tag
// on a bare scalar).
func decodeRedactFile(data []byte) (raw []rawRedactRule, err error) {
	// NOTE: the recover turns a go-yaml panic on input that the checks
	// below miss into an error. It runs once at startup, never per call.
	defer func() {
		if p := recover(); p != nil {
			raw, err = nil, fmt.Errorf("parse redaction rules: the YAML parser failed: %v", p)
		}
	}()
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}

	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, fmt.Errorf("parse redaction rules: %w", err)
	}
	for _, typ := range []ast.NodeType{ast.AliasType, ast.AnchorType, ast.TagType} {
		if len(ast.FilterFile(typ, file)) > 0 {
			return nil, errors.New("parse redaction rules: YAML anchors, aliases and tags are not supported")
		}
	}

	if err := yaml.UnmarshalWithOptions(data, &raw, yaml.DisallowUnknownField()); err != nil {
		return nil, fmt.Errorf("parse redaction rules: expected a list of {pattern, replacement} objects: %w", err)
	}
	return raw, nil
}

// protect removes what must not be stored from a finished record: every
// body when bodies are not kept, then the redaction rules and the masking
// of API keys on every string column a client or the upstream can fill.
// The upstream path and the model names get only the masking, because
// rules that rewrote them would change which price and metrics apply.
func (m *Meter) protect(r *store.Record, noBodies bool) {
	if noBodies || m.bodies == BodiesNone {
		r.RequestData = ""
		r.ResponseData = ""
		r.Message = "N/A"
	}
	r.RequestData = m.redactBody(r.RequestData)
	r.ResponseData = m.redactBody(r.ResponseData)
	r.Message = cutRunesMasked(m.redact(r.Message), maxMessageRunes)
	r.ErrorMessage = cutRunesMasked(m.redact(r.ErrorMessage), maxErrorRunes)
	r.UserID = cutRunesMasked(m.redact(r.UserID), maxFieldRunes)
	r.PageTab = cutRunesMasked(m.redact(r.PageTab), maxFieldRunes)
	r.Endpoint = cutRunesMasked(m.redact(r.Endpoint), maxFieldRunes)
	r.UpstreamPath = MaskSecrets(r.UpstreamPath)
	r.RequestedModel = MaskSecrets(r.RequestedModel)
	r.Model = MaskSecrets(r.Model)
}

// redact applies the redaction rules and then masks secrets, so no rule
// can bring a key back.
func (m *Meter) redact(s string) string {
	if s == "" {
		return s
	}
	for _, rule := range m.redactRules {
		s = rule.Pattern.ReplaceAllString(s, rule.Replacement)
	}
	return MaskSecrets(s)
}

var (
	// apiKeyPattern matches DeepSeek and OpenAI-style API keys: "sk-"
	// followed by at least 8 key characters.
	apiKeyPattern = regexp.MustCompile(`sk-[A-Za-z0-9_-]{8,}`)
	// bearerPattern matches a bearer credential such as an Authorization
	// header value pasted into a prompt. The token characters are those of
	// RFC 6750 b64token.
	bearerPattern = regexp.MustCompile(`(?i)\b(bearer\s+)([A-Za-z0-9._~+/-]{8,}=*)`)
)

// MaskSecrets replaces API keys ("sk-" keys) and bearer tokens in s with a
// mask that keeps the last four characters, such as "sk-****abcd", as
// DeepSeek's own error messages show a key. A bearer token that is itself
// an sk- key is masked as a key. Text without "sk-" or "bearer" is
// returned as it is, without running a regular expression.
func MaskSecrets(s string) string {
	hasKey := strings.Contains(s, "sk-")
	hasBearer := containsFold(s, "bearer")
	if !hasKey && !hasBearer {
		return s
	}
	if hasKey {
		s = apiKeyPattern.ReplaceAllStringFunc(s, maskKey)
	}
	if hasBearer {
		s = bearerPattern.ReplaceAllStringFunc(s, func(match string) string {
			sub := bearerPattern.FindStringSubmatch(match)
			return maskBearer(sub[1], sub[2])
		})
	}
	return s
}

// maskCutKey masks a key or bearer token split by a cut at the end of s.
// MaskSecrets misses such a fragment when fewer than eight of its
// characters remain, and otherwise keeps four characters that are not
// the key's last four. The fragment from "sk-" on, which may be spelled
// with JSON \u escapes, becomes "sk-****", and a token after "Bearer"
// becomes "****". A word that merely contains "sk-", such as "task-li",
// is masked too, because at a cut it cannot be distinguished from a key.
func maskCutKey(s string) string {
	start := len(s)
	for start > 0 && (isKeyByte(s[start-1]) || s[start-1] == '\\') {
		start--
	}
	if run := s[start:]; strings.Contains(run, "sk") {
		decoded := decodeJSONEscapes(run)
		if i := strings.Index(decoded.decoded, "sk-"); i >= 0 {
			return s[:start+decoded.rawStart(i)] + "sk-****"
		}
	}

	tokenStart := len(s)
	for tokenStart > 0 && isTokenByte(s[tokenStart-1]) {
		tokenStart--
	}
	head := strings.TrimRight(s[:tokenStart], " \t\r\n")
	if tokenStart < len(s) && len(head) < tokenStart && len(head) >= len("bearer") &&
		strings.EqualFold(head[len(head)-len("bearer"):], "bearer") {
		return s[:tokenStart] + "****"
	}
	return s
}

// isKeyByte reports whether c is one of the characters of apiKeyPattern
// after "sk-".
func isKeyByte(c byte) bool {
	return c == '_' || c == '-' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// isTokenByte reports whether c is one of the token characters of
// bearerPattern.
func isTokenByte(c byte) bool {
	return isKeyByte(c) || strings.IndexByte(".~+/=", c) >= 0
}

// maskKey returns the mask of an API key matched by apiKeyPattern.
func maskKey(key string) string {
	return "sk-****" + key[len(key)-4:]
}

// maskBearer returns the mask of a bearer credential: the scheme and the
// whitespace after it, then the token's last four characters.
func maskBearer(scheme, token string) string {
	return scheme + "****" + token[len(token)-4:]
}

// containsFold reports whether s contains the lower-case ASCII word,
// ignoring ASCII case, without allocating.
func containsFold(s, word string) bool {
	for i := 0; i+len(word) <= len(s); i++ {
		if s[i]|0x20 != word[0] {
			continue
		}
		if strings.EqualFold(s[i:i+len(word)], word) {
			return true
		}
	}
	return false
}
