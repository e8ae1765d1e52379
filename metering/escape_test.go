package metering

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestRedactBodyEscapes checks that a key, a bearer token or a rule's
// match spelled with JSON escapes in a stored body is masked or redacted
// like its plain spelling, because the stored body decodes to the full
// secret. The replacement goes back JSON-escaped, so a JSON body stays
// valid JSON.
func TestRedactBodyEscapes(t *testing.T) {
	rules := []RedactRule{
		{Pattern: regexp.MustCompile(`[a-z]+@example\.com`), Replacement: "<email>"},
		{Pattern: regexp.MustCompile(`cust-(\d+)`), Replacement: `"cust" \ $1`},
	}
	tests := []struct {
		name  string
		rules []RedactRule
		in    string
		want  string
	}{
		{"escaped dash", nil,
			`{"content":"a sk\u002dSECRETSECRETSECRET1111 b"}`,
			`{"content":"a sk-****1111 b"}`},
		{"every character escaped", nil,
			`{"content":"\u0073\u006B\u002d\u0041\u0042\u0043\u0044\u0045\u0046\u0047\u0048"}`,
			`{"content":"sk-****EFGH"}`},
		{"escape inside the key", nil,
			`{"content":"sk-abcd\u0065fghij1234\n"}`,
			`{"content":"sk-****1234\n"}`},
		{"escaped key at the end", nil,
			`{"content":"x","user":"sk-0123456789abc\u0064"}`,
			`{"content":"x","user":"sk-****abcd"}`},
		{"emoji pair before the key", nil,
			`{"content":"\ud83d\ude00sk\u002d12345678wxyz"}`,
			`{"content":"\ud83d\ude00sk-****wxyz"}`},
		{"bearer after an escaped newline", nil,
			`{"content":"Bearer\nabcdefghijk5678"}`,
			`{"content":"Bearer\n****5678"}`},
		{"bearer token with an escaped slash", nil,
			`{"content":"Bearer abcd\/efgh\/ijkl"}`,
			`{"content":"Bearer ****ijkl"}`},
		{"escaped at sign", rules,
			`{"content":"mail bob\u0040example.com now"}`,
			`{"content":"mail <email> now"}`},
		{"replacement with a quote and a backslash", rules,
			`{"content":"id cust\u002d4411\t."}`,
			`{"content":"id \"cust\" \\ 4411\t."}`},
		{"replacement with a quote in a body without escapes", rules,
			`{"content":"id cust-12 for bob@example.com"}`,
			`{"content":"id \"cust\" \\ 12 for <email>"}`},
		{"plain escapes only", nil,
			`{"content":"line\none \"quoted\" \\ path\/x"}`,
			`{"content":"line\none \"quoted\" \\ path\/x"}`},
		{"unescaped key with other escapes", nil,
			`{"content":"a\nsk-SECRETSECRETSECRET2222"}`,
			`{"content":"a\nsk-****2222"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Meter{redactRules: tt.rules}
			got := m.redactBody(tt.in)
			if got != tt.want {
				t.Errorf("redactBody(%s) = %s, want %s", tt.in, got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("redactBody(%s) = %s, not valid JSON", tt.in, got)
			}
		})
	}
}

// TestRedactBodyCutJSON checks a body cut at the storage cap, which is no
// longer valid JSON: escaped keys before the cut are still masked, and a
// backslash left at the cut is kept as it is.
func TestRedactBodyCutJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"key before the cut", `{"content":"sk\u002dSECRETSECRETSECRET1111 and more…[truncated, original size 99 bytes]`,
			`{"content":"sk-****1111 and more…[truncated, original size 99 bytes]`},
		{"backslash at the cut", `{"content":"sk\u002dSECRETSECRET3333 \`, `{"content":"sk-****3333 \`},
		{"half an escape at the cut", `{"content":"sk\u002dSECRETSECRET4444 \u00`, `{"content":"sk-****4444 \u00`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &Meter{}
			if got := m.redactBody(tt.in); got != tt.want {
				t.Errorf("redactBody(%s) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

// TestCallMasksEscapedKey runs a call whose request and response bodies
// spell a key with a \u escape, as a client's JSON encoder may, and checks
// the stored columns through the whole record path.
func TestCallMasksEscapedKey(t *testing.T) {
	const escaped = `sk\u002dESCAPEDKEY00000000000000wxyz`
	env := newMeterEnv(t, Options{})
	req := `{"model":"deepseek-chat","messages":[{"role":"user","content":"use ` + escaped + `"}]}`
	resp := `{"error":{"message":"bad key ` + escaped + `","type":"authentication_error"}}`
	rec := env.run("/chat/completions", req, &response{status: 401, header: jsonHeader(), chunks: [][]byte{[]byte(resp)}}, End{})

	for column, value := range map[string]string{
		"request_data":  rec.RequestData,
		"response_data": rec.ResponseData,
		"message":       rec.Message,
		"error_message": rec.ErrorMessage,
	} {
		if strings.Contains(value, "ESCAPEDKEY") {
			t.Errorf("%s = %q, want the key masked", column, value)
		}
		if !strings.Contains(value, "sk-****wxyz") {
			t.Errorf("%s = %q, want the mask sk-****wxyz", column, value)
		}
	}
}

// FuzzRedactBody checks that no key survives in the decoded stored body
// and that masking keeps a valid JSON body valid.
func FuzzRedactBody(f *testing.F) {
	f.Add(`{"content":"a sk\u002dSECRETSECRETSECRET1111 b"}`)
	f.Add(`{"content":"Bearer\nabcdefghijk5678 \ud83d\ude00"}`)
	f.Add(`"sk\u002d\`)
	f.Fuzz(func(t *testing.T, s string) {
		m := &Meter{}
		got := m.redactBody(s)
		if decoded := decodeJSONEscapes(got).decoded; apiKeyPattern.MatchString(decoded) {
			t.Errorf("redactBody(%q) = %q, decodes to %q with a key", s, got, decoded)
		}
		if json.Valid([]byte(s)) && !json.Valid([]byte(got)) {
			t.Errorf("redactBody(%q) = %q, not valid JSON", s, got)
		}
	})
}

// BenchmarkRedactBody measures redactBody on a 64 KiB request body: with
// only \n escapes, which takes the fast path, and with \u escapes, which
// decodes the body.
func BenchmarkRedactBody(b *testing.B) {
	line := strings.Repeat("some prompt text ", 4) + `\n`
	bodies := map[string]string{
		"newline escapes": `{"content":"` + strings.Repeat(line, 64<<10/len(line)) + `"}`,
		"unicode escapes": `{"content":"` + strings.Repeat(line+`caf\u00e9 `, 64<<10/(len(line)+10)) + `"}`,
	}
	for name, body := range bodies {
		b.Run(name, func(b *testing.B) {
			m := &Meter{}
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				m.redactBody(body)
			}
		})
	}
}
