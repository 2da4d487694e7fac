package orderflow

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

func TestStepsRefuseTransitionsOutsideTheTable(t *testing.T) {
	t.Parallel()
	payment := NewPaymentService(PaymentConfig{})
	inventory := NewInventoryService(InventoryConfig{})
	shipping := NewShippingService(ShippingConfig{})
	s, err := New(Config{Payment: payment, Inventory: inventory, Shipping: shipping})
	require.NoError(t, err)
	st := steps{s}
	ctx := context.Background()

	for _, tc := range []struct {
		name string
		run  func(context.Context, *Order) error
		from Status
	}{
		{"validate a validated order", st.validate, StatusValidated},
		{"charge a pending order", st.charge, StatusPending},
		{"charge a charged order", st.charge, StatusPaymentProcessed},
		{"reserve before payment", st.reserve, StatusValidated},
		{"ship before reserving", st.ship, StatusPaymentProcessed},
		{"ship a failed order", st.ship, StatusFailed},
	} {
		o := Order{ID: "o1", Status: tc.from, Total: 100, Items: []Item{{Name: "pen", Price: 100, Quantity: 1}},
			Customer: Customer{Name: "Ada", Email: "ada@example.com", Address: "1 Main St"}}
		err := tc.run(ctx, &o)
		assert.ErrorIs(t, err, ErrInvalidTransition, tc.name)
		assert.True(t, saga.IsPermanent(err), "%s: not retried", tc.name)
		var te *TransitionError
		require.ErrorAs(t, err, &te, tc.name)
		assert.Equal(t, tc.from, te.From, tc.name)
		assert.Equal(t, tc.from, o.Status, "%s: status unchanged", tc.name)
	}
	assert.Empty(t, payment.Charges(), "nothing applied")
	assert.Empty(t, inventory.Reservations(), "nothing applied")
	assert.Empty(t, shipping.Shipments(), "nothing applied")
}

func TestStatusViewRefusesAndLogsImpossibleMoves(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	s, err := New(Config{Engine: saga.Config{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	require.NoError(t, err)

	snap := saga.Snapshot[Order]{ID: "o1", Status: saga.StatusCompleted, State: Order{Status: StatusPaymentProcessed}}
	assert.Equal(t, StatusPaymentProcessed, s.status(snap), "completed needs shipped first")
	assert.Contains(t, logs.String(), "refused status transition")
	assert.Contains(t, logs.String(), "saga_id=o1")

	logs.Reset()
	snap = saga.Snapshot[Order]{ID: "o2", Status: saga.StatusCompensated, State: Order{Status: StatusInventoryReserved}}
	assert.Equal(t, StatusFailed, s.status(snap))
	snap.State.Status = StatusShipped
	snap.Status = saga.StatusCompleted
	assert.Equal(t, StatusCompleted, s.status(snap))
	assert.Empty(t, logs.String())
}
