package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/deepmeter/deepmeter/internal/testlog"
	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/store"
)

const testToken = "test-admin-token-0123456789"

// testNow is the default test clock: a Friday at noon UTC.
var testNow = time.Date(2026, 5, 15, 12, 0, 0, 0, time.UTC)

// testClock is a settable clock shared by a test and the handler.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// testEnv is a real admin handler on an HTTP server over a fresh SQLite
// store.
type testEnv struct {
	srv   *httptest.Server
	store store.Store
	reg   *prometheus.Registry
	clock *testClock
	logs  *testlog.Buffer
}

// openTestStore migrates and opens a fresh SQLite database in a temporary
// directory.
func openTestStore(t *testing.T) store.Store {
	t.Helper()
	ctx := context.Background()
	url := "sqlite:" + filepath.Join(t.TempDir(), "admin.db")
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatalf("store.Migrate(%q): %v", url, err)
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatalf("store.Open(%q): %v", url, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// newTestEnv starts a handler with testToken accepted, the clock at
// testNow and debug logs captured. edit may change the Config before New.
func newTestEnv(t *testing.T, edit func(*Config)) *testEnv {
	t.Helper()
	env := &testEnv{
		store: openTestStore(t),
		reg:   prometheus.NewRegistry(),
		clock: &testClock{t: testNow},
		logs:  &testlog.Buffer{},
	}
	cfg := Config{
		Store:    env.store,
		Tokens:   []string{testToken},
		Currency: "USD",
		// Tests that sweep many routes with a bad token would otherwise
		// be throttled; TestAuthThrottle checks the throttle.
		AuthFailureLimit: 1000,
		Gatherer:         env.reg,
		Registerer:       env.reg,
		Logger:           slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:              env.clock.Now,
	}
	if edit != nil {
		edit(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	env.srv = httptest.NewServer(h)
	t.Cleanup(env.srv.Close)
	return env
}

// insert stores records and fails the test on error.
func (e *testEnv) insert(t *testing.T, records ...store.Record) {
	t.Helper()
	if err := e.store.Insert(context.Background(), records); err != nil {
		t.Fatalf("Insert: %v", err)
	}
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request sends a request with an optional bearer token and body, without
// following redirects.
func (e *testEnv) request(t *testing.T, method, path, token string, body io.Reader, header http.Header) response {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatalf("NewRequest(%s %s): %v", method, path, err)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := e.srv.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body of %s %s: %v", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

// get sends an authorized GET.
func (e *testEnv) get(t *testing.T, path string) response {
	t.Helper()
	return e.request(t, http.MethodGet, path, testToken, nil, nil)
}

// decodeJSON decodes data keeping numbers as their exact literals.
func decodeJSON(t *testing.T, data []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("response is not JSON: %v\nbody: %s", err, data)
	}
	return v
}

// assertJSON compares a JSON body with want. Numbers compare as literals,
// so 0.5 and 0.50 differ, which is what exact money output needs.
func assertJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	if g, w := decodeJSON(t, got), decodeJSON(t, []byte(want)); !reflect.DeepEqual(g, w) {
		t.Errorf("body mismatch\n got: %s\nwant: %s", bytes.TrimSpace(got), want)
	}
}

// data returns the data object of a success envelope.
func (r response) data(t *testing.T) map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status = %d, want 200; body: %s", r.status, r.body)
	}
	env, ok := decodeJSON(t, r.body).(map[string]any)
	if !ok || env["success"] != true {
		t.Fatalf("body is not a success envelope: %s", r.body)
	}
	data, ok := env["data"].(map[string]any)
	if !ok {
		t.Fatalf("data is not an object: %s", r.body)
	}
	return data
}

// assertError checks an error envelope: status, JSON content type and an
// error message containing every fragment.
func (r response) assertError(t *testing.T, status int, fragments ...string) {
	t.Helper()
	if r.status != status {
		t.Errorf("status = %d, want %d; body: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	env, ok := decodeJSON(t, r.body).(map[string]any)
	if !ok {
		t.Fatalf("body is not an object: %s", r.body)
	}
	if env["success"] != false {
		t.Errorf("success = %v, want false; body: %s", env["success"], r.body)
	}
	msg, _ := env["error"].(string)
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("error = %q, want it to contain %q", msg, f)
		}
	}
}

// authFailures returns the auth failure counter for reason from reg.
func authFailures(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range families {
		if f.GetName() != "deepmeter_admin_auth_failures_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no deepmeter_admin_auth_failures_total series with reason=%q", reason)
	return 0
}

// baseRecord returns a successful, priced USD call at 0.028 / 0.28 / 0.42
// USD per 1M tokens (hit / miss / output).
func baseRecord(id string, createdAt time.Time, cost pricing.Money) store.Record {
	return store.Record{
		ID:                 id,
		CreatedAt:          createdAt,
		Endpoint:           "/chat/completions",
		UpstreamPath:       "/chat/completions",
		RequestedModel:     "deepseek-chat",
		Model:              "deepseek-chat",
		StatusCode:         200,
		UsageSource:        store.UsageReported,
		Cost:               cost,
		Priced:             true,
		Currency:           "USD",
		PriceModel:         "deepseek-chat",
		PriceEffectiveFrom: time.Date(2025, 9, 29, 0, 0, 0, 0, time.UTC),
		PriceHit:           28_000,
		PriceMiss:          280_000,
		PriceOutput:        420_000,
		Success:            true,
		Message:            "hello",
	}
}

// mustMoney parses a decimal amount for test data.
func mustMoney(t *testing.T, s string) pricing.Money {
	t.Helper()
	m, err := pricing.ParseMoney(s)
	if err != nil {
		t.Fatalf("ParseMoney(%q): %v", s, err)
	}
	return m
}

// TestNewConfigValidation checks that New rejects configs that would run
// an insecure or meaningless admin API, and accepts a minimal one.
func TestNewConfigValidation(t *testing.T) {
	st := openTestStore(t)
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "nil store", cfg: Config{}, wantErr: "Store is nil"},
		{name: "empty token", cfg: Config{Store: st, Tokens: []string{testToken, ""}}, wantErr: "admin token 1 is empty"},
		{name: "blank token", cfg: Config{Store: st, Tokens: []string{"   "}}, wantErr: "admin token 0 is empty"},
		{name: "padded token", cfg: Config{Store: st, Tokens: []string{" " + testToken}}, wantErr: "whitespace"},
		{name: "negative limit", cfg: Config{Store: st, DailyLimit: -1}, wantErr: "negative"},
		{name: "lower-case currency", cfg: Config{Store: st, Currency: "usd"}, wantErr: `invalid currency "usd"`},
		{name: "minimal", cfg: Config{Store: st}},
		{name: "full", cfg: Config{Store: st, Tokens: []string{testToken}, DailyLimit: 5, Currency: "CNY", Registerer: prometheus.NewRegistry()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || h == nil {
					t.Fatalf("New = %v, %v; want a handler and no error", h, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("New error %q contains the token", err)
			}
		})
	}
}

// TestNewSameRegistryTwice checks that a second handler on the same
// registry reuses the auth counter instead of failing, as happens when a
// process rebuilds its handler.
func TestNewSameRegistryTwice(t *testing.T) {
	st := openTestStore(t)
	reg := prometheus.NewRegistry()
	for i := range 2 {
		if _, err := New(Config{Store: st, Registerer: reg}); err != nil {
			t.Fatalf("New #%d: %v", i+1, err)
		}
	}
}

// TestNewShortTokenWarns checks that a short token is accepted but logged
// as a warning at startup, without the token itself.
func TestNewShortTokenWarns(t *testing.T) {
	logs := &testlog.Buffer{}
	_, err := New(Config{
		Store:  openTestStore(t),
		Tokens: []string{"short-secret"},
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "admin token is short") {
		t.Errorf("logs = %q, want a warning about the short token", got)
	}
	if strings.Contains(logs.String(), "short-secret") {
		t.Errorf("logs contain the token: %q", logs.String())
	}
}

// apiRoutes lists a request for every API route, for auth checks.
var apiRoutes = []struct{ method, path string }{
	{http.MethodGet, "/api/admin/api-usage/stats"},
	{http.MethodGet, "/api/admin/api-usage/daily-limit"},
	{http.MethodGet, "/api/admin/api-usage/current-month"},
	{http.MethodGet, "/api/admin/api-usage/balance"},
	{http.MethodPost, "/api/admin/api-usage/balance"},
	{http.MethodGet, "/api/admin/api-usage/records"},
	{http.MethodGet, "/api/admin/api-usage/records/some-id"},
	{http.MethodGet, "/api/admin/api-usage/no-such-route"},
	{http.MethodDelete, "/api/admin/api-usage/stats"},
	{http.MethodGet, "/api/admin/api-usage"},
}

// TestAuthRejects checks that every route under the prefix, including
// unknown ones and wrong methods, returns 401 with the challenge header
// and counts the failure before anything else runs.
func TestAuthRejects(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name       string
		header     string
		wantReason string
	}{
		{name: "no header", header: "", wantReason: reasonMissing},
		{name: "wrong token", header: "Bearer wrong-token", wantReason: reasonInvalid},
		{name: "token prefix", header: "Bearer " + testToken[:len(testToken)-1], wantReason: reasonInvalid},
		{name: "token with suffix", header: "Bearer " + testToken + "x", wantReason: reasonInvalid},
		{name: "basic scheme", header: "Basic " + testToken, wantReason: reasonMissing},
		{name: "bare token", header: testToken, wantReason: reasonMissing},
		{name: "empty bearer", header: "Bearer ", wantReason: reasonMissing},
		{name: "huge token", header: "Bearer " + strings.Repeat("x", 64<<10), wantReason: reasonInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, route := range apiRoutes {
				before := authFailures(t, env.reg, tt.wantReason)
				header := http.Header{}
				if tt.header != "" {
					header.Set("Authorization", tt.header)
				}
				resp := env.request(t, route.method, route.path, "", strings.NewReader(`{"balance": 1}`), header)

				resp.assertError(t, http.StatusUnauthorized, errMsgBadToken)
				if got := resp.header.Get("WWW-Authenticate"); got != "Bearer" {
					t.Errorf("%s %s: WWW-Authenticate = %q, want Bearer", route.method, route.path, got)
				}
				if got := authFailures(t, env.reg, tt.wantReason); got != before+1 {
					t.Errorf("%s %s: failures{reason=%q} = %v, want %v", route.method, route.path, tt.wantReason, got, before+1)
				}
			}
		})
	}

	// The rejected POSTs must leave the balance unset.
	env.assertBalanceUnset(t)
}

