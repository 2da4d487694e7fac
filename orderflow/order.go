package orderflow

import (
	"fmt"
	"log/slog"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sagaflow/sagaflow/saga"
)

// Limits on a request. A request beyond them is rejected as invalid.
const (
	// MaxItems is the most line items an order may have.
	MaxItems = 100
	// MaxQuantity is the most units of one line item.
	MaxQuantity = 10_000
	// MaxTextLength is the longest name, email or address, in characters.
	MaxTextLength = 500
)

// Customer is who placed an order and where it ships.
type Customer struct {
	Name    string `json:"name"`
	Email   string `json:"email"`
	Address string `json:"address"`
}

// LogValue keeps the customer's contact details out of logs: only the
// email's domain is shown.
func (c Customer) LogValue() slog.Value {
	_, domain, _ := strings.Cut(c.Email, "@")
	return slog.GroupValue(slog.String("email_domain", domain))
}

// Item is one line of an order: a product, its unit price and a quantity.
type Item struct {
	// Name is the product's name or SKU; with a catalogue it must name one
	// of its products.
	Name     string `json:"name"`
	Price    Money  `json:"price"`
	Quantity int    `json:"quantity"`
}

// Subtotal returns Price × Quantity.
func (it Item) Subtotal() Money {
	m, _ := it.Price.Times(it.Quantity) // validated orders never overflow
	return m
}

// Order is an order as the saga carries it: what was ordered, its total,
// its status, and what each step obtained from its service. It is the
// saga's state and is stored as JSON with every step.
type Order struct {
	ID       string   `json:"order_id"`
	Customer Customer `json:"customer"`
	Items    []Item   `json:"items"`
	Total    Money    `json:"total_amount"`
	Status   Status   `json:"status"`

	ChargeID       string `json:"charge_id,omitempty"`
	ReservationID  string `json:"reservation_id,omitempty"`
	TrackingNumber string `json:"tracking_number,omitempty"`
}

// AppendJSON appends the order's JSON, as MarshalJSON writes it, to b. The
// saga engine prefers it to MarshalJSON (see saga.JSONAppender): it encodes
// an order's states into buffers it reuses instead of one allocation each.
func (o Order) AppendJSON(b []byte) ([]byte, error) {
	if !o.Status.Valid() {
		return b, fmt.Errorf("orderflow: invalid status %d", uint8(o.Status))
	}
	return o.appendJSON(b), nil
}

var _ saga.JSONAppender = Order{}

// advance moves the order to status to, or refuses with a
// *TransitionError if the state machine does not allow it.
func (o *Order) advance(to Status) error {
	if err := o.Status.check(to); err != nil {
		return saga.Permanent(err)
	}
	o.Status = to
	return nil
}

