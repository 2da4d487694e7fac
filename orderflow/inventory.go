package orderflow

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/sagaflow/sagaflow/clock"
)

// InventoryConfig configures an InventoryService. The zero value works.
type InventoryConfig struct {
	// Clock times injected delays. Defaults to clock.Real().
	Clock clock.Clock
	// EnforceCatalog refuses reservations of products that were never
	// added, with ErrUnknownProduct. Defaults to false: such products have
	// unlimited stock.
	EnforceCatalog bool
	// KeepFor is how long the service remembers an operation by its key.
	// After that, a call with the key is treated as a new one, and an undo
	// as the undo of an operation that never happened, so keep it well
	// beyond the time any order can take to finish. Defaults to 0: forever.
	KeepFor time.Duration
}

// InventoryService is an in-memory Inventory and ProductCatalog: products
// with a price and stock; a reservation takes all of its items or none, so
// stock is never negative and a failed reservation leaves it untouched;
// reservations and releases are idempotent by key, and a release that
// arrives before its reservation voids the key. Faults can be injected
// through the embedded Faults.
type InventoryService struct {
	Faults
	enforce bool

	books[inventoryChange]
	products     map[string]*stock
	reservations map[string]*Reservation // by idempotency key
	n            int
}

type stock struct {
	Product
	limited bool // added with AddProduct; otherwise stock is unlimited
	held    int  // units in active reservations
}

// Reservation is a reservation as the InventoryService records it.
type Reservation struct {
	ID       string `json:"id"`
	Key      string `json:"key"`
	OrderID  string `json:"order_id"`
	Items    []Item `json:"items"`
	Released bool   `json:"released"`
	// Voided is set when a release arrived for a key that was never
	// reserved; no reservation can be made with the key afterwards.
	Voided bool `json:"voided,omitempty"`
}

var (
	_ Inventory      = (*InventoryService)(nil)
	_ ProductCatalog = (*InventoryService)(nil)
	_ Pinger         = (*InventoryService)(nil)
)

// NewInventoryService returns an InventoryService with no products.
func NewInventoryService(cfg InventoryConfig) *InventoryService {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	s := &InventoryService{
		Faults:       Faults{clock: cfg.Clock},
		enforce:      cfg.EnforceCatalog,
		books:        books[inventoryChange]{window: window{keep: cfg.KeepFor, clock: cfg.Clock}},
		products:     make(map[string]*stock),
		reservations: make(map[string]*Reservation),
	}
	s.change = s.apply
	return s
}

// OpenInventoryService returns an InventoryService that keeps its state in
// the file at path, as OpenPaymentService does. Close it when done.
func OpenInventoryService(path string, cfg InventoryConfig) (*InventoryService, error) {
	s := NewInventoryService(cfg)
	if err := s.open(path); err != nil {
		return nil, err
	}
	return s, nil
}

// inventoryChange is one change of an InventoryService's state, as its
// file records it.
type inventoryChange struct {
	Op          string       `json:"op"` // product, reserve, release, void
	Product     *Product     `json:"product,omitempty"`
	Reservation *Reservation `json:"reservation,omitempty"`
	Key         string       `json:"key,omitempty"`
	Order       string       `json:"order,omitempty"`
}

// apply changes the state; on replay s.mu need not be held.
func (s *InventoryService) apply(c inventoryChange) error {
	switch {
	case c.Op == "product" && c.Product != nil:
		st := s.stock(c.Product.Name)
		st.Price, st.Stock, st.limited = c.Product.Price, c.Product.Stock, true
	case c.Op == "reserve" && c.Reservation != nil && s.reservations[c.Reservation.Key] == nil:
		r := *c.Reservation
		for _, it := range r.Items {
			st := s.stock(it.Name)
			if st.limited {
				st.Stock -= it.Quantity
			}
			st.held += it.Quantity
		}
		s.n++
		s.reservations[r.Key] = &r
		remember(&s.window, s.reservations, r.Key)
	case c.Op == "release" && s.reservations[c.Key] != nil && s.reservations[c.Key].ID != "":
		r := s.reservations[c.Key]
		r.Released = true
		for _, it := range r.Items {
			st := s.stock(it.Name)
			if st.limited {
				st.Stock += it.Quantity
			}
			st.held -= it.Quantity
		}
	case c.Op == "void" && s.reservations[c.Key] == nil:
		s.reservations[c.Key] = &Reservation{Key: c.Key, OrderID: c.Order, Voided: true}
		remember(&s.window, s.reservations, c.Key)
	default:
		return fmt.Errorf("orderflow: inventory change %q does not apply", c.Op)
	}
	return nil
}

