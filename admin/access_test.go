package admin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	readToken   = "read-token-0123456789abcdef"
	opsToken    = "ops-token-0123456789abcdef"
	readName    = "dashboard"
	opsName     = "ops-alice"
	balanceBody = `{"balance": 25}`
)

// newRoleEnv starts a handler with the default admin token, a named read
// token and a named admin token.
func newRoleEnv(t *testing.T, edit func(*Config)) *testEnv {
	t.Helper()
	return newTestEnv(t, func(c *Config) {
		c.RoleTokens = []Token{
			{Name: readName, Role: RoleRead, Secret: readToken},
			{Name: opsName, Role: RoleAdmin, Secret: opsToken},
		}
		if edit != nil {
			edit(c)
		}
	})
}

// TestReadTokenCannotChange sends every method that changes data, to real
// and unknown routes, with a read token. All must get 403 and leave the
// balance and the audit empty, because a read token is handed to
// dashboards that must never move money.
func TestReadTokenCannotChange(t *testing.T) {
	env := newRoleEnv(t, nil)
	routes := []struct{ method, path string }{
		{http.MethodPost, "/api/admin/api-usage/balance"},
		{http.MethodPut, "/api/admin/api-usage/balance"},
		{http.MethodPatch, "/api/admin/api-usage/balance"},
		{http.MethodDelete, "/api/admin/api-usage/balance"},
		{http.MethodPost, "/api/admin/api-usage/daily-limit"},
		{http.MethodPost, "/api/admin/api-usage/records"},
		{http.MethodDelete, "/api/admin/api-usage/records/some-id"},
		{http.MethodPost, "/api/admin/audit"},
		{http.MethodDelete, "/api/admin/audit"},
		{http.MethodPost, "/api/admin/api-usage/../audit"},
	}
	for _, rt := range routes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			resp := env.request(t, rt.method, rt.path, readToken, strings.NewReader(balanceBody), http.Header{"Content-Type": {"application/json"}})
			if resp.status != http.StatusForbidden {
				t.Errorf("status = %d, want 403; body: %s", resp.status, resp.body)
			}
			if msg := errorOf(t, resp); !strings.Contains(msg, "role read") {
				t.Errorf("error = %q, want it to name the role", msg)
			}
		})
	}

	if resp := env.get(t, "/api/admin/api-usage/balance"); !strings.Contains(string(resp.body), `"balance":null`) {
		t.Errorf("balance after read-token changes: %s, want none set", resp.body)
	}
	resp := env.request(t, http.MethodGet, "/api/admin/audit", readToken, nil, nil)
	if resp.status != http.StatusOK || !strings.Contains(string(resp.body), `"total":0`) {
		t.Errorf("audit after read-token changes: status %d body %s, want 200 and no entries", resp.status, resp.body)
	}
}

// TestReadTokenReads checks that a read token may use every GET route.
func TestReadTokenReads(t *testing.T) {
	env := newRoleEnv(t, nil)
	for _, path := range []string{
		"/api/admin/api-usage/stats",
		"/api/admin/api-usage/records",
		"/api/admin/api-usage/balance",
		"/api/admin/api-usage/daily-limit",
		"/api/admin/api-usage/current-month",
		"/api/admin/audit",
	} {
		t.Run(path, func(t *testing.T) {
			if resp := env.request(t, http.MethodGet, path, readToken, nil, nil); resp.status != http.StatusOK {
				t.Errorf("status = %d, want 200; body: %s", resp.status, resp.body)
			}
		})
	}
}

