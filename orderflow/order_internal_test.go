package orderflow

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// goodRequest returns a valid request with two distinct items.
func goodRequest() OrderRequest {
	return OrderRequest{
		Customer: Customer{Name: "Ada Lovelace", Email: "ada@example.com", Address: "12 St James's Square, London"},
		Items: []Item{
			{Name: "laptop", Price: 99999, Quantity: 1},
			{Name: "mouse", Price: 2500, Quantity: 2},
		},
	}
}

// fields returns the Field of every problem, in order.
func fields(probs []Problem) []string {
	out := make([]string, len(probs))
	for i, p := range probs {
		out[i] = p.Field
	}
	return out
}

func TestNormalizeGoodRequest(t *testing.T) {
	t.Parallel()
	req := goodRequest()
	o, probs := req.normalize()
	require.Empty(t, probs)
	assert.Equal(t, StatusPending, o.Status)
	assert.Equal(t, req.Customer, o.Customer)
	assert.Equal(t, req.Items, o.Items)
	assert.Equal(t, Money(99999+2*2500), o.Total)
}

func TestNormalizeRejectsBadInput(t *testing.T) {
	t.Parallel()
	tooLong := strings.Repeat("x", MaxTextLength+1)
	manyItems := func() []Item {
		items := make([]Item, MaxItems+1)
		for i := range items {
			items[i] = Item{Name: fmt.Sprintf("sku-%d", i), Price: 100, Quantity: 1}
		}
		return items
	}
	tests := []struct {
		name  string
		edit  func(r *OrderRequest)
		field string
	}{
		{"no items", func(r *OrderRequest) { r.Items = nil }, "items"},
		{"empty item list", func(r *OrderRequest) { r.Items = []Item{} }, "items"},
		{"too many items", func(r *OrderRequest) { r.Items = manyItems() }, "items"},
		{"empty customer name", func(r *OrderRequest) { r.Customer.Name = "" }, "customer.name"},
		{"blank customer name", func(r *OrderRequest) { r.Customer.Name = " \t\n " }, "customer.name"},
		{"customer name not UTF-8", func(r *OrderRequest) { r.Customer.Name = "Ada \xff" }, "customer.name"},
		{"customer name too long", func(r *OrderRequest) { r.Customer.Name = tooLong }, "customer.name"},
		{"empty address", func(r *OrderRequest) { r.Customer.Address = "" }, "customer.address"},
		{"blank address", func(r *OrderRequest) { r.Customer.Address = "   " }, "customer.address"},
		{"address too long", func(r *OrderRequest) { r.Customer.Address = tooLong }, "customer.address"},
		{"empty email", func(r *OrderRequest) { r.Customer.Email = "" }, "customer.email"},
		{"email without @", func(r *OrderRequest) { r.Customer.Email = "ada" }, "customer.email"},
		{"email without domain", func(r *OrderRequest) { r.Customer.Email = "ada@" }, "customer.email"},
		{"email without local part", func(r *OrderRequest) { r.Customer.Email = "@x.com" }, "customer.email"},
		{"email with display name", func(r *OrderRequest) { r.Customer.Email = "Ada <ada@x.com>" }, "customer.email"},
		{"email in angle brackets", func(r *OrderRequest) { r.Customer.Email = "<ada@x.com>" }, "customer.email"},
		{"email domain without dot", func(r *OrderRequest) { r.Customer.Email = "ada@x" }, "customer.email"},
		{"email too long", func(r *OrderRequest) { r.Customer.Email = strings.Repeat("a", MaxTextLength) + "@x.com" }, "customer.email"},
		{"empty item name", func(r *OrderRequest) { r.Items[0].Name = "" }, "items[0].name"},
		{"blank item name", func(r *OrderRequest) { r.Items[1].Name = "  " }, "items[1].name"},
		{"item name too long", func(r *OrderRequest) { r.Items[1].Name = tooLong }, "items[1].name"},
		{"zero price", func(r *OrderRequest) { r.Items[0].Price = 0 }, "items[0].price"},
		{"negative price", func(r *OrderRequest) { r.Items[1].Price = -1 }, "items[1].price"},
		{"price over MaxAmount", func(r *OrderRequest) { r.Items[0].Price = MaxAmount + 1 }, "items[0].price"},
		{"zero quantity", func(r *OrderRequest) { r.Items[0].Quantity = 0 }, "items[0].quantity"},
		{"negative quantity", func(r *OrderRequest) { r.Items[1].Quantity = -3 }, "items[1].quantity"},
		{"quantity over MaxQuantity", func(r *OrderRequest) { r.Items[1].Quantity = MaxQuantity + 1 }, "items[1].quantity"},
		{"total over MaxAmount", func(r *OrderRequest) {
			r.Items = []Item{{Name: "a", Price: MaxAmount, Quantity: 1}, {Name: "b", Price: 1, Quantity: 1}}
		}, "items"},
		{"subtotal over MaxAmount", func(r *OrderRequest) {
			r.Items = []Item{{Name: "a", Price: MaxAmount/2 + 1, Quantity: 2}}
		}, "items"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := goodRequest()
			tt.edit(&req)
			o, probs := req.normalize()
			require.NotEmpty(t, probs, "the request must be rejected")
			for _, p := range probs {
				assert.Equal(t, tt.field, p.Field, "problem %q", p)
				assert.NotEmpty(t, p.Message)
			}
			assert.Zero(t, o, "a rejected request yields no order")
		})
	}
}