// AddProduct adds a product to the catalogue, or replaces its price and
// stock. Units held by reservations are not part of Stock. It fails only
// if the service's file cannot be written.
func (s *InventoryService) AddProduct(p Product) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(inventoryChange{Op: "product", Product: &p})
}

// stock returns the product's entry, creating an unlimited one. It expects
// s.mu held.
func (s *InventoryService) stock(name string) *stock {
	st, ok := s.products[name]
	if !ok {
		st = &stock{Product: Product{Name: name}}
		s.products[name] = st
	}
	return st
}

// Product returns a product added with AddProduct, or an error wrapping
// ErrUnknownProduct.
func (s *InventoryService) Product(_ context.Context, name string) (Product, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.products[name]; ok && st.limited {
		return st.Product, nil
	}
	return Product{}, fmt.Errorf("%w: %q", ErrUnknownProduct, name)
}

// Stock returns how many units of the product are available (-1 when its
// stock is unlimited) and how many are held by active reservations.
func (s *InventoryService) Stock(name string) (available, held int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.products[name]
	switch {
	case !ok:
		return -1, 0
	case !st.limited:
		return -1, st.held
	}
	return st.Stock, st.held
}

// Reservations returns every reservation, released or voided, sorted by ID
// (voided ones, which have none, first, by key).
func (s *InventoryService) Reservations() []Reservation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Reservation, 0, len(s.reservations))
	for _, r := range s.reservations {
		c := *r
		c.Items = slices.Clone(r.Items)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Reservation) int {
		return cmp.Or(cmp.Compare(a.ID, b.ID), cmp.Compare(a.Key, b.Key))
	})
	return out
}

// Reserve implements Inventory.
func (s *InventoryService) Reserve(ctx context.Context, req ReserveRequest) (string, error) {
	if err := s.fault(ctx, "reserve", req.OrderID); err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.reservations[req.Key]; ok {
		switch {
		case r.Voided || r.Released:
			return "", fmt.Errorf("%w: reservation %q", ErrVoided, req.Key)
		case !slices.Equal(r.Items, req.Items):
			return "", fmt.Errorf("%w: reservation %q", ErrIdempotencyKeyReused, req.Key)
		}
		return r.ID, nil
	}
	taken := make(map[string]int, len(req.Items)) // by earlier lines of the same product
	for _, it := range req.Items {
		if it.Quantity <= 0 {
			return "", fmt.Errorf("%w: quantity %d of %q", ErrInvalidOrder, it.Quantity, it.Name)
		}
		st, ok := s.products[it.Name]
		switch {
		case !ok || !st.limited:
			if s.enforce {
				return "", fmt.Errorf("%w: %q", ErrUnknownProduct, it.Name)
			}
		case st.Stock-taken[it.Name] < it.Quantity:
			return "", fmt.Errorf("%w: %d more of %q wanted, %d available", ErrInsufficientStock, it.Quantity, it.Name, st.Stock-taken[it.Name])
		default:
			taken[it.Name] += it.Quantity
		}
	}
	r := &Reservation{ID: seqID("RSV-", s.n+1), Key: req.Key, OrderID: req.OrderID, Items: slices.Clone(req.Items)}
	if err := s.commit(inventoryChange{Op: "reserve", Reservation: r}); err != nil {
		return "", err
	}
	return r.ID, nil
}

// Release implements Inventory.
func (s *InventoryService) Release(ctx context.Context, req UndoRequest) error {
	if err := s.fault(ctx, "release", req.OrderID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.reservations[req.Key]
	switch {
	case !ok:
		return s.commit(inventoryChange{Op: "void", Key: req.Key, Order: req.OrderID})
	case !r.Released && !r.Voided:
		return s.commit(inventoryChange{Op: "release", Key: req.Key})
	}
	return nil
}
