package orderflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/journal"
)

// Config configures a System. The zero value works: the engine's defaults
// (memory store, real clock, slog's default logger) and the bundled
// in-memory services.
type Config struct {
	// Engine configures the saga engine that runs the orders: its store,
	// clock, logger, workers, capacity, breakers and hooks. See
	// saga.Config for its defaults.
	Engine saga.Config

	// Retention is how long a finished order (completed or failed) stays
	// readable by GetStatus and GetEvents before the store forgets it,
	// which keeps memory bounded by the orders in flight. It applies to the
	// store the System creates (the memory store, or the journal in Dir);
	// a store passed in Engine.Store keeps its own policy. Defaults to 24
	// hours.
	Retention time.Duration

	// Dir, if set, keeps the orders on disk so that they survive crashes
	// and restarts: the engine's store defaults to a journal in
	// Dir/journal (see package saga/journal), and the bundled services the
	// System creates keep their state in Dir/payment.log, inventory.log and
	// shipping.log, so that no charge, reservation or shipment is applied
	// twice across restarts. The System opens them in New and closes them
	// at Shutdown; only one System at a time may use a Dir. Defaults to
	// "": everything in memory.
	Dir string

	// Payment charges and refunds. Defaults to a new PaymentService.
	Payment PaymentGateway
	// Inventory reserves and releases stock. Defaults to a new
	// InventoryService.
	Inventory Inventory
	// Shipping books and cancels shipments. Defaults to a new
	// ShippingService.
	Shipping Shipping

	// EnforceCatalog rejects items that name no product of Catalog, or
	// whose price is not the catalogue's. Defaults to false. It also makes
	// the default Inventory refuse unknown products; an InventoryService
	// passed in keeps its own InventoryConfig.EnforceCatalog.
	EnforceCatalog bool
	// Catalog is where EnforceCatalog looks products up. Defaults to
	// Inventory, which must then implement ProductCatalog.
	Catalog ProductCatalog
	// RequireRegisteredCustomers rejects customers unknown to Customers.
	// Defaults to false. It also makes the default Payment refuse them; a
	// PaymentService passed in keeps its own
	// PaymentConfig.RequireRegistration.
	RequireRegisteredCustomers bool
	// Customers is where RequireRegisteredCustomers looks customers up.
	// Defaults to Payment, which must then implement CustomerDirectory.
	Customers CustomerDirectory

	// Validate, if set, adds the caller's own rules (fraud screening,
	// address checks) to the validate step. An error wrapped with
	// saga.Permanent, or wrapping one of orderflow's permanent sentinels,
	// fails the order; any other error is retried.
	Validate func(ctx context.Context, o Order) error

	// StepTimeout bounds each attempt of each step and compensation.
	// Defaults to 10s.
	StepTimeout time.Duration
	// OrderTimeout bounds an order's forward path: past it, the step in
	// progress gives up and the order is compensated. Defaults to 5m.
	OrderTimeout time.Duration
	// Retry is the retry policy of the payment, inventory and shipping
	// steps. Its zero fields take saga.RetryPolicy's defaults.
	Retry saga.RetryPolicy
	// CompensationRetry is the retry policy of refunds, releases and
	// cancellations. Its zero fields take the engine's compensation
	// defaults.
	CompensationRetry saga.RetryPolicy
}

// System runs orders: it validates them, starts a saga for each, and
// answers questions about them. All methods are safe for concurrent use.
// Its life is New, Startup, any number of calls, Shutdown.
type System struct {
	cfg       Config
	coord     *saga.Coordinator[Order]
	clock     clock.Clock
	log       *slog.Logger
	payment   PaymentGateway
	inventory Inventory
	shipping  Shipping
	catalog   ProductCatalog
	customers CustomerDirectory
	closeMu   sync.Mutex
	closers   []func() error // what New opened in Config.Dir, closed by Shutdown
}

// idNamespace derives order IDs from idempotency keys.
var idNamespace = uuid.MustParse("6d1f3f9e-6a4c-4f7e-9a51-0c6f1f3b2a10")