func TestNormalizeAcceptsLimits(t *testing.T) {
	t.Parallel()
	atLimit := strings.Repeat("é", MaxTextLength) // counted in characters, not bytes
	tests := []struct {
		name string
		edit func(r *OrderRequest)
	}{
		{"MaxItems items", func(r *OrderRequest) {
			r.Items = make([]Item, MaxItems)
			for i := range r.Items {
				r.Items[i] = Item{Name: fmt.Sprintf("sku-%d", i), Price: 1, Quantity: 1}
			}
		}},
		{"MaxQuantity", func(r *OrderRequest) { r.Items[0].Quantity = MaxQuantity }},
		{"MaxAmount total", func(r *OrderRequest) {
			r.Items = []Item{{Name: "a", Price: MaxAmount / 2, Quantity: 2}}
		}},
		{"name of MaxTextLength characters", func(r *OrderRequest) { r.Customer.Name = atLimit }},
		{"address of MaxTextLength characters", func(r *OrderRequest) { r.Customer.Address = atLimit }},
		{"item name of MaxTextLength characters", func(r *OrderRequest) { r.Items[0].Name = atLimit }},
		{"plus-addressed email with subdomain", func(r *OrderRequest) { r.Customer.Email = "ada.l+shop@mail.example.co.uk" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := goodRequest()
			tt.edit(&req)
			o, probs := req.normalize()
			require.Empty(t, probs)
			assert.Equal(t, StatusPending, o.Status)
			assert.Positive(t, o.Total)
		})
	}
}

func TestNormalizeReportsEveryProblem(t *testing.T) {
	t.Parallel()
	req := OrderRequest{
		Customer: Customer{Name: " ", Email: "ada@x", Address: "1 Main St"},
		Items: []Item{
			{Name: "laptop", Price: 0, Quantity: 1},
			{Name: "", Price: 100, Quantity: 0},
			{Name: "mouse", Price: 100, Quantity: 1},
		},
	}
	o, probs := req.normalize()
	assert.Zero(t, o)
	assert.ElementsMatch(t, []string{
		"customer.name", "customer.email", "items[0].price", "items[1].name", "items[1].quantity",
	}, fields(probs))
}

func TestNormalizeMergesDuplicateLines(t *testing.T) {
	t.Parallel()
	req := goodRequest()
	req.Items = []Item{
		{Name: "apple", Price: 100, Quantity: 2},
		{Name: "pear", Price: 50, Quantity: 1},
		{Name: " apple ", Price: 100, Quantity: 3}, // the same product once trimmed
		{Name: "plum", Price: 10, Quantity: 1},
		{Name: "pear", Price: 50, Quantity: 4},
	}
	before := append([]Item(nil), req.Items...)

	o, probs := req.normalize()
	require.Empty(t, probs)
	assert.Equal(t, []Item{
		{Name: "apple", Price: 100, Quantity: 5},
		{Name: "pear", Price: 50, Quantity: 5},
		{Name: "plum", Price: 10, Quantity: 1},
	}, o.Items, "merged in order of first appearance")
	assert.Equal(t, Money(500+250+10), o.Total)
	assert.Equal(t, before, req.Items, "the request is not modified")
}

