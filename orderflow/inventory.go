package orderflow

import (
	"cmp"
	"context"
	"encoding/binary"
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
	// KeepLast, when positive, is how many operations the service
	// remembers at most: each new one makes it forget the oldest beyond
	// that number, with the same effect as KeepFor. Keep it well above
	// the operations that can start while one order runs. Defaults to 0:
	// no limit.
	KeepLast int
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
	products     map[string]int32 // by name: index in stocks
	stocks       []stock
	reservations memo[reservationRecord] // by idempotency key
	n            int
}

type stock struct {
	Product
	limited bool // added with AddProduct; otherwise stock is unlimited
	held    int  // units in active reservations
}

// reservationRecord is a Reservation as the service remembers it (see
// memo). Its items are packed in the memo's bytes by packItem.
type reservationRecord struct {
	id, orderID, items span
	released           bool
	voided             bool
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
		products:     make(map[string]int32),
		reservations: newMemo[reservationRecord](cfg.KeepFor, cfg.KeepLast, cfg.Clock),
	}
	s.books.apply = s.apply
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
	Op          string      `json:"op"` // product, reserve, release, void
	Product     *Product    `json:"product,omitempty"`
	Reservation Reservation `json:"reservation,omitzero"`
	Key         string      `json:"key,omitempty"`
	Order       string      `json:"order,omitempty"`
}

// apply changes the state; on replay s.mu need not be held.
func (s *InventoryService) apply(c inventoryChange) error {
	switch {
	case c.Op == "product" && c.Product != nil:
		st := &s.stocks[s.stock(c.Product.Name)]
		st.Price, st.Stock, st.limited = c.Product.Price, c.Product.Stock, true
	case c.Op == "reserve" && c.Reservation.ID != "" && s.reservations.get(c.Reservation.Key) == nil:
		r := &c.Reservation
		var buf [64]byte
		packed := buf[:0]
		for _, it := range r.Items {
			i := s.stock(it.Name)
			st := &s.stocks[i]
			if st.limited {
				st.Stock -= it.Quantity
			}
			st.held += it.Quantity
			packed = packItem(packed, i, it)
		}
		s.n++
		n, rec := s.reservations.add(r.Key)
		*rec = reservationRecord{released: r.Released, voided: r.Voided}
		rec.id, rec.orderID = s.reservations.put(n, r.ID), s.reservations.put(n, r.OrderID)
		rec.items = s.reservations.putBytes(n, packed)
	case c.Op == "release" && s.reservations.get(c.Key) != nil && s.reservations.get(c.Key).id.n > 0:
		n, _ := s.reservations.find(c.Key)
		r := &s.reservations.record(n).val
		r.released = true
		for b := s.reservations.bytes(n, r.items); len(b) > 0; {
			var i int32
			var it Item
			i, it, b = unpackItem(b)
			st := &s.stocks[i]
			if st.limited {
				st.Stock += it.Quantity
			}
			st.held -= it.Quantity
		}
	case c.Op == "void" && s.reservations.get(c.Key) == nil:
		n, r := s.reservations.add(c.Key)
		*r = reservationRecord{voided: true}
		r.orderID = s.reservations.put(n, c.Order)
	default:
		return fmt.Errorf("orderflow: inventory change %q does not apply", c.Op)
	}
	return nil
}

// packItem appends an item of a reservation: the index of its product in
// stocks, its price and its quantity, as varints.
func packItem(b []byte, product int32, it Item) []byte {
	b = binary.AppendUvarint(b, uint64(product))
	b = binary.AppendVarint(b, int64(it.Price))
	return binary.AppendVarint(b, int64(it.Quantity))
}

// unpackItem reads an item that packItem wrote, returning the rest of b.
// Its Name is left for the caller to take from the product.
func unpackItem(b []byte) (product int32, it Item, rest []byte) {
	p, k := binary.Uvarint(b)
	b = b[k:]
	price, k := binary.Varint(b)
	b = b[k:]
	qty, k := binary.Varint(b)
	return int32(p), Item{Price: Money(price), Quantity: int(qty)}, b[k:]
}

// sameItems reports whether the items packed in b are items.
func (s *InventoryService) sameItems(b []byte, items []Item) bool {
	for _, want := range items {
		if len(b) == 0 {
			return false
		}
		var i int32
		var it Item
		i, it, b = unpackItem(b)
		if it.Price != want.Price || it.Quantity != want.Quantity || s.stocks[i].Name != want.Name {
			return false
		}
	}
	return len(b) == 0
}

