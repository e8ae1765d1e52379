package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"time"

	"github.com/deepmeter/deepmeter/pricing"
)

// envelope is the body of every /api response.
type envelope struct {
	Success bool   `json:"success"`
	Data    any    `json:"data,omitempty"`
	Error   string `json:"error,omitempty"`
}

// writeJSON encodes v before writing anything, so an encoding failure can
// still become a 500 instead of a cut body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"success":false,"error":"internal error: could not encode the response"}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *server) writeData(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, envelope{Success: true, Data: data})
}

// writeError writes an error envelope and logs it at Debug, because a
// client error is routine and a server error is logged where it happens.
func (s *server) writeError(w http.ResponseWriter, r *http.Request, status int, message string) {
	s.log.Debug("admin request failed", "method", r.Method, "path", r.URL.Path, "status", status, "error", message)
	writeJSON(w, status, envelope{Success: false, Error: message})
}

// storeFailed writes the response for a failed store call. The client gets a generic
// message, because driver errors can name hosts, users or queries.
func (s *server) storeFailed(w http.ResponseWriter, r *http.Request, op string, err error) {
	switch {
	case r.Context().Err() != nil:
		// The client went away, so the response is never read.
		s.log.Debug("admin request canceled", "op", op, "path", r.URL.Path, "err", err)
		s.writeError(w, r, http.StatusServiceUnavailable, "request canceled")
	case errors.Is(err, context.DeadlineExceeded):
		s.log.Error("admin store query timed out", "op", op, "path", r.URL.Path, "timeout", queryTimeout, "err", err)
		s.writeError(w, r, http.StatusGatewayTimeout, "database query timed out: try a shorter days window")
	default:
		s.log.Error("admin store query failed", "op", op, "path", r.URL.Path, "err", err)
		s.writeError(w, r, http.StatusInternalServerError, "internal error: the database query failed, see the server log")
	}
}

// queryContext bounds the store calls of one request by queryTimeout.
func queryContext(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), queryTimeout)
}

// moneyNumber formats m as an exact JSON number of currency units.
func moneyNumber(m pricing.Money) json.Number {
	return json.Number(m.String())
}

// amountNumber formats v units of 10^-12 as an exact JSON number of
// currency units.
func amountNumber(v *big.Int) json.Number {
	return json.Number(pricing.FormatAmount(v))
}

// perMillionNumber formats a per-token rate as the price per 1M tokens. A
// rate of v units of 10^-12 per token is v*10^6 units per 1M tokens.
func perMillionNumber(rate pricing.Money) json.Number {
	v := big.NewInt(int64(rate))
	return amountNumber(v.Mul(v, big.NewInt(1_000_000)))
}

// percentNumber returns part/whole*100 rounded half up to 2 decimals as an
// exact JSON number, and "0" when whole is zero. part and whole must not be
// negative.
func percentNumber(part, whole *big.Int) json.Number {
	if whole.Sign() == 0 {
		return "0"
	}
	hundredths := new(big.Int).Mul(part, big.NewInt(10_000))
	hundredths, rest := hundredths.QuoRem(hundredths, whole, new(big.Int))
	if rest.Lsh(rest, 1).Cmp(whole) >= 0 {
		hundredths.Add(hundredths, big.NewInt(1))
	}
	// FormatAmount divides by 10^12, and hundredths need a division by 10^2.
	return amountNumber(hundredths.Mul(hundredths, big.NewInt(10_000_000_000)))
}

// timeString formats t in UTC as RFC 3339 with fractional seconds.
func timeString(t time.Time) string {
	return t.UTC().Format(time.RFC3339Nano)
}

// optionalNumber returns a pointer for a JSON field that is null when unset.
func optionalNumber(n json.Number) *json.Number {
	return &n
}