// New returns a System for cfg. It returns an error wrapping
// ErrInvalidConfig if cfg is inconsistent, or the engine's error for a bad
// Engine config. Nothing runs until Startup.
func New(cfg Config) (*System, error) {
	switch {
	case cfg.StepTimeout < 0:
		return nil, fmt.Errorf("%w: negative StepTimeout", ErrInvalidConfig)
	case cfg.OrderTimeout < 0:
		return nil, fmt.Errorf("%w: negative OrderTimeout", ErrInvalidConfig)
	case cfg.Retention < 0:
		return nil, fmt.Errorf("%w: negative Retention", ErrInvalidConfig)
	}
	if cfg.Retention == 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.StepTimeout == 0 {
		cfg.StepTimeout = 10 * time.Second
	}
	if cfg.OrderTimeout == 0 {
		cfg.OrderTimeout = 5 * time.Minute
	}
	if cfg.Engine.Clock == nil {
		cfg.Engine.Clock = clock.Real()
	}
	if cfg.Engine.Logger == nil {
		cfg.Engine.Logger = slog.Default()
	}
	s := &System{}
	if err := s.openDir(&cfg); err != nil {
		return nil, errors.Join(err, s.closeAll())
	}
	if cfg.Engine.Store == nil {
		m := saga.NewMemoryStore(saga.MemoryConfig{Clock: cfg.Engine.Clock, Retention: cfg.Retention})
		s.closers = append(s.closers, m.Close)
		cfg.Engine.Store = m
	}
	if cfg.Payment == nil {
		cfg.Payment = NewPaymentService(PaymentConfig{Clock: cfg.Engine.Clock, RequireRegistration: cfg.RequireRegisteredCustomers})
	}
	if cfg.Inventory == nil {
		cfg.Inventory = NewInventoryService(InventoryConfig{Clock: cfg.Engine.Clock, EnforceCatalog: cfg.EnforceCatalog})
	}
	if cfg.Shipping == nil {
		cfg.Shipping = NewShippingService(ShippingConfig{Clock: cfg.Engine.Clock})
	}
	s, err := s.build(cfg)
	if err != nil {
		return nil, errors.Join(err, s.closeAll())
	}
	return s, nil
}

