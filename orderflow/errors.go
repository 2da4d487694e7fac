package orderflow

import (
	"errors"
	"fmt"
	"strings"
)

// Errors returned by orderflow. Test for them with errors.Is. Lifecycle and
// capacity errors come from the engine and wrap its sentinels:
// saga.ErrNotStarted before Startup, saga.ErrStopped after Shutdown,
// saga.ErrOverloaded when too many orders are in flight.
var (
	// ErrInvalidOrder is wrapped by every *ValidationError: the request was
	// rejected and nothing was created.
	ErrInvalidOrder = errors.New("orderflow: invalid order")
	// ErrInvalidAmount means a decimal amount cannot be read exactly as
	// Money.
	ErrInvalidAmount = errors.New("orderflow: invalid amount")
	// ErrUnknownProduct means an item names no product of the catalogue.
	ErrUnknownProduct = errors.New("orderflow: unknown product")
	// ErrPriceMismatch means an item's price is not the catalogue's.
	ErrPriceMismatch = errors.New("orderflow: price differs from the catalogue")
	// ErrUnknownCustomer means the customer is not registered with the
	// payment service, and registration is required.
	ErrUnknownCustomer = errors.New("orderflow: unknown customer")
	// ErrInsufficientCredit means a charge exceeds the customer's
	// available credit. It is permanent: the payment step is not retried.
	ErrInsufficientCredit = errors.New("orderflow: insufficient credit")
	// ErrInsufficientStock means a reservation asks for more than is in
	// stock. It is permanent: the inventory step is not retried.
	ErrInsufficientStock = errors.New("orderflow: insufficient stock")
	// ErrVoided means an operation's idempotency key was already used to
	// undo it (a refund, release or cancellation arrived first), so the
	// operation can never happen. It is permanent.
	ErrVoided = errors.New("orderflow: operation already undone")
	// ErrUnavailable is what an injected fault returns unless it names its
	// own error: a transient outage, retried.
	ErrUnavailable = errors.New("orderflow: service unavailable")
	// ErrNotFound means no order has that ID (or it finished longer ago
	// than Config.Retention). It does not wrap saga.ErrNotFound.
	ErrNotFound = errors.New("orderflow: order not found")
	// ErrIdempotencyKeyReused means a request reused the order ID or
	// idempotency key of an existing order with different contents.
	ErrIdempotencyKeyReused = errors.New("orderflow: idempotency key reused with a different order")
	// ErrInvalidTransition means an order was asked to move between
	// statuses that the state machine does not connect.
	ErrInvalidTransition = errors.New("orderflow: invalid status transition")
	// ErrInvalidConfig means a Config field is out of range or
	// inconsistent.
	ErrInvalidConfig = errors.New("orderflow: invalid config")
)

// Problem is one reason a request was rejected.
type Problem struct {
	// Field names the offending input, as in "customer.email" or
	// "items[2].quantity".
	Field string
	// Message says what is wrong with it.
	Message string
	// Err is a more specific sentinel, such as ErrUnknownProduct, or nil.
	Err error
}

// String returns "field: message".
func (p Problem) String() string { return p.Field + ": " + p.Message }

// ValidationError lists every problem found in a rejected request. It wraps
// ErrInvalidOrder and the sentinel of each problem, so
// errors.Is(err, ErrUnknownProduct) holds when any item is unknown.
type ValidationError struct {
	Problems []Problem
}

// Error lists the problems, each as "field: message".
func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return ErrInvalidOrder.Error() + ": " + strings.Join(parts, "; ")
}

// Unwrap returns ErrInvalidOrder and the problems' sentinels.
func (e *ValidationError) Unwrap() []error {
	errs := []error{ErrInvalidOrder}
	for _, p := range e.Problems {
		if p.Err != nil {
			errs = append(errs, p.Err)
		}
	}
	return errs
}

// TransitionError is a refused status change. It wraps ErrInvalidTransition.
type TransitionError struct {
	From, To Status
}

// Error names both statuses.
func (e *TransitionError) Error() string {
	return fmt.Sprintf("%v: %v → %v", ErrInvalidTransition, e.From, e.To)
}

// Unwrap returns ErrInvalidTransition.
func (e *TransitionError) Unwrap() error { return ErrInvalidTransition }
