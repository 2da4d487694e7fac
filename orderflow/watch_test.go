package orderflow_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/orderflow"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// collect reads a watch until it closes.
func collect(t *testing.T, w *orderflow.Watch) []orderflow.OrderEvent {
	t.Helper()
	var got []orderflow.OrderEvent
	ctx, cancel := context.WithTimeout(context.Background(), sagatest.WaitTimeout)
	defer cancel()
	for {
		select {
		case e, open := <-w.Events():
			if !open {
				return got
			}
			got = append(got, e)
		case <-ctx.Done():
			t.Fatalf("watch did not end; got %d events", len(got))
		}
	}
}

func types(events []orderflow.OrderEvent) []orderflow.EventType {
	out := make([]orderflow.EventType, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

func TestSubscribeStreamsLiveEventsAndEnds(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.payment.Inject(orderflow.Fault{Op: "charge", Times: 1, Err: orderflow.ErrUnavailable})
	req := laptop("ada@example.com")
	req.OrderID = "order-1"
	id := f.place(req)
	// Subscribe while the order waits for its payment retry: what happened
	// so far comes first, then the rest live.
	seq := sagatest.WaitEvent(t, f.sys.Coordinator(), id, saga.EventRetryScheduled, 0).Seq
	w, err := f.sys.Subscribe(context.Background(), id)
	require.NoError(t, err)
	defer w.Close()
	f.fireRetry(id, seq-1)

	got := collect(t, w)
	all, err := f.sys.GetEvents(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, types(all), types(got), "the stream tells the same history as GetEvents")
	assert.Equal(t, []orderflow.EventType{
		orderflow.EventOrderCreated, orderflow.EventOrderValidated, orderflow.EventPaymentProcessed,
		orderflow.EventInventoryReserved, orderflow.EventOrderShipped, orderflow.EventOrderCompleted,
	}, types(got))
	for i := 1; i < len(got); i++ {
		assert.Greater(t, got[i].Seq, got[i-1].Seq, "in order, no repeats")
	}
	assert.True(t, got[len(got)-1].Processed, "the last event ends the order")
}

func TestSubscribeToEndedOrderReplaysAndCloses(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.shipping.FailOrder("order-1", saga.Permanent(errNoCourier))
	req := laptop("ada@example.com")
	req.OrderID = "order-1"
	f.wait(f.place(req))

	w, err := f.sys.Subscribe(context.Background(), "order-1")
	require.NoError(t, err)
	got := collect(t, w)
	w.Close() // after the end: a no-op
	all, err := f.sys.GetEvents(context.Background(), "order-1")
	require.NoError(t, err)
	assert.Equal(t, all, got)
}

func TestSubscribeStopsOnCloseAndOnShutdown(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.shipping.Hang()
	id := f.place(laptop("ada@example.com"))

	w, err := f.sys.Subscribe(context.Background(), id)
	require.NoError(t, err)
	first := <-w.Events()
	assert.Equal(t, orderflow.EventOrderCreated, first.Type)
	w.Close()
	w.Close()
	for range w.Events() { // drained and closed
	}

	ctx, cancel := context.WithCancel(context.Background())
	w2, err := f.sys.Subscribe(ctx, id)
	require.NoError(t, err)
	cancel()
	collect(t, w2) // ends with its context
	w2.Close()

	w3, err := f.sys.Subscribe(context.Background(), id)
	require.NoError(t, err)
	defer w3.Close()
	stop, cancelStop := context.WithCancel(context.Background())
	cancelStop()
	_ = f.sys.Shutdown(stop)
	collect(t, w3) // ends when the System shuts down
}

func TestHealthReportsServices(t *testing.T) {
	t.Parallel()
	f := setup(t)
	h := f.sys.Health(context.Background())
	assert.Equal(t, saga.HealthHealthy, h.State)
	require.Len(t, h.Services, 3)
	for _, name := range []string{"payment", "inventory", "shipping"} {
		assert.Equal(t, saga.BreakerClosed, h.Services[name].Breaker, name)
		assert.Empty(t, h.Services[name].Error, name)
	}

	remove := f.inventory.FailAlways(nil)
	h = f.sys.Health(context.Background())
	assert.Equal(t, saga.HealthDegraded, h.State)
	assert.Contains(t, h.Services["inventory"].Error, orderflow.ErrUnavailable.Error())
	assert.Contains(t, h.Reasons, "inventory: "+orderflow.ErrUnavailable.Error())
	remove()
	assert.Equal(t, saga.HealthHealthy, f.sys.Health(context.Background()).State)
}

func TestSubscribeReaderThatFallsBehindMissesNothing(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.shipping.Inject(orderflow.Fault{Op: "ship", Delay: 5 * time.Second})
	req := laptop("ada@example.com")
	req.OrderID = "order-1"
	id := f.place(req)
	seq := sagatest.WaitEvent(t, f.sys.Coordinator(), id, saga.EventStepSucceeded, 0).Seq
	seq = sagatest.WaitEvent(t, f.sys.Coordinator(), id, saga.EventStepSucceeded, seq).Seq
	sagatest.WaitEvent(t, f.sys.Coordinator(), id, saga.EventStepSucceeded, seq) // shipping is sleeping
	ctx, cancel := context.WithTimeout(context.Background(), sagatest.WaitTimeout)
	defer cancel()
	require.NoError(t, f.clock.BlockUntil(ctx, 1))

	w, err := f.sys.Subscribe(context.Background(), id)
	require.NoError(t, err)
	defer w.Close()
	// Nobody reads while the engine appends far more events than the
	// subscription buffers: it drops some, and the stream reads them back.
	for i := range 300 {
		require.NoError(t, f.sys.Coordinator().Signal(context.Background(), id, "note", nil, "n"+strconv.Itoa(i)))
	}
	f.clock.Advance(5 * time.Second)

	got := collect(t, w)
	all, err := f.sys.GetEvents(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, types(all), types(got))
	for i := 1; i < len(got); i++ {
		assert.Greater(t, got[i].Seq, got[i-1].Seq, "in order, no repeats")
	}
	assert.Equal(t, orderflow.EventOrderCompleted, got[len(got)-1].Type)
}
