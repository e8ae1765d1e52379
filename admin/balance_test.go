package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/deepmeter/deepmeter/pricing"
)

// postBalance sends an authorized POST .../balance, with a Content-Type
// header unless contentType is empty.
func (e *testEnv) postBalance(t *testing.T, body, contentType string) response {
	t.Helper()
	header := http.Header{}
	if contentType != "" {
		header.Set("Content-Type", contentType)
	}
	return e.request(t, http.MethodPost, "/api/admin/api-usage/balance", testToken, strings.NewReader(body), header)
}

// assertBalanceUnset fails the test when any balance was stored.
func (e *testEnv) assertBalanceUnset(t *testing.T) {
	t.Helper()
	b, err := e.store.Balance(context.Background())
	if err != nil {
		t.Fatalf("Balance: %v", err)
	}
	if !b.UpdatedAt.IsZero() {
		t.Errorf("balance = %+v, want none set", b)
	}
}

// TestBalanceLifecycle checks the balance view before any balance is set,
// right after POST, and after spend that drives it below zero, counting
// only calls at or after the moment it was set and in its currency.
func TestBalanceLifecycle(t *testing.T) {
	env := newTestEnv(t, nil)

	resp := env.get(t, "/api/admin/api-usage/balance")
	assertJSON(t, resp.body, `{"success":true,"data":{"balance":null,"currency":"USD","updated_at":null,"total_spent":null,"remaining":null}}`)

	resp = env.postBalance(t, `{"balance": 0.001}`, "application/json")
	assertJSON(t, resp.body, `{"success":true,"data":{"balance":0.001,"currency":"USD","updated_at":"2026-05-15T12:00:00Z","total_spent":0,"remaining":0.001}}`)
	if !strings.Contains(env.logs.String(), `msg="balance set" balance=0.001 currency=USD`) {
		t.Errorf("logs = %q, want the balance change logged", env.logs.String())
	}

	cny := baseRecord("cny", testNow.Add(time.Hour), mustMoney(t, "5"))
	cny.Currency = "CNY"
	env.insert(t,
		baseRecord("before", testNow.Add(-time.Microsecond), mustMoney(t, "1")),
		baseRecord("at", testNow, mustMoney(t, "0.0005")),
		baseRecord("after", testNow.Add(time.Hour), mustMoney(t, "0.000998")),
		cny,
	)
	env.clock.Set(testNow.Add(2 * time.Hour))

	resp = env.get(t, "/api/admin/api-usage/balance")
	assertJSON(t, resp.body, `{"success":true,"data":{"balance":0.001,"currency":"USD","updated_at":"2026-05-15T12:00:00Z","total_spent":0.001498,"remaining":-0.000498}}`)
}

// TestBalanceClockBehind checks that a clock behind the stored update time
// reports zero spend instead of querying an inverted window.
func TestBalanceClockBehind(t *testing.T) {
	env := newTestEnv(t, nil)
	env.postBalance(t, `{"balance": 3}`, "")
	env.insert(t, baseRecord("after", testNow.Add(time.Minute), mustMoney(t, "1")))
	env.clock.Set(testNow.Add(-time.Hour))

	data := env.get(t, "/api/admin/api-usage/balance").data(t)
	if got := data["total_spent"]; got != json.Number("0") {
		t.Errorf("total_spent = %v, want 0", got)
	}
}