// build finishes New once cfg's services are set.
func (s *System) build(cfg Config) (*System, error) {
	if cfg.EnforceCatalog && cfg.Catalog == nil {
		c, ok := cfg.Inventory.(ProductCatalog)
		if !ok {
			return s, fmt.Errorf("%w: EnforceCatalog needs a Catalog (%T is not a ProductCatalog)", ErrInvalidConfig, cfg.Inventory)
		}
		cfg.Catalog = c
	}
	if cfg.RequireRegisteredCustomers && cfg.Customers == nil {
		d, ok := cfg.Payment.(CustomerDirectory)
		if !ok {
			return s, fmt.Errorf("%w: RequireRegisteredCustomers needs Customers (%T is not a CustomerDirectory)", ErrInvalidConfig, cfg.Payment)
		}
		cfg.Customers = d
	}

	s.cfg = cfg
	s.clock, s.log = cfg.Engine.Clock, cfg.Engine.Logger
	s.payment, s.inventory, s.shipping = cfg.Payment, cfg.Inventory, cfg.Shipping
	if cfg.EnforceCatalog {
		s.catalog = cfg.Catalog
	}
	if cfg.RequireRegisteredCustomers {
		s.customers = cfg.Customers
	}
	def, err := s.definition()
	if err != nil {
		return s, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if s.coord, err = saga.New(def, cfg.Engine); err != nil {
		return s, err
	}
	return s, nil
}

// openDir opens what Config.Dir asks for: the journal, and the bundled
// services' files for the services cfg leaves nil.
func (s *System) openDir(cfg *Config) error {
	if cfg.Dir == "" {
		return nil
	}
	if cfg.Engine.Store == nil {
		j, err := journal.Open(filepath.Join(cfg.Dir, "journal"),
			journal.Options{Clock: cfg.Engine.Clock, Logger: cfg.Engine.Logger, Retention: cfg.Retention})
		if err != nil {
			return err
		}
		s.closers = append(s.closers, j.Close)
		cfg.Engine.Store = j
	}
	if cfg.Payment == nil {
		p, err := OpenPaymentService(filepath.Join(cfg.Dir, "payment.log"),
			PaymentConfig{Clock: cfg.Engine.Clock, RequireRegistration: cfg.RequireRegisteredCustomers})
		if err != nil {
			return err
		}
		s.closers = append(s.closers, p.Close)
		cfg.Payment = p
	}
	if cfg.Inventory == nil {
		inv, err := OpenInventoryService(filepath.Join(cfg.Dir, "inventory.log"),
			InventoryConfig{Clock: cfg.Engine.Clock, EnforceCatalog: cfg.EnforceCatalog})
		if err != nil {
			return err
		}
		s.closers = append(s.closers, inv.Close)
		cfg.Inventory = inv
	}
	if cfg.Shipping == nil {
		sh, err := OpenShippingService(filepath.Join(cfg.Dir, "shipping.log"), ShippingConfig{Clock: cfg.Engine.Clock})
		if err != nil {
			return err
		}
		s.closers = append(s.closers, sh.Close)
		cfg.Shipping = sh
	}
	return nil
}

// closeAll closes what openDir opened, newest first.
func (s *System) closeAll() error {
	var err error
	for i := len(s.closers) - 1; i >= 0; i-- {
		err = errors.Join(err, s.closers[i]())
	}
	s.closers = nil
	return err
}

// Startup starts the engine, resuming unfinished orders from a durable
// store. It must be called before ProcessOrder.
func (s *System) Startup(ctx context.Context) error { return s.coord.Startup(ctx) }

// Shutdown stops taking orders and stops the engine (see
// saga.Coordinator.Shutdown), then closes what New opened in Config.Dir.
// With the memory store it waits for the orders in flight until ctx ends,
// and returns a *saga.UnfinishedError naming the orders that did not
// finish; with a durable store, orders in flight resume at the next
// Startup. Call it even if Startup failed.
func (s *System) Shutdown(ctx context.Context) error {
	err := s.coord.Shutdown(ctx)
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	return errors.Join(err, s.closeAll())
}

// Coordinator returns the engine running the orders, for what System does
// not wrap: the raw event log, signals, hooks.
func (s *System) Coordinator() *saga.Coordinator[Order] { return s.coord }

// Definition returns the order saga's definition; its Mermaid method draws
// it.
func (s *System) Definition() *saga.Definition[Order] { return s.coord.Definition() }

// Payment returns the payment gateway the orders use.
func (s *System) Payment() PaymentGateway { return s.payment }

// Inventory returns the inventory the orders use.
func (s *System) Inventory() Inventory { return s.inventory }

// Shipping returns the shipping service the orders use.
func (s *System) Shipping() Shipping { return s.shipping }

// Receipt acknowledges an order: once ProcessOrder returns it, the order
// exists and its saga runs on its own.
type Receipt struct {
	// Success is true in every receipt ProcessOrder returns with a nil
	// error; it is there for clients that read the receipt as JSON.
	Success   bool      `json:"success"`
	OrderID   string    `json:"order_id"`
	Message   string    `json:"message"`
	Timestamp time.Time `json:"timestamp"`
	// Duplicate is set when the request repeated an earlier one (same
	// order ID or idempotency key) and the earlier order was returned.
	Duplicate bool `json:"duplicate,omitempty"`
}

// ProcessOrder validates req, creates the order and starts its saga, and
// returns without waiting for it to run. Lines naming the same product at
// the same price are merged into one; the same product at two prices is
// rejected.
//
// A request that is invalid gets a *ValidationError (wrapping
// ErrInvalidOrder) listing every problem, and nothing is created. A
// request that repeats an order ID or idempotency key gets the existing
// order's receipt with Duplicate set, or ErrIdempotencyKeyReused if it asks
// for something else. Before Startup, after Shutdown and at capacity it
// gets the engine's saga.ErrNotStarted, saga.ErrStopped or
// saga.ErrOverloaded.
func (s *System) ProcessOrder(ctx context.Context, req OrderRequest) (Receipt, error) {
	o, probs := req.normalize()
	if len(probs) == 0 {
		var err error
		if probs, err = s.lookup(ctx, o.Customer, req.Items); err != nil {
			return Receipt{}, err
		}
	}
	id := strings.TrimSpace(req.OrderID)
	switch {
	case req.OrderID != "" && id == "":
		probs = append(probs, Problem{Field: "order_id", Message: "must not be blank"})
	case len(id) > 200:
		probs = append(probs, Problem{Field: "order_id", Message: "longer than 200 characters"})
	}
	if len(probs) > 0 {
		return Receipt{}, &ValidationError{Problems: probs}
	}
	switch {
	case id != "":
	case req.IdempotencyKey != "":
		id = uuid.NewSHA1(idNamespace, []byte(req.IdempotencyKey)).String()
	default:
		id = uuid.NewString()
	}
	o.ID = id

	_, err := s.coord.Start(ctx, o, saga.WithID(id))
	if errors.Is(err, saga.ErrDuplicate) {
		return s.duplicate(ctx, &o)
	}
	if err != nil {
		return Receipt{}, err
	}
	return Receipt{Success: true, OrderID: id, Message: "order accepted", Timestamp: s.clock.Now()}, nil
}

// duplicate answers a request whose order ID exists.
func (s *System) duplicate(ctx context.Context, o *Order) (Receipt, error) {
	snap, err := s.coord.Get(ctx, o.ID)
	if err != nil {
		return Receipt{}, err
	}
	if !sameOrder(&snap.State, o) {
		return Receipt{}, fmt.Errorf("%w: order %q", ErrIdempotencyKeyReused, o.ID)
	}
	return Receipt{Success: true, OrderID: o.ID, Message: "order already submitted", Timestamp: s.clock.Now(), Duplicate: true}, nil
}

// lookup checks the customer and items against the directory and the
// catalogue, where they are enforced. It returns the problems found, or an
// error if a lookup itself failed.
func (s *System) lookup(ctx context.Context, c Customer, items []Item) ([]Problem, error) {
	var probs []Problem
	if s.customers != nil {
		ok, err := s.customers.Registered(ctx, strings.TrimSpace(c.Email))
		if err != nil {
			return nil, fmt.Errorf("orderflow: look up customer: %w", err)
		}
		if !ok {
			probs = append(probs, Problem{Field: "customer.email", Message: fmt.Sprintf("no registered customer %q", c.Email), Err: ErrUnknownCustomer})
		}
	}
	if s.catalog != nil {
		for i, it := range items {
			field := fmt.Sprintf("items[%d]", i)
			p, err := s.catalog.Product(ctx, strings.TrimSpace(it.Name))
			switch {
			case errors.Is(err, ErrUnknownProduct):
				probs = append(probs, Problem{Field: field + ".name", Message: fmt.Sprintf("no product %q", it.Name), Err: ErrUnknownProduct})
			case err != nil:
				return nil, fmt.Errorf("orderflow: look up product: %w", err)
			case p.Price != it.Price:
				probs = append(probs, Problem{Field: field + ".price", Message: fmt.Sprintf("%q costs %v, not %v", it.Name, p.Price, it.Price), Err: ErrPriceMismatch})
			}
		}
	}
	return probs, nil
}

// OrderStatus is an order as GetStatus reports it.
type OrderStatus struct {
	OrderID   string    `json:"order_id"`
	Status    Status    `json:"status"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Total     Money     `json:"total_amount"`
	Customer  Customer  `json:"customer"`
	Items     []Item    `json:"items"`

	ChargeID       string `json:"charge_id,omitempty"`
	ReservationID  string `json:"reservation_id,omitempty"`
	TrackingNumber string `json:"tracking_number,omitempty"`

	// Error is why the order is failing or failed; empty otherwise.
	Error string `json:"error,omitempty"`
	// Stuck is set when a compensation gave up: the order stays
	// compensating until an operator fixes the cause and calls Retry.
	Stuck bool `json:"stuck,omitempty"`
}

// GetStatus returns the order as its log says it is now, or an error
// wrapping ErrNotFound.
func (s *System) GetStatus(ctx context.Context, orderID string) (OrderStatus, error) {
	snap, err := s.coord.Get(ctx, orderID)
	if err != nil {
		return OrderStatus{}, s.notFound(orderID, err)
	}
	o := &snap.State
	st := OrderStatus{
		OrderID:        snap.ID,
		Status:         s.status(snap),
		CreatedAt:      snap.Created,
		UpdatedAt:      snap.Updated,
		Total:          o.Total,
		Customer:       o.Customer,
		Items:          o.Items,
		ChargeID:       o.ChargeID,
		ReservationID:  o.ReservationID,
		TrackingNumber: o.TrackingNumber,
		Stuck:          snap.Status == saga.StatusStuck,
	}
	if snap.Status != saga.StatusRunning && snap.Status != saga.StatusCompleted {
		st.Error = snap.LastError
	}
	return st, nil
}

// status is the order's status: the one its steps reached, moved on by
// what the engine did since (completed, compensating, compensated), each
// move checked against the state machine.
func (s *System) status(snap saga.Snapshot[Order]) Status {
	var path []Status
	switch snap.Status {
	case saga.StatusCompleted:
		path = []Status{StatusCompleted}
	case saga.StatusCompensating, saga.StatusStuck:
		path = []Status{StatusCompensating}
	case saga.StatusCompensated:
		path = []Status{StatusCompensating, StatusFailed}
	}
	st := snap.State.Status
	for _, next := range path {
		if err := st.check(next); err != nil {
			s.log.LogAttrs(context.Background(), slog.LevelError, "orderflow: refused status transition",
				slog.String("saga_id", snap.ID), slog.Any("error", err))
			break
		}
		st = next
	}
	return st
}

// notFound turns the engine's not-found error into orderflow's.
func (s *System) notFound(orderID string, err error) error {
	if errors.Is(err, saga.ErrNotFound) || errors.Is(err, saga.ErrInvalidArgument) {
		return fmt.Errorf("%w: %q", ErrNotFound, orderID)
	}
	return err
}

// Wait waits until the order has settled and returns its status: it
// completed or failed, or a compensation gave up and the order is stuck
// (Stuck set, status compensating) until Retry. It returns ctx's error if
// ctx ends first, an error wrapping ErrNotFound for an unknown order, and
// saga.ErrStopped if the System shuts down first.
func (s *System) Wait(ctx context.Context, orderID string) (OrderStatus, error) {
	w, err := s.Subscribe(ctx, orderID)
	if err != nil {
		return OrderStatus{}, err
	}
	settled := false
	for e := range w.Events() {
		settled = e.settles()
	}
	w.Close()
	switch {
	case settled:
		return s.GetStatus(ctx, orderID)
	case ctx.Err() != nil:
		return OrderStatus{}, ctx.Err()
	}
	return OrderStatus{}, saga.ErrStopped
}

// Retry resumes the compensation of a stuck order (see
// saga.Coordinator.Retry).
func (s *System) Retry(ctx context.Context, orderID string) error {
	return s.notFound(orderID, s.coord.Retry(ctx, orderID))
}

// Health is the System's health: the engine's, and each service's.
type Health struct {
	saga.Health
	// Services reports each downstream service by name: "payment",
	// "inventory", "shipping".
	Services map[string]ServiceHealth `json:"services"`
}

// ServiceHealth is the health of one downstream service.
type ServiceHealth struct {
	// Breaker is the state of the service's circuit breaker.
	Breaker saga.BreakerState `json:"breaker"`
	// Error is the service's Ping error, if it implements Pinger and its
	// Ping failed.
	Error string `json:"error,omitempty"`
}

// Health reports the engine's health and each service's: its breaker, and
// its Ping if it has one. A service that fails its Ping makes a serving
// System degraded.
func (s *System) Health(ctx context.Context) Health {
	h := Health{Health: s.coord.Health(ctx), Services: make(map[string]ServiceHealth, 3)}
	for _, svc := range []struct {
		name string
		impl any
	}{{"payment", s.payment}, {"inventory", s.inventory}, {"shipping", s.shipping}} {
		sh := ServiceHealth{Breaker: h.Breakers[svc.name]}
		if p, ok := svc.impl.(Pinger); ok {
			if err := p.Ping(ctx); err != nil {
				sh.Error = err.Error()
				h.Reasons = append(h.Reasons, svc.name+": "+err.Error())
				if h.State == saga.HealthHealthy {
					h.State = saga.HealthDegraded
				}
			}
		}
		h.Services[svc.name] = sh
	}
	return h
}
