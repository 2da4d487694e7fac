package orderflow_test

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
)

const (
	adaEmail = "ada@example.com"
	bobEmail = "bob@example.com"
)

// chargeReq is a charge of amount to the customer with that email, for the
// order named after key.
func chargeReq(key, email string, amount orderflow.Money) orderflow.ChargeRequest {
	return orderflow.ChargeRequest{
		Key:      key,
		OrderID:  "order-" + key,
		Customer: orderflow.Customer{Name: "Someone", Email: email, Address: "1 Main St"},
		Amount:   amount,
	}
}

func undoReq(key string) orderflow.UndoRequest {
	return orderflow.UndoRequest{Key: key, OrderID: "order-" + key}
}

func newPayment(cfg orderflow.PaymentConfig) *orderflow.PaymentService {
	if cfg.Clock == nil {
		cfg.Clock = clock.NewFake(time.Time{})
	}
	return orderflow.NewPaymentService(cfg)
}

func TestPaymentCreditLimit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := newPayment(orderflow.PaymentConfig{})
	p.SetCreditLimit(adaEmail, 10000)

	_, err := p.Charge(ctx, chargeReq("k1", adaEmail, 6000))
	require.NoError(t, err)
	limit, used := p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(10000), limit)
	assert.Equal(t, orderflow.Money(6000), used)

	// Beyond the available credit: refused, and nothing changes.
	_, err = p.Charge(ctx, chargeReq("k2", adaEmail, 4001))
	require.ErrorIs(t, err, orderflow.ErrInsufficientCredit)
	_, used = p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(6000), used)
	assert.Len(t, p.Charges(), 1)

	// Exactly the available credit fits.
	_, err = p.Charge(ctx, chargeReq("k3", adaEmail, 4000))
	require.NoError(t, err)
	limit, used = p.Credit(adaEmail)
	assert.Equal(t, limit, used)

	_, err = p.Charge(ctx, chargeReq("k4", adaEmail, 1))
	require.ErrorIs(t, err, orderflow.ErrInsufficientCredit)

	// A refused charge left no trace of its key: once credit is raised,
	// the same key goes through.
	p.SetCreditLimit(adaEmail, 20000)
	_, err = p.Charge(ctx, chargeReq("k2", adaEmail, 4001))
	require.NoError(t, err)
	_, used = p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(14001), used)

	// Another customer's credit is separate.
	p.SetCreditLimit(bobEmail, 100)
	_, err = p.Charge(ctx, chargeReq("b1", bobEmail, 101))
	require.ErrorIs(t, err, orderflow.ErrInsufficientCredit)
	_, err = p.Charge(ctx, chargeReq("b2", bobEmail, 100))
	require.NoError(t, err)
}

func TestPaymentLoweredLimitKeepsUsedCredit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := newPayment(orderflow.PaymentConfig{})
	p.SetCreditLimit(adaEmail, 10000)
	_, err := p.Charge(ctx, chargeReq("k1", adaEmail, 8000))
	require.NoError(t, err)

	p.SetCreditLimit(adaEmail, 5000)
	limit, used := p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(5000), limit)
	assert.Equal(t, orderflow.Money(8000), used)
	_, err = p.Charge(ctx, chargeReq("k2", adaEmail, 1))
	require.ErrorIs(t, err, orderflow.ErrInsufficientCredit)
}

func TestPaymentHugeChargeNeverOverflowsCredit(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := newPayment(orderflow.PaymentConfig{})
	p.SetCreditLimit(adaEmail, 10000)
	_, err := p.Charge(ctx, chargeReq("k1", adaEmail, 1))
	require.NoError(t, err)

	for i, amount := range []orderflow.Money{math.MaxInt64, math.MaxInt64 - 1, math.MaxInt64 - 9999} {
		_, err = p.Charge(ctx, chargeReq(fmt.Sprint("huge", i), adaEmail, amount))
		require.ErrorIs(t, err, orderflow.ErrInsufficientCredit, "charge of %v", amount)
	}
	_, used := p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(1), used)
	assert.Len(t, p.Charges(), 1)
}

func TestPaymentRejectsNonPositiveAmount(t *testing.T) {
	t.Parallel()
	p := newPayment(orderflow.PaymentConfig{})
	for _, amount := range []orderflow.Money{0, -1, -10000} {
		_, err := p.Charge(t.Context(), chargeReq("k", adaEmail, amount))
		require.ErrorIs(t, err, orderflow.ErrInvalidAmount, "charge of %v", amount)
	}
	assert.Empty(t, p.Charges())
}