// OrderRequest is a new order as a client submits it.
type OrderRequest struct {
	Customer Customer `json:"customer_data"`
	Items    []Item   `json:"items"`
	// OrderID, if set, is the new order's ID; otherwise one is generated
	// (a UUID). Submitting an ID that exists returns that order again if
	// the request is the same, and ErrIdempotencyKeyReused if not.
	OrderID string `json:"order_id,omitempty"`
	// IdempotencyKey, if set, identifies the submission: repeating a
	// request with the same key returns the order the first one created
	// instead of creating a second. The order's ID is derived from the
	// key, so this holds across restarts with a durable store.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// normalize checks r and returns the order it asks for, with text trimmed,
// lines of the same product and price merged (in order of first
// appearance) and the total computed. It checks only what needs no
// catalogue.
func (r *OrderRequest) normalize() (Order, []Problem) {
	var probs []Problem
	add := func(field, format string, args ...any) {
		probs = append(probs, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	// text trims and checks a text field; field names it, and is called
	// only to report a problem.
	text := func(v string, field func() string) string {
		v = strings.TrimSpace(v)
		switch {
		case v == "":
			add(field(), "must not be empty")
		case !utf8.ValidString(v):
			add(field(), "must be valid UTF-8")
		case utf8.RuneCountInString(v) > MaxTextLength:
			add(field(), "longer than %d characters", MaxTextLength)
		}
		return v
	}
	named := func(name string) func() string { return func() string { return name } }

	o := Order{Status: StatusPending}
	o.Customer.Name = text(r.Customer.Name, named("customer.name"))
	o.Customer.Address = text(r.Customer.Address, named("customer.address"))
	if o.Customer.Email = text(r.Customer.Email, named("customer.email")); o.Customer.Email != "" && !validEmail(o.Customer.Email) {
		add("customer.email", "malformed email address %q", o.Customer.Email)
	}

	switch {
	case len(r.Items) == 0:
		add("items", "an order needs at least one item")
	case len(r.Items) > MaxItems:
		add("items", "more than %d items", MaxItems)
	}
	o.Items = make([]Item, 0, len(r.Items))
	for i, it := range r.Items {
		field := func(f string) string { return "items[" + strconv.Itoa(i) + "]." + f }
		n := len(probs)
		it.Name = text(it.Name, func() string { return field("name") })
		switch {
		case it.Price <= 0:
			add(field("price"), "must be positive, got %v", it.Price)
		case it.Price > MaxAmount:
			add(field("price"), "more than %v", MaxAmount)
		}
		switch {
		case it.Quantity <= 0:
			add(field("quantity"), "must be positive, got %d", it.Quantity)
		case it.Quantity > MaxQuantity:
			add(field("quantity"), "more than %d", MaxQuantity)
		}
		if len(probs) > n || len(r.Items) > MaxItems {
			continue
		}
		j := slices.IndexFunc(o.Items, func(prev Item) bool { return prev.Name == it.Name })
		if j < 0 {
			o.Items = append(o.Items, it)
			continue
		}
		prev := &o.Items[j]
		switch {
		case prev.Price != it.Price:
			add(field("price"), "%q appears twice with different prices (%v and %v)", it.Name, prev.Price, it.Price)
		case prev.Quantity+it.Quantity > MaxQuantity:
			add(field("quantity"), "%q adds up to more than %d", it.Name, MaxQuantity)
		default:
			prev.Quantity += it.Quantity
		}
	}
	if len(probs) > 0 {
		return Order{}, probs
	}
	for _, it := range o.Items {
		sub, ok := it.Price.Times(it.Quantity)
		if !ok || o.Total+sub > MaxAmount {
			return Order{}, []Problem{{Field: "items", Message: fmt.Sprintf("total exceeds %v", MaxAmount)}}
		}
		o.Total += sub
	}
	return o, nil
}

// validEmail accepts a bare address such as "ada@example.com": a local
// part, an "@" and a domain with a dot, without a display name or angle
// brackets.
func validEmail(s string) bool {
	if plainEmail(s) {
		return true
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return false
	}
	_, domain, _ := strings.Cut(s, "@")
	return strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

// plainEmail reports whether s is an address of the common kind that
// validEmail accepts without parsing: dot-separated runs of ASCII letters,
// digits, "+", "-" and "_", an "@", and a domain of at least two
// dot-separated runs of letters, digits and "-". It errs only towards
// false, leaving anything unusual to net/mail.
func plainEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	if at <= 0 {
		return false
	}
	dots := 0
	for i, part := range [2]string{s[:at], s[at+1:]} {
		if part == "" || part[0] == '.' || part[len(part)-1] == '.' {
			return false
		}
		for j := 0; j < len(part); j++ {
			c := part[j]
			switch {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
			case c == '+' || c == '_':
				if i == 1 {
					return false
				}
			case c == '.':
				if part[j-1] == '.' {
					return false
				}
				dots += i
			default:
				return false
			}
		}
	}
	return dots > 0
}

// sameOrder reports whether two normalised orders ask for the same thing.
func sameOrder(a, b *Order) bool {
	if a.Customer != b.Customer || a.Total != b.Total || len(a.Items) != len(b.Items) {
		return false
	}
	for i := range a.Items {
		if a.Items[i] != b.Items[i] {
			return false
		}
	}
	return true
}