// TestAuthAccepts checks that the right token passes, with any case of the
// scheme, and with several tokens configured any of them works.
func TestAuthAccepts(t *testing.T) {
	const second = "second-admin-token-abcdefghij"
	env := newTestEnv(t, func(c *Config) { c.Tokens = []string{testToken, second} })
	tests := []struct {
		name   string
		header string
	}{
		{name: "first token", header: "Bearer " + testToken},
		{name: "second token", header: "Bearer " + second},
		{name: "lower-case scheme", header: "bearer " + testToken},
		{name: "extra spaces", header: "  Bearer   " + testToken + "  "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.request(t, http.MethodGet, "/api/admin/api-usage/stats", "", nil, http.Header{"Authorization": {tt.header}})
			if resp.status != http.StatusOK {
				t.Errorf("status = %d, want 200; body: %s", resp.status, resp.body)
			}
		})
	}
	if got := authFailures(t, env.reg, reasonInvalid) + authFailures(t, env.reg, reasonMissing); got != 0 {
		t.Errorf("auth failures = %v, want 0", got)
	}
}

// TestAuthDotSegments checks that a path with dot segments that cleans to
// a protected route is rejected rather than redirected or served.
func TestAuthDotSegments(t *testing.T) {
	env := newTestEnv(t, nil)
	for _, p := range []string{
		"/api/admin/x/../api-usage/stats",
		"/api/admin/api-usage/./stats",
		"/api//admin/api-usage/stats",
		"/api/admin/api-usage/records/../balance",
	} {
		t.Run(p, func(t *testing.T) {
			resp := env.request(t, http.MethodGet, p, "", nil, nil)
			resp.assertError(t, http.StatusUnauthorized, errMsgBadToken)
		})
	}
}

