package admin

import (
	"context"
	"net/http"
	"time"

	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/store"
)

// currentDailyLimit returns the daily limit last set through the API, or
// Config.DailyLimit when none was set. A stored limit in another currency
// is ignored, because it cannot be compared with costs in s.currency.
func (s *server) currentDailyLimit(ctx context.Context) (pricing.Money, error) {
	stored, err := s.store.DailyLimit(ctx)
	if err != nil {
		return 0, err
	}
	if stored.UpdatedAt.IsZero() || stored.Currency != s.currency {
		return s.dailyLimit, nil
	}
	return stored.Amount, nil
}

// setDailyLimit serves POST .../daily-limit with a body such as
// {"daily_limit": 25.0} in the configured currency; 0 removes the limit.
// The stored limit replaces the configured one from then on, also after
// a restart.
func (s *server) setDailyLimit(w http.ResponseWriter, r *http.Request) {
	amount, ok := s.readAmount(w, r, "daily_limit")
	if !ok {
		return
	}

	ctx, cancel := queryContext(r)
	defer cancel()
	limit := store.Balance{Amount: amount, Currency: s.currency, UpdatedAt: s.now().UTC().Truncate(time.Microsecond)}
	if err := s.store.SetDailyLimit(ctx, limit, tokenName(r)); err != nil {
		s.storeFailed(w, r, "set daily limit", err)
		return
	}
	s.log.Info("daily limit set", "daily_limit", amount.String(), "currency", s.currency, "token_name", tokenName(r), "remote_addr", r.RemoteAddr)
	s.getDailyLimit(w, r)
}
