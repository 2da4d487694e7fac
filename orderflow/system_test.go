package orderflow_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
)

func TestGoodOrder(t *testing.T) {
	t.Parallel()
	f := setup(t)
	start := f.clock.Now()
	r, err := f.sys.ProcessOrder(context.Background(), laptop("ada@example.com"))
	require.NoError(t, err)
	assert.True(t, r.Success)
	assert.Equal(t, "order accepted", r.Message)
	assert.Equal(t, start, r.Timestamp)
	assert.Len(t, r.OrderID, 36, "a UUID")

	st := f.wait(r.OrderID)
	assert.Equal(t, orderflow.StatusCompleted, st.Status)
	assert.Equal(t, orderflow.Money(99999), st.Total)
	assert.Equal(t, "ada@example.com", st.Customer.Email)
	assert.Equal(t, []orderflow.Item{{Name: "laptop", Price: 99999, Quantity: 1}}, st.Items)
	assert.Equal(t, start, st.CreatedAt)
	assert.False(t, st.UpdatedAt.Before(st.CreatedAt))
	assert.NotEmpty(t, st.ChargeID)
	assert.NotEmpty(t, st.ReservationID)
	assert.NotEmpty(t, st.TrackingNumber)
	assert.Empty(t, st.Error)
	assert.False(t, st.Stuck)

	assert.Equal(t, []history{
		ok(orderflow.EventOrderCreated),
		ok(orderflow.EventOrderValidated),
		ok(orderflow.EventPaymentProcessed),
		ok(orderflow.EventInventoryReserved),
		ok(orderflow.EventOrderShipped),
		ok(orderflow.EventOrderCompleted),
	}, f.events(r.OrderID))

	events, err := f.sys.GetEvents(context.Background(), r.OrderID)
	require.NoError(t, err)
	services := make([]orderflow.Service, len(events))
	for i, e := range events {
		services[i] = e.Service
	}
	assert.Equal(t, []orderflow.Service{"ORDER", "ORDER", "PAYMENT", "INVENTORY", "SHIPPING", "ORDER"}, services)
	assert.Equal(t, st.ChargeID, events[2].Data["charge_id"])
	assert.Equal(t, orderflow.Money(99999), events[2].Data["amount"])
	assert.Equal(t, st.TrackingNumber, events[4].Data["tracking_number"])

	f.ledger(map[string]orderflow.OrderStatus{r.OrderID: st})
	_, used := f.payment.Credit("ada@example.com")
	assert.Equal(t, orderflow.Money(99999), used)
}

func TestProcessOrderRejectsBadInputAndCreatesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *orderflow.Config) {
		c.EnforceCatalog = true
		c.RequireRegisteredCustomers = true
	})
	f.inventory.AddProduct(orderflow.Product{Name: "laptop", Price: 99999, Stock: 5})
	f.payment.SetCreditLimit("ada@example.com", 500000)

	for _, tc := range []struct {
		name   string
		mutate func(*orderflow.OrderRequest)
		field  string
		is     error
	}{
		{"no items", func(r *orderflow.OrderRequest) { r.Items = nil }, "items", orderflow.ErrInvalidOrder},
		{"empty name", func(r *orderflow.OrderRequest) { r.Customer.Name = " " }, "customer.name", orderflow.ErrInvalidOrder},
		{"bad email", func(r *orderflow.OrderRequest) { r.Customer.Email = "ada-at-example" }, "customer.email", orderflow.ErrInvalidOrder},
		{"empty address", func(r *orderflow.OrderRequest) { r.Customer.Address = "" }, "customer.address", orderflow.ErrInvalidOrder},
		{"zero price", func(r *orderflow.OrderRequest) { r.Items[0].Price = 0 }, "items[0].price", orderflow.ErrInvalidOrder},
		{"negative quantity", func(r *orderflow.OrderRequest) { r.Items[0].Quantity = -1 }, "items[0].quantity", orderflow.ErrInvalidOrder},
		{"huge quantity", func(r *orderflow.OrderRequest) { r.Items[0].Quantity = orderflow.MaxQuantity + 1 }, "items[0].quantity", orderflow.ErrInvalidOrder},
		{"unknown product", func(r *orderflow.OrderRequest) { r.Items[0].Name = "toaster" }, "items[0].name", orderflow.ErrUnknownProduct},
		{"wrong price", func(r *orderflow.OrderRequest) { r.Items[0].Price = 100 }, "items[0].price", orderflow.ErrPriceMismatch},
		{"unknown customer", func(r *orderflow.OrderRequest) { r.Customer.Email = "bob@example.com" }, "customer.email", orderflow.ErrUnknownCustomer},
		{"blank order ID", func(r *orderflow.OrderRequest) { r.OrderID = "  " }, "order_id", orderflow.ErrInvalidOrder},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := laptop("ada@example.com")
			req.OrderID = "order-" + tc.name
			tc.mutate(&req)
			r, err := f.sys.ProcessOrder(context.Background(), req)
			require.Error(t, err)
			assert.False(t, r.Success)
			assert.ErrorIs(t, err, orderflow.ErrInvalidOrder)
			assert.ErrorIs(t, err, tc.is)
			var verr *orderflow.ValidationError
			require.ErrorAs(t, err, &verr)
			require.NotEmpty(t, verr.Problems)
			assert.Equal(t, tc.field, verr.Problems[0].Field)
			assert.Contains(t, err.Error(), tc.field)

			_, err = f.sys.GetStatus(context.Background(), req.OrderID)
			assert.ErrorIs(t, err, orderflow.ErrNotFound, "nothing created")
		})
	}
	assert.Empty(t, f.payment.Charges())
	assert.Empty(t, f.inventory.Reservations())
	h := f.sys.Health(context.Background())
	assert.Zero(t, h.InFlight+h.Completed+h.Compensated)
}

