package orderflow

import (
	"context"
	"strconv"
)

// The services an order saga calls. Implementations must be safe for
// concurrent use, and idempotent by Key: the saga calls an operation again
// with the same key after a timeout, a retry or a crash, and the service
// must apply it at most once and answer as it did the first time. An undo
// (refund, release, cancel) names the key of the operation it undoes; an
// undo of an operation that never happened must succeed and do nothing.
//
// Return an error wrapped with saga.Permanent for a failure that retrying
// cannot fix; orderflow treats ErrInsufficientCredit, ErrInsufficientStock,
// ErrUnknownProduct, ErrUnknownCustomer, ErrVoided and
// ErrIdempotencyKeyReused as permanent even when they are not wrapped.
// Any other error is retried with backoff.

// PaymentGateway charges customers and refunds charges.
type PaymentGateway interface {
	// Charge takes req.Amount from the customer and returns the charge's
	// ID.
	Charge(ctx context.Context, req ChargeRequest) (chargeID string, err error)
	// Refund returns the charge made with req.Key.
	Refund(ctx context.Context, req UndoRequest) error
}

// Inventory reserves stock for orders and releases it.
type Inventory interface {
	// Reserve takes every item out of stock, or none of them, and returns
	// the reservation's ID.
	Reserve(ctx context.Context, req ReserveRequest) (reservationID string, err error)
	// Release puts back the stock reserved with req.Key.
	Release(ctx context.Context, req UndoRequest) error
}

// Shipping books and cancels shipments.
type Shipping interface {
	// CreateShipment books the order's delivery and returns its tracking
	// number.
	CreateShipment(ctx context.Context, req ShipmentRequest) (trackingNumber string, err error)
	// CancelShipment cancels the shipment booked with req.Key.
	CancelShipment(ctx context.Context, req UndoRequest) error
}

// ProductCatalog looks products up. A System with EnforceCatalog checks every
// item of a request against it.
type ProductCatalog interface {
	// Product returns the named product, or an error wrapping
	// ErrUnknownProduct.
	Product(ctx context.Context, name string) (Product, error)
}

// CustomerDirectory knows which customers are registered. A System with
// RequireRegisteredCustomers checks every request's customer against it.
type CustomerDirectory interface {
	// Registered reports whether a customer with that email is registered.
	Registered(ctx context.Context, email string) (bool, error)
}

// Pinger is implemented by a service that can report whether it is
// reachable; System.Health calls it.
type Pinger interface {
	Ping(ctx context.Context) error
}

// ChargeRequest asks a PaymentGateway for a charge.
type ChargeRequest struct {
	Key      string // idempotency key
	OrderID  string
	Customer Customer
	Amount   Money
}

// ReserveRequest asks an Inventory to reserve the items of an order.
type ReserveRequest struct {
	Key     string // idempotency key
	OrderID string
	Items   []Item
}

// ShipmentRequest asks Shipping to deliver an order.
type ShipmentRequest struct {
	Key      string // idempotency key
	OrderID  string
	Customer Customer
	Items    []Item
}

// UndoRequest asks a service to undo the operation it applied with Key.
type UndoRequest struct {
	Key     string // the key of the operation to undo
	OrderID string
}

// Product is an item of the catalogue.
type Product struct {
	Name  string `json:"name"`
	Price Money  `json:"price"`
	Stock int    `json:"stock"`
}

// seqID formats the n-th ID of a service: the prefix and n with at least
// six digits, as in "CH-000042".
func seqID(prefix string, n int) string {
	b := make([]byte, 0, len(prefix)+8)
	b = append(b, prefix...)
	for d := 100000; d > 1 && n < d; d /= 10 {
		b = append(b, '0')
	}
	return string(strconv.AppendInt(b, int64(n), 10))
}
