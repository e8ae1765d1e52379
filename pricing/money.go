package pricing

import (
	"fmt"
	"math/big"
	"strings"
)

// MoneyScale is the number of Money units in one unit of a currency: one
// Money unit is 10^-12 USD (or CNY). At that scale a per-token rate is the
// per-1M-token price times 10^6, so every DeepSeek price so far, down to
// 0.003625 USD and 0.5475 USD per 1M tokens, is a whole number of units.
const MoneyScale = 1_000_000_000_000

// Money is an exact amount in units of 10^-12 of a currency. The currency
// travels beside it (for example in a record's currency column). An int64
// holds about 9.2 million currency units, far above the cost of one call;
// sums over many calls use Amounts, which cannot overflow.
type Money int64

// String formats m as a decimal number of currency units with no trailing
// zeros, such as "0.0003276".
func (m Money) String() string {
	return formatScaled(big.NewInt(int64(m)))
}

// ParseMoney parses a decimal amount of currency units, such as "0.5475",
// into Money. It rejects exponents, more than 12 fractional digits and
// amounts that do not fit.
func ParseMoney(s string) (Money, error) {
	v, err := parseScaled(s)
	if err != nil {
		return 0, err
	}
	if !v.IsInt64() {
		return 0, fmt.Errorf("amount %q is out of range", s)
	}
	return Money(v.Int64()), nil
}

// Amounts is an exact total per currency code. The zero value is not
// usable; call NewAmounts.
type Amounts map[string]*big.Int

// NewAmounts returns an empty set of totals.
func NewAmounts() Amounts { return Amounts{} }

// Add adds v units of currency to the total.
func (a Amounts) Add(currency string, v *big.Int) {
	t, ok := a[currency]
	if !ok {
		t = new(big.Int)
		a[currency] = t
	}
	t.Add(t, v)
}

// AddMoney adds m to the currency's total.
func (a Amounts) AddMoney(currency string, m Money) {
	a.Add(currency, big.NewInt(int64(m)))
}

// Get returns the total for currency, or zero when there is none. The
// result is a copy.
func (a Amounts) Get(currency string) *big.Int {
	if t, ok := a[currency]; ok {
		return new(big.Int).Set(t)
	}
	return new(big.Int)
}

// FormatAmount formats v units of 10^-12 as a decimal number of currency
// units with no trailing zeros, suitable as a JSON number.
func FormatAmount(v *big.Int) string {
	return formatScaled(v)
}

func formatScaled(v *big.Int) string {
	neg := v.Sign() < 0
	abs := new(big.Int).Abs(v)
	q, r := new(big.Int).QuoRem(abs, big.NewInt(MoneyScale), new(big.Int))
	s := q.String()
	if r.Sign() != 0 {
		frac := fmt.Sprintf("%012s", r.String())
		s += "." + strings.TrimRight(frac, "0")
	}
	if neg {
		s = "-" + s
	}
	return s
}

// parseScaled parses a plain decimal number into units of 10^-12.
func parseScaled(s string) (*big.Int, error) {
	t := strings.TrimSpace(s)
	neg := false
	if strings.HasPrefix(t, "-") {
		neg = true
		t = t[1:]
	} else if strings.HasPrefix(t, "+") {
		t = t[1:]
	}
	whole, frac, hasDot := strings.Cut(t, ".")
	if whole == "" && (!hasDot || frac == "") {
		return nil, fmt.Errorf("invalid amount %q: expected a decimal number such as 0.28", s)
	}
	if !allDigits(whole) || !allDigits(frac) {
		return nil, fmt.Errorf("invalid amount %q: expected a decimal number such as 0.28", s)
	}
	if len(frac) > 12 {
		return nil, fmt.Errorf("invalid amount %q: at most 12 digits after the decimal point", s)
	}

	// Leading zeros do not count towards the range check.
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 30 {
		return nil, fmt.Errorf("amount %q is out of range", s)
	}
	digits := whole + frac + strings.Repeat("0", 12-len(frac))
	v, ok := new(big.Int).SetString(strings.TrimLeft(digits, "0")+"0", 10)
	if !ok {
		return nil, fmt.Errorf("invalid amount %q", s)
	}
	v.Quo(v, big.NewInt(10))
	if neg {
		v.Neg(v)
	}
	return v, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