func TestPaymentUnregisteredCustomerIsUnlimited(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := newPayment(orderflow.PaymentConfig{})

	limit, used := p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(-1), limit)
	assert.Zero(t, used)

	_, err := p.Charge(ctx, chargeReq("k1", adaEmail, orderflow.MaxAmount))
	require.NoError(t, err)
	_, err = p.Charge(ctx, chargeReq("k2", adaEmail, orderflow.MaxAmount))
	require.NoError(t, err)

	limit, used = p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(-1), limit, "still unlimited")
	assert.Equal(t, 2*orderflow.MaxAmount, used)

	registered, err := p.Registered(ctx, adaEmail)
	require.NoError(t, err)
	assert.False(t, registered, "charging does not register a customer")
}

func TestPaymentRequireRegistration(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := newPayment(orderflow.PaymentConfig{RequireRegistration: true})

	_, err := p.Charge(ctx, chargeReq("k1", adaEmail, 100))
	require.ErrorIs(t, err, orderflow.ErrUnknownCustomer)
	assert.Empty(t, p.Charges())
	limit, used := p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(-1), limit)
	assert.Zero(t, used)

	p.SetCreditLimit(adaEmail, 1000)
	_, err = p.Charge(ctx, chargeReq("k1", adaEmail, 100))
	require.NoError(t, err)

	// Back to unlimited is unregistered again.
	p.SetCreditLimit(adaEmail, -1)
	_, err = p.Charge(ctx, chargeReq("k2", adaEmail, 100))
	require.ErrorIs(t, err, orderflow.ErrUnknownCustomer)
}

func TestPaymentRegistered(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := newPayment(orderflow.PaymentConfig{})
	p.SetCreditLimit(adaEmail, 0) // registered, with no credit at all
	p.SetCreditLimit("carol@example.com", 5000)

	for email, want := range map[string]bool{
		adaEmail:            true,
		"carol@example.com": true,
		bobEmail:            false,
		"ADA@example.com":   false, // emails are matched exactly
		"":                  false,
	} {
		got, err := p.Registered(ctx, email)
		require.NoError(t, err)
		assert.Equal(t, want, got, "Registered(%q)", email)
	}

	_, err := p.Charge(ctx, chargeReq("k1", adaEmail, 1))
	require.ErrorIs(t, err, orderflow.ErrInsufficientCredit, "a zero limit allows nothing")
}

func TestPaymentChargeIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := newPayment(orderflow.PaymentConfig{})
	p.SetCreditLimit(adaEmail, 1000)

	id, err := p.Charge(ctx, chargeReq("k1", adaEmail, 600))
	require.NoError(t, err)
	require.NotEmpty(t, id)

	// The same charge again, even though a second one would exceed the
	// limit, returns the first charge and takes nothing more.
	again, err := p.Charge(ctx, chargeReq("k1", adaEmail, 600))
	require.NoError(t, err)
	assert.Equal(t, id, again)
	_, used := p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(600), used)

	charges := p.Charges()
	require.Len(t, charges, 1)
	assert.Equal(t, orderflow.Charge{
		ID: id, Key: "k1", OrderID: "order-k1", Email: adaEmail, Amount: 600,
	}, charges[0])

	// A different key is a different charge.
	other, err := p.Charge(ctx, chargeReq("k2", adaEmail, 400))
	require.NoError(t, err)
	assert.NotEqual(t, id, other)
}

func TestPaymentKeyReusedWithDifferentCharge(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := newPayment(orderflow.PaymentConfig{})
	_, err := p.Charge(ctx, chargeReq("k1", adaEmail, 600))
	require.NoError(t, err)

	_, err = p.Charge(ctx, chargeReq("k1", adaEmail, 601))
	require.ErrorIs(t, err, orderflow.ErrIdempotencyKeyReused)
	_, err = p.Charge(ctx, chargeReq("k1", bobEmail, 600))
	require.ErrorIs(t, err, orderflow.ErrIdempotencyKeyReused)

	_, used := p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(600), used)
	_, used = p.Credit(bobEmail)
	assert.Zero(t, used)
	assert.Len(t, p.Charges(), 1)
}

func TestPaymentRefund(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := newPayment(orderflow.PaymentConfig{})
	p.SetCreditLimit(adaEmail, 1000)
	_, err := p.Charge(ctx, chargeReq("k1", adaEmail, 600))
	require.NoError(t, err)
	_, err = p.Charge(ctx, chargeReq("k2", adaEmail, 300))
	require.NoError(t, err)

	require.NoError(t, p.Refund(ctx, undoReq("k1")))
	_, used := p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(300), used, "the refund restored the credit")

	// A repeated refund gives nothing back a second time.
	require.NoError(t, p.Refund(ctx, undoReq("k1")))
	require.NoError(t, p.Refund(ctx, undoReq("k1")))
	_, used = p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(300), used)

	byKey := chargesByKey(p)
	assert.True(t, byKey["k1"].Refunded)
	assert.False(t, byKey["k1"].Voided)
	assert.False(t, byKey["k2"].Refunded)

	// A refunded charge cannot be made again with its key.
	_, err = p.Charge(ctx, chargeReq("k1", adaEmail, 600))
	require.ErrorIs(t, err, orderflow.ErrVoided)
	_, used = p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(300), used)

	// The restored credit is usable.
	_, err = p.Charge(ctx, chargeReq("k3", adaEmail, 700))
	require.NoError(t, err)
}