func TestIdempotentSubmission(t *testing.T) {
	t.Parallel()
	f := setup(t)
	req := laptop("ada@example.com")
	req.IdempotencyKey = "client-ref-1"
	first, err := f.sys.ProcessOrder(context.Background(), req)
	require.NoError(t, err)
	assert.False(t, first.Duplicate)

	again, err := f.sys.ProcessOrder(context.Background(), req)
	require.NoError(t, err)
	assert.True(t, again.Success)
	assert.True(t, again.Duplicate)
	assert.Equal(t, first.OrderID, again.OrderID)

	f.wait(first.OrderID)
	after, err := f.sys.ProcessOrder(context.Background(), req) // also once it has ended
	require.NoError(t, err)
	assert.Equal(t, first.OrderID, after.OrderID)
	assert.True(t, after.Duplicate)
	assert.Len(t, f.payment.Charges(), 1, "one order, one charge")

	other := req
	other.Items = []orderflow.Item{{Name: "mouse", Price: 2500, Quantity: 2}}
	_, err = f.sys.ProcessOrder(context.Background(), other)
	assert.ErrorIs(t, err, orderflow.ErrIdempotencyKeyReused)

	// A caller-supplied order ID behaves the same way.
	byID := laptop("bob@example.com")
	byID.OrderID = "order-42"
	r, err := f.sys.ProcessOrder(context.Background(), byID)
	require.NoError(t, err)
	assert.Equal(t, "order-42", r.OrderID)
	r, err = f.sys.ProcessOrder(context.Background(), byID)
	require.NoError(t, err)
	assert.True(t, r.Duplicate)
}

func TestGetStatusAndEventsOfUnknownOrder(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, id := range []string{"no-such-order", ""} {
		_, err := f.sys.GetStatus(context.Background(), id)
		assert.ErrorIs(t, err, orderflow.ErrNotFound, "%q", id)
		_, err = f.sys.GetEvents(context.Background(), id)
		assert.ErrorIs(t, err, orderflow.ErrNotFound, "%q", id)
		_, err = f.sys.Subscribe(context.Background(), id)
		assert.ErrorIs(t, err, orderflow.ErrNotFound, "%q", id)
	}
}

func TestLifecycleErrors(t *testing.T) {
	t.Parallel()
	sys, err := orderflow.New(orderflow.Config{})
	require.NoError(t, err)
	_, err = sys.ProcessOrder(context.Background(), laptop("ada@example.com"))
	assert.ErrorIs(t, err, saga.ErrNotStarted)
	assert.Equal(t, saga.HealthStarting, sys.Health(context.Background()).State)

	require.NoError(t, sys.Startup(context.Background()))
	assert.Equal(t, saga.HealthHealthy, sys.Health(context.Background()).State)
	require.NoError(t, sys.Shutdown(context.Background()))
	_, err = sys.ProcessOrder(context.Background(), laptop("ada@example.com"))
	assert.ErrorIs(t, err, saga.ErrStopped)
	assert.Equal(t, saga.HealthStopped, sys.Health(context.Background()).State)
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	type noCatalog struct{ orderflow.Inventory }
	_, err := orderflow.New(orderflow.Config{EnforceCatalog: true, Inventory: noCatalog{}})
	assert.ErrorIs(t, err, orderflow.ErrInvalidConfig)
	type noDirectory struct{ orderflow.PaymentGateway }
	_, err = orderflow.New(orderflow.Config{RequireRegisteredCustomers: true, Payment: noDirectory{}})
	assert.ErrorIs(t, err, orderflow.ErrInvalidConfig)
	_, err = orderflow.New(orderflow.Config{StepTimeout: -1})
	assert.ErrorIs(t, err, orderflow.ErrInvalidConfig)
	_, err = orderflow.New(orderflow.Config{Engine: saga.Config{Workers: -1}})
	assert.True(t, errors.Is(err, saga.ErrInvalidArgument))
}

func TestWait(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := f.place(laptop("ada@example.com"))
	st, err := f.sys.Wait(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, orderflow.StatusCompleted, st.Status)

	_, err = f.sys.Wait(context.Background(), "nope")
	assert.ErrorIs(t, err, orderflow.ErrNotFound)

	f.shipping.Hang()
	id = f.place(laptop("bob@example.com"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = f.sys.Wait(ctx, id)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestFinishedOrdersAreForgottenAfterRetention(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *orderflow.Config) { c.Retention = time.Hour })
	old := f.wait(f.place(laptop("ada@example.com")))
	f.clock.Advance(2 * time.Hour)
	recent := f.wait(f.place(laptop("bob@example.com"))) // its end sweeps the expired ones

	_, err := f.sys.GetStatus(context.Background(), old.OrderID)
	assert.ErrorIs(t, err, orderflow.ErrNotFound)
	_, err = f.sys.GetStatus(context.Background(), recent.OrderID)
	assert.NoError(t, err)

	_, err = orderflow.New(orderflow.Config{Retention: -time.Second})
	assert.ErrorIs(t, err, orderflow.ErrInvalidConfig)
}

func TestProcessOrderAtCapacityIsRefusedAndCreatesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t, func(c *orderflow.Config) { c.Engine.MaxInFlight = 1 })
	f.shipping.Hang()
	first := laptop("ada@example.com")
	first.OrderID = "order-1"
	f.place(first)

	second := laptop("bob@example.com")
	second.OrderID = "order-2"
	_, err := f.sys.ProcessOrder(context.Background(), second)
	assert.ErrorIs(t, err, saga.ErrOverloaded)
	_, err = f.sys.GetStatus(context.Background(), "order-2")
	assert.ErrorIs(t, err, orderflow.ErrNotFound, "nothing created")
}