// TestAuthDisabled checks that with no token configured every API route
// returns 401 with instructions, whatever the client sends, while the
// health routes keep working.
func TestAuthDisabled(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.Tokens = nil })
	if !strings.Contains(env.logs.String(), "admin API disabled") {
		t.Errorf("logs = %q, want a startup warning that the admin API is disabled", env.logs.String())
	}
	for _, token := range []string{"", testToken, "anything"} {
		for _, route := range apiRoutes {
			resp := env.request(t, route.method, route.path, token, nil, nil)
			resp.assertError(t, http.StatusUnauthorized, "--admin-token", "DEEPMETER_ADMIN_TOKEN", "disabled")
		}
	}
	if got, want := authFailures(t, env.reg, reasonDisabled), float64(3*len(apiRoutes)); got != want {
		t.Errorf("failures{reason=disabled} = %v, want %v", got, want)
	}
	if resp := env.request(t, http.MethodGet, "/healthz", "", nil, nil); resp.status != http.StatusOK {
		t.Errorf("/healthz status = %d, want 200", resp.status)
	}
}

// TestTokensNeverLogged checks that neither a rejected nor an accepted
// token reaches the log, even at debug level.
func TestTokensNeverLogged(t *testing.T) {
	env := newTestEnv(t, nil)
	const wrong = "wrong-token-that-must-not-be-logged"
	env.request(t, http.MethodGet, "/api/admin/api-usage/stats", wrong, nil, nil)
	env.request(t, http.MethodGet, "/api/admin/api-usage/stats", testToken, nil, nil)

	logs := env.logs.String()
	if !strings.Contains(logs, "admin request rejected") {
		t.Errorf("logs = %q, want the rejection logged", logs)
	}
	for _, secret := range []string{wrong, testToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("logs contain token %q:\n%s", secret, logs)
		}
	}
}