func TestNormalizeMergeUpToMaxQuantity(t *testing.T) {
	t.Parallel()
	req := goodRequest()
	req.Items = []Item{
		{Name: "bolt", Price: 1, Quantity: MaxQuantity - 1},
		{Name: "bolt", Price: 1, Quantity: 1},
	}
	o, probs := req.normalize()
	require.Empty(t, probs)
	assert.Equal(t, []Item{{Name: "bolt", Price: 1, Quantity: MaxQuantity}}, o.Items)
}

func TestNormalizeRejectsBadDuplicates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		items []Item
		field string
	}{
		{"same name, different price", []Item{
			{Name: "apple", Price: 100, Quantity: 1},
			{Name: "pear", Price: 50, Quantity: 1},
			{Name: "apple", Price: 101, Quantity: 1},
		}, "items[2].price"},
		{"merged quantity over MaxQuantity", []Item{
			{Name: "bolt", Price: 1, Quantity: 6000},
			{Name: "bolt", Price: 1, Quantity: 5000},
		}, "items[1].quantity"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := goodRequest()
			req.Items = tt.items
			o, probs := req.normalize()
			assert.Zero(t, o)
			assert.Equal(t, []string{tt.field}, fields(probs))
		})
	}
}

func TestNormalizeComputesTotalExactly(t *testing.T) {
	t.Parallel()
	parse := func(s string) Money {
		m, err := ParseMoney(s)
		require.NoError(t, err)
		return m
	}
	req := goodRequest()
	req.Items = []Item{
		{Name: "a", Price: parse("19.99"), Quantity: 3},
		{Name: "b", Price: parse("0.01"), Quantity: 7},
		{Name: "c", Price: parse("0.10"), Quantity: 1000},
		{Name: "d", Price: parse("0.30"), Quantity: 3},
	}
	o, probs := req.normalize()
	require.Empty(t, probs)
	// 59.97 + 0.07 + 100.00 + 0.90
	assert.Equal(t, parse("160.94"), o.Total)
	assert.Equal(t, "160.94", o.Total.String())
	var sum Money
	for _, it := range o.Items {
		sum += it.Subtotal()
	}
	assert.Equal(t, o.Total, sum)
}

func TestNormalizeTrimsText(t *testing.T) {
	t.Parallel()
	req := OrderRequest{
		Customer: Customer{Name: "  Ada Lovelace\n", Email: "\tada@example.com ", Address: " 1 Main St  "},
		Items:    []Item{{Name: "  laptop ", Price: 100, Quantity: 1}},
	}
	o, probs := req.normalize()
	require.Empty(t, probs)
	assert.Equal(t, Customer{Name: "Ada Lovelace", Email: "ada@example.com", Address: "1 Main St"}, o.Customer)
	assert.Equal(t, []Item{{Name: "laptop", Price: 100, Quantity: 1}}, o.Items)
}

func TestValidEmail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want bool
	}{
		{"ada@example.com", true},
		{"ada.lovelace+orders@mail.example.co.uk", true},
		{"ADA@EXAMPLE.COM", true},
		{"a@b.io", true},
		{"", false},
		{"ada", false},
		{"ada@", false},
		{"@x.com", false},
		{"ada@x", false},
		{"ada@x.", false},
		{"ada@.x.com", false},
		{"Ada <ada@x.com>", false},
		{"<ada@x.com>", false},
		{`"Ada" <ada@x.com>`, false},
		{" ada@x.com", false},
		{"ada@x.com ", false},
		{"ada lovelace@x.com", false},
		{"ada@@x.com", false},
		{"ada@x.com, bob@y.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tt.want, validEmail(tt.in))
		})
	}
}

