package saga_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

var errNoStock = errors.New("no stock")

func TestPermanentErrorCompensatesInReverseOrder(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{})
	s.failWith("shipping", saga.Permanent(errNoStock))
	id := h.Start(order{})

	snap := h.WaitStatus(id, saga.StatusCompensated, saga.StatusCompleted, saga.StatusStuck)
	require.Equal(t, saga.StatusCompensated, snap.Status)
	assert.Equal(t, "shipping", snap.Step)
	assert.Equal(t, errNoStock.Error(), snap.LastError)
	// The compensations record the state they leave.
	assert.Equal(t, []string{"validate", "payment", "inventory", "undo inventory", "undo payment"}, snap.State.Trail)

	events := logOf(t, h, id)
	requireConsistent(t, id, events)
	assert.Equal(t, []string{
		"saga_started",
		"step_started validate #1", "step_succeeded validate #1",
		"step_started payment #1", "step_succeeded payment #1",
		"step_started inventory #1", "step_succeeded inventory #1",
		"step_started shipping #1", "step_attempt_failed shipping #1",
		"step_failed shipping #1", "compensation_started inventory", // refused: shipping did nothing
		"step_compensated inventory #1", "step_compensated payment #1",
		"saga_compensated",
	}, kinds(events))
	assert.Len(t, s.callsOf("shipping"), 1, "a permanent error is not retried")
	for _, c := range s.callsOf("undo payment") {
		assert.True(t, c.info.Compensating)
		assert.Equal(t, id+"/payment", c.info.IdempotencyKey, "compensation shares the step's key")
	}
}

func TestFailureAtFirstStepHasNothingToUndo(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{})
	s.failWith("validate", saga.Permanent(errors.New("bad order")))
	id := h.Start(order{})
	snap := h.WaitStatus(id, saga.StatusCompensated, saga.StatusCompleted)
	assert.Equal(t, saga.StatusCompensated, snap.Status)
	assert.Equal(t, []string{
		"saga_started", "step_started validate #1", "step_attempt_failed validate #1",
		"step_failed validate #1", "compensation_started", "saga_compensated",
	}, kinds(logOf(t, h, id)))
}

func TestCompensationFailsTwiceThenSucceeds(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{})
	s.failWith("shipping", saga.Permanent(errNoStock))
	s.failWith("undo payment", errFlaky, errFlaky)
	t0 := h.Clock.Now()
	id := h.Start(order{})

	e := h.WaitEvent(id, saga.EventRetryScheduled, 0)
	assert.True(t, e.At.Equal(t0.Add(100*time.Millisecond)))
	h.AdvanceWhenArmed(1, 100*time.Millisecond)
	e = h.WaitEvent(id, saga.EventRetryScheduled, e.Seq)
	assert.True(t, e.At.Equal(t0.Add(300*time.Millisecond)))
	h.AdvanceWhenArmed(1, 200*time.Millisecond)

	snap := h.WaitStatus(id, saga.StatusCompensated, saga.StatusStuck)
	assert.Equal(t, saga.StatusCompensated, snap.Status)
	calls := s.callsOf("undo payment")
	require.Len(t, calls, 3)
	for i, c := range calls {
		assert.Equal(t, i+1, c.info.Attempt)
	}
	assert.Equal(t, []string{
		"step_compensated inventory #1",
		"compensation_attempt_failed payment #1", "retry_scheduled payment #2",
		"compensation_attempt_failed payment #2", "retry_scheduled payment #3",
		"step_compensated payment #3", "saga_compensated",
	}, kinds(logOf(t, h, id))[11:])
}

func TestCompensationExhaustedIsStuckUntilRetried(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	undoOnce := saga.RetryPolicy{MaxAttempts: 2, InitialBackoff: time.Second, Jitter: -1}
	def, err := saga.NewDefinition("stuck", []saga.Step[order]{
		{Name: "payment", Action: s.action("payment"), Compensate: s.action("undo payment"), CompensationRetry: undoOnce},
		{Name: "shipping", Action: s.action("shipping")},
	})
	require.NoError(t, err)
	h := newHarness(t, def, saga.Config{})
	s.clock = h.Clock
	s.failWith("shipping", saga.Permanent(errNoStock))
	s.failWith("undo payment", errFlaky, errFlaky)
	id := h.Start(order{})

	h.WaitEvent(id, saga.EventRetryScheduled, 0)
	h.AdvanceWhenArmed(1, time.Second)
	snap := h.WaitStatus(id, saga.StatusStuck, saga.StatusCompensated)
	require.Equal(t, saga.StatusStuck, snap.Status)
	assert.Equal(t, "payment", snap.Step)
	assert.Equal(t, errFlaky.Error(), snap.LastError)

	health := h.Health(context.Background())
	assert.Equal(t, saga.HealthDegraded, health.State)
	assert.Equal(t, 1, health.Stuck)
	assert.Equal(t, []string{id}, health.StuckIDs)
	assert.Equal(t, 0, health.InFlight)

	require.NoError(t, h.Retry(context.Background(), id))
	snap = h.WaitStatus(id, saga.StatusCompensated, saga.StatusStuck)
	assert.Equal(t, saga.StatusCompensated, snap.Status)
	assert.Len(t, s.callsOf("undo payment"), 3)
	assert.Equal(t, []string{
		"saga_started",
		"step_started payment #1", "step_succeeded payment #1",
		"step_started shipping #1", "step_attempt_failed shipping #1",
		"step_failed shipping #1", "compensation_started payment",
		"compensation_attempt_failed payment #1", "retry_scheduled payment #2",
		"compensation_attempt_failed payment #2", "saga_stuck payment",
		"compensation_started",
		"step_compensated payment #1",
		"saga_compensated",
	}, kinds(logOf(t, h, id)))

	health = h.Health(context.Background())
	assert.Equal(t, saga.HealthHealthy, health.State)
	assert.Zero(t, health.Stuck)
	assert.Equal(t, 1, health.Compensated)
}

func TestRetryRefusesWhatIsNotStuck(t *testing.T) {
	t.Parallel()
	h, _ := setup(t, saga.Config{})
	id := h.Start(order{})
	h.WaitStatus(id, saga.StatusCompleted)
	assert.ErrorIs(t, h.Retry(context.Background(), id), saga.ErrNotStuck)
	assert.ErrorIs(t, h.Retry(context.Background(), "nope"), saga.ErrNotFound)
	assert.ErrorIs(t, h.Retry(context.Background(), ""), saga.ErrInvalidArgument)
}