// TestAuditListsBalanceChanges sets the balance with two admin tokens and
// checks that the audit lists both changes newest first with the token
// names, old and new values, and that the log names the token but never
// contains a secret.
func TestAuditListsBalanceChanges(t *testing.T) {
	env := newRoleEnv(t, nil)
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	if resp := env.request(t, http.MethodPost, "/api/admin/api-usage/balance", opsToken, strings.NewReader(`{"balance": 25}`), jsonHeader); resp.status != http.StatusOK {
		t.Fatalf("first POST status = %d; body: %s", resp.status, resp.body)
	}
	env.clock.Set(env.clock.Now().Add(time.Minute))
	if resp := env.request(t, http.MethodPost, "/api/admin/api-usage/balance", testToken, strings.NewReader(`{"balance": 7.5}`), jsonHeader); resp.status != http.StatusOK {
		t.Fatalf("second POST status = %d; body: %s", resp.status, resp.body)
	}

	var page struct {
		Data auditPage `json:"data"`
	}
	decodeInto(t, env.get(t, "/api/admin/audit?page=1&limit=10"), &page)
	if page.Data.Total != 2 || len(page.Data.Entries) != 2 {
		t.Fatalf("audit: %d entries of %d, want 2 of 2", len(page.Data.Entries), page.Data.Total)
	}
	newest, oldest := page.Data.Entries[0], page.Data.Entries[1]
	checks := []struct{ name, got, want string }{
		{"newest token", newest.TokenName, DefaultTokenName},
		{"newest action", newest.Action, "set_balance"},
		{"newest new value", string(newest.NewValue), `{"balance":7.5,"currency":"USD","updated_at":"2026-05-15T12:01:00Z"}`},
		{"newest old value", string(newest.OldValue), string(oldest.NewValue)},
		{"oldest token", oldest.TokenName, opsName},
		{"oldest old value", string(oldest.OldValue), "null"},
		{"oldest time", oldest.CreatedAt, "2026-05-15T12:00:00Z"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}

	logs := env.logs.String()
	if !strings.Contains(logs, "token_name="+opsName) {
		t.Errorf("logs lack token_name=%s:\n%s", opsName, logs)
	}
	for _, secret := range []string{opsToken, testToken, readToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain a token:\n%s", logs)
		}
	}
}

// TestAuditParams checks that page and limit are validated like /records.
func TestAuditParams(t *testing.T) {
	env := newRoleEnv(t, nil)
	for _, query := range []string{"page=0", "page=x", "limit=0", "limit=501", "limit=", "page=-1"} {
		t.Run(query, func(t *testing.T) {
			resp := env.get(t, "/api/admin/audit?"+query)
			if resp.status != http.StatusBadRequest {
				t.Errorf("status = %d, want 400; body: %s", resp.status, resp.body)
			}
		})
	}
}

// TestAuthThrottle makes one address fail the token check until it is
// throttled. Further requests, even with a valid token, get 429 with a
// Retry-After until the window ends, and only the first failure and the
// throttling are logged above Debug.
func TestAuthThrottle(t *testing.T) {
	env := newRoleEnv(t, func(c *Config) { c.AuthFailureLimit = 3 })
	for i := range 3 {
		if resp := env.request(t, http.MethodGet, "/api/admin/audit", "wrong-token-0000000000", nil, nil); resp.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: status = %d, want 401", i+1, resp.status)
		}
	}
	resp := env.request(t, http.MethodGet, "/api/admin/audit", testToken, nil, nil)
	if resp.status != http.StatusTooManyRequests {
		t.Fatalf("after 3 failures: status = %d, want 429; body: %s", resp.status, resp.body)
	}
	if retry, err := strconv.Atoi(resp.header.Get("Retry-After")); err != nil || retry < 1 || retry > 61 {
		t.Errorf("Retry-After = %q, want 1 to 61 seconds", resp.header.Get("Retry-After"))
	}
	if got := authFailures(t, env.reg, reasonThrottled); got != 1 {
		t.Errorf("failures{reason=throttled} = %v, want 1", got)
	}

	warnings := strings.Count(env.logs.String(), "level=WARN msg=\"admin request")
	if warnings != 2 {
		t.Errorf("%d Warn lines about rejected requests, want 2 (first failure, throttling):\n%s", warnings, env.logs)
	}
	if !strings.Contains(env.logs.String(), "remote_addr=127.0.0.1") {
		t.Errorf("logs lack the client address:\n%s", env.logs)
	}

	env.clock.Set(env.clock.Now().Add(time.Minute))
	if resp := env.request(t, http.MethodGet, "/api/admin/audit", testToken, nil, nil); resp.status != http.StatusOK {
		t.Errorf("after the window: status = %d, want 200", resp.status)
	}
}

// TestThrottleTableBounded fills the address table past its bound and
// checks that it never grows beyond it.
func TestThrottleTableBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	th := newThrottle(func() time.Time { return now })
	for i := range maxThrottled + 100 {
		th.fail("10.0." + strconv.Itoa(i/256) + "." + strconv.Itoa(i%256))
	}
	if n := len(th.entries); n > maxThrottled {
		t.Errorf("%d addresses kept, want at most %d", n, maxThrottled)
	}
}

