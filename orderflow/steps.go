package orderflow

import (
	"context"
	"errors"

	"github.com/sagaflow/sagaflow/saga"
)

// The saga's name and step names. A step's idempotency key is
// "<orderID>/<step>", as saga.IdempotencyKey makes it.
const (
	SagaName      = "order"
	StepValidate  = "validate"
	StepPayment   = "payment"
	StepInventory = "inventory"
	StepShipping  = "shipping"
)

// steps runs an order through the system's services. Each action checks the
// order's status transition before it calls anything, so an order that is
// not where the step expects it is refused (and the refusal is logged by
// the engine as a failed attempt), never applied.
type steps struct{ s *System }

func (s *System) definition() (*saga.Definition[Order], error) {
	st := steps{s}
	return saga.NewDefinition(SagaName, []saga.Step[Order]{
		{Name: StepValidate, Action: st.validate, Timeout: s.cfg.StepTimeout},
		{Name: StepPayment, Action: st.charge, Compensate: st.refund, Breaker: "payment",
			Timeout: s.cfg.StepTimeout, Retry: s.cfg.Retry, CompensationRetry: s.cfg.CompensationRetry},
		{Name: StepInventory, Action: st.reserve, Compensate: st.release, Breaker: "inventory",
			Timeout: s.cfg.StepTimeout, Retry: s.cfg.Retry, CompensationRetry: s.cfg.CompensationRetry},
		{Name: StepShipping, Action: st.ship, Compensate: st.cancelShipment, Breaker: "shipping",
			Timeout: s.cfg.StepTimeout, Retry: s.cfg.Retry, CompensationRetry: s.cfg.CompensationRetry},
	}, saga.WithTimeout(s.cfg.OrderTimeout))
}

// validate checks the order again when its saga runs: the catalogue and
// the customer directory may have changed since it was submitted, and
// Config.Validate adds the caller's own rules.
func (st steps) validate(ctx context.Context, o *Order) error {
	if err := o.Status.check(StatusValidated); err != nil {
		return saga.Permanent(err)
	}
	if probs, err := st.s.lookup(ctx, o.Customer, o.Items); err != nil {
		return err
	} else if len(probs) > 0 {
		return saga.Permanent(&ValidationError{Problems: probs})
	}
	if st.s.cfg.Validate != nil {
		if err := st.s.cfg.Validate(ctx, *o); err != nil {
			return classify(err)
		}
	}
	return o.advance(StatusValidated)
}

func (st steps) charge(ctx context.Context, o *Order) error {
	if err := o.Status.check(StatusPaymentProcessed); err != nil {
		return saga.Permanent(err)
	}
	id, err := st.s.payment.Charge(ctx, ChargeRequest{Key: key(ctx), OrderID: o.ID, Customer: o.Customer, Amount: o.Total})
	if err != nil {
		return classify(err)
	}
	o.ChargeID = id
	return o.advance(StatusPaymentProcessed)
}

func (st steps) refund(ctx context.Context, o *Order) error {
	return classify(st.s.payment.Refund(ctx, UndoRequest{Key: key(ctx), OrderID: o.ID}))
}

func (st steps) reserve(ctx context.Context, o *Order) error {
	if err := o.Status.check(StatusInventoryReserved); err != nil {
		return saga.Permanent(err)
	}
	id, err := st.s.inventory.Reserve(ctx, ReserveRequest{Key: key(ctx), OrderID: o.ID, Items: o.Items})
	if err != nil {
		return classify(err)
	}
	o.ReservationID = id
	return o.advance(StatusInventoryReserved)
}

func (st steps) release(ctx context.Context, o *Order) error {
	return classify(st.s.inventory.Release(ctx, UndoRequest{Key: key(ctx), OrderID: o.ID}))
}

func (st steps) ship(ctx context.Context, o *Order) error {
	if err := o.Status.check(StatusShipped); err != nil {
		return saga.Permanent(err)
	}
	tracking, err := st.s.shipping.CreateShipment(ctx, ShipmentRequest{Key: key(ctx), OrderID: o.ID, Customer: o.Customer, Items: o.Items})
	if err != nil {
		return classify(err)
	}
	o.TrackingNumber = tracking
	return o.advance(StatusShipped)
}

func (st steps) cancelShipment(ctx context.Context, o *Order) error {
	return classify(st.s.shipping.CancelShipment(ctx, UndoRequest{Key: key(ctx), OrderID: o.ID}))
}

// key returns the running step's idempotency key.
func key(ctx context.Context) string {
	info, _ := saga.Info(ctx)
	return info.IdempotencyKey
}

// permanentErrors are answers that retrying cannot change.
var permanentErrors = []error{
	ErrInsufficientCredit, ErrInsufficientStock, ErrUnknownProduct, ErrUnknownCustomer,
	ErrVoided, ErrIdempotencyKeyReused, ErrInvalidOrder, ErrInvalidAmount, ErrInvalidTransition,
}

// classify marks the errors in permanentErrors as permanent; the rest are
// retried.
func classify(err error) error {
	if err == nil || saga.IsPermanent(err) {
		return err
	}
	for _, p := range permanentErrors {
		if errors.Is(err, p) {
			return saga.Permanent(err)
		}
	}
	return err
}
