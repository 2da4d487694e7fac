package orderflow_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/journal"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// openDir starts a System that keeps everything in dir.
func openDir(t *testing.T, dir string, clk *clock.Fake) *orderflow.System {
	t.Helper()
	sys, err := orderflow.New(orderflow.Config{
		Dir: dir,
		Engine: saga.Config{
			Clock:  clk,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Rand:   func() float64 { return 0.5 },
		},
	})
	require.NoError(t, err)
	require.NoError(t, sys.Startup(context.Background()))
	return sys
}

func TestRestartResumesOrdersWithoutApplyingAnythingTwice(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewFake(time.Time{})
	sys := openDir(t, dir, clk)
	require.NoError(t, sys.Payment().(*orderflow.PaymentService).SetCreditLimit("ada@example.com", 1_000_000))
	sys.Shipping().(*orderflow.ShippingService).Hang()

	var ids []string
	for i := range 5 {
		req := laptop("ada@example.com")
		req.OrderID = fmt.Sprintf("order-%d", i)
		r, err := sys.ProcessOrder(context.Background(), req)
		require.NoError(t, err)
		ids = append(ids, r.OrderID)
	}
	for _, id := range ids { // each one hangs at shipping
		seq := sagatest.WaitEvent(t, sys.Coordinator(), id, saga.EventStepSucceeded, 0).Seq
		seq = sagatest.WaitEvent(t, sys.Coordinator(), id, saga.EventStepSucceeded, seq).Seq
		sagatest.WaitEvent(t, sys.Coordinator(), id, saga.EventStepSucceeded, seq)
	}
	stop, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, sys.Shutdown(stop), "a durable store leaves unfinished orders to the next Startup")

	// A new System on the directory resumes the five orders, and its
	// services remember the first one's charges and reservations.
	sys = openDir(t, dir, clk)
	defer sys.Shutdown(context.Background())
	assert.Equal(t, 5, sys.Health(context.Background()).Recovered)
	orders := map[string]orderflow.OrderStatus{}
	for _, id := range ids {
		st, err := sys.Wait(context.Background(), id)
		require.NoError(t, err)
		assert.Equal(t, orderflow.StatusCompleted, st.Status, id)
		orders[id] = st
	}
	payment := sys.Payment().(*orderflow.PaymentService)
	assert.Len(t, payment.Charges(), 5, "charged once each, across the restart")
	_, used := payment.Credit("ada@example.com")
	assert.Equal(t, orderflow.Money(5*99999), used)
	assert.Len(t, sys.Inventory().(*orderflow.InventoryService).Reservations(), 5)
	assert.Len(t, sys.Shipping().(*orderflow.ShippingService).Shipments(), 5)
	limit, _ := payment.Credit("ada@example.com")
	assert.Equal(t, orderflow.Money(1_000_000), limit, "the credit limit survived")
}

func TestOneSystemPerDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewFake(time.Time{})
	sys := openDir(t, dir, clk)
	_, err := orderflow.New(orderflow.Config{Dir: dir})
	assert.ErrorIs(t, err, journal.ErrLocked)
	require.NoError(t, sys.Shutdown(context.Background()))
	sys = openDir(t, dir, clk)
	require.NoError(t, sys.Shutdown(context.Background()))
}
