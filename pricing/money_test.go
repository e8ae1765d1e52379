package pricing

import (
	"math"
	"math/big"
	"strings"
	"testing"
)

// TestParseMoney checks exact decimal parsing, because every price and
// balance goes through it and a float round trip would lose units.
func TestParseMoney(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Money
		wantErr string
	}{
		{name: "zero", in: "0", want: 0},
		{name: "fraction", in: "0.28", want: 280_000_000_000},
		{name: "four decimals", in: "0.5475", want: 547_500_000_000},
		{name: "twelve decimals", in: "0.000000000001", want: 1},
		{name: "whole and fraction", in: "12.5", want: 12_500_000_000_000},
		{name: "leading dot", in: ".5", want: 500_000_000_000},
		{name: "trailing dot", in: "3.", want: 3_000_000_000_000},
		{name: "plus sign", in: "+1", want: 1_000_000_000_000},
		{name: "negative", in: "-0.014", want: -14_000_000_000},
		{name: "spaces trimmed", in: " 1.5 ", want: 1_500_000_000_000},
		{name: "leading zeros", in: "0000000000000000000000000000000000001", want: 1_000_000_000_000},
		{name: "largest", in: "9223372.036854775807", want: math.MaxInt64},
		{name: "smallest", in: "-9223372.036854775808", want: math.MinInt64},
		{name: "empty", in: "", wantErr: `invalid amount ""`},
		{name: "dot only", in: ".", wantErr: "expected a decimal number"},
		{name: "sign only", in: "-", wantErr: "expected a decimal number"},
		{name: "letters", in: "abc", wantErr: `invalid amount "abc": expected a decimal number such as 0.28`},
		{name: "exponent", in: "1e-3", wantErr: "expected a decimal number"},
		{name: "two signs", in: "+-1", wantErr: "expected a decimal number"},
		{name: "comma", in: "0,28", wantErr: "expected a decimal number"},
		{name: "thirteen decimals", in: "0.0000000000001", wantErr: "at most 12 digits"},
		{name: "just too large", in: "9223372.036854775808", wantErr: "out of range"},
		{name: "huge", in: strings.Repeat("9", 40), wantErr: "out of range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMoney(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseMoney(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMoney(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseMoney(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

// TestMoneyString checks the decimal form that records and the admin API
// show, which must carry no float noise and no trailing zeros.
func TestMoneyString(t *testing.T) {
	tests := []struct {
		name string
		in   Money
		want string
	}{
		{name: "zero", in: 0, want: "0"},
		{name: "one unit", in: 1, want: "0.000000000001"},
		{name: "whole", in: 2 * MoneyScale, want: "2"},
		{name: "fraction", in: 327_600_000, want: "0.0003276"},
		{name: "negative", in: -1_500_000_000_000, want: "-1.5"},
		{name: "max", in: math.MaxInt64, want: "9223372.036854775807"},
		{name: "min", in: math.MinInt64, want: "-9223372.036854775808"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Errorf("Money(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
			}
			back, err := ParseMoney(tt.want)
			if err != nil || back != tt.in {
				t.Errorf("ParseMoney(%q) = %d, %v; want %d", tt.want, back, err, int64(tt.in))
			}
		})
	}
}

// TestAmounts checks per-currency totals past the int64 range, because sums
// over many records must not overflow.
func TestAmounts(t *testing.T) {
	a := NewAmounts()
	a.AddMoney("USD", math.MaxInt64)
	a.AddMoney("USD", math.MaxInt64)
	a.AddMoney("CNY", 5)

	wantUSD := new(big.Int).Mul(big.NewInt(math.MaxInt64), big.NewInt(2))
	if got := a.Get("USD"); got.Cmp(wantUSD) != 0 {
		t.Errorf("USD total = %s, want %s", got, wantUSD)
	}
	if got := FormatAmount(a.Get("USD")); got != "18446744.073709551614" {
		t.Errorf("FormatAmount(USD) = %q, want %q", got, "18446744.073709551614")
	}
	if got := a.Get("CNY"); got.Int64() != 5 {
		t.Errorf("CNY total = %s, want 5", got)
	}
	if got := a.Get("EUR"); got.Sign() != 0 {
		t.Errorf("EUR total = %s, want 0", got)
	}

	// Get returns a copy, so changing it must leave the total alone.
	a.Get("CNY").SetInt64(100)
	if got := a.Get("CNY"); got.Int64() != 5 {
		t.Errorf("CNY total after changing a copy = %s, want 5", got)
	}
}
