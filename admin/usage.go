package admin

import (
	"encoding/json"
	"math"
	"math/big"
	"net/http"

	"github.com/deepmeter/deepmeter/pricing"
)

// statsView is the data of GET .../stats. Costs are in Currency, and costs
// in other currencies appear only in CostsByCurrency.
type statsView struct {
	Days  int    `json:"days"`
	Since string `json:"since"`

	TotalCalls      int64       `json:"total_calls"`
	SuccessfulCalls int64       `json:"successful_calls"`
	FailedCalls     int64       `json:"failed_calls"`
	SuccessRate     json.Number `json:"success_rate"`

	Currency       string      `json:"currency"`
	TotalCost      json.Number `json:"total_cost"`
	EstimatedCost  json.Number `json:"estimated_cost"`
	UnpricedCalls  int64       `json:"unpriced_calls"`
	EstimatedCalls int64       `json:"estimated_calls"`

	AvgProcessingTimeMillis float64 `json:"avg_processing_time_ms"`

	Tokens tokenTotals `json:"tokens"`

	CallsByDay   []dayCalls   `json:"calls_by_day"`
	CostByDay    []dayCost    `json:"cost_by_day"`
	CallsByModel []modelCalls `json:"calls_by_model"`

	CostsByCurrency map[string]json.Number `json:"costs_by_currency,omitempty"`
}

type tokenTotals struct {
	Prompt     int64 `json:"prompt"`
	Completion int64 `json:"completion"`
	Total      int64 `json:"total"`
	CacheHit   int64 `json:"cache_hit"`
	CacheMiss  int64 `json:"cache_miss"`
	Reasoning  int64 `json:"reasoning"`
}

type dayCalls struct {
	Date  string `json:"date"`
	Calls int64  `json:"calls"`
}

// dayCost and modelCalls give Cost in the configured currency. Calls in
// another currency appear only in CostsByCurrency, and calls without a
// price are counted in UnpricedCalls, so neither reads as a free call.
type dayCost struct {
	Date            string                 `json:"date"`
	Cost            json.Number            `json:"cost"`
	UnpricedCalls   int64                  `json:"unpriced_calls"`
	CostsByCurrency map[string]json.Number `json:"costs_by_currency,omitempty"`
}

type modelCalls struct {
	Model           string                 `json:"model"`
	Calls           int64                  `json:"calls"`
	Cost            json.Number            `json:"cost"`
	UnpricedCalls   int64                  `json:"unpriced_calls"`
	CostsByCurrency map[string]json.Number `json:"costs_by_currency,omitempty"`
}

// getStats serves GET .../stats?days=N. Days without calls are left out of
// calls_by_day and cost_by_day.
func (s *server) getStats(w http.ResponseWriter, r *http.Request) {
	days, err := daysParam.parse(r.URL.Query())
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	since := windowStart(s.now(), days)

	ctx, cancel := queryContext(r)
	defer cancel()
	st, err := s.store.Stats(ctx, since)
	if err != nil {
		s.storeFailed(w, r, "stats", err)
		return
	}

	view := statsView{
		Days:            days,
		Since:           timeString(since),
		TotalCalls:      st.TotalCalls,
		SuccessfulCalls: st.SuccessfulCalls,
		FailedCalls:     st.FailedCalls,
		SuccessRate:     percentNumber(big.NewInt(st.SuccessfulCalls), big.NewInt(st.TotalCalls)),
		Currency:        s.currency,
		TotalCost:       amountNumber(st.Cost.Get(s.currency)),
		EstimatedCost:   amountNumber(st.EstimatedCost.Get(s.currency)),
		UnpricedCalls:   st.UnpricedCalls,
		EstimatedCalls:  st.EstimatedCalls,
		Tokens: tokenTotals{
			Prompt:     st.PromptTokens,
			Completion: st.CompletionTokens,
			Total:      st.TotalTokens,
			CacheHit:   st.PromptCacheHitTokens,
			CacheMiss:  st.PromptCacheMissTokens,
			Reasoning:  st.ReasoningTokens,
		},
		CallsByDay:      make([]dayCalls, 0, len(st.Days)),
		CostByDay:       make([]dayCost, 0, len(st.Days)),
		CallsByModel:    make([]modelCalls, 0, len(st.Models)),
		CostsByCurrency: s.costsByCurrency(st.Cost),
	}

	avg := st.AvgProcessingTimeMillis
	if !math.IsNaN(avg) && !math.IsInf(avg, 0) {
		view.AvgProcessingTimeMillis = math.Round(avg*100) / 100
	}

	for _, d := range st.Days {
		view.CallsByDay = append(view.CallsByDay, dayCalls{Date: d.Day, Calls: d.Calls})
		view.CostByDay = append(view.CostByDay, dayCost{
			Date:            d.Day,
			Cost:            amountNumber(d.Cost.Get(s.currency)),
			UnpricedCalls:   d.UnpricedCalls,
			CostsByCurrency: s.costsByCurrency(d.Cost),
		})
	}
	for _, m := range st.Models {
		view.CallsByModel = append(view.CallsByModel, modelCalls{
			Model:           m.Model,
			Calls:           m.Calls,
			Cost:            amountNumber(m.Cost.Get(s.currency)),
			UnpricedCalls:   m.UnpricedCalls,
			CostsByCurrency: s.costsByCurrency(m.Cost),
		})
	}
	s.writeData(w, view)
}

