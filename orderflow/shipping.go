package orderflow

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/sagaflow/sagaflow/clock"
)

// ShippingConfig configures a ShippingService. The zero value works.
type ShippingConfig struct {
	// Clock times injected delays. Defaults to clock.Real().
	Clock clock.Clock
}

// ShippingService is an in-memory Shipping: shipments are booked and
// canceled idempotently by key, and a cancellation that arrives before its
// booking voids the key. Faults can be injected through the embedded
// Faults.
type ShippingService struct {
	Faults

	mu        sync.Mutex
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
	return &ShippingService{Faults: Faults{clock: cfg.Clock}, shipments: make(map[string]*Shipment)}
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
	if err := s.apply(ctx, "ship", req.OrderID); err != nil {
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
	s.n++
	sh := &Shipment{TrackingNumber: fmt.Sprintf("TRK-%06d", s.n), Key: req.Key, OrderID: req.OrderID, Address: req.Customer.Address}
	s.shipments[req.Key] = sh
	return sh.TrackingNumber, nil
}

// CancelShipment implements Shipping.
func (s *ShippingService) CancelShipment(ctx context.Context, req UndoRequest) error {
	if err := s.apply(ctx, "cancel", req.OrderID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sh, ok := s.shipments[req.Key]
	switch {
	case !ok:
		s.shipments[req.Key] = &Shipment{Key: req.Key, OrderID: req.OrderID, Voided: true}
	case !sh.Voided:
		sh.Canceled = true
	}
	return nil
}