func TestValidationError(t *testing.T) {
	t.Parallel()
	var err error = &ValidationError{Problems: []Problem{
		{Field: "items[0].name", Message: `no product "widget"`, Err: ErrUnknownProduct},
		{Field: "customer.email", Message: "malformed email address"},
	}}

	assert.ErrorIs(t, err, ErrInvalidOrder)
	assert.ErrorIs(t, err, ErrUnknownProduct)
	assert.NotErrorIs(t, err, ErrPriceMismatch)
	assert.NotErrorIs(t, err, ErrUnknownCustomer)

	wrapped := fmt.Errorf("submitting order: %w", err)
	assert.ErrorIs(t, wrapped, ErrInvalidOrder)
	assert.ErrorIs(t, wrapped, ErrUnknownProduct)
	var ve *ValidationError
	require.ErrorAs(t, wrapped, &ve)
	assert.Equal(t, []string{"items[0].name", "customer.email"}, fields(ve.Problems))

	msg := err.Error()
	assert.True(t, strings.HasPrefix(msg, ErrInvalidOrder.Error()), msg)
	assert.Contains(t, msg, `items[0].name: no product "widget"`)
	assert.Contains(t, msg, "customer.email: malformed email address")
}

func TestValidationErrorWithoutSentinels(t *testing.T) {
	t.Parallel()
	err := &ValidationError{Problems: []Problem{{Field: "items", Message: "an order needs at least one item"}}}
	assert.Equal(t, []error{ErrInvalidOrder}, err.Unwrap())
	assert.True(t, errors.Is(err, ErrInvalidOrder))
	assert.Equal(t, "items: an order needs at least one item", err.Problems[0].String())
}

func TestValidationErrorFromNormalize(t *testing.T) {
	t.Parallel()
	req := goodRequest()
	req.Customer.Email = "ada"
	req.Items[1].Quantity = 0
	_, probs := req.normalize()
	require.Len(t, probs, 2)

	err := error(&ValidationError{Problems: probs})
	assert.ErrorIs(t, err, ErrInvalidOrder)
	assert.Contains(t, err.Error(), "customer.email")
	assert.Contains(t, err.Error(), "items[1].quantity")
}

func TestPlainEmailAcceptsOnlyWhatNetMailAccepts(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"ada@example.com", "a.b+c_d-e@mail.example.co.uk", "A1@B2.C3", "a@b-.com", "x@a.b.c.d",
	} {
		assert.True(t, plainEmail(s), s)
		assert.True(t, validEmail(s), s)
	}
	for _, s := range []string{
		"", "ada", "@x.com", "ada@", "ada@x", "ada@.x.com", "ada@x.com.", ".ada@x.com", "ada.@x.com",
		"a..b@x.com", "a@x..com", "a b@x.com", "a@b@x.com", "ada@x_y.com", "ada@x+y.com", "ádá@x.com",
		"Ada <ada@x.com>", "<ada@x.com>", `"a"@x.com`, "a!b@x.com",
	} {
		assert.False(t, plainEmail(s), s)
	}
}

func FuzzPlainEmail(f *testing.F) {
	for _, s := range []string{"ada@example.com", "a.b+c@x.co", "a..b@x.com", "a@b", "@", "a@b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !plainEmail(s) {
			return
		}
		a, err := mail.ParseAddress(s)
		if err != nil || a.Address != s || a.Name != "" {
			t.Fatalf("plainEmail accepts %q; net/mail: %v, %v", s, a, err)
		}
		_, domain, _ := strings.Cut(s, "@")
		if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") {
			t.Fatalf("plainEmail accepts %q, whose domain has no inner dot", s)
		}
	})
}

func TestAppendJSONAppendsWhatMarshalJSONWrites(t *testing.T) {
	t.Parallel()
	req := goodRequest()
	o, probs := req.normalize()
	require.Empty(t, probs)
	o.ID, o.ChargeID, o.Status = "order-1", `CH-"1"`, StatusPaymentProcessed
	want, err := o.MarshalJSON()
	require.NoError(t, err)
	got, err := o.AppendJSON([]byte("prefix"))
	require.NoError(t, err)
	assert.Equal(t, "prefix"+string(want), string(got))

	o.Status = 0
	_, err = o.AppendJSON(nil)
	assert.Error(t, err, "no status: not a valid order")
}