// dailyLimitView is the data of GET .../daily-limit. The limit fields are
// null when no limit is set.
type dailyLimitView struct {
	Date            string                 `json:"date"`
	Currency        string                 `json:"currency"`
	TodayCost       json.Number            `json:"today_cost"`
	DailyLimit      *json.Number           `json:"daily_limit"`
	Remaining       *json.Number           `json:"remaining"`
	PercentageUsed  *json.Number           `json:"percentage_used"`
	LimitReached    bool                   `json:"limit_reached"`
	CostsByCurrency map[string]json.Number `json:"costs_by_currency,omitempty"`
}

// getDailyLimit serves GET .../daily-limit for the current UTC day. Only
// costs in the configured currency count against the limit.
func (s *server) getDailyLimit(w http.ResponseWriter, r *http.Request) {
	day := startOfDay(s.now())

	ctx, cancel := queryContext(r)
	defer cancel()
	dailyLimit, err := s.currentDailyLimit(ctx)
	if err != nil {
		s.storeFailed(w, r, "daily limit", err)
		return
	}
	totals, err := s.store.Totals(ctx, day, day.AddDate(0, 0, 1))
	if err != nil {
		s.storeFailed(w, r, "daily totals", err)
		return
	}

	cost := totals.Cost.Get(s.currency)
	view := dailyLimitView{
		Date:            day.Format("2006-01-02"),
		Currency:        s.currency,
		TodayCost:       amountNumber(cost),
		CostsByCurrency: s.costsByCurrency(totals.Cost),
	}
	if dailyLimit > 0 {
		limit := big.NewInt(int64(dailyLimit))
		remaining := new(big.Int).Sub(limit, cost)
		if remaining.Sign() < 0 {
			remaining.SetInt64(0)
		}
		view.DailyLimit = optionalNumber(moneyNumber(dailyLimit))
		view.Remaining = optionalNumber(amountNumber(remaining))
		view.PercentageUsed = optionalNumber(percentNumber(cost, limit))
		view.LimitReached = cost.Cmp(limit) >= 0
	}
	s.writeData(w, view)
}

// monthView is the data of GET .../current-month.
type monthView struct {
	Month           string                 `json:"month"`
	Currency        string                 `json:"currency"`
	TotalCost       json.Number            `json:"total_cost"`
	CostsByCurrency map[string]json.Number `json:"costs_by_currency,omitempty"`
}

// getCurrentMonth serves GET .../current-month for the current UTC month.
func (s *server) getCurrentMonth(w http.ResponseWriter, r *http.Request) {
	today := startOfDay(s.now())
	first := today.AddDate(0, 0, 1-today.Day())

	ctx, cancel := queryContext(r)
	defer cancel()
	totals, err := s.store.Totals(ctx, first, first.AddDate(0, 1, 0))
	if err != nil {
		s.storeFailed(w, r, "month totals", err)
		return
	}
	s.writeData(w, monthView{
		Month:           first.Format("2006-01"),
		Currency:        s.currency,
		TotalCost:       amountNumber(totals.Cost.Get(s.currency)),
		CostsByCurrency: s.costsByCurrency(totals.Cost),
	})
}

// costsByCurrency returns every currency's total when a currency other than
// the configured one appears, because the single total covers only the
// configured currency. Otherwise it returns nil and the field is omitted.
func (s *server) costsByCurrency(a pricing.Amounts) map[string]json.Number {
	foreign := false
	for currency := range a {
		if currency != s.currency {
			foreign = true
		}
	}
	if !foreign {
		return nil
	}
	out := make(map[string]json.Number, len(a))
	for currency, v := range a {
		out[currency] = amountNumber(v)
	}
	return out
}