// TestHealthz checks the liveness route: no token needed, fixed body.
func TestHealthz(t *testing.T) {
	env := newTestEnv(t, nil)
	resp := env.request(t, http.MethodGet, "/healthz", "", nil, nil)
	if resp.status != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.status)
	}
	assertJSON(t, resp.body, `{"status":"ok"}`)
	if ct := resp.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
}

// TestReadyz checks readiness: ready with a working store, 503 with a
// reason when Config.Ready fails or the store is closed, and that a
// recovery is logged.
func TestReadyz(t *testing.T) {
	var (
		mu       sync.Mutex
		readyErr error
	)
	env := newTestEnv(t, func(c *Config) {
		c.Ready = func(ctx context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			return readyErr
		}
	})
	setReady := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		readyErr = err
	}

	resp := env.request(t, http.MethodGet, "/readyz", "", nil, nil)
	if resp.status != http.StatusOK {
		t.Fatalf("ready: status = %d, want 200; body: %s", resp.status, resp.body)
	}
	assertJSON(t, resp.body, `{"status":"ok","database":"ok"}`)

	setReady(errors.New("record queue is full"))
	resp = env.request(t, http.MethodGet, "/readyz", "", nil, nil)
	if resp.status != http.StatusServiceUnavailable {
		t.Errorf("Ready failing: status = %d, want 503", resp.status)
	}
	assertJSON(t, resp.body, `{"status":"unavailable","error":"not ready: record queue is full","database":"ok"}`)
	if !strings.Contains(env.logs.String(), "level=WARN msg=\"readiness check failed\"") {
		t.Errorf("logs = %q, want a warning for the failed check", env.logs.String())
	}

	setReady(nil)
	if resp = env.request(t, http.MethodGet, "/readyz", "", nil, nil); resp.status != http.StatusOK {
		t.Errorf("recovered: status = %d, want 200", resp.status)
	}
	if !strings.Contains(env.logs.String(), "readiness check passed again") {
		t.Errorf("logs = %q, want the recovery logged", env.logs.String())
	}

	if err := env.store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	resp = env.request(t, http.MethodGet, "/readyz", "", nil, nil)
	if resp.status != http.StatusServiceUnavailable {
		t.Errorf("store closed: status = %d, want 503", resp.status)
	}
	assertJSON(t, resp.body, `{"status":"unavailable","error":"database ping failed","database":"ok"}`)
}

