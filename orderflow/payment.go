package orderflow

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sagaflow/sagaflow/clock"
)

// PaymentConfig configures a PaymentService. The zero value works.
type PaymentConfig struct {
	// Clock times injected delays. Defaults to clock.Real().
	Clock clock.Clock
	// RequireRegistration refuses charges to customers without a credit
	// limit (SetCreditLimit) with ErrUnknownCustomer. Defaults to false:
	// such customers have unlimited credit.
	RequireRegistration bool
	// KeepFor is how long the service remembers an operation by its key.
	// After that, a call with the key is treated as a new one, and an undo
	// as the undo of an operation that never happened, so keep it well
	// beyond the time any order can take to finish. Defaults to 0: forever.
	KeepFor time.Duration
}

// PaymentService is an in-memory PaymentGateway and CustomerDirectory that
// behaves like a real gateway: registered customers have a credit limit,
// and a charge beyond the available credit fails with
// ErrInsufficientCredit; charges and refunds are idempotent by key; a
// refund that arrives before its charge voids the key, so the late charge
// fails with ErrVoided instead of taking money that will never be
// refunded. Faults can be injected through the embedded Faults.
type PaymentService struct {
	Faults
	requireRegistration bool

	books[paymentChange]
	accounts map[string]*account // by email
	charges  map[string]*Charge  // by idempotency key
	n        int
}

type account struct {
	limit Money
	used  Money
}

// Charge is a charge as the PaymentService records it.
type Charge struct {
	ID       string `json:"id"`
	Key      string `json:"key"`
	OrderID  string `json:"order_id"`
	Email    string `json:"email"`
	Amount   Money  `json:"amount"`
	Refunded bool   `json:"refunded"`
	// Voided is set when a refund arrived for a key that was never
	// charged; no charge can be made with the key afterwards.
	Voided bool `json:"voided,omitempty"`
}

var (
	_ PaymentGateway    = (*PaymentService)(nil)
	_ CustomerDirectory = (*PaymentService)(nil)
	_ Pinger            = (*PaymentService)(nil)
)

// NewPaymentService returns an empty PaymentService that keeps its state
// in memory.
func NewPaymentService(cfg PaymentConfig) *PaymentService {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	p := &PaymentService{
		Faults:              Faults{clock: cfg.Clock},
		requireRegistration: cfg.RequireRegistration,
		books:               books[paymentChange]{window: window{keep: cfg.KeepFor, clock: cfg.Clock}},
		accounts:            make(map[string]*account),
		charges:             make(map[string]*Charge),
	}
	p.change = p.apply
	return p
}

// OpenPaymentService returns a PaymentService that keeps its state in the
// file at path: it replays what the file holds, and writes and fsyncs
// every change before acknowledging it, so charges stay deduplicated by
// key across crashes and restarts. Nothing locks the file: keep it to one
// service at a time (a System with Config.Dir does, through its journal's
// directory lock). Close it when done.
func OpenPaymentService(path string, cfg PaymentConfig) (*PaymentService, error) {
	p := NewPaymentService(cfg)
	if err := p.open(path); err != nil {
		return nil, err
	}
	return p, nil
}

// paymentChange is one change of a PaymentService's state, as its file
// records it.
type paymentChange struct {
	Op     string  `json:"op"` // limit, charge, refund, void
	Email  string  `json:"email,omitempty"`
	Limit  Money   `json:"limit,omitempty"`
	Charge *Charge `json:"charge,omitempty"`
	Key    string  `json:"key,omitempty"`
	Order  string  `json:"order,omitempty"`
}

