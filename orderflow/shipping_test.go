package orderflow_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/orderflow"
)

func newShipping(clk clock.Clock) *orderflow.ShippingService {
	if clk == nil {
		clk = clock.NewFake(time.Time{})
	}
	return orderflow.NewShippingService(orderflow.ShippingConfig{Clock: clk})
}

func shipReq(key, address string) orderflow.ShipmentRequest {
	return orderflow.ShipmentRequest{
		Key:      key,
		OrderID:  "order-" + key,
		Customer: orderflow.Customer{Name: "Ada", Email: adaEmail, Address: address},
		Items:    []orderflow.Item{units("laptop", 1)},
	}
}

func TestShippingCreateIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newShipping(nil)

	tn, err := s.CreateShipment(ctx, shipReq("k1", "1 Main St"))
	require.NoError(t, err)
	require.NotEmpty(t, tn)
	again, err := s.CreateShipment(ctx, shipReq("k1", "1 Main St"))
	require.NoError(t, err)
	assert.Equal(t, tn, again)

	shipments := s.Shipments()
	require.Len(t, shipments, 1)
	assert.Equal(t, orderflow.Shipment{
		TrackingNumber: tn, Key: "k1", OrderID: "order-k1", Address: "1 Main St",
	}, shipments[0])

	other, err := s.CreateShipment(ctx, shipReq("k2", "2 High St"))
	require.NoError(t, err)
	assert.NotEqual(t, tn, other)
	assert.Len(t, s.Shipments(), 2)
}

func TestShippingCancel(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newShipping(nil)
	tn, err := s.CreateShipment(ctx, shipReq("k1", "1 Main St"))
	require.NoError(t, err)
	_, err = s.CreateShipment(ctx, shipReq("k2", "2 High St"))
	require.NoError(t, err)

	require.NoError(t, s.CancelShipment(ctx, undoReq("k1")))
	require.NoError(t, s.CancelShipment(ctx, undoReq("k1")), "canceling again is a no-op")

	byKey := shipmentsByKey(s)
	require.Len(t, byKey, 2)
	assert.True(t, byKey["k1"].Canceled)
	assert.False(t, byKey["k1"].Voided)
	assert.Equal(t, tn, byKey["k1"].TrackingNumber)
	assert.False(t, byKey["k2"].Canceled)

	// A canceled shipment cannot be booked again with its key.
	_, err = s.CreateShipment(ctx, shipReq("k1", "1 Main St"))
	require.ErrorIs(t, err, orderflow.ErrVoided)
	assert.Len(t, s.Shipments(), 2)
}

func TestShippingCancelBeforeCreateVoidsKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := newShipping(nil)

	require.NoError(t, s.CancelShipment(ctx, undoReq("k1")), "canceling what was never booked succeeds")
	shipments := s.Shipments()
	require.Len(t, shipments, 1)
	assert.Equal(t, orderflow.Shipment{Key: "k1", OrderID: "order-k1", Voided: true}, shipments[0])

	_, err := s.CreateShipment(ctx, shipReq("k1", "1 Main St"))
	require.ErrorIs(t, err, orderflow.ErrVoided)
	require.NoError(t, s.CancelShipment(ctx, undoReq("k1")))
	_, err = s.CreateShipment(ctx, shipReq("k1", "1 Main St"))
	require.ErrorIs(t, err, orderflow.ErrVoided)

	shipments = s.Shipments()
	require.Len(t, shipments, 1)
	assert.Empty(t, shipments[0].TrackingNumber, "nothing was booked")

	_, err = s.CreateShipment(ctx, shipReq("k2", "1 Main St"))
	require.NoError(t, err, "other keys are unaffected")
}

func TestShippingConcurrentCreates(t *testing.T) {
	t.Parallel()
	const callers = 200
	s := newShipping(nil)

	same := make([]string, callers)
	distinct := make([]string, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			tn, err := s.CreateShipment(t.Context(), shipReq("same", "1 Main St"))
			assert.NoError(t, err)
			same[i] = tn
		})
		wg.Go(func() {
			tn, err := s.CreateShipment(t.Context(), shipReq(fmt.Sprint("k", i), "1 Main St"))
			assert.NoError(t, err)
			distinct[i] = tn
		})
	}
	wg.Wait()

	for _, tn := range same {
		assert.Equal(t, same[0], tn)
	}
	seen := map[string]bool{same[0]: true}
	for _, tn := range distinct {
		assert.False(t, seen[tn], "tracking number %q given twice", tn)
		seen[tn] = true
	}
	assert.Len(t, s.Shipments(), callers+1)
}

// shipmentsByKey indexes s's shipments by idempotency key.
func shipmentsByKey(s *orderflow.ShippingService) map[string]orderflow.Shipment {
	out := make(map[string]orderflow.Shipment)
	for _, sh := range s.Shipments() {
		out[sh.Key] = sh
	}
	return out
}