// With a spool taking the records, a database outage must not take the
// proxy out of a load balancer: /readyz stays 200 and says the database is
// unreachable, until the spool check fails too.
func TestReadyzDatabaseOptional(t *testing.T) {
	var spoolErr atomic.Value
	spoolErr.Store("")
	env := newTestEnv(t, func(c *Config) {
		c.DatabaseOptional = true
		c.Ready = func(context.Context) error {
			if msg := spoolErr.Load().(string); msg != "" {
				return errors.New(msg)
			}
			return nil
		}
	})
	if err := env.store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	resp := env.request(t, http.MethodGet, "/readyz", "", nil, nil)
	if resp.status != http.StatusOK {
		t.Errorf("database down, spool fine: status = %d, want 200", resp.status)
	}
	assertJSON(t, resp.body, `{"status":"ok","database":"unreachable: database ping failed"}`)

	spoolErr.Store("spool failing: disk full")
	resp = env.request(t, http.MethodGet, "/readyz", "", nil, nil)
	if resp.status != http.StatusServiceUnavailable {
		t.Errorf("database down, spool failing: status = %d, want 503", resp.status)
	}
	assertJSON(t, resp.body, `{"status":"unavailable","error":"not ready: spool failing: disk full","database":"unreachable: database ping failed"}`)
}

// TestMetricsGolden checks the exposition of the auth failure counter
// against a golden file, after a known mix of failures.
func TestMetricsGolden(t *testing.T) {
	env := newTestEnv(t, nil)
	env.request(t, http.MethodGet, "/api/admin/api-usage/stats", "", nil, nil)
	env.request(t, http.MethodGet, "/api/admin/api-usage/balance", "", nil, nil)
	env.request(t, http.MethodGet, "/api/admin/api-usage/stats", "not-the-token", nil, nil)
	env.request(t, http.MethodGet, "/api/admin/api-usage/stats", testToken, nil, nil)

	golden, err := os.ReadFile(filepath.Join("testdata", "auth_failures.golden"))
	if err != nil {
		t.Fatalf("read golden file: %v", err)
	}
	if err := testutil.GatherAndCompare(env.reg, bytes.NewReader(golden), "deepmeter_admin_auth_failures_total"); err != nil {
		t.Errorf("metrics differ from testdata/auth_failures.golden:\n%v", err)
	}

	// /metrics serves the same registry without a token.
	resp := env.request(t, http.MethodGet, "/metrics", "", nil, nil)
	if resp.status != http.StatusOK {
		t.Fatalf("/metrics status = %d, want 200", resp.status)
	}
	for _, line := range []string{
		`deepmeter_admin_auth_failures_total{reason="missing"} 2`,
		`deepmeter_admin_auth_failures_total{reason="invalid"} 1`,
		`deepmeter_admin_auth_failures_total{reason="disabled"} 0`,
	} {
		if !bytes.Contains(resp.body, []byte(line)) {
			t.Errorf("/metrics lacks %q; body:\n%s", line, resp.body)
		}
	}
}

