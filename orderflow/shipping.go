package orderflow

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sagaflow/sagaflow/clock"
)

// ShippingConfig configures a ShippingService. The zero value works.
type ShippingConfig struct {
	// Clock times injected delays. Defaults to clock.Real().
	Clock clock.Clock
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

// ShippingService is an in-memory Shipping: shipments are booked and
// canceled idempotently by key, and a cancellation that arrives before its
// booking voids the key. Faults can be injected through the embedded
// Faults.
type ShippingService struct {
	Faults

	books[shippingChange]
	shipments memo[shipmentRecord] // by idempotency key
	n         int
}

// shipmentRecord is a Shipment as the service remembers it (see memo).
type shipmentRecord struct {
	tracking, orderID, address span
	canceled                   bool
	voided                     bool
}

// Shipment is a shipment as the ShippingService records it.
type Shipment struct {
	TrackingNumber string `json:"tracking_number"`
	Key            string `json:"key"`
	OrderID        string `json:"order_id"`
	Address        string `json:"address"`
	Canceled       bool   `json:"canceled"`
	// Voided is set when a cancellation arrived for a key that was never
	// booked; no shipment can be booked with the key afterwards.
	Voided bool `json:"voided,omitempty"`
}

var (
	_ Shipping = (*ShippingService)(nil)
	_ Pinger   = (*ShippingService)(nil)
)

// NewShippingService returns a ShippingService with no shipments.
func NewShippingService(cfg ShippingConfig) *ShippingService {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	s := &ShippingService{
		Faults:    Faults{clock: cfg.Clock},
		shipments: newMemo[shipmentRecord](cfg.KeepFor, cfg.KeepLast, cfg.Clock),
	}
	s.books.apply = s.apply
	return s
}

// OpenShippingService returns a ShippingService that keeps its state in the
// file at path, as OpenPaymentService does. Close it when done.
func OpenShippingService(path string, cfg ShippingConfig) (*ShippingService, error) {
	s := NewShippingService(cfg)
	if err := s.open(path); err != nil {
		return nil, err
	}
	return s, nil
}

// shippingChange is one change of a ShippingService's state, as its file
// records it.
type shippingChange struct {
	Op       string   `json:"op"` // ship, cancel, void
	Shipment Shipment `json:"shipment,omitzero"`
	Key      string   `json:"key,omitempty"`
	Order    string   `json:"order,omitempty"`
}

// apply changes the state; on replay s.mu need not be held.
func (s *ShippingService) apply(c shippingChange) error {
	switch {
	case c.Op == "ship" && c.Shipment != (Shipment{}) && s.shipments.get(c.Shipment.Key) == nil:
		sh := &c.Shipment
		n, r := s.shipments.add(sh.Key)
		*r = shipmentRecord{canceled: sh.Canceled, voided: sh.Voided}
		r.tracking, r.orderID = s.shipments.put(n, sh.TrackingNumber), s.shipments.put(n, sh.OrderID)
		r.address = s.shipments.put(n, sh.Address)
		s.n++
	case c.Op == "cancel" && s.shipments.get(c.Key) != nil:
		s.shipments.get(c.Key).canceled = true
	case c.Op == "void" && s.shipments.get(c.Key) == nil:
		n, r := s.shipments.add(c.Key)
		*r = shipmentRecord{voided: true}
		r.orderID = s.shipments.put(n, c.Order)
	default:
		return fmt.Errorf("orderflow: shipping change %q does not apply", c.Op)
	}
	return nil
}

// Shipments returns every shipment, canceled or voided, sorted by ID
// (voided ones, which have none, first, by key).
func (s *ShippingService) Shipments() []Shipment {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Shipment, 0, s.shipments.len())
	s.shipments.each(func(n uint64, key string, r *shipmentRecord) {
		out = append(out, Shipment{
			TrackingNumber: s.shipments.str(n, r.tracking), Key: key, OrderID: s.shipments.str(n, r.orderID),
			Address: s.shipments.str(n, r.address), Canceled: r.canceled, Voided: r.voided,
		})
	})
	slices.SortFunc(out, func(a, b Shipment) int {
		return cmp.Or(cmp.Compare(a.TrackingNumber, b.TrackingNumber), cmp.Compare(a.Key, b.Key))
	})
	return out
}

// CreateShipment implements Shipping.
func (s *ShippingService) CreateShipment(ctx context.Context, req ShipmentRequest) (string, error) {
	if err := s.fault(ctx, "ship", req.OrderID); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, ok := s.shipments.find(req.Key); ok {
		sh := &s.shipments.record(n).val
		if sh.voided || sh.canceled {
			return "", fmt.Errorf("%w: shipment %q", ErrVoided, req.Key)
		}
		return s.shipments.str(n, sh.tracking), nil
	}
	tracking := seqID("TRK-", s.n+1)
	sh := Shipment{TrackingNumber: tracking, Key: req.Key, OrderID: req.OrderID, Address: req.Customer.Address}
	if err := s.commit(shippingChange{Op: "ship", Shipment: sh}); err != nil {
		return "", err
	}
	return tracking, nil
}

// CancelShipment implements Shipping.
func (s *ShippingService) CancelShipment(ctx context.Context, req UndoRequest) error {
	if err := s.fault(ctx, "cancel", req.OrderID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.shipments.get(req.Key)
	switch {
	case sh == nil:
		return s.commit(shippingChange{Op: "void", Key: req.Key, Order: req.OrderID})
	case !sh.voided && !sh.canceled:
		return s.commit(shippingChange{Op: "cancel", Key: req.Key})
	}
	return nil
}
