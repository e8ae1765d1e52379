package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/deepmeter/deepmeter/store"
)

// maxIDLength bounds the id path parameter. Stored ids are far shorter.
const maxIDLength = 128

// recordView is one record in responses: every stored column except the
// bodies, with keys equal to the column names. Cost, the price date and the
// rates are null when the record is unpriced. Rates are per 1M tokens.
type recordView struct {
	ID           string `json:"id"`
	CreatedAt    string `json:"created_at"`
	Endpoint     string `json:"endpoint"`
	UpstreamPath string `json:"upstream_path"`

	RequestedModel string `json:"requested_model"`
	Model          string `json:"model"`
	Stream         bool   `json:"stream"`
	StatusCode     int    `json:"status_code"`

	PromptTokens          int64  `json:"prompt_tokens"`
	CompletionTokens      int64  `json:"completion_tokens"`
	TotalTokens           int64  `json:"total_tokens"`
	PromptCacheHitTokens  int64  `json:"prompt_cache_hit_tokens"`
	PromptCacheMissTokens int64  `json:"prompt_cache_miss_tokens"`
	ReasoningTokens       int64  `json:"reasoning_tokens"`
	UsageSource           string `json:"usage_source"`

	TTFBMillis           int64 `json:"ttfb_ms"`
	ProcessingTimeMillis int64 `json:"processing_time_ms"`

	Cost               *json.Number `json:"cost"`
	Currency           string       `json:"currency"`
	PriceModel         string       `json:"price_model"`
	PriceEffectiveFrom *string      `json:"price_effective_from"`
	PriceHit           *json.Number `json:"price_hit"`
	PriceMiss          *json.Number `json:"price_miss"`
	PriceOutput        *json.Number `json:"price_output"`

	Success      bool     `json:"success"`
	ErrorMessage string   `json:"error_message"`
	Flags        []string `json:"flags"`
	UserID       string   `json:"user_id"`
	PageTab      string   `json:"page_tab"`

	Message         string `json:"message"`
	HasRequestData  bool   `json:"has_request_data"`
	HasResponseData bool   `json:"has_response_data"`
}

// recordDetailView adds the bodies to recordView. A body that is valid JSON
// is also included parsed, under request_json or response_json.
type recordDetailView struct {
	recordView
	RequestData  string          `json:"request_data"`
	ResponseData string          `json:"response_data"`
	RequestJSON  json.RawMessage `json:"request_json,omitempty"`
	ResponseJSON json.RawMessage `json:"response_json,omitempty"`
}

// recordsPage is the data of GET .../records.
type recordsPage struct {
	Records    []recordView `json:"records"`
	Total      int64        `json:"total"`
	Page       int          `json:"page"`
	Limit      int          `json:"limit"`
	TotalPages int64        `json:"total_pages"`
}

// listRecords serves GET .../records?days=N&page=P&limit=L, newest first.
// A page past the last one returns no records.
func (s *server) listRecords(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var values [3]int
	for i, p := range []intParam{daysParam, pageParam, limitParam} {
		v, err := p.parse(q)
		if err != nil {
			s.writeError(w, r, http.StatusBadRequest, err.Error())
			return
		}
		values[i] = v
	}
	days, page, limit := values[0], values[1], values[2]

	ctx, cancel := queryContext(r)
	defer cancel()
	listed, total, err := s.store.List(ctx, store.ListQuery{
		Since:  windowStart(s.now(), days),
		Offset: (page - 1) * limit,
		Limit:  limit,
	})
	if err != nil {
		s.storeFailed(w, r, "list records", err)
		return
	}

	out := recordsPage{
		Records:    make([]recordView, 0, len(listed)),
		Total:      total,
		Page:       page,
		Limit:      limit,
		TotalPages: (total + int64(limit) - 1) / int64(limit),
	}
	for i := range listed {
		out.Records = append(out.Records, newRecordView(&listed[i].Record, listed[i].HasRequestData, listed[i].HasResponseData))
	}
	s.writeData(w, out)
}

// getRecord serves GET .../records/{id} with the stored bodies.
func (s *server) getRecord(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if len(id) > maxIDLength {
		s.writeError(w, r, http.StatusBadRequest, fmt.Sprintf("invalid id: at most %d characters", maxIDLength))
		return
	}

	ctx, cancel := queryContext(r)
	defer cancel()
	rec, err := s.store.Record(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		s.writeError(w, r, http.StatusNotFound, fmt.Sprintf("record %q not found", id))
		return
	}
	if err != nil {
		s.storeFailed(w, r, "get record", err)
		return
	}

	view := recordDetailView{
		recordView:   newRecordView(&rec, rec.RequestData != "", rec.ResponseData != ""),
		RequestData:  rec.RequestData,
		ResponseData: rec.ResponseData,
	}
	if json.Valid([]byte(rec.RequestData)) {
		view.RequestJSON = json.RawMessage(rec.RequestData)
	}
	if json.Valid([]byte(rec.ResponseData)) {
		view.ResponseJSON = json.RawMessage(rec.ResponseData)
	}
	s.writeData(w, view)
}

func newRecordView(rec *store.Record, hasRequest, hasResponse bool) recordView {
	v := recordView{
		ID:                    rec.ID,
		CreatedAt:             timeString(rec.CreatedAt),
		Endpoint:              rec.Endpoint,
		UpstreamPath:          rec.UpstreamPath,
		RequestedModel:        rec.RequestedModel,
		Model:                 rec.Model,
		Stream:                rec.Stream,
		StatusCode:            rec.StatusCode,
		PromptTokens:          rec.PromptTokens,
		CompletionTokens:      rec.CompletionTokens,
		TotalTokens:           rec.TotalTokens,
		PromptCacheHitTokens:  rec.PromptCacheHitTokens,
		PromptCacheMissTokens: rec.PromptCacheMissTokens,
		ReasoningTokens:       rec.ReasoningTokens,
		UsageSource:           rec.UsageSource,
		TTFBMillis:            rec.TTFBMillis,
		ProcessingTimeMillis:  rec.ProcessingTimeMillis,
		Currency:              rec.Currency,
		PriceModel:            rec.PriceModel,
		Success:               rec.Success,
		ErrorMessage:          rec.ErrorMessage,
		Flags:                 rec.Flags,
		UserID:                rec.UserID,
		PageTab:               rec.PageTab,
		Message:               rec.Message,
		HasRequestData:        hasRequest,
		HasResponseData:       hasResponse,
	}
	if v.Flags == nil {
		v.Flags = []string{}
	}
	if rec.Priced {
		v.Cost = optionalNumber(moneyNumber(rec.Cost))
		v.PriceHit = optionalNumber(perMillionNumber(rec.PriceHit))
		v.PriceMiss = optionalNumber(perMillionNumber(rec.PriceMiss))
		v.PriceOutput = optionalNumber(perMillionNumber(rec.PriceOutput))
		if !rec.PriceEffectiveFrom.IsZero() {
			from := timeString(rec.PriceEffectiveFrom)
			v.PriceEffectiveFrom = &from
		}
	}
	return v
}