// TestCORS checks that CORS headers go only to the configured origin, that
// a preflight is answered without a token, that a preflight from any other
// origin gets 403 without counting as a failed token check, and that no
// origin configured means no CORS header at all.
func TestCORS(t *testing.T) {
	const origin = "https://dash.example.com"
	tests := []struct {
		name       string
		configured string
		method     string
		header     http.Header
		wantStatus int
		wantAllow  string
	}{
		{"preflight from the origin", origin, http.MethodOptions,
			http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"POST"}}, http.StatusNoContent, origin},
		{"preflight from another origin", origin, http.MethodOptions,
			http.Header{"Origin": {"https://evil.example"}, "Access-Control-Request-Method": {"POST"}}, http.StatusForbidden, ""},
		{"GET from the origin", origin, http.MethodGet, http.Header{"Origin": {origin}}, http.StatusOK, origin},
		{"GET with no origin configured", "", http.MethodGet, http.Header{"Origin": {origin}}, http.StatusOK, ""},
		{"preflight with no origin configured", "", http.MethodOptions,
			http.Header{"Origin": {origin}, "Access-Control-Request-Method": {"POST"}}, http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newRoleEnv(t, func(c *Config) { c.CORSOrigin = tt.configured })
			token := testToken
			if tt.method == http.MethodOptions {
				token = ""
			}
			resp := env.request(t, tt.method, "/api/admin/api-usage/stats", token, nil, tt.header)
			if resp.status != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.status, tt.wantStatus)
			}
			if got := resp.header.Get("Access-Control-Allow-Origin"); got != tt.wantAllow {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tt.wantAllow)
			}
			if got := resp.header.Get("Access-Control-Allow-Credentials"); got != "" {
				t.Errorf("Access-Control-Allow-Credentials = %q, want none", got)
			}
			// A preflight carries no token, so it is never a failed token
			// check that could throttle the address.
			if tt.method == http.MethodOptions {
				for _, reason := range []string{"missing", "invalid", "throttled"} {
					if n := authFailures(t, env.reg, reason); n != 0 {
						t.Errorf("auth failures %s = %v after a preflight, want 0", reason, n)
					}
				}
			}
		})
	}
}

// TestNewRejectsBadTokens checks the token checks New makes.
func TestNewRejectsBadTokens(t *testing.T) {
	tests := []struct {
		name    string
		plain   []string
		named   []Token
		wantErr string
	}{
		{"duplicate name", nil, []Token{{"a", RoleRead, readToken}, {"a", RoleAdmin, opsToken}}, `name "a" is used twice`},
		{"name of the default", []string{testToken}, []Token{{DefaultTokenName, RoleRead, readToken}}, "used twice"},
		{"same secret", []string{readToken}, []Token{{"x", RoleRead, readToken}}, "same secret"},
		{"bad role", nil, []Token{{"x", "root", readToken}}, "invalid role"},
		{"short secret", nil, []Token{{"x", RoleRead, "short"}}, "5 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Store: openTestStore(t), Tokens: tt.plain, RoleTokens: tt.named})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			for _, secret := range []string{readToken, opsToken, testToken} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains a token", err)
				}
			}
		})
	}
}

