package orderflow_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// fixture is a started System on a fake clock with the bundled services,
// shut down when the test ends.
type fixture struct {
	t         testing.TB
	sys       *orderflow.System
	clock     *clock.Fake
	payment   *orderflow.PaymentService
	inventory *orderflow.InventoryService
	shipping  *orderflow.ShippingService
}

// setup builds a System with a fake clock, a discarding logger, no backoff
// jitter and the bundled services; mod may change the config before New.
func setup(t testing.TB, mod ...func(*orderflow.Config)) *fixture {
	t.Helper()
	clk := clock.NewFake(time.Time{})
	f := &fixture{
		t:         t,
		clock:     clk,
		payment:   orderflow.NewPaymentService(orderflow.PaymentConfig{Clock: clk}),
		inventory: orderflow.NewInventoryService(orderflow.InventoryConfig{Clock: clk}),
		shipping:  orderflow.NewShippingService(orderflow.ShippingConfig{Clock: clk}),
	}
	cfg := orderflow.Config{
		Engine: saga.Config{
			Clock:  clk,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Rand:   func() float64 { return 0.5 },
		},
		Payment:   f.payment,
		Inventory: f.inventory,
		Shipping:  f.shipping,
	}
	for _, m := range mod {
		m(&cfg)
	}
	sys, err := orderflow.New(cfg)
	require.NoError(t, err)
	require.NoError(t, sys.Startup(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // abandon what is still running: the test is over
		_ = sys.Shutdown(ctx)
	})
	f.sys = sys
	return f
}

// laptop is a valid request for one laptop at 999.99.
func laptop(email string) orderflow.OrderRequest {
	return orderflow.OrderRequest{
		Customer: orderflow.Customer{Name: "Ada Lovelace", Email: email, Address: "12 St James's Square, London"},
		Items:    []orderflow.Item{{Name: "laptop", Price: 99999, Quantity: 1}},
	}
}

// place submits req and fails the test if it is not accepted.
func (f *fixture) place(req orderflow.OrderRequest) string {
	f.t.Helper()
	r, err := f.sys.ProcessOrder(context.Background(), req)
	require.NoError(f.t, err)
	require.True(f.t, r.Success)
	return r.OrderID
}

// wait waits until the order has ended (completed or failed) and returns
// its status.
func (f *fixture) wait(id string) orderflow.OrderStatus {
	f.t.Helper()
	sagatest.WaitStatus(f.t, f.sys.Coordinator(), id, saga.StatusCompleted, saga.StatusCompensated)
	st, err := f.sys.GetStatus(context.Background(), id)
	require.NoError(f.t, err)
	return st
}

// history is an event as the tests compare it.
type history struct {
	Type         orderflow.EventType
	Success      bool
	Compensation bool
}

// events returns the order's events as histories, asserting that every
// event of an ended order is processed.
func (f *fixture) events(id string) []history {
	f.t.Helper()
	events, err := f.sys.GetEvents(context.Background(), id)
	require.NoError(f.t, err)
	out := make([]history, len(events))
	for i, e := range events {
		out[i] = history{e.Type, e.Success, e.Compensation}
		assert.True(f.t, e.Processed, "event %d (%s) of an ended order not processed", i, e.Type)
		assert.Equal(f.t, id, e.OrderID)
	}
	return out
}

func ok(t orderflow.EventType) history   { return history{t, true, false} }
func fail(t orderflow.EventType) history { return history{t, false, false} }
func undo(t orderflow.EventType) history { return history{t, true, true} }

// ledger checks the services' books against what the orders say: credit in
// use equals the totals of completed orders, units held equal their
// quantities, no charge, reservation or shipment is live without a
// completed order, and none was made twice.
func (f *fixture) ledger(orders map[string]orderflow.OrderStatus) {
	f.t.Helper()
	want := map[string]orderflow.Money{} // email → credit used
	held := map[string]int{}             // product → units
	completed := map[string]bool{}
	for id, st := range orders {
		if st.Status == orderflow.StatusCompleted {
			completed[id] = true
			want[st.Customer.Email] += st.Total
			for _, it := range st.Items {
				held[it.Name] += it.Quantity
			}
		}
	}
	for email, total := range want {
		_, used := f.payment.Credit(email)
		assert.Equal(f.t, total, used, "credit used by %s", email)
	}
	for name, units := range held {
		_, h := f.inventory.Stock(name)
		assert.Equal(f.t, units, h, "units of %s held", name)
	}
	live := func(kind, orderID string, active bool, seen map[string]int) {
		seen[orderID]++
		assert.LessOrEqual(f.t, seen[orderID], 1, "two %ss for order %s", kind, orderID)
		assert.Equal(f.t, completed[orderID], active, "%s of order %s live = %v, order completed = %v", kind, orderID, active, completed[orderID])
	}
	charges, reservations, shipments := map[string]int{}, map[string]int{}, map[string]int{}
	for _, c := range f.payment.Charges() {
		live("charge", c.OrderID, !c.Refunded && !c.Voided, charges)
	}
	for _, r := range f.inventory.Reservations() {
		live("reservation", r.OrderID, !r.Released && !r.Voided, reservations)
	}
	for _, s := range f.shipping.Shipments() {
		live("shipment", s.OrderID, !s.Canceled && !s.Voided, shipments)
	}
	for id := range completed {
		assert.Equal(f.t, 1, charges[id], "charges of completed order %s", id)
		assert.Equal(f.t, 1, reservations[id], "reservations of completed order %s", id)
		assert.Equal(f.t, 1, shipments[id], "shipments of completed order %s", id)
	}
}

// fireRetry waits for the order's next scheduled retry after sequence
// number after, moves the clock to it, and returns the event's sequence
// number.
func (f *fixture) fireRetry(id string, after uint64) uint64 {
	f.t.Helper()
	e := sagatest.WaitEvent(f.t, f.sys.Coordinator(), id, saga.EventRetryScheduled, after)
	f.clock.Advance(e.At.Sub(f.clock.Now()))
	return e.Seq
}

// timeOut waits for the next attempt of a step after sequence number after
// to start and arm its deadline, moves the clock past the deadline, and
// returns the start event's sequence number.
func (f *fixture) timeOut(id string, after uint64, d time.Duration) uint64 {
	f.t.Helper()
	e := sagatest.WaitEvent(f.t, f.sys.Coordinator(), id, saga.EventStepStarted, after)
	ctx, cancel := context.WithTimeout(context.Background(), sagatest.WaitTimeout)
	defer cancel()
	require.NoError(f.t, f.clock.BlockUntil(ctx, 1))
	f.clock.Advance(d)
	return e.Seq
}
