package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/deepmeter/deepmeter/internal/standin"
	"github.com/deepmeter/deepmeter/internal/testdb"
	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/proxy"
	"github.com/deepmeter/deepmeter/store"
)

// adminGet calls an admin route with the token and decodes the data field,
// keeping numbers as written.
func adminGet(t *testing.T, s *stack, path string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.admin.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", path, resp.StatusCode, body)
	}
	var envelope struct {
		Success bool           `json:"success"`
		Data    map[string]any `json:"data"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&envelope); err != nil || !envelope.Success {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return envelope.Data
}

// proxyCall sends one raw chat completion through the proxy.
func proxyCall(t *testing.T, s *stack, body string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.proxy.URL+"/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return resp, got
}

// The admin API's totals are exact sums of the stored records: what an
// admin reads is what the calls cost, to the last unit, with failed and
// successful calls counted apart.
func TestAdminTotalsMatchRecords(t *testing.T) {
	forEachStore(t, func(t *testing.T, databaseURL string) {
		s := newStack(t, databaseURL)

		const calls = 12
		for i := 0; i < calls; i++ {
			body := fmt.Sprintf(`{"model":"deepseek-chat","user":"body-user-%d","messages":[{"role":"user","content":"question number %d %s"}]}`,
				i%3, i, strings.Repeat("more words ", i*40))
			header := http.Header{}
			if i%4 == 3 {
				header.Set(standin.FaultHeader, "status=429")
			}
			resp, _ := proxyCall(t, s, body, header)
			if want := map[bool]int{true: 429, false: 200}[i%4 == 3]; resp.StatusCode != want {
				t.Fatalf("call %d: status %d, want %d", i, resp.StatusCode, want)
			}
		}
		records := s.waitRecords(t, calls)

		sum := new(big.Int)
		var ok, failed int
		for _, r := range records {
			if r.Success {
				ok++
			} else {
				failed++
				if r.Cost != 0 || r.StatusCode != 429 || r.ErrorMessage == "" {
					t.Errorf("failed record: cost %s status %d error %q", r.Cost, r.StatusCode, r.ErrorMessage)
				}
			}
			if !strings.HasPrefix(r.UserID, "body-user-") {
				t.Errorf("user_id %q, want the body's user field", r.UserID)
			}
			sum.Add(sum, big.NewInt(int64(r.Cost)))
		}
		if sum.Sign() == 0 {
			t.Fatal("no cost recorded")
		}

		stats := adminGet(t, s, "/api/admin/api-usage/stats?days=1")
		checks := []struct {
			name string
			got  any
			want string
		}{
			{"total_calls", stats["total_calls"], fmt.Sprint(calls)},
			{"successful_calls", stats["successful_calls"], fmt.Sprint(ok)},
			{"failed_calls", stats["failed_calls"], fmt.Sprint(failed)},
			{"total_cost", stats["total_cost"], pricing.FormatAmount(sum)},
		}
		for _, c := range checks {
			if fmt.Sprint(c.got) != c.want {
				t.Errorf("stats %s: got %v, want %s", c.name, c.got, c.want)
			}
		}

		month := adminGet(t, s, "/api/admin/api-usage/current-month")
		if got := fmt.Sprint(month["total_cost"]); got != pricing.FormatAmount(sum) {
			t.Errorf("current-month total_cost %s, want %s", got, pricing.FormatAmount(sum))
		}
		if month["month"] != "2025-11" {
			t.Errorf("month %v, want 2025-11", month["month"])
		}

		daily := adminGet(t, s, "/api/admin/api-usage/daily-limit")
		if got := fmt.Sprint(daily["today_cost"]); got != pricing.FormatAmount(sum) {
			t.Errorf("daily today_cost %s, want %s", got, pricing.FormatAmount(sum))
		}

		page := adminGet(t, s, "/api/admin/api-usage/records?days=1&limit=5&page=3")
		if fmt.Sprint(page["total"]) != fmt.Sprint(calls) || fmt.Sprint(page["total_pages"]) != "3" {
			t.Errorf("records page: total %v total_pages %v", page["total"], page["total_pages"])
		}
		if list, _ := page["records"].([]any); len(list) != 2 {
			t.Errorf("page 3 of 12 by 5 has %d records, want 2", len(list))
		}
	})
}

// A caller's attribution headers win over the body's user field, and the
// record's id is the one the client got back.
func TestAttributionHeadersWin(t *testing.T) {
	s := newStack(t, testdb.SQLiteURL(t))
	header := http.Header{}
	header.Set(proxy.UserIDHeader, "header-user")
	header.Set(proxy.PageTabHeader, "billing")
	header.Set(proxy.EndpointHeader, "/api/ai/summary")
	resp, _ := proxyCall(t, s, `{"model":"deepseek-chat","user":"body-user","messages":[{"role":"user","content":"hi"}]}`, header)
	rec := s.recordByID(t, resp.Header.Get(proxy.RequestIDHeader))
	if rec.UserID != "header-user" || rec.PageTab != "billing" || rec.Endpoint != "/api/ai/summary" || rec.UpstreamPath != "/chat/completions" {
		t.Errorf("record: user %q tab %q endpoint %q upstream path %q", rec.UserID, rec.PageTab, rec.Endpoint, rec.UpstreamPath)
	}
	if rec.Message != "hi" {
		t.Errorf("message %q, want hi", rec.Message)
	}
}

// TestAdminStatsAfterAbsurdUsage sends calls whose upstream reports an
// empty, negative or absurd usage, such as a broken relay might. Each must
// be recorded with the usage_invalid flag, and the admin stats must still
// answer: taken as reported, counts near the int64 maximum overflowed the
// stores' token sums and /stats failed with 500 until the records were
// deleted.
func TestAdminStatsAfterAbsurdUsage(t *testing.T) {
	usages := []string{
		`{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775807,"total_tokens":9223372036854775807}`,
		`{"prompt_tokens":9223372036854775807,"completion_tokens":1,"prompt_cache_hit_tokens":9223372036854775807,"prompt_cache_miss_tokens":0}`,
		`{"prompt_tokens":-5,"completion_tokens":-1}`,
		`{}`,
	}
	var mu sync.Mutex
	next := 0
	upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		u := usages[next%len(usages)]
		next++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","model":"deepseek-chat","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":%s}`, u)
	})
	forEachStore(t, func(t *testing.T, databaseURL string) {
		s := newStackWith(t, databaseURL, stackOptions{upstream: func(http.Handler) http.Handler { return upstream }})
		body := `{"model":"deepseek-chat","messages":[{"role":"user","content":"hello"}]}`
		for range usages {
			if resp, got := proxyCall(t, s, body, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("proxy status %d: %s", resp.StatusCode, got)
			}
		}
		for _, rec := range s.waitRecords(t, len(usages)) {
			if !rec.HasFlag(store.FlagUsageInvalid) || rec.Success {
				t.Errorf("record %s: flags %v success %v, want usage_invalid and failed", rec.ID, rec.Flags, rec.Success)
			}
		}
		data := adminGet(t, s, "/api/admin/api-usage/stats?days=1")
		if got := fmt.Sprint(data["failed_calls"]); got != fmt.Sprint(len(usages)) {
			t.Errorf("failed_calls = %s, want %d", got, len(usages))
		}
	})
}
