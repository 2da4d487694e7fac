package saga_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

var errFlaky = errors.New("flaky downstream")

func TestRetryThenSuccessWaitsExactBackoffs(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{})
	s.failWith("payment", errFlaky, errFlaky)
	t0 := h.Clock.Now()
	id := h.Start(order{})

	first := h.WaitEvent(id, saga.EventRetryScheduled, 0)
	assert.Equal(t, 2, first.Attempt)
	assert.True(t, first.At.Equal(t0.Add(100*time.Millisecond)), "first retry at %v", first.At)
	h.AdvanceWhenArmed(1, 100*time.Millisecond)

	second := h.WaitEvent(id, saga.EventRetryScheduled, first.Seq)
	assert.Equal(t, 3, second.Attempt)
	assert.True(t, second.At.Equal(t0.Add(300*time.Millisecond)), "second retry at %v", second.At)
	h.AdvanceWhenArmed(1, 200*time.Millisecond)

	snap := h.WaitStatus(id, saga.StatusCompleted, saga.StatusCompensated)
	require.Equal(t, saga.StatusCompleted, snap.Status)

	calls := s.callsOf("payment")
	require.Len(t, calls, 3)
	for i, want := range []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond} {
		assert.Equal(t, want, calls[i].at.Sub(t0), "attempt %d ran at", i+1)
		assert.Equal(t, i+1, calls[i].info.Attempt)
		assert.Equal(t, id+"/payment", calls[i].info.IdempotencyKey, "key is stable across retries")
	}
	assert.Equal(t, []string{
		"saga_started",
		"step_started validate #1", "step_succeeded validate #1",
		"step_started payment #1", "step_attempt_failed payment #1", "retry_scheduled payment #2",
		"step_started payment #2", "step_attempt_failed payment #2", "retry_scheduled payment #3",
		"step_started payment #3", "step_succeeded payment #3",
		"step_started inventory #1", "step_succeeded inventory #1",
		"step_started shipping #1", "step_succeeded shipping #1",
		"saga_completed",
	}, kinds(logOf(t, h, id)))
}

func TestJitterComesFromTheRandomSource(t *testing.T) {
	t.Parallel()
	// With Jitter 0.5 and a source that returns 0, the wait is half the
	// nominal backoff.
	s := newScript(t)
	jittery := saga.RetryPolicy{InitialBackoff: 100 * time.Millisecond, Multiplier: 2, Jitter: 0.5}
	def, err := saga.NewDefinition("jitter", []saga.Step[order]{
		{Name: "payment", Action: s.action("payment"), Retry: jittery},
	})
	require.NoError(t, err)
	h := newHarness(t, def, saga.Config{Rand: func() float64 { return 0 }})
	s.failWith("payment", errFlaky)
	t0 := h.Clock.Now()
	id := h.Start(order{})
	e := h.WaitEvent(id, saga.EventRetryScheduled, 0)
	assert.Equal(t, 50*time.Millisecond, e.At.Sub(t0))
}

func TestRetriesExhaustedCompensate(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{})
	s.failWith("inventory", errFlaky, errFlaky, errFlaky)
	id := h.Start(order{})
	e := h.WaitEvent(id, saga.EventRetryScheduled, 0)
	h.AdvanceWhenArmed(1, 100*time.Millisecond)
	e = h.WaitEvent(id, saga.EventRetryScheduled, e.Seq)
	h.AdvanceWhenArmed(1, 200*time.Millisecond)

	snap := h.WaitStatus(id, saga.StatusCompensated, saga.StatusCompleted)
	assert.Equal(t, saga.StatusCompensated, snap.Status)
	assert.Equal(t, "inventory", snap.Step, "the step the saga gave up on")
	assert.Contains(t, snap.LastError, errFlaky.Error())
	assert.Len(t, s.callsOf("inventory"), 3, "MaxAttempts defaults to 3")
	// A transient error leaves unknown whether inventory took effect: its
	// own undo runs first. A permanent one would skip it (see
	// TestPermanentErrorCompensatesInReverseOrder).
	assert.Equal(t, []string{"validate", "payment", "inventory", "inventory", "inventory", "undo inventory", "undo payment"}, s.names())
	events := logOf(t, h, id)
	requireConsistent(t, id, events)
	assert.Contains(t, kinds(events), "compensation_started inventory")
}

// An attempt works on a copy of the state. What a failed attempt changed,
// of an action or of a compensation, is gone when it is tried again; and
// while an attempt runs, the instance shows the state as last recorded.
func TestAttemptsWorkOnACopyOfTheState(t *testing.T) {
	t.Parallel()
	var charges, refunds atomic.Int32
	running, release := make(chan struct{}), make(chan struct{})
	def, err := saga.NewDefinition("copy", []saga.Step[order]{{
		Name: "charge", Retry: noJitter, CompensationRetry: noJitter,
		Action: func(_ context.Context, st *order) error {
			st.Amount += 10
			st.Trail = append(slices.Clip(st.Trail), "charge")
			if charges.Add(1) == 1 {
				return errFlaky
			}
			running <- struct{}{}
			<-release
			return nil
		},
		Compensate: func(_ context.Context, st *order) error {
			st.Amount -= 3
			st.Trail = append(slices.Clip(st.Trail), "refund")
			if refunds.Add(1) == 1 {
				return errFlaky
			}
			return nil
		},
	}, {
		Name: "ship", Action: func(context.Context, *order) error { return saga.Permanent(errFlaky) },
	}})
	require.NoError(t, err)
	h := newHarness(t, def, saga.Config{})
	id := h.Start(order{Amount: 1})
	h.WaitEvent(id, saga.EventRetryScheduled, 0)
	h.AdvanceWhenArmed(1, 100*time.Millisecond)
	receive(t, running)
	snap, err := h.Get(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, order{Amount: 1}, snap.State, "while the second attempt runs")
	close(release)

	e := h.WaitEvent(id, saga.EventRetryScheduled, h.WaitEvent(id, saga.EventCompensationStarted, 0).Seq)
	h.AdvanceWhenArmed(1, e.At.Sub(h.Clock.Now()))
	snap = h.WaitStatus(id, saga.StatusCompensated, saga.StatusStuck)
	assert.Equal(t, saga.StatusCompensated, snap.Status)
	assert.Equal(t, order{Amount: 8, Trail: []string{"charge", "refund"}}, snap.State)
}
