package orderflow

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Money is an amount in minor units (cents) of the order's single currency.
// It is never a float: arithmetic on it is exact, and it reads and writes
// decimal text ("999.99") without rounding.
//
// In JSON a Money is a number with two decimals (999.99). Decoding accepts a
// JSON number or a string holding one; an amount with more than two
// decimals that are not zero, an exponent, or a value out of range is
// rejected with an error wrapping ErrInvalidAmount, never rounded.
type Money int64

// MaxAmount is the largest amount a Money may hold in an order: ten trillion
// cents. It keeps every total exactly representable as a JSON number in any
// client, including JavaScript's float64.
const MaxAmount Money = 10_000_000_000_000

// ParseMoney reads a decimal amount such as "999.99", "-5", "0.5" or
// "12.340" exactly. It returns an error wrapping ErrInvalidAmount for
// anything else: more than two significant decimals, exponents, spaces,
// or a magnitude beyond MaxAmount.
func ParseMoney(s string) (Money, error) {
	bad := func(why string) (Money, error) {
		return 0, fmt.Errorf("%w: %q: %s", ErrInvalidAmount, s, why)
	}
	t := s
	neg := strings.HasPrefix(t, "-")
	if neg {
		t = t[1:]
	}
	whole, frac, hasDot := strings.Cut(t, ".")
	switch {
	case whole == "":
		return bad("no digits before the decimal point")
	case hasDot && frac == "":
		return bad("no digits after the decimal point")
	case !digits(whole) || !digits(frac):
		return bad("not a plain decimal number")
	case len(whole) > 1 && whole[0] == '0':
		return bad("leading zero")
	}
	if trimmed := strings.TrimRight(frac, "0"); len(trimmed) > 2 {
		return bad("more than two decimals")
	} else {
		frac = trimmed
	}
	frac += strings.Repeat("0", 2-len(frac))
	if len(whole) > 14 {
		return bad("out of range")
	}
	units, _ := strconv.ParseInt(whole, 10, 64) // at most 14 digits: fits
	cents, _ := strconv.ParseInt(frac, 10, 64)
	m := Money(units*100 + cents)
	if m > MaxAmount {
		return bad("out of range")
	}
	if neg {
		m = -m
	}
	return m, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats m with two decimals, as in "999.99" or "-0.05".
func (m Money) String() string { return string(m.appendJSON(nil)) }

// appendJSON appends m with two decimals.
func (m Money) appendJSON(b []byte) []byte {
	u := uint64(m)
	if m < 0 {
		b, u = append(b, '-'), -u
	}
	b = strconv.AppendUint(b, u/100, 10)
	c := u % 100
	return append(b, '.', byte('0'+c/10), byte('0'+c%10))
}

// MarshalJSON writes m as a JSON number with two decimals.
func (m Money) MarshalJSON() ([]byte, error) { return m.appendJSON(nil), nil }

// UnmarshalJSON reads a JSON number, or a string holding one, exactly (see
// ParseMoney).
func (m *Money) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" { // like encoding/json: null leaves the value alone
		return nil
	}
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
	}
	v, err := ParseMoney(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Times returns m multiplied by n, and false if the product's magnitude
// exceeds MaxAmount.
func (m Money) Times(n int) (Money, bool) {
	if n == 0 || m == 0 {
		return 0, true
	}
	abs, an := m, Money(n)
	if abs < 0 {
		abs = -abs
	}
	if an < 0 {
		an = -an
	}
	if abs < 0 || abs > MaxAmount/an { // abs < 0: m is math.MinInt64
		return 0, false
	}
	return m * Money(n), true
}
