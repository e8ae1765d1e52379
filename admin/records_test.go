package admin

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/deepmeter/deepmeter/store"
)

// fullRecord returns a priced record with every column set to a distinct
// value, so a swapped or missing key shows up in the comparison.
func fullRecord(t *testing.T) store.Record {
	t.Helper()
	r := baseRecord("full-1", time.Date(2026, 5, 15, 10, 20, 30, 123456000, time.UTC), mustMoney(t, "0.000756"))
	r.Endpoint = "/v1/chat/completions"
	r.UpstreamPath = "/chat/completions"
	r.RequestedModel = "deepseek-chat"
	r.Model = "deepseek-v4-flash"
	r.Stream = true
	r.PromptTokens, r.CompletionTokens, r.TotalTokens = 1500, 800, 2300
	r.PromptCacheHitTokens, r.PromptCacheMissTokens, r.ReasoningTokens = 64, 1436, 120
	r.TTFBMillis, r.ProcessingTimeMillis = 123, 4567
	r.PriceModel = "deepseek-v4-flash"
	r.Flags = []string{store.FlagUsageMismatch}
	r.UserID, r.PageTab = "user-7", "chat"
	r.Message = "Translate «héllo» 🌍"
	r.RequestData = `{"model":"deepseek-chat","messages":[{"role":"user","content":"hi"}]}`
	r.ResponseData = `{"id":"cmpl-1","choices":[]}`
	return r
}

// unpricedRecord returns a failed call with no price, no request body and
// a response body that is not JSON.
func unpricedRecord() store.Record {
	return store.Record{
		ID:           "unpriced-1",
		CreatedAt:    time.Date(2026, 5, 15, 9, 0, 0, 0, time.UTC),
		Endpoint:     "/chat/completions",
		UpstreamPath: "/chat/completions",
		Model:        "mystery-model",
		StatusCode:   502,
		UsageSource:  store.UsageNone,
		ErrorMessage: "upstream connection reset",
		Flags:        []string{store.FlagUnpriced, store.FlagUsageMissing},
		Message:      "N/A",
		ResponseData: "upstream said no",
	}
}

const fullRecordJSON = `"id":"full-1","created_at":"2026-05-15T10:20:30.123456Z",
	"endpoint":"/v1/chat/completions","upstream_path":"/chat/completions",
	"requested_model":"deepseek-chat","model":"deepseek-v4-flash","stream":true,"status_code":200,
	"prompt_tokens":1500,"completion_tokens":800,"total_tokens":2300,
	"prompt_cache_hit_tokens":64,"prompt_cache_miss_tokens":1436,"reasoning_tokens":120,
	"usage_source":"reported","ttfb_ms":123,"processing_time_ms":4567,
	"cost":0.000756,"currency":"USD","price_model":"deepseek-v4-flash",
	"price_effective_from":"2025-09-29T00:00:00Z","price_hit":0.028,"price_miss":0.28,"price_output":0.42,
	"success":true,"error_message":"","flags":["usage_mismatch"],"user_id":"user-7","page_tab":"chat",
	"message":"Translate «héllo» 🌍","has_request_data":true,"has_response_data":true`

const unpricedRecordJSON = `"id":"unpriced-1","created_at":"2026-05-15T09:00:00Z",
	"endpoint":"/chat/completions","upstream_path":"/chat/completions",
	"requested_model":"","model":"mystery-model","stream":false,"status_code":502,
	"prompt_tokens":0,"completion_tokens":0,"total_tokens":0,
	"prompt_cache_hit_tokens":0,"prompt_cache_miss_tokens":0,"reasoning_tokens":0,
	"usage_source":"none","ttfb_ms":0,"processing_time_ms":0,
	"cost":null,"currency":"","price_model":"",
	"price_effective_from":null,"price_hit":null,"price_miss":null,"price_output":null,
	"success":false,"error_message":"upstream connection reset","flags":["unpriced","usage_missing"],"user_id":"","page_tab":"",
	"message":"N/A","has_request_data":false,"has_response_data":true`

// TestRecordsListFields checks every key of a listed record, priced and
// unpriced, and that the list never carries the bodies.
func TestRecordsListFields(t *testing.T) {
	env := newTestEnv(t, nil)
	env.insert(t, fullRecord(t), unpricedRecord())

	resp := env.get(t, "/api/admin/api-usage/records")
	assertJSON(t, resp.body, `{"success":true,"data":{"records":[{`+fullRecordJSON+`},{`+unpricedRecordJSON+`}],
		"total":2,"page":1,"limit":50,"total_pages":1}}`)
	for _, key := range []string{`"request_data"`, `"response_data"`, `"request_json"`, `"response_json"`, `\"messages\"`} {
		if strings.Contains(string(resp.body), key) {
			t.Errorf("list body contains %q; bodies belong only to the single-record route", key)
		}
	}
}

