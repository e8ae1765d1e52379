package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/deepmeter/deepmeter/pricing"
	"github.com/deepmeter/deepmeter/store"
)

// maxBalanceBody is the largest POST .../balance body accepted.
const maxBalanceBody = 64 << 10

// maxBalance is the largest balance accepted: the largest Money value,
// about 9.2 million currency units.
const maxBalance = pricing.Money(math.MaxInt64)

// maxExponent bounds the exponent of a balance literal such as 2.5e1, so
// expanding it to plain decimal digits stays cheap.
const maxExponent = 1000

// balanceView is the data of GET and POST .../balance. Every field but
// Currency is null when no balance was ever set.
type balanceView struct {
	Balance    *json.Number `json:"balance"`
	Currency   string       `json:"currency"`
	UpdatedAt  *string      `json:"updated_at"`
	TotalSpent *json.Number `json:"total_spent"`
	Remaining  *json.Number `json:"remaining"`
}

func (s *server) getBalance(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := queryContext(r)
	defer cancel()
	view, op, err := s.balanceView(ctx)
	if err != nil {
		s.storeFailed(w, r, op, err)
		return
	}
	s.writeData(w, view)
}

// setBalance serves POST .../balance with a body such as {"balance": 25.0}.
// The balance is stored in the configured currency and counts spend from
// now on.
func (s *server) setBalance(w http.ResponseWriter, r *http.Request) {
	amount, ok := s.readAmount(w, r, "balance")
	if !ok {
		return
	}

	ctx, cancel := queryContext(r)
	defer cancel()
	b := store.Balance{
		Amount:    amount,
		Currency:  s.currency,
		UpdatedAt: s.now().UTC().Truncate(time.Microsecond),
	}
	if err := s.store.SetBalance(ctx, b, tokenName(r)); err != nil {
		s.storeFailed(w, r, "set balance", err)
		return
	}
	s.log.Info("balance set", "balance", amount.String(), "currency", s.currency, "token_name", tokenName(r), "remote_addr", r.RemoteAddr)

	// Read back what the store holds, so the response matches a later GET.
	view, op, err := s.balanceView(ctx)
	if err != nil {
		s.storeFailed(w, r, op, err)
		return
	}
	s.writeData(w, view)
}

// readAmount reads a request body such as {"balance": 25.0} with the
// amount under field. On error it writes the 400, 413 or 415 response and
// returns false.
func (s *server) readAmount(w http.ResponseWriter, r *http.Request, field string) (pricing.Money, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSONMediaType(ct) {
		s.writeError(w, r, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Type %q: send application/json", shorten(ct, 60)))
		return 0, false
	}
	amount, err := decodeAmount(http.MaxBytesReader(w, r.Body, maxBalanceBody), field)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.writeError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body too large: at most %d bytes", maxBalanceBody))
			return 0, false
		}
		s.writeError(w, r, http.StatusBadRequest, err.Error())
		return 0, false
	}
	return amount, true
}

// balanceView reads the balance and the spend since it was set. On error it
// also returns the name of the failed step.
func (s *server) balanceView(ctx context.Context) (balanceView, string, error) {
	b, err := s.store.Balance(ctx)
	if err != nil {
		return balanceView{}, "balance", err
	}
	if b.UpdatedAt.IsZero() {
		return balanceView{Currency: s.currency}, "", nil
	}

	now := s.now()
	spent := new(big.Int)
	// A clock set back after the balance was set would make an inverted
	// window, so spend is zero until the clock passes UpdatedAt again.
	if now.After(b.UpdatedAt) {
		totals, err := s.store.Totals(ctx, b.UpdatedAt, now)
		if err != nil {
			return balanceView{}, "spend since balance", err
		}
		spent = totals.Cost.Get(b.Currency)
	}
	remaining := new(big.Int).Sub(big.NewInt(int64(b.Amount)), spent)
	updated := timeString(b.UpdatedAt)
	return balanceView{
		Balance:    optionalNumber(moneyNumber(b.Amount)),
		Currency:   b.Currency,
		UpdatedAt:  &updated,
		TotalSpent: optionalNumber(amountNumber(spent)),
		Remaining:  optionalNumber(amountNumber(remaining)),
	}, "", nil
}