// TestBalancePostAccepted checks that valid literals are read exactly,
// including exponent forms and the largest value, which float64 cannot
// hold.
func TestBalancePostAccepted(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name        string
		body        string
		contentType string
		want        string
	}{
		{name: "decimal", body: `{"balance": 25.0}`, contentType: "application/json", want: "25"},
		{name: "integer", body: `{"balance":25}`, want: "25"},
		{name: "zero", body: `{"balance":0}`, want: "0"},
		{name: "negative zero", body: `{"balance":-0.0}`, want: "0"},
		{name: "smallest unit", body: `{"balance":0.000000000001}`, want: "0.000000000001"},
		{name: "largest money", body: `{"balance":9223372.036854775807}`, want: "9223372.036854775807"},
		{name: "exponent", body: `{"balance":1e2}`, want: "100"},
		{name: "signed exponent", body: `{"balance":2.5E+1}`, want: "25"},
		{name: "negative exponent", body: `{"balance":125e-3}`, want: "0.125"},
		{name: "exponent to smallest unit", body: `{"balance":1e-12}`, want: "0.000000000001"},
		{name: "charset parameter", body: `{"balance":7.5}`, contentType: "application/json; charset=utf-8", want: "7.5"},
		{name: "json suffix type", body: `{"balance":7.25}`, contentType: "application/merge-patch+json", want: "7.25"},
		{name: "surrounding whitespace", body: "\n  {\"balance\" : 1.5 }\n\n", want: "1.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.postBalance(t, tt.body, tt.contentType)
			data := resp.data(t)
			if got := data["balance"]; got != json.Number(tt.want) {
				t.Errorf("balance = %v, want %s", got, tt.want)
			}

			b, err := env.store.Balance(context.Background())
			if err != nil {
				t.Fatalf("Balance: %v", err)
			}
			if got := b.Amount.String(); got != tt.want || b.Currency != "USD" {
				t.Errorf("stored balance = %s %s, want %s USD", got, b.Currency, tt.want)
			}
		})
	}
}

// TestBalancePostRejected checks every kind of bad request body: each is
// rejected with the right status and a message naming the problem, and
// the stored balance stays unset.
func TestBalancePostRejected(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name        string
		body        string
		contentType string
		wantStatus  int
		wantError   string
	}{
		{name: "empty body", body: "", wantStatus: 400, wantError: "request body is empty"},
		{name: "malformed", body: `{"balance":`, wantStatus: 400, wantError: "invalid request body"},
		{name: "json null", body: `null`, wantStatus: 400, wantError: "missing field balance"},
		{name: "empty object", body: `{}`, wantStatus: 400, wantError: "missing field balance"},
		{name: "null balance", body: `{"balance":null}`, wantStatus: 400, wantError: "balance must not be null"},
		{name: "string balance", body: `{"balance":"25"}`, wantStatus: 400, wantError: "balance must be a JSON number"},
		{name: "boolean balance", body: `{"balance":true}`, wantStatus: 400, wantError: "balance must be a JSON number"},
		{name: "array balance", body: `{"balance":[25]}`, wantStatus: 400, wantError: "balance must be a JSON number"},
		{name: "object balance", body: `{"balance":{"amount":25}}`, wantStatus: 400, wantError: "balance must be a JSON number"},
		{name: "negative", body: `{"balance":-1}`, wantStatus: 400, wantError: "balance -1 is negative"},
		{name: "tiny negative", body: `{"balance":-0.000000000001}`, wantStatus: 400, wantError: "is negative"},
		{name: "negative exponent form", body: `{"balance":-1e3}`, wantStatus: 400, wantError: "is negative"},
		{name: "13 decimals", body: `{"balance":1.0000000000001}`, wantStatus: 400, wantError: "balance 1.0000000000001 has more than 12 digits"},
		{name: "13 decimals trailing zero", body: `{"balance":1.0000000000000}`, wantStatus: 400, wantError: "more than 12 digits"},
		{name: "exponent below unit", body: `{"balance":1e-13}`, wantStatus: 400, wantError: "more than 12 digits"},
		{name: "one unit over max", body: `{"balance":9223372.036854775808}`, wantStatus: 400, wantError: "balance 9223372.036854775808 is out of range"},
		{name: "absurd", body: `{"balance":1000000001}`, wantStatus: 400, wantError: "out of range"},
		{name: "absurd exponent", body: `{"balance":1e10}`, wantStatus: 400, wantError: "out of range"},
		{name: "huge exponent", body: `{"balance":1e999999999}`, wantStatus: 400, wantError: "out of range"},
		{name: "exponent overflow", body: `{"balance":1e99999999999999999999}`, wantStatus: 400, wantError: "out of range"},
		{name: "huge negative exponent", body: `{"balance":1e-999999999}`, wantStatus: 400, wantError: "balance"},
		{name: "long literal", body: `{"balance":` + strings.Repeat("9", 5000) + `}`, wantStatus: 400, wantError: "out of range"},
		{name: "unknown field", body: `{"balance":25,"currency":"EUR"}`, wantStatus: 400, wantError: `unknown field "currency"`},
		{name: "two objects", body: `{"balance":25} {"balance":26}`, wantStatus: 400, wantError: "unexpected data after the JSON object"},
		{name: "trailing garbage", body: `{"balance":25}x`, wantStatus: 400, wantError: "unexpected data after the JSON object"},
		{name: "array body", body: `[25]`, wantStatus: 400, wantError: `invalid request body: request body must be a JSON object such as {"balance": 25.0}`},
		{name: "number body", body: `25`, wantStatus: 400, wantError: `invalid request body: request body must be a JSON object such as {"balance": 25.0}`},
		{name: "string body", body: `"25"`, wantStatus: 400, wantError: `invalid request body: request body must be a JSON object such as {"balance": 25.0}`},
		{name: "nan", body: `{"balance":NaN}`, wantStatus: 400, wantError: "invalid request body"},
		{name: "hex", body: `{"balance":0x10}`, wantStatus: 400, wantError: "invalid request body"},
		{name: "text content type", body: `{"balance":25}`, contentType: "text/plain", wantStatus: 415, wantError: `unsupported Content-Type "text/plain"`},
		{name: "form content type", body: `balance=25`, contentType: "application/x-www-form-urlencoded", wantStatus: 415, wantError: "send application/json"},
		{name: "malformed content type", body: `{"balance":25}`, contentType: ";;", wantStatus: 415, wantError: "unsupported Content-Type"},
		{name: "body over limit", body: strings.Repeat(" ", maxBalanceBody) + `{"balance":1}`, wantStatus: 413, wantError: "request body too large"},
		{name: "literal over limit", body: `{"balance":` + strings.Repeat("1", maxBalanceBody) + `}`, wantStatus: 413, wantError: "at most 65536 bytes"},
		{name: "trailing data over limit", body: `{"balance":1}` + strings.Repeat(" ", maxBalanceBody), wantStatus: 413, wantError: "request body too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.postBalance(t, tt.body, tt.contentType)
			resp.assertError(t, tt.wantStatus, tt.wantError)
			if len(resp.body) > 1024 {
				t.Errorf("error body is %d bytes; a long input must not be echoed in full", len(resp.body))
			}
			if bytes.Contains(resp.body, []byte("Go value")) || bytes.Contains(resp.body, []byte("struct")) {
				t.Errorf("error body %s names a Go type, want a plain message", resp.body)
			}
		})
	}

	env.assertBalanceUnset(t)
}

