package saga_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

func TestHappyPath(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{})
	start := h.Clock.Now()
	id := h.Start(order{Amount: 42})

	snap := h.WaitStatus(id, saga.StatusCompleted, saga.StatusCompensated, saga.StatusStuck)
	assert.Equal(t, saga.StatusCompleted, snap.Status)
	assert.Equal(t, []string{"validate", "payment", "inventory", "shipping"}, snap.State.Trail)
	assert.Equal(t, 42, snap.State.Amount)
	assert.Equal(t, id, snap.ID)
	assert.Equal(t, "order", snap.Definition)
	assert.Equal(t, 1, snap.Version)
	assert.Empty(t, snap.LastError)
	assert.Empty(t, snap.Step)
	assert.True(t, snap.Created.Equal(start))

	events := logOf(t, h, id)
	requireConsistent(t, id, events)
	assert.Equal(t, []string{
		"saga_started",
		"step_started validate #1", "step_succeeded validate #1",
		"step_started payment #1", "step_succeeded payment #1",
		"step_started inventory #1", "step_succeeded inventory #1",
		"step_started shipping #1", "step_succeeded shipping #1",
		"saga_completed",
	}, kinds(events))
	assert.Equal(t, snap.Seq, events[len(events)-1].Seq)

	calls := s.callsOf("payment")
	require.Len(t, calls, 1)
	assert.Equal(t, saga.StepInfo{SagaID: id, Step: "payment", Attempt: 1, IdempotencyKey: id + "/payment"}, calls[0].info)
	assert.Equal(t, []string{"validate", "payment", "inventory", "shipping"}, s.names())
}

func TestStartBeforeStartupAndAfterShutdown(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	c, err := saga.New(fourSteps(s), saga.Config{})
	require.NoError(t, err)
	_, err = c.Start(context.Background(), order{})
	assert.ErrorIs(t, err, saga.ErrNotStarted)

	require.NoError(t, c.Startup(context.Background()))
	assert.ErrorIs(t, c.Startup(context.Background()), saga.ErrInvalidArgument, "second Startup")
	require.NoError(t, c.Shutdown(context.Background()))
	_, err = c.Start(context.Background(), order{})
	assert.ErrorIs(t, err, saga.ErrStopped)
	assert.NoError(t, c.Shutdown(context.Background()), "second Shutdown does nothing")
	assert.ErrorIs(t, c.Startup(context.Background()), saga.ErrStopped)
}