// reservation returns the Reservation that record n of the memo holds.
func (s *InventoryService) reservation(n uint64, key string, r *reservationRecord) Reservation {
	res := Reservation{
		ID: s.reservations.str(n, r.id), Key: key, OrderID: s.reservations.str(n, r.orderID),
		Released: r.released, Voided: r.voided,
	}
	for b := s.reservations.bytes(n, r.items); len(b) > 0; {
		var i int32
		var it Item
		i, it, b = unpackItem(b)
		it.Name = s.stocks[i].Name
		res.Items = append(res.Items, it)
	}
	return res
}

// AddProduct adds a product to the catalogue, or replaces its price and
// stock. Units held by reservations are not part of Stock. It fails only
// if the service's file cannot be written.
func (s *InventoryService) AddProduct(p Product) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(inventoryChange{Op: "product", Product: &p})
}

// stock returns the index of the product's entry, creating an unlimited
// one. It expects s.mu held.
func (s *InventoryService) stock(name string) int32 {
	i, ok := s.products[name]
	if !ok {
		i = int32(len(s.stocks))
		s.stocks = append(s.stocks, stock{Product: Product{Name: name}})
		s.products[name] = i
	}
	return i
}

// Product returns a product added with AddProduct, or an error wrapping
// ErrUnknownProduct.
func (s *InventoryService) Product(_ context.Context, name string) (Product, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i, ok := s.products[name]; ok && s.stocks[i].limited {
		return s.stocks[i].Product, nil
	}
	return Product{}, fmt.Errorf("%w: %q", ErrUnknownProduct, name)
}

// Stock returns how many units of the product are available (-1 when its
// stock is unlimited) and how many are held by active reservations.
func (s *InventoryService) Stock(name string) (available, held int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.products[name]
	switch {
	case !ok:
		return -1, 0
	case !s.stocks[i].limited:
		return -1, s.stocks[i].held
	}
	return s.stocks[i].Stock, s.stocks[i].held
}

// Reservations returns every reservation, released or voided, sorted by ID
// (voided ones, which have none, first, by key).
func (s *InventoryService) Reservations() []Reservation {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Reservation, 0, s.reservations.len())
	s.reservations.each(func(n uint64, key string, r *reservationRecord) {
		out = append(out, s.reservation(n, key, r))
	})
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
	if n, ok := s.reservations.find(req.Key); ok {
		r := &s.reservations.record(n).val
		switch {
		case r.voided || r.released:
			return "", fmt.Errorf("%w: reservation %q", ErrVoided, req.Key)
		case !s.sameItems(s.reservations.bytes(n, r.items), req.Items):
			return "", fmt.Errorf("%w: reservation %q", ErrIdempotencyKeyReused, req.Key)
		}
		return s.reservations.str(n, r.id), nil
	}
	var taken map[string]int // by earlier lines of the same product, for long requests
	if len(req.Items) > 16 {
		taken = make(map[string]int, len(req.Items))
	}
	for k, it := range req.Items {
		if it.Quantity <= 0 {
			return "", fmt.Errorf("%w: quantity %d of %q", ErrInvalidOrder, it.Quantity, it.Name)
		}
		i, ok := s.products[it.Name]
		if !ok || !s.stocks[i].limited {
			if s.enforce {
				return "", fmt.Errorf("%w: %q", ErrUnknownProduct, it.Name)
			}
			continue
		}
		before := taken[it.Name]
		if taken == nil {
			for _, prev := range req.Items[:k] {
				if prev.Name == it.Name {
					before += prev.Quantity
				}
			}
		}
		if available := s.stocks[i].Stock - before; available < it.Quantity {
			return "", fmt.Errorf("%w: %d more of %q wanted, %d available", ErrInsufficientStock, it.Quantity, it.Name, available)
		}
		if taken != nil {
			taken[it.Name] += it.Quantity
		}
	}
	id := seqID("RSV-", s.n+1)
	if err := s.commit(inventoryChange{Op: "reserve", Reservation: Reservation{ID: id, Key: req.Key, OrderID: req.OrderID, Items: req.Items}}); err != nil {
		return "", err
	}
	return id, nil
}

// Release implements Inventory.
func (s *InventoryService) Release(ctx context.Context, req UndoRequest) error {
	if err := s.fault(ctx, "release", req.OrderID); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reservations.get(req.Key)
	switch {
	case r == nil:
		return s.commit(inventoryChange{Op: "void", Key: req.Key, Order: req.OrderID})
	case !r.released && !r.voided:
		return s.commit(inventoryChange{Op: "release", Key: req.Key})
	}
	return nil
}