func TestPaymentRefundBeforeChargeVoidsKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := newPayment(orderflow.PaymentConfig{})
	p.SetCreditLimit(adaEmail, 1000)

	require.NoError(t, p.Refund(ctx, undoReq("k1")), "refunding what was never charged succeeds")
	_, used := p.Credit(adaEmail)
	assert.Zero(t, used)

	_, err := p.Charge(ctx, chargeReq("k1", adaEmail, 600))
	require.ErrorIs(t, err, orderflow.ErrVoided)
	_, used = p.Credit(adaEmail)
	assert.Zero(t, used, "the late charge took nothing")

	charges := p.Charges()
	require.Len(t, charges, 1)
	assert.Equal(t, "k1", charges[0].Key)
	assert.True(t, charges[0].Voided)
	assert.False(t, charges[0].Refunded)
	assert.Empty(t, charges[0].ID)
	assert.Zero(t, charges[0].Amount)

	require.NoError(t, p.Refund(ctx, undoReq("k1")), "refunding a voided key again is a no-op")
	_, err = p.Charge(ctx, chargeReq("k1", adaEmail, 600))
	require.ErrorIs(t, err, orderflow.ErrVoided)

	// Other keys are unaffected.
	_, err = p.Charge(ctx, chargeReq("k2", adaEmail, 600))
	require.NoError(t, err)
}

func TestPaymentConcurrentChargesRespectLimit(t *testing.T) {
	t.Parallel()
	const (
		callers = 200
		fits    = 37
		amount  = orderflow.Money(1999)
	)
	p := newPayment(orderflow.PaymentConfig{})
	p.SetCreditLimit(adaEmail, fits*amount)

	var succeeded, refused atomic.Int64
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			_, err := p.Charge(t.Context(), chargeReq(fmt.Sprint("k", i), adaEmail, amount))
			switch {
			case err == nil:
				succeeded.Add(1)
			case assert.ErrorIs(t, err, orderflow.ErrInsufficientCredit):
				refused.Add(1)
			}
		})
	}
	wg.Wait()

	assert.EqualValues(t, fits, succeeded.Load())
	assert.EqualValues(t, callers-fits, refused.Load())
	limit, used := p.Credit(adaEmail)
	assert.Equal(t, limit, used)
	assert.Len(t, p.Charges(), fits)
}

func TestPaymentConcurrentChargesWithOneKey(t *testing.T) {
	t.Parallel()
	p := newPayment(orderflow.PaymentConfig{})
	p.SetCreditLimit(adaEmail, 1000)

	ids := make([]string, 100)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			id, err := p.Charge(t.Context(), chargeReq("same", adaEmail, 1000))
			assert.NoError(t, err)
			ids[i] = id
		})
	}
	wg.Wait()

	for _, id := range ids {
		assert.Equal(t, ids[0], id)
	}
	_, used := p.Credit(adaEmail)
	assert.Equal(t, orderflow.Money(1000), used)
	assert.Len(t, p.Charges(), 1)
}

func TestPaymentConcurrentChargesAndRefunds(t *testing.T) {
	t.Parallel()
	const n = 100
	p := newPayment(orderflow.PaymentConfig{})
	p.SetCreditLimit(adaEmail, n*100)

	var wg sync.WaitGroup
	for i := range n {
		key := fmt.Sprint("k", i)
		wg.Go(func() {
			_, err := p.Charge(t.Context(), chargeReq(key, adaEmail, 100))
			if err != nil { // the refund came first
				assert.ErrorIs(t, err, orderflow.ErrVoided)
			}
		})
		wg.Go(func() { assert.NoError(t, p.Refund(t.Context(), undoReq(key))) })
	}
	wg.Wait()

	// Whichever came first, every key ends up refunded or voided, and no
	// credit stays used.
	_, used := p.Credit(adaEmail)
	assert.Zero(t, used)
	charges := p.Charges()
	require.Len(t, charges, n)
	for _, c := range charges {
		assert.True(t, c.Refunded != c.Voided, "%+v", c)
	}
}

// chargesByKey indexes p's charges by idempotency key.
func chargesByKey(p *orderflow.PaymentService) map[string]orderflow.Charge {
	out := make(map[string]orderflow.Charge)
	for _, c := range p.Charges() {
		out[c.Key] = c
	}
	return out
}