// TestExpandExponent checks the exact rewrite of exponent literals into
// plain decimals.
func TestExpandExponent(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"25", "25"},
		{"25.50", "25.50"},
		{"1e0", "1"},
		{"1e2", "100"},
		{"1E+2", "100"},
		{"1.5e1", "15"},
		{"1.25e1", "12.5"},
		{"0.001e3", "1"},
		{"0.0012e3", "1.2"},
		{"125e-3", "0.125"},
		{"1e-12", "0.000000000001"},
		{"-2.5e-1", "-0.25"},
		{"0e99999999999", "0"},
		{"-0.0e5", "0"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := expandExponent(tt.in)
			if err != nil || got != tt.want {
				t.Errorf("expandExponent(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// FuzzParseBalance checks that no balance literal panics, and that every
// accepted one is non-negative and formats back to the same amount.
func FuzzParseBalance(f *testing.F) {
	for _, seed := range []string{`25`, `25.0`, `-1`, `1e2`, `1e-13`, `"25"`, `null`, `9223372.036854775807`, `1e999999999`, `0.0e-5`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		m, err := parseBalance(json.RawMessage(raw))
		if err != nil {
			return
		}
		if m < 0 {
			t.Fatalf("parseBalance(%q) = %d, want a non-negative amount", raw, m)
		}
		back, err := pricing.ParseMoney(m.String())
		if err != nil || back != m {
			t.Fatalf("parseBalance(%q) = %s, which parses back as %d, %v", raw, m, back, err)
		}
	})
}