// apply changes the state; on replay p.mu need not be held.
func (p *PaymentService) apply(c paymentChange) error {
	switch {
	case c.Op == "limit":
		p.account(c.Email).limit = c.Limit
	case c.Op == "charge" && c.Charge != nil && p.charges[c.Charge.Key] == nil:
		ch := *c.Charge
		p.charges[ch.Key] = &ch
		remember(&p.window, p.charges, ch.Key)
		p.account(ch.Email).used += ch.Amount
		p.n++
	case c.Op == "refund" && p.charges[c.Key] != nil && p.charges[c.Key].ID != "":
		ch := p.charges[c.Key]
		ch.Refunded = true
		p.accounts[ch.Email].used -= ch.Amount
	case c.Op == "void" && p.charges[c.Key] == nil:
		p.charges[c.Key] = &Charge{Key: c.Key, OrderID: c.Order, Voided: true}
		remember(&p.window, p.charges, c.Key)
	default:
		return fmt.Errorf("orderflow: payment change %q does not apply", c.Op)
	}
	return nil
}

// SetCreditLimit registers the customer with that email, or changes their
// limit. Credit already used stays used. It fails only if the service's
// file cannot be written.
func (p *PaymentService) SetCreditLimit(email string, limit Money) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.commit(paymentChange{Op: "limit", Email: email, Limit: limit})
}

// account returns the customer's account, creating an unlimited one.
// It expects p.mu held.
func (p *PaymentService) account(email string) *account {
	a, ok := p.accounts[email]
	if !ok {
		a = &account{limit: -1}
		p.accounts[email] = a
	}
	return a
}

// Credit returns the customer's limit (-1 when unlimited) and the credit
// in use: charges not refunded.
func (p *PaymentService) Credit(email string) (limit, used Money) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a, ok := p.accounts[email]; ok {
		return a.limit, a.used
	}
	return -1, 0
}

// Charges returns every charge made, refunded or voided, sorted by ID
// (voided ones, which have none, first, by key).
func (p *PaymentService) Charges() []Charge {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Charge, 0, len(p.charges))
	for _, c := range p.charges {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b Charge) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Key, b.Key))
	})
	return out
}

// Registered reports whether the customer has a credit limit.
func (p *PaymentService) Registered(_ context.Context, email string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a, ok := p.accounts[email]
	return ok && a.limit >= 0, nil
}

// Charge implements PaymentGateway.
func (p *PaymentService) Charge(ctx context.Context, req ChargeRequest) (string, error) {
	if err := p.fault(ctx, "charge", req.OrderID); err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.charges[req.Key]; ok {
		switch {
		case c.Voided || c.Refunded:
			return "", fmt.Errorf("%w: charge %q", ErrVoided, req.Key)
		case c.Amount != req.Amount || c.Email != req.Customer.Email:
			return "", fmt.Errorf("%w: charge %q", ErrIdempotencyKeyReused, req.Key)
		}
		return c.ID, nil
	}
	if req.Amount <= 0 {
		return "", fmt.Errorf("%w: charge of %v", ErrInvalidAmount, req.Amount)
	}
	a, ok := p.accounts[req.Customer.Email]
	if (!ok || a.limit < 0) && p.requireRegistration {
		return "", fmt.Errorf("%w: %s", ErrUnknownCustomer, req.Customer.Email)
	}
	if ok && a.limit >= 0 && req.Amount > a.limit-a.used { // not used+Amount: it could overflow
		return "", fmt.Errorf("%w: %v needed, %v of %v available", ErrInsufficientCredit, req.Amount, a.limit-a.used, a.limit)
	}
	c := &Charge{ID: seqID("CH-", p.n+1), Key: req.Key, OrderID: req.OrderID, Email: req.Customer.Email, Amount: req.Amount}
	if err := p.commit(paymentChange{Op: "charge", Charge: c}); err != nil {
		return "", err
	}
	return c.ID, nil
}

// Refund implements PaymentGateway.
func (p *PaymentService) Refund(ctx context.Context, req UndoRequest) error {
	if err := p.fault(ctx, "refund", req.OrderID); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.charges[req.Key]
	switch {
	case !ok:
		return p.commit(paymentChange{Op: "void", Key: req.Key, Order: req.OrderID})
	case !c.Refunded && !c.Voided:
		return p.commit(paymentChange{Op: "refund", Key: req.Key})
	}
	return nil
}
