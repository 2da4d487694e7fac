package saga_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

func TestDuplicateStartKeepsOneInstance(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{})
	ctx := context.Background()
	id, err := h.Coordinator.Start(ctx, order{Amount: 1}, saga.WithID("order-1"))
	require.NoError(t, err)
	assert.Equal(t, "order-1", id)

	_, err = h.Coordinator.Start(ctx, order{Amount: 2}, saga.WithID("order-1"))
	assert.ErrorIs(t, err, saga.ErrDuplicate, "while running")
	h.WaitStatus(id, saga.StatusCompleted)
	_, err = h.Coordinator.Start(ctx, order{Amount: 3}, saga.WithID("order-1"))
	assert.ErrorIs(t, err, saga.ErrDuplicate, "after it ended")

	snap, err := h.Get(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, 1, snap.State.Amount)
	assert.Len(t, s.callsOf("validate"), 1)
}

func TestConcurrentDuplicateStartsCreateOne(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{})
	var wg sync.WaitGroup
	var ok, dup atomic.Int32
	for range 32 {
		wg.Go(func() {
			_, err := h.Coordinator.Start(context.Background(), order{}, saga.WithID("same"))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, saga.ErrDuplicate):
				dup.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int32(1), ok.Load())
	assert.Equal(t, int32(31), dup.Load())
	h.WaitStatus("same", saga.StatusCompleted)
	assert.Len(t, s.callsOf("shipping"), 1)
}

func TestStartRejectsBadInput(t *testing.T) {
	t.Parallel()
	type bad struct{ C chan int }
	def, err := saga.NewDefinition("bad", []saga.Step[bad]{{Name: "a", Action: func(context.Context, *bad) error { return nil }}})
	require.NoError(t, err)
	h := newHarness(t, def, saga.Config{})
	_, err = h.Coordinator.Start(context.Background(), bad{C: make(chan int)})
	assert.ErrorIs(t, err, saga.ErrInvalidArgument, "state must encode")
	_, err = h.Coordinator.Start(context.Background(), bad{}, saga.WithID(""))
	assert.ErrorIs(t, err, saga.ErrInvalidArgument, "empty ID")
	assert.Zero(t, h.Health(context.Background()).InFlight)
	unfinished, err := h.Store.Unfinished(context.Background(), "bad")
	require.NoError(t, err)
	assert.Empty(t, unfinished, "nothing created")
}

func TestOverloadIsRefused(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{MaxInFlight: 2})
	s.blockOn("payment")
	a, b := h.Start(order{}), h.Start(order{})
	_, err := h.Coordinator.Start(context.Background(), order{}, saga.WithID("third"))
	assert.ErrorIs(t, err, saga.ErrOverloaded)
	_, err = h.Get(context.Background(), "third")
	assert.ErrorIs(t, err, saga.ErrNotFound, "a refused start creates nothing")

	health := h.Health(context.Background())
	assert.Equal(t, 2, health.InFlight)
	assert.Equal(t, saga.HealthDegraded, health.State, "at capacity")

	// When an instance ends, its slot is free again.
	h.WaitEvent(a, saga.EventStepStarted, 3)
	h.WaitEvent(b, saga.EventStepStarted, 3)
	h.AdvanceWhenArmed(2, time.Second) // payment times out, both compensate
	h.WaitStatus(a, saga.StatusCompensated)
	h.WaitStatus(b, saga.StatusCompensated)
	_, err = h.Coordinator.Start(context.Background(), order{}, saga.WithID("third"))
	assert.NoError(t, err)
}

func TestStartCanWaitForCapacity(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{MaxInFlight: 1, WaitForCapacity: true})
	s.blockOn("payment")
	first := h.Start(order{})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := h.Coordinator.Start(ctx, order{})
	assert.ErrorIs(t, err, saga.ErrOverloaded)
	assert.ErrorIs(t, err, context.Canceled)

	started := make(chan error, 1)
	go func() {
		_, err := h.Coordinator.Start(context.Background(), order{}, saga.WithID("waiter"))
		started <- err
	}()
	h.WaitEvent(first, saga.EventStepStarted, 3)
	h.AdvanceWhenArmed(1, time.Second) // frees the slot
	require.NoError(t, receive(t, started))
	h.WaitEvent("waiter", saga.EventStepStarted, 3)
}