// TestParseTokens checks the tokens file format and that errors name the
// line but never the secret.
func TestParseTokens(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    []Token
		wantErr string
	}{
		{"two tokens", "# name role token\n\nops admin " + opsToken + "\n  dash\tread\t" + readToken + "  \n",
			[]Token{{"ops", RoleAdmin, opsToken}, {"dash", RoleRead, readToken}}, ""},
		{"empty", "# nothing\n", nil, "no token"},
		{"two fields", "ops admin\n", nil, "line 1: has 2 fields"},
		{"bad role", "ops owner " + opsToken + "\n", nil, `line 1: token "ops" has invalid role "owner"`},
		{"short", "\nops admin abc\n", nil, `line 2: token "ops" is 3 characters`},
		{"bad name", "o/ps admin " + opsToken + "\n", nil, "line 1: invalid token name"},
		{"duplicate name", "ops admin " + opsToken + "\nops read " + readToken + "\n", nil, `line 2: name "ops" is already used on line 1`},
		{"duplicate secret", "ops admin " + opsToken + "\ndash read " + opsToken + "\n", nil, "line 2: the token is the same as on line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTokens([]byte(tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), opsToken) || strings.Contains(err.Error(), readToken) {
					t.Errorf("error %q contains a token", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v, want none", err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d tokens, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("token %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// FuzzParseTokens checks that any file gives valid tokens or an error that
// does not echo the secrets, and never panics.
func FuzzParseTokens(f *testing.F) {
	f.Add([]byte("ops admin " + opsToken + "\ndash read " + readToken + "\n"))
	f.Add([]byte("# c\n\nx y z\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tokens, err := ParseTokens(data)
		if err != nil {
			return
		}
		for _, tok := range tokens {
			if err := checkToken(tok); err != nil {
				t.Errorf("accepted an invalid token: %v", err)
			}
		}
	})
}

// FuzzIntParam checks that the page, limit and days parsers return a value
// in range or an error, for any query string.
func FuzzIntParam(f *testing.F) {
	f.Add("page=1&limit=50&days=30")
	f.Add("limit=-1&page=99999999999999999999")
	f.Add("days=%zz")
	f.Fuzz(func(t *testing.T, rawQuery string) {
		q, err := url.ParseQuery(rawQuery)
		if err != nil {
			return
		}
		for _, p := range []intParam{daysParam, pageParam, limitParam} {
			n, err := p.parse(q)
			if err == nil && (n < p.min || n > p.max) {
				t.Errorf("%s from %q = %d, want %d to %d", p.name, rawQuery, n, p.min, p.max)
			}
		}
	})
}

// errorOf returns the error message of an envelope.
func errorOf(t *testing.T, resp response) string {
	t.Helper()
	var env envelope
	if err := json.Unmarshal(resp.body, &env); err != nil {
		t.Fatalf("decode %s: %v", resp.body, err)
	}
	return env.Error
}

// decodeInto decodes a response body into v.
func decodeInto(t *testing.T, resp response, v any) {
	t.Helper()
	if resp.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body: %s", resp.status, resp.body)
	}
	if err := json.Unmarshal(resp.body, v); err != nil {
		t.Fatalf("decode %s: %v", resp.body, err)
	}
}

// TestSetDailyLimit sets the daily limit through the API and checks that
// it replaces the configured one, that 0 removes it, and that each change
// is audited with the token name.
func TestSetDailyLimit(t *testing.T) {
	env := newRoleEnv(t, func(c *Config) { c.DailyLimit = 5_000_000_000_000 })
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name      string
		body      string
		wantLimit string // "null" when no limit applies
	}{
		{"replace the configured limit", `{"daily_limit": 12.5}`, "12.5"},
		{"remove the limit", `{"daily_limit": 0}`, "null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.request(t, http.MethodPost, "/api/admin/api-usage/daily-limit", opsToken, strings.NewReader(tt.body), jsonHeader)
			if resp.status != http.StatusOK {
				t.Fatalf("POST status = %d, want 200; body: %s", resp.status, resp.body)
			}
			var view struct {
				Data struct {
					DailyLimit json.RawMessage `json:"daily_limit"`
				} `json:"data"`
			}
			decodeInto(t, env.get(t, "/api/admin/api-usage/daily-limit"), &view)
			if got := string(view.Data.DailyLimit); got != tt.wantLimit {
				t.Errorf("daily_limit = %s, want %s", got, tt.wantLimit)
			}
		})
	}

	var page struct {
		Data auditPage `json:"data"`
	}
	decodeInto(t, env.get(t, "/api/admin/audit"), &page)
	if page.Data.Total != 2 {
		t.Fatalf("audit total = %d, want 2", page.Data.Total)
	}
	for _, e := range page.Data.Entries {
		if e.Action != "set_daily_limit" || e.TokenName != opsName {
			t.Errorf("audit entry action %q token %q, want set_daily_limit by %s", e.Action, e.TokenName, opsName)
		}
	}
	if got := string(page.Data.Entries[1].OldValue); got != "null" {
		t.Errorf("first change old value = %s, want null", got)
	}
}

// TestSetDailyLimitInvalid checks that a bad body names the field and
// changes nothing.
func TestSetDailyLimitInvalid(t *testing.T) {
	env := newRoleEnv(t, nil)
	for _, body := range []string{`{"daily_limit": -1}`, `{"daily_limit": "5"}`, `{"balance": 5}`, `{}`, `[]`} {
		t.Run(body, func(t *testing.T) {
			resp := env.request(t, http.MethodPost, "/api/admin/api-usage/daily-limit", opsToken, strings.NewReader(body), http.Header{"Content-Type": {"application/json"}})
			if resp.status != http.StatusBadRequest {
				t.Errorf("status = %d, want 400; body: %s", resp.status, resp.body)
			}
		})
	}
	if resp := env.get(t, "/api/admin/audit"); !strings.Contains(string(resp.body), `"total":0`) {
		t.Errorf("audit after invalid bodies: %s, want no entries", resp.body)
	}
}
