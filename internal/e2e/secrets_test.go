package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/deepmeter/deepmeter/admin"
	"github.com/deepmeter/deepmeter/internal/standin"
	"github.com/deepmeter/deepmeter/internal/testlog"
	"github.com/deepmeter/deepmeter/proxy"
	"github.com/deepmeter/deepmeter/store"
)

// secretKeys are the fake API keys of the scan. Each has a distinct body,
// so any eight characters of it found anywhere is a leak.
var secretKeys = []string{
	"sk-a1b2c3d4e5f60718293a4b5c6d7e8f90k001",
	"sk-0f1e2d3c4b5a69788796a5b4c3d2e1f0k002",
	"sk-9a8b7c6d5e4f30211203f4e5d6c7b8a9k003",
	"sk-5c4d3e2f1a0b97866879b0a1f2e3d4c5k004",
	"sk-7e6f5a4b3c2d18099081d2c3b4a5f6e7k005",
	"sk-3b2a1f0e9d8c75644657c8d9e0f1a2b3k006",
}

// echoAuthHeader makes the test upstream answer 401 with the whole
// Authorization header in its error message, as a careless upstream or a
// gateway in between might.
const echoAuthHeader = "X-Test-Echo-Auth"

// TestNoKeyInDatabaseOrLogs runs a realistic mix of calls with known fake
// keys through the whole stack, with every component logging at Debug,
// then scans every stored column, the audit, the raw SQLite files and
// every log line. Only the last four characters of a key may appear,
// because the database and the logs are read by more people than the
// keys' owners.
func TestNoKeyInDatabaseOrLogs(t *testing.T) {
	forEachStore(t, func(t *testing.T, databaseURL string) {
		logs := &testlog.Buffer{}
		logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		const opsToken, readToken = "ops-token-for-the-scan-0123456789", "read-token-for-the-scan-012345678"
		const maxStoredBody = 4096
		s := newStackWith(t, databaseURL, stackOptions{
			maxStoredBody: maxStoredBody,
			upstream:      echoAuthorization,
			proxy:         func(c *proxy.Config) { c.MaxRequestBody = 64 << 10 },
			admin: func(c *admin.Config) {
				c.RoleTokens = []admin.Token{
					{Name: "ops", Role: admin.RoleAdmin, Secret: opsToken},
					{Name: "dashboard", Role: admin.RoleRead, Secret: readToken},
				}
			},
			logger: logger,
		})

		chat := func(prompt string, stream bool) string {
			return fmt.Sprintf(`{"model":"deepseek-chat","stream":%t,"messages":[{"role":"user","content":%s}]}`, stream, jsonString(prompt))
		}
		// escapedChat spells the key's dash as a JSON escape, which decodes
		// to the whole key.
		escapedChat := func(key string) string {
			return `{"model":"deepseek-chat","messages":[{"role":"user","content":"use sk\u002d` + key[len("sk-"):] + `"}]}`
		}
		// cutChat puts key across the storage cap of request_data, so the
		// cut keeps "sk-" and five key characters.
		cutChat := func(key string) string {
			prefix := `{"model":"deepseek-chat","stream":false,"messages":[{"role":"user","content":"`
			return prefix + strings.Repeat("p", maxStoredBody-len(prefix)-len("sk-")-5) + key + `"}]}`
		}
		userChat := func(user string) string {
			return `{"model":"deepseek-chat","user":` + jsonString(user) + `,"messages":[{"role":"user","content":"hi"}]}`
		}
		calls := []struct {
			name       string
			key        string
			body       string
			header     http.Header
			wantStatus int
		}{
			{"plain call", secretKeys[0], chat("hello", false), nil, 200},
			{"stream with keys in the prompt", secretKeys[1], chat("use "+secretKeys[2]+" or Authorization: Bearer "+secretKeys[3], true), nil, 200},
			{"stand-in 401", secretKeys[4], chat("hi", false), http.Header{standin.FaultHeader: {"status=401"}}, 401},
			{"upstream echoes the key", secretKeys[5], chat("hi", false), http.Header{echoAuthHeader: {"1"}}, 401},
			{"upstream 500 with a key in the prompt", secretKeys[0], chat("key "+secretKeys[1], false), http.Header{standin.FaultHeader: {"status=500"}}, 500},
			{"oversized body with a key", secretKeys[2], chat(secretKeys[3]+strings.Repeat(" pad", 20000), false), nil, 413},
			{"bodies opted out", secretKeys[3], chat("secret "+secretKeys[4], false), http.Header{proxy.StoreBodiesHeader: {"none"}}, 200},
			{"escaped key in the prompt", secretKeys[0], escapedChat(secretKeys[4]), nil, 200},
			{"key as the body's user", secretKeys[0], userChat(secretKeys[5]), nil, 200},
			{"key as the user id header", secretKeys[0], chat("hi", false), http.Header{proxy.UserIDHeader: {secretKeys[1]}}, 200},
			{"key cut by the storage cap", secretKeys[0], cutChat(secretKeys[2]), nil, 200},
		}
		for _, c := range calls {
			resp := sendStatus(t, http.MethodPost, s.proxy.URL+"/chat/completions", c.key, c.body, c.header)
			if resp != c.wantStatus {
				t.Errorf("%s: status = %d, want %d", c.name, resp, c.wantStatus)
			}
		}
		// An unmetered call is logged but never stored.
		if got := sendStatus(t, http.MethodGet, s.proxy.URL+"/models", secretKeys[5], "", nil); got != 200 {
			t.Errorf("GET /models: status = %d, want 200", got)
		}

		// Admin traffic: a key sent as an admin token, changes with the
		// admin token and attempts with the read token.
		balance := s.admin.URL + "/api/admin/api-usage/balance"
		dailyLimit := s.admin.URL + "/api/admin/api-usage/daily-limit"
		adminCalls := []struct {
			name, url, token, body string
			wantStatus             int
		}{
			{"key as admin token", balance, secretKeys[0], "", 401},
			{"set balance", balance, opsToken, `{"balance": 25}`, 200},
			{"read token sets balance", balance, readToken, `{"balance": 1}`, 403},
			{"read token sets daily limit", dailyLimit, readToken, `{"daily_limit": 1}`, 403},
			{"set daily limit", dailyLimit, opsToken, `{"daily_limit": 3}`, 200},
			{"set balance again", balance, opsToken, `{"balance": 12.5}`, 200},
		}
		for _, c := range adminCalls {
			method := http.MethodPost
			if c.body == "" {
				method = http.MethodGet
			}
			if got := sendStatus(t, method, c.url, c.token, c.body, http.Header{"Content-Type": {"application/json"}}); got != c.wantStatus {
				t.Errorf("%s: status = %d, want %d", c.name, got, c.wantStatus)
			}
		}

		records := s.waitRecords(t, len(calls))
		entries, total, err := s.store.Audit(context.Background(), store.AuditQuery{Limit: 100})
		if err != nil {
			t.Fatalf("Audit: %v", err)
		}
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.TokenName+" "+e.Action)
		}
		if want := []string{"ops set_balance", "ops set_daily_limit", "ops set_balance"}; total != 3 || !slices.Equal(actions, want) {
			t.Errorf("audit = %q (total %d), want %q: every change, newest first", actions, total, want)
		}
		if !strings.Contains(entries[0].NewValue, `"balance":12.5`) {
			t.Errorf("newest audit entry new value = %s, want balance 12.5", entries[0].NewValue)
		}

		places := map[string]string{"logs": logs.String()}
		for _, r := range records {
			places["record "+r.ID] = fmt.Sprintf("%+v", r)
		}
		for _, e := range entries {
			places[fmt.Sprintf("audit %d", e.ID)] = fmt.Sprintf("%+v", e)
		}
		if path, ok := strings.CutPrefix(databaseURL, "sqlite:"); ok {
			for _, file := range []string{path, path + "-wal"} {
				data, err := os.ReadFile(file)
				if err != nil && !os.IsNotExist(err) {
					t.Fatalf("read %s: %v", file, err)
				}
				places["file "+file] = string(data)
			}
		}
		for place, text := range places {
			for _, key := range secretKeys {
				if leak := keyFragment(text, key); leak != "" {
					t.Errorf("%s contains %q of key %s...%s", place, leak, key[:5], key[len(key)-4:])
				}
			}
			for _, token := range []string{opsToken, readToken} {
				if strings.Contains(text, token) {
					t.Errorf("%s contains an admin token", place)
				}
			}
		}

		// The masks must be there, or the scan looked at the wrong text.
		var stored strings.Builder
		for _, r := range records {
			stored.WriteString(r.ErrorMessage + r.RequestData + r.ResponseData + r.UserID)
		}
		for _, mask := range []string{"sk-****k006", "sk-****k003", "Bearer sk-****k004", "use sk-****k005", "sk-****k002", "sk-****…[truncated"} {
			if !strings.Contains(stored.String(), mask) {
				t.Errorf("no record contains the mask %q", mask)
			}
		}
	})
}

// keyFragment returns the first piece of key found in text: "sk-" with
// the next four characters, which a key cut at a storage limit leaves, or
// any eight characters after "sk-". It returns "" when none is found. A
// mask keeps four characters after "****", so it never matches.
func keyFragment(text, key string) string {
	body := key[len("sk-"):]
	if start := "sk-" + body[:4]; strings.Contains(text, start) {
		return start
	}
	for i := 0; i+8 <= len(body); i++ {
		if strings.Contains(text, body[i:i+8]) {
			return body[i : i+8]
		}
	}
	return ""
}

// echoAuthorization wraps the stand-in: a request with echoAuthHeader gets
// 401 with its Authorization header in the error message.
func echoAuthorization(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(echoAuthHeader) == "" {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":{"message":"invalid credentials: %s","type":"authentication_error","param":null,"code":"invalid_request_error"}}`,
			r.Header.Get("Authorization"))
	})
}

// sendStatus makes one request with a bearer token and returns the status.
func sendStatus(t *testing.T, method, url, token, body string, header http.Header) int {
	t.Helper()
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, reader)
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
