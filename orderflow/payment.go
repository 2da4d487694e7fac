package orderflow

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

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

	mu       sync.Mutex
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

// NewPaymentService returns an empty PaymentService.
func NewPaymentService(cfg PaymentConfig) *PaymentService {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	return &PaymentService{
		Faults:              Faults{clock: cfg.Clock},
		requireRegistration: cfg.RequireRegistration,
		accounts:            make(map[string]*account),
		charges:             make(map[string]*Charge),
	}
}

// SetCreditLimit registers the customer with that email, or changes their
// limit. Credit already used stays used.
func (p *PaymentService) SetCreditLimit(email string, limit Money) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.account(email)
	a.limit = limit
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
	if err := p.apply(ctx, "charge", req.OrderID); err != nil {
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
	if !ok || a.limit < 0 {
		if p.requireRegistration {
			return "", fmt.Errorf("%w: %s", ErrUnknownCustomer, req.Customer.Email)
		}
		a = p.account(req.Customer.Email)
	}
	if a.limit >= 0 && req.Amount > a.limit-a.used { // not used+Amount: it could overflow
		return "", fmt.Errorf("%w: %v needed, %v of %v available", ErrInsufficientCredit, req.Amount, a.limit-a.used, a.limit)
	}
	a.used += req.Amount
	p.n++
	c := &Charge{ID: fmt.Sprintf("CH-%06d", p.n), Key: req.Key, OrderID: req.OrderID, Email: req.Customer.Email, Amount: req.Amount}
	p.charges[req.Key] = c
	return c.ID, nil
}

// Refund implements PaymentGateway.
func (p *PaymentService) Refund(ctx context.Context, req UndoRequest) error {
	if err := p.apply(ctx, "refund", req.OrderID); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.charges[req.Key]
	switch {
	case !ok:
		p.charges[req.Key] = &Charge{Key: req.Key, OrderID: req.OrderID, Voided: true}
	case !c.Refunded && !c.Voided:
		c.Refunded = true
		p.accounts[c.Email].used -= c.Amount
	}
	return nil
}