// decodeAmount reads {"<field>": <number>} from body. The number is taken
// from its JSON literal and parsed exactly, never through float64. Errors
// name the field and the accepted form. For a body over the limit it
// returns the *http.MaxBytesError.
func decodeAmount(body io.Reader, field string) (pricing.Money, error) {
	dec := json.NewDecoder(body)
	dec.UseNumber()

	example := fmt.Sprintf(`send a JSON object such as {"%s": 25.0}`, field)
	var req map[string]json.RawMessage
	if err := dec.Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return 0, err
		case errors.Is(err, io.EOF):
			return 0, errors.New("request body is empty: " + example)
		case errors.As(err, new(*json.UnmarshalTypeError)):
			// The decoder's message names a Go type, which means nothing
			// to the client.
			return 0, fmt.Errorf("invalid request body: request body must be a JSON object such as {%q: 25.0}", field)
		default:
			return 0, fmt.Errorf("invalid request body: %s: %s", strings.TrimPrefix(err.Error(), "json: "), example)
		}
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return 0, err
		}
		return 0, errors.New("invalid request body: unexpected data after the JSON object")
	}

	for key := range req {
		if key != field {
			return 0, fmt.Errorf("invalid request body: unknown field %q: %s", shorten(key, 40), example)
		}
	}
	return parseAmount(req[field], field)
}

// parseBalance parses the raw JSON value of the balance field.
func parseBalance(raw json.RawMessage) (pricing.Money, error) {
	return parseAmount(raw, "balance")
}

// parseAmount parses the raw JSON value of an amount field.
func parseAmount(raw json.RawMessage, field string) (pricing.Money, error) {
	if len(raw) == 0 {
		return 0, fmt.Errorf(`missing field %s: send a JSON object such as {"%s": 25.0}`, field, field)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return 0, fmt.Errorf("invalid %s: %w", field, err)
	}
	number, ok := v.(json.Number)
	switch {
	case v == nil:
		return 0, fmt.Errorf("%s must not be null: it must be a JSON number such as 25.0", field)
	case !ok:
		return 0, fmt.Errorf("%s must be a JSON number such as 25.0, not %s", field, jsonKind(v))
	}

	literal := string(number)
	plain, err := expandExponent(literal)
	if err != nil {
		return 0, fmt.Errorf("%s %w", field, err)
	}
	if strings.HasPrefix(plain, "-") && strings.Trim(plain, "-0.") != "" {
		return 0, fmt.Errorf("%s %s is negative: it must be from 0 to %s", field, shorten(literal, 40), maxBalance)
	}
	if _, frac, _ := strings.Cut(plain, "."); len(frac) > 12 {
		return 0, fmt.Errorf("%s %s has more than 12 digits after the decimal point", field, shorten(literal, 40))
	}
	m, err := pricing.ParseMoney(plain)
	if err != nil {
		return 0, fmt.Errorf("%s %s is out of range: it must be from 0 to %s", field, shorten(literal, 40), maxBalance)
	}
	return m, nil
}

// expandExponent rewrites a JSON number literal with an exponent, such as
// 2.5e1, as plain decimal digits ("25"), because ParseMoney accepts no
// exponent. Literals without one are returned unchanged.
func expandExponent(literal string) (string, error) {
	i := strings.IndexAny(literal, "eE")
	if i < 0 {
		return literal, nil
	}
	mantissa := literal[:i]
	sign := ""
	if strings.HasPrefix(mantissa, "-") {
		sign, mantissa = "-", mantissa[1:]
	}
	whole, frac, _ := strings.Cut(mantissa, ".")
	digits := whole + frac
	if strings.Trim(digits, "0") == "" {
		return "0", nil
	}

	exp, err := strconv.Atoi(literal[i+1:])
	if err != nil || exp > maxExponent || exp < -maxExponent {
		return "", fmt.Errorf("%s is out of range: it must be from 0 to %s with at most 12 digits after the decimal point", shorten(literal, 40), maxBalance)
	}

	var plain string
	point := len(whole) + exp
	switch {
	case point <= 0:
		plain = "0." + strings.Repeat("0", -point) + digits
	case point >= len(digits):
		plain = digits + strings.Repeat("0", point-len(digits))
	default:
		plain = digits[:point] + "." + digits[point:]
	}
	// Drop zeros the shift left in front, keeping one before a point.
	plain = strings.TrimLeft(plain, "0")
	if plain == "" || plain[0] == '.' {
		plain = "0" + plain
	}
	return sign + plain, nil
}

// jsonKind names the JSON type of a value decoded into any.
func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// isJSONMediaType reports whether a Content-Type value is application/json
// or a +json type.
func isJSONMediaType(contentType string) bool {
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return false
	}
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}
