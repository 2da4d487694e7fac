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
	// KeepLast, when positive, is how many operations the service
	// remembers at most: each new one makes it forget the oldest beyond
	// that number, with the same effect as KeepFor. Keep it well above
	// the operations that can start while one order runs. Defaults to 0:
	// no limit.
	KeepLast int
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
	accounts map[string]int32 // by email: index in byIndex
	byIndex  []account
	charges  memo[chargeRecord] // by idempotency key
	n        int
}

type account struct {
	email string
	limit Money
	used  Money
}

// chargeRecord is a Charge as the service remembers it (see memo).
type chargeRecord struct {
	id, orderID span
	amount      Money
	account     int32 // index in byIndex; -1 for a voided key
	refunded    bool
	voided      bool
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
		accounts:            make(map[string]int32),
		charges:             newMemo[chargeRecord](cfg.KeepFor, cfg.KeepLast, cfg.Clock),
	}
	p.books.apply = p.apply
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
	Op     string `json:"op"` // limit, charge, refund, void
	Email  string `json:"email,omitempty"`
	Limit  Money  `json:"limit,omitempty"`
	Charge Charge `json:"charge,omitzero"`
	Key    string `json:"key,omitempty"`
	Order  string `json:"order,omitempty"`
}

// apply changes the state; on replay p.mu need not be held.
func (p *PaymentService) apply(c paymentChange) error {
	switch {
	case c.Op == "limit":
		p.byIndex[p.account(c.Email)].limit = c.Limit
	case c.Op == "charge" && c.Charge != (Charge{}) && p.charges.get(c.Charge.Key) == nil:
		ch := &c.Charge
		a := p.account(ch.Email)
		n, r := p.charges.add(ch.Key)
		*r = chargeRecord{amount: ch.Amount, account: a, refunded: ch.Refunded, voided: ch.Voided}
		r.id, r.orderID = p.charges.put(n, ch.ID), p.charges.put(n, ch.OrderID)
		p.byIndex[a].used += ch.Amount
		p.n++
	case c.Op == "refund" && p.charges.get(c.Key) != nil && p.charges.get(c.Key).account >= 0:
		r := p.charges.get(c.Key)
		r.refunded = true
		p.byIndex[r.account].used -= r.amount
	case c.Op == "void" && p.charges.get(c.Key) == nil:
		n, r := p.charges.add(c.Key)
		*r = chargeRecord{account: -1, voided: true}
		r.orderID = p.charges.put(n, c.Order)
	default:
		return fmt.Errorf("orderflow: payment change %q does not apply", c.Op)
	}
	return nil
}

// charge returns the Charge that record n of the memo holds.
func (p *PaymentService) charge(n uint64, key string, r *chargeRecord) Charge {
	c := Charge{
		ID: p.charges.str(n, r.id), Key: key, OrderID: p.charges.str(n, r.orderID),
		Amount: r.amount, Refunded: r.refunded, Voided: r.voided,
	}
	if r.account >= 0 {
		c.Email = p.byIndex[r.account].email
	}
	return c
}

// SetCreditLimit registers the customer with that email, or changes their
// limit. Credit already used stays used. It fails only if the service's
// file cannot be written.
func (p *PaymentService) SetCreditLimit(email string, limit Money) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.commit(paymentChange{Op: "limit", Email: email, Limit: limit})
}

// account returns the index of the customer's account, creating an
// unlimited one. It expects p.mu held.
func (p *PaymentService) account(email string) int32 {
	a, ok := p.accounts[email]
	if !ok {
		a = int32(len(p.byIndex))
		p.byIndex = append(p.byIndex, account{email: email, limit: -1})
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
		return p.byIndex[a].limit, p.byIndex[a].used
	}
	return -1, 0
}

// Charges returns every charge made, refunded or voided, sorted by ID
// (voided ones, which have none, first, by key).
func (p *PaymentService) Charges() []Charge {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Charge, 0, p.charges.len())
	p.charges.each(func(n uint64, key string, r *chargeRecord) {
		out = append(out, p.charge(n, key, r))
	})
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
	return ok && p.byIndex[a].limit >= 0, nil
}

// Charge implements PaymentGateway.
func (p *PaymentService) Charge(ctx context.Context, req ChargeRequest) (string, error) {
	if err := p.fault(ctx, "charge", req.OrderID); err != nil {
		return "", err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n, ok := p.charges.find(req.Key); ok {
		c := &p.charges.record(n).val
		switch {
		case c.voided || c.refunded:
			return "", fmt.Errorf("%w: charge %q", ErrVoided, req.Key)
		case c.amount != req.Amount || p.byIndex[c.account].email != req.Customer.Email:
			return "", fmt.Errorf("%w: charge %q", ErrIdempotencyKeyReused, req.Key)
		}
		return p.charges.str(n, c.id), nil
	}
	if req.Amount <= 0 {
		return "", fmt.Errorf("%w: charge of %v", ErrInvalidAmount, req.Amount)
	}
	var acct account
	if a, ok := p.accounts[req.Customer.Email]; ok {
		acct = p.byIndex[a]
	} else {
		acct.limit = -1
	}
	if acct.limit < 0 && p.requireRegistration {
		return "", fmt.Errorf("%w: %s", ErrUnknownCustomer, req.Customer.Email)
	}
	if acct.limit >= 0 && req.Amount > acct.limit-acct.used { // not used+Amount: it could overflow
		return "", fmt.Errorf("%w: %v needed, %v of %v available", ErrInsufficientCredit, req.Amount, acct.limit-acct.used, acct.limit)
	}
	id := seqID("CH-", p.n+1)
	c := Charge{ID: id, Key: req.Key, OrderID: req.OrderID, Email: req.Customer.Email, Amount: req.Amount}
	if err := p.commit(paymentChange{Op: "charge", Charge: c}); err != nil {
		return "", err
	}
	return id, nil
}

// Refund implements PaymentGateway.
func (p *PaymentService) Refund(ctx context.Context, req UndoRequest) error {
	if err := p.fault(ctx, "refund", req.OrderID); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.charges.get(req.Key)
	switch {
	case c == nil:
		return p.commit(paymentChange{Op: "void", Key: req.Key, Order: req.OrderID})
	case !c.refunded && !c.voided:
		return p.commit(paymentChange{Op: "refund", Key: req.Key})
	}
	return nil
}
