package orderflow_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/orderflow"
)

// plain is Order without its MarshalJSON: what encoding/json writes for
// the struct tags.
type plain orderflow.Order

func orderWith(s string, m orderflow.Money) orderflow.Order {
	return orderflow.Order{
		ID:       s,
		Customer: orderflow.Customer{Name: s, Email: "a@b.co", Address: s + s},
		Items:    []orderflow.Item{{Name: s, Price: m, Quantity: 3}, {Name: "x", Price: 1, Quantity: 1}},
		Total:    m,
		Status:   orderflow.StatusPaymentProcessed,
		ChargeID: s,
	}
}

func TestOrderJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "laptop", `quo"te`, `back\slash`, "tab\tnew\nline\rret", "\x00\x01\x1f\x7f", "<b>&amp;</b>",
		"línea ünïcödé 日本", "\u2028\u2029", "bad \xff\xfe utf8", "emoji 🙂",
	} {
		for _, o := range []orderflow.Order{orderWith(s, 99999), orderWith(s, -5), {Status: orderflow.StatusPending}} {
			want, err := json.Marshal(plain(o))
			require.NoError(t, err)
			got, err := json.Marshal(o)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got), "%q", s)

			var back orderflow.Order
			require.NoError(t, json.Unmarshal(got, &back))
			var wantBack orderflow.Order
			require.NoError(t, json.Unmarshal(want, &wantBack))
			assert.Equal(t, wantBack, back)
		}
	}
	_, err := json.Marshal(orderflow.Order{}) // no status: not a valid order
	assert.Error(t, err)
}

func FuzzOrderJSON(f *testing.F) {
	for _, s := range []string{"", "a", `"`, "\\", "\x00", "<>&", "\u2028", "\xff", "日本"} {
		f.Add(s, int64(12345))
	}
	f.Fuzz(func(t *testing.T, s string, cents int64) {
		o := orderWith(s, orderflow.Money(cents))
		want, err := json.Marshal(plain(o))
		if err != nil {
			t.Skip()
		}
		got, err := json.Marshal(o)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		if string(want) != string(got) {
			t.Fatalf("\nwant %s\ngot  %s", want, got)
		}
	})
}
