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
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSONMediaType(ct) {
		s.writeError(w, r, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Type %q: send application/json", shorten(ct, 60)))
		return
	}
	amount, err := decodeBalance(http.MaxBytesReader(w, r.Body, maxBalanceBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			s.writeError(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body too large: at most %d bytes", maxBalanceBody))
			return
		}
		s.writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}

	ctx, cancel := queryContext(r)
	defer cancel()
	b := store.Balance{
		Amount:    amount,
		Currency:  s.currency,
		UpdatedAt: s.now().UTC().Truncate(time.Microsecond),
	}
	if err := s.store.SetBalance(ctx, b); err != nil {
		s.storeFailed(w, r, "set balance", err)
		return
	}
	s.log.Info("balance set", "balance", amount.String(), "currency", s.currency, "remote_addr", r.RemoteAddr)

	// Read back what the store holds, so the response matches a later GET.
	view, op, err := s.balanceView(ctx)
	if err != nil {
		s.storeFailed(w, r, op, err)
		return
	}
	s.writeData(w, view)
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

// decodeBalance reads {"balance": <number>} from body. The number is taken
// from its JSON literal and parsed exactly, never through float64. Errors
// name the field and the accepted form. For a body over the limit it
// returns the *http.MaxBytesError.
func decodeBalance(body io.Reader) (pricing.Money, error) {
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	dec.UseNumber()

	var req struct {
		Balance json.RawMessage `json:"balance"`
	}
	if err := dec.Decode(&req); err != nil {
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return 0, err
		case errors.Is(err, io.EOF):
			return 0, errors.New(`request body is empty: send a JSON object such as {"balance": 25.0}`)
		case errors.As(err, new(*json.UnmarshalTypeError)):
			// The decoder's message names a Go struct type, which means
			// nothing to the client.
			return 0, errors.New(`invalid request body: request body must be a JSON object such as {"balance": 25.0}`)
		default:
			return 0, fmt.Errorf(`invalid request body: %s: send a JSON object such as {"balance": 25.0}`, strings.TrimPrefix(err.Error(), "json: "))
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

	return parseBalance(req.Balance)
}

// parseBalance parses the raw JSON value of the balance field.
func parseBalance(raw json.RawMessage) (pricing.Money, error) {
	if len(raw) == 0 {
		return 0, errors.New(`missing field balance: send a JSON object such as {"balance": 25.0}`)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return 0, fmt.Errorf("invalid balance: %w", err)
	}
	number, ok := v.(json.Number)
	switch {
	case v == nil:
		return 0, errors.New("balance must not be null: it must be a JSON number such as 25.0")
	case !ok:
		return 0, fmt.Errorf("balance must be a JSON number such as 25.0, not %s", jsonKind(v))
	}

	literal := string(number)
	plain, err := expandExponent(literal)
	if err != nil {
		return 0, err
	}
	if strings.HasPrefix(plain, "-") && strings.Trim(plain, "-0.") != "" {
		return 0, fmt.Errorf("balance %s is negative: it must be from 0 to %s", shorten(literal, 40), maxBalance)
	}
	if _, frac, _ := strings.Cut(plain, "."); len(frac) > 12 {
		return 0, fmt.Errorf("balance %s has more than 12 digits after the decimal point", shorten(literal, 40))
	}
	m, err := pricing.ParseMoney(plain)
	if err != nil {
		return 0, fmt.Errorf("balance %s is out of range: it must be from 0 to %s", shorten(literal, 40), maxBalance)
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
		return "", fmt.Errorf("balance %s is out of range: it must be from 0 to %s with at most 12 digits after the decimal point", shorten(literal, 40), maxBalance)
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
