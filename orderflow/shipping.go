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
}

// ShippingService is an in-memory Shipping: shipments are booked and
// canceled idempotently by key, and a cancellation that arrives before its
// booking voids the key. Faults can be injected through the embedded
// Faults.
type ShippingService struct {
	Faults

	books[shippingChange]
	shipments map[string]*Shipment // by idempotency key
	n         int
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
		shipments: make(map[string]*Shipment),
		books:     books[shippingChange]{window: window{keep: cfg.KeepFor, clock: cfg.Clock}},
	}
	s.change = s.apply
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
	Op       string    `json:"op"` // ship, cancel, void
	Shipment *Shipment `json:"shipment,omitempty"`
	Key      string    `json:"key,omitempty"`
	Order    string    `json:"order,omitempty"`
}

// apply changes the state; on replay s.mu need not be held.
func (s *ShippingService) apply(c shippingChange) error {
	switch {
	case c.Op == "ship" && c.Shipment != nil && s.shipments[c.Shipment.Key] == nil:
		sh := *c.Shipment
		s.shipments[sh.Key] = &sh
		remember(&s.window, s.shipments, sh.Key)
		s.n++
	case c.Op == "cancel" && s.shipments[c.Key] != nil:
		s.shipments[c.Key].Canceled = true
	case c.Op == "void" && s.shipments[c.Key] == nil:
		s.shipments[c.Key] = &Shipment{Key: c.Key, OrderID: c.Order, Voided: true}
		remember(&s.window, s.shipments, c.Key)
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
	out := make([]Shipment, 0, len(s.shipments))
	for _, sh := range s.shipments {
		out = append(out, *sh)
	}
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
	if sh, ok := s.shipments[req.Key]; ok {
		if sh.Voided || sh.Canceled {
			return "", fmt.Errorf("%w: shipment %q", ErrVoided, req.Key)
		}
		return sh.TrackingNumber, nil
	}
	sh := &Shipment{TrackingNumber: seqID("TRK-", s.n+1), Key: req.Key, OrderID: req.OrderID, Address: req.Customer.Address}
	if err := s.commit(shippingChange{Op: "ship", Shipment: sh}); err != nil {
		return "", err
	}
	return sh.TrackingNumber, nil
}

// CancelShipment implements Shipping.
func (s *ShippingService) CancelShipment(ctx context.Context, req UndoRequest) error {
	if err := s.fault(ctx, "cancel", req.OrderID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, ok := s.shipments[req.Key]
	switch {
	case !ok:
		return s.commit(shippingChange{Op: "void", Key: req.Key, Order: req.OrderID})
	case !sh.Voided && !sh.Canceled:
		return s.commit(shippingChange{Op: "cancel", Key: req.Key})
	}
	return nil
}