// TestRouting checks the JSON 404 and 405 responses and the Allow header,
// which clients use to discover what a path supports.
func TestRouting(t *testing.T) {
	env := newTestEnv(t, nil)
	tests := []struct {
		name      string
		method    string
		path      string
		wantCode  int
		wantAllow string
	}{
		{name: "unknown api route", method: http.MethodGet, path: "/api/nope", wantCode: http.StatusNotFound},
		{name: "unknown route under prefix", method: http.MethodGet, path: "/api/admin/api-usage/nope", wantCode: http.StatusNotFound},
		{name: "prefix itself", method: http.MethodGet, path: "/api/admin/api-usage", wantCode: http.StatusNotFound},
		{name: "trailing slash", method: http.MethodGet, path: "/api/admin/api-usage/stats/", wantCode: http.StatusNotFound},
		{name: "post stats", method: http.MethodPost, path: "/api/admin/api-usage/stats", wantCode: http.StatusMethodNotAllowed, wantAllow: "GET, HEAD"},
		{name: "delete balance", method: http.MethodDelete, path: "/api/admin/api-usage/balance", wantCode: http.StatusMethodNotAllowed, wantAllow: "GET, HEAD, POST"},
		{name: "put record", method: http.MethodPut, path: "/api/admin/api-usage/records/abc", wantCode: http.StatusMethodNotAllowed, wantAllow: "GET, HEAD"},
		{name: "post healthz", method: http.MethodPost, path: "/healthz", wantCode: http.StatusMethodNotAllowed, wantAllow: "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.request(t, tt.method, tt.path, testToken, nil, nil)
			resp.assertError(t, tt.wantCode)
			if got := resp.header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

// TestHeadOnGetRoutes sends HEAD to every admin GET route: each must
// answer like GET without a body, as HTTP requires of any GET resource,
// instead of 405.
func TestHeadOnGetRoutes(t *testing.T) {
	env := newTestEnv(t, nil)
	for _, path := range []string{
		"/api/admin/api-usage/stats",
		"/api/admin/api-usage/daily-limit",
		"/api/admin/api-usage/current-month",
		"/api/admin/api-usage/balance",
		"/api/admin/api-usage/records",
	} {
		t.Run(path, func(t *testing.T) {
			resp := env.request(t, http.MethodHead, path, testToken, nil, nil)
			if resp.status != http.StatusOK {
				t.Errorf("HEAD status = %d, want 200", resp.status)
			}
			if len(resp.body) != 0 {
				t.Errorf("HEAD body = %q, want none", resp.body)
			}
		})
	}
	t.Run("unknown record", func(t *testing.T) {
		resp := env.request(t, http.MethodHead, "/api/admin/api-usage/records/nope", testToken, nil, nil)
		if resp.status != http.StatusNotFound {
			t.Errorf("HEAD status = %d, want 404", resp.status)
		}
	})
}

// TestStoreFailure checks that a failing store gives every read route a
// 500 with a generic message, and that the cause is logged at Error.
func TestStoreFailure(t *testing.T) {
	env := newTestEnv(t, nil)
	if err := env.store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, route := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/admin/api-usage/stats", ""},
		{http.MethodGet, "/api/admin/api-usage/daily-limit", ""},
		{http.MethodGet, "/api/admin/api-usage/current-month", ""},
		{http.MethodGet, "/api/admin/api-usage/balance", ""},
		{http.MethodPost, "/api/admin/api-usage/balance", `{"balance": 5}`},
		{http.MethodGet, "/api/admin/api-usage/records", ""},
		{http.MethodGet, "/api/admin/api-usage/records/x", ""},
	} {
		t.Run(route.method+" "+route.path, func(t *testing.T) {
			resp := env.request(t, route.method, route.path, testToken, strings.NewReader(route.body), nil)
			resp.assertError(t, http.StatusInternalServerError, "internal error")
			if bytes.Contains(resp.body, []byte("closed")) {
				t.Errorf("body leaks the store error: %s", resp.body)
			}
		})
	}
	if logs := env.logs.String(); !strings.Contains(logs, "level=ERROR msg=\"admin store query failed\"") {
		t.Errorf("logs = %q, want the store error logged at ERROR", logs)
	}
}
