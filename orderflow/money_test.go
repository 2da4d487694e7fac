package orderflow_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/orderflow"
)

func TestParseMoneyAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want orderflow.Money
	}{
		{"999.99", 99999},
		{"0.5", 50},
		{"12.340", 1234},
		{"-5", -500},
		{"1", 100},
		{"0", 0},
		{"-0", 0},
		{"0.00", 0},
		{"0.01", 1},
		{"-0.05", -5},
		{"100.10", 10010},
		{"7.000000", 700},
		{"1.2300000000", 123},
		{"100000000000", orderflow.MaxAmount},
		{"100000000000.00", orderflow.MaxAmount},
		{"-100000000000", -orderflow.MaxAmount},
		{"99999999999.99", orderflow.MaxAmount - 1},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := orderflow.ParseMoney(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseMoneyRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
	}{
		{"three decimals", "1.234"},
		{"three decimals negative", "-1.001"},
		{"exponent", "1e2"},
		{"exponent with decimals", "1.5E2"},
		{"leading space", " 1"},
		{"trailing space", "1 "},
		{"empty", ""},
		{"minus only", "-"},
		{"no whole part", ".5"},
		{"negative no whole part", "-.5"},
		{"no fraction", "5."},
		{"leading zero", "01"},
		{"double zero", "00"},
		{"negative leading zero", "-01.50"},
		{"letters", "abc"},
		{"comma", "1,5"},
		{"plus sign", "+1"},
		{"double minus", "--1"},
		{"two dots", "1.2.3"},
		{"hex", "0x10"},
		{"underscore", "1_000"},
		{"NaN", "NaN"},
		{"Inf", "Inf"},
		{"non-ASCII digit", "١"},
		{"quoted", `"1"`},
		{"one cent over MaxAmount", "100000000000.01"},
		{"one unit over MaxAmount", "100000000001"},
		{"one cent under -MaxAmount", "-100000000000.01"},
		{"fourteen digits", "99999999999999"},
		{"fifteen digits", "999999999999999"},
		{"beyond int64", "92233720368547758.08"},
		{"huge", "1" + strings.Repeat("0", 40)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := orderflow.ParseMoney(tt.in)
			require.Error(t, err, "ParseMoney(%q) = %v", tt.in, got)
			assert.ErrorIs(t, err, orderflow.ErrInvalidAmount)
			assert.Zero(t, got)
		})
	}
}

func TestMoneyString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		m    orderflow.Money
		want string
	}{
		{0, "0.00"},
		{1, "0.01"},
		{5, "0.05"},
		{-5, "-0.05"},
		{50, "0.50"},
		{-50, "-0.50"},
		{100, "1.00"},
		{-100, "-1.00"},
		{1234, "12.34"},
		{99999, "999.99"},
		{-99999, "-999.99"},
		{orderflow.MaxAmount, "100000000000.00"},
		{-orderflow.MaxAmount, "-100000000000.00"},
		{math.MaxInt64, "92233720368547758.07"},
		{math.MinInt64, "-92233720368547758.08"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, tt.m.String())
		})
	}
}

// moneySamples are amounts that must survive every round trip.
var moneySamples = []orderflow.Money{
	0, 1, -1, 5, -5, 9, 10, 50, 99, 100, 101, 999, 1000, 1234, -1234,
	99999, 100000, 123456789, -987654321, orderflow.MaxAmount - 1,
	orderflow.MaxAmount, -orderflow.MaxAmount, -orderflow.MaxAmount + 1,
}

func TestMoneyStringRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range moneySamples {
		got, err := orderflow.ParseMoney(m.String())
		require.NoError(t, err, "ParseMoney(%q)", m.String())
		assert.Equal(t, m, got, "ParseMoney(%q)", m.String())
	}
}

func TestMoneyJSONRoundTrip(t *testing.T) {
	t.Parallel()
	for _, m := range moneySamples {
		b, err := json.Marshal(m)
		require.NoError(t, err)
		assert.Equal(t, m.String(), string(b), "a JSON number with two decimals")

		var got orderflow.Money
		require.NoError(t, json.Unmarshal(b, &got), "Unmarshal(%s)", b)
		assert.Equal(t, m, got, "Unmarshal(%s)", b)
	}
}

func TestMoneyJSONInStruct(t *testing.T) {
	t.Parallel()
	type line struct {
		Price orderflow.Money `json:"price"`
	}
	b, err := json.Marshal(line{Price: 99999})
	require.NoError(t, err)
	assert.JSONEq(t, `{"price":999.99}`, string(b))

	var got line
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, orderflow.Money(99999), got.Price)
}

func TestMoneyUnmarshalJSONAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		want     orderflow.Money
	}{
		{"number", `999.99`, 99999},
		{"integer", `42`, 4200},
		{"negative", `-0.05`, -5},
		{"trailing zero decimals", `999.990`, 99999},
		{"string", `"999.99"`, 99999},
		{"negative string", `"-12.5"`, -1250},
		{"spaces around", " 12.34\n", 1234},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := orderflow.Money(777)
			require.NoError(t, json.Unmarshal([]byte(tt.in), &got))
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestMoneyUnmarshalJSONNullLeavesValue(t *testing.T) {
	t.Parallel()
	got := orderflow.Money(777)
	require.NoError(t, json.Unmarshal([]byte(`null`), &got))
	assert.Equal(t, orderflow.Money(777), got)

	// Called directly, too, as a decoder of a struct field would.
	require.NoError(t, got.UnmarshalJSON([]byte(`null`)))
	assert.Equal(t, orderflow.Money(777), got)

	line := struct {
		Price orderflow.Money `json:"price"`
	}{Price: 321}
	require.NoError(t, json.Unmarshal([]byte(`{"price":null}`), &line))
	assert.Equal(t, orderflow.Money(321), line.Price)
}

func TestMoneyUnmarshalJSONRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
	}{
		{"three decimals", `999.999`},
		{"three decimals string", `"999.999"`},
		{"exponent", `1e3`},
		{"exponent with decimals", `1.5E2`},
		{"exponent string", `"1e3"`},
		{"empty string", `""`},
		{"word", `"abc"`},
		{"string with spaces", `" 1"`},
		{"null string", `"null"`},
		{"boolean", `true`},
		{"object", `{}`},
		{"array", `[1]`},
		{"out of range", `100000000000.01`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := orderflow.Money(777)
			err := json.Unmarshal([]byte(tt.in), &got)
			require.Error(t, err)
			assert.ErrorIs(t, err, orderflow.ErrInvalidAmount)
			assert.Equal(t, orderflow.Money(777), got, "a rejected value leaves the Money unchanged")
		})
	}
}

func TestMoneyJSONSumHasNoDrift(t *testing.T) {
	t.Parallel()
	doc := "[" + strings.TrimSuffix(strings.Repeat("0.10,", 1000), ",") + "]"
	var amounts []orderflow.Money
	require.NoError(t, json.Unmarshal([]byte(doc), &amounts))
	require.Len(t, amounts, 1000)

	var sum orderflow.Money
	for _, m := range amounts {
		sum += m
	}
	assert.Equal(t, orderflow.Money(10000), sum)
	assert.Equal(t, "100.00", sum.String())

	b, err := json.Marshal(sum)
	require.NoError(t, err)
	assert.Equal(t, "100.00", string(b))
}

func TestMoneyTimes(t *testing.T) {
	t.Parallel()
	const top = orderflow.MaxAmount
	tests := []struct {
		name   string
		m      orderflow.Money
		n      int
		want   orderflow.Money
		wantOK bool
	}{
		{"simple", 150, 3, 450, true},
		{"negative amount", -150, 3, -450, true},
		{"negative factor", 150, -3, -450, true},
		{"both negative", -150, -3, 450, true},
		{"by one", 1999, 1, 1999, true},
		{"by zero", 1999, 0, 0, true},
		{"zero amount by huge factor", 0, math.MaxInt, 0, true},
		{"MaxAmount by one", top, 1, top, true},
		{"-MaxAmount by minus one", -top, -1, top, true},
		{"exactly MaxAmount", top / 4, 4, top, true},
		{"exactly -MaxAmount", top / 4, -4, -top, true},
		{"one cent too far", top/4 + 1, 4, 0, false},
		{"MaxAmount doubled", top, 2, 0, false},
		{"negative overflow", -top, 2, 0, false},
		// 10,000 times a 32-bit int's bounds already exceeds MaxAmount.
		{"max int factor", 10_000, math.MaxInt, 0, false},
		{"min int factor", 10_000, math.MinInt, 0, false},
		{"min int factor, negative amount", -10_000, math.MinInt, 0, false},
		{"large both", 1 << 32, math.MaxInt32, 0, false},
		{"product wraps int64", 1 << 62, 4, 0, false},
		{"amount above MaxAmount", top + 1, 1, 0, false},
		{"amount below -MaxAmount", -top - 1, 1, 0, false},
		{"min int64 amount", math.MinInt64, 1, 0, false},
		{"min int64 amount negated", math.MinInt64, -1, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := tt.m.Times(tt.n)
			assert.Equal(t, tt.wantOK, ok)
			if tt.wantOK {
				assert.Equal(t, tt.want, got)
			}
		})
	}
}

func FuzzParseMoney(f *testing.F) {
	for _, s := range []string{
		"999.99", "0.5", "12.340", "-5", "1", "0", "-0", "0.00", "1.234",
		"1e2", " 1", "", ".5", "5.", "01", "abc", "1,5", "-", "--1", "+1",
		"100000000000", "100000000000.01", "-100000000000", "99999999999999",
		"92233720368547758.07", "1.000000000000000000001", "0.10",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := orderflow.ParseMoney(s)
		if err != nil {
			if !errors.Is(err, orderflow.ErrInvalidAmount) {
				t.Fatalf("ParseMoney(%q): error %v does not wrap ErrInvalidAmount", s, err)
			}
			if m != 0 {
				t.Fatalf("ParseMoney(%q) = %v with an error", s, m)
			}
			return
		}
		if m > orderflow.MaxAmount || m < -orderflow.MaxAmount {
			t.Fatalf("ParseMoney(%q) = %v, beyond MaxAmount", s, m)
		}
		again, err := orderflow.ParseMoney(m.String())
		if err != nil {
			t.Fatalf("ParseMoney(%q) = %v, but ParseMoney(%q): %v", s, m, m.String(), err)
		}
		if again != m {
			t.Fatalf("ParseMoney(%q) = %v, but ParseMoney(%q) = %v", s, m, m.String(), again)
		}
		var fromJSON orderflow.Money
		if err := json.Unmarshal([]byte(m.String()), &fromJSON); err != nil || fromJSON != m {
			t.Fatalf("json.Unmarshal(%q) = %v, %v; want %v", m.String(), fromJSON, err, m)
		}
	})
}