// TestRecordDetail checks the single-record route: the list fields plus
// both bodies as strings, and parsed copies only for bodies that are JSON.
func TestRecordDetail(t *testing.T) {
	env := newTestEnv(t, nil)
	env.insert(t, fullRecord(t), unpricedRecord())

	resp := env.get(t, "/api/admin/api-usage/records/full-1")
	assertJSON(t, resp.body, `{"success":true,"data":{`+fullRecordJSON+`,
		"request_data":"{\"model\":\"deepseek-chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
		"response_data":"{\"id\":\"cmpl-1\",\"choices\":[]}",
		"request_json":{"model":"deepseek-chat","messages":[{"role":"user","content":"hi"}]},
		"response_json":{"id":"cmpl-1","choices":[]}}}`)

	resp = env.get(t, "/api/admin/api-usage/records/unpriced-1")
	assertJSON(t, resp.body, `{"success":true,"data":{`+unpricedRecordJSON+`,
		"request_data":"","response_data":"upstream said no"}}`)
}

// TestRecordLargeBody checks that a body of several MB comes back intact.
func TestRecordLargeBody(t *testing.T) {
	env := newTestEnv(t, nil)
	r := fullRecord(t)
	r.ResponseData = `{"content":"` + strings.Repeat("a<b>&", 600_000) + `"}`
	env.insert(t, r)

	data := env.get(t, "/api/admin/api-usage/records/full-1").data(t)
	got, _ := data["response_data"].(string)
	if got != r.ResponseData {
		t.Errorf("response_data has %d bytes, want the %d stored bytes unchanged", len(got), len(r.ResponseData))
	}
	if _, ok := data["response_json"].(map[string]any); !ok {
		t.Errorf("response_json = %T, want the parsed object", data["response_json"])
	}
}

// TestRecordByIDErrors checks unknown ids, the id length bound and ids
// that need escaping.
func TestRecordByIDErrors(t *testing.T) {
	env := newTestEnv(t, nil)
	env.insert(t, fullRecord(t))
	tests := []struct {
		name       string
		id         string
		wantStatus int
		wantError  string
	}{
		{name: "unknown", id: "no-such-id", wantStatus: 404, wantError: `record "no-such-id" not found`},
		{name: "max length", id: strings.Repeat("x", maxIDLength), wantStatus: 404, wantError: "not found"},
		{name: "too long", id: strings.Repeat("x", maxIDLength+1), wantStatus: 400, wantError: "at most 128 characters"},
		{name: "escaped space", id: "a%20b", wantStatus: 404, wantError: `record "a b" not found`},
		{name: "sql quote", id: "x'%20OR%20'1'='1", wantStatus: 404, wantError: "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := env.get(t, "/api/admin/api-usage/records/"+tt.id)
			resp.assertError(t, tt.wantStatus, tt.wantError)
		})
	}
}

// TestRecordsPaging checks page contents, order, total and total_pages,
// a page past the end, and the days filter.
func TestRecordsPaging(t *testing.T) {
	env := newTestEnv(t, nil)
	for i := range 7 {
		env.insert(t, baseRecord(fmt.Sprintf("r%d", i), testNow.Add(-time.Duration(i)*time.Minute), 1))
	}
	env.insert(t, baseRecord("old", testNow.AddDate(0, 0, -40), 1))

	tests := []struct {
		query          string
		wantIDs        []string
		wantTotal      string
		wantTotalPages string
	}{
		{query: "", wantIDs: []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6"}, wantTotal: "7", wantTotalPages: "1"},
		{query: "?limit=3", wantIDs: []string{"r0", "r1", "r2"}, wantTotal: "7", wantTotalPages: "3"},
		{query: "?limit=3&page=2", wantIDs: []string{"r3", "r4", "r5"}, wantTotal: "7", wantTotalPages: "3"},
		{query: "?limit=3&page=3", wantIDs: []string{"r6"}, wantTotal: "7", wantTotalPages: "3"},
		{query: "?limit=3&page=4", wantIDs: []string{}, wantTotal: "7", wantTotalPages: "3"},
		{query: "?limit=7", wantIDs: []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6"}, wantTotal: "7", wantTotalPages: "1"},
		{query: "?limit=1&page=7", wantIDs: []string{"r6"}, wantTotal: "7", wantTotalPages: "7"},
		{query: "?days=60&limit=3&page=3", wantIDs: []string{"r6", "old"}, wantTotal: "8", wantTotalPages: "3"},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			data := env.get(t, "/api/admin/api-usage/records"+tt.query).data(t)
			records, ok := data["records"].([]any)
			if !ok {
				t.Fatalf("records = %v, want an array", data["records"])
			}
			ids := make([]string, 0, len(records))
			for _, r := range records {
				ids = append(ids, fmt.Sprint(r.(map[string]any)["id"]))
			}
			if fmt.Sprint(ids) != fmt.Sprint(tt.wantIDs) {
				t.Errorf("ids = %v, want %v", ids, tt.wantIDs)
			}
			if got := fmt.Sprint(data["total"]); got != tt.wantTotal {
				t.Errorf("total = %s, want %s", got, tt.wantTotal)
			}
			if got := fmt.Sprint(data["total_pages"]); got != tt.wantTotalPages {
				t.Errorf("total_pages = %s, want %s", got, tt.wantTotalPages)
			}
		})
	}
}

// TestRecordsEmpty checks that no records give an empty array, not null,
// and zero pages.
func TestRecordsEmpty(t *testing.T) {
	env := newTestEnv(t, nil)
	resp := env.get(t, "/api/admin/api-usage/records?page=2&limit=10")
	assertJSON(t, resp.body, `{"success":true,"data":{"records":[],"total":0,"page":2,"limit":10,"total_pages":0}}`)
	if resp.status != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.status)
	}
}
