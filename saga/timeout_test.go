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

func TestStepTimeoutFailsTheAttempt(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	hang := func(ctx context.Context, _ *order) error {
		<-ctx.Done()
		return ctx.Err()
	}
	def, err := saga.NewDefinition("timeout", []saga.Step[order]{
		{Name: "payment", Action: s.action("payment"), Compensate: s.action("undo payment")},
		{Name: "shipping", Action: hang, Timeout: 5 * time.Second, Retry: saga.RetryPolicy{MaxAttempts: 1}},
	})
	require.NoError(t, err)
	h := newHarness(t, def, saga.Config{})
	id := h.Start(order{})

	h.WaitEvent(id, saga.EventStepStarted, 3) // shipping, running
	h.AdvanceWhenArmed(1, 5*time.Second-time.Nanosecond)
	_, err = h.Get(context.Background(), id)
	require.NoError(t, err)
	snap, err := h.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, saga.StatusRunning, snap.Status, "not timed out a nanosecond early")

	h.Clock.Advance(time.Nanosecond)
	snap = h.WaitStatus(id, saga.StatusCompensated, saga.StatusCompleted)
	assert.Equal(t, saga.StatusCompensated, snap.Status)
	assert.Contains(t, snap.LastError, saga.ErrStepTimeout.Error())
	assert.Contains(t, snap.LastError, context.DeadlineExceeded.Error())
	assert.Equal(t, []string{"payment", "undo payment"}, s.names())
}

func TestAttemptContextCarriesTheStepTimeout(t *testing.T) {
	t.Parallel()
	var got time.Time
	def, err := saga.NewDefinition("deadline", []saga.Step[order]{{
		Name:    "payment",
		Timeout: 7 * time.Second,
		Action: func(ctx context.Context, _ *order) error {
			got, _ = ctx.Deadline()
			return nil
		},
	}})
	require.NoError(t, err)
	h := newHarness(t, def, saga.Config{})
	t0 := h.Clock.Now()
	h.WaitStatus(h.Start(order{}), saga.StatusCompleted)
	assert.Equal(t, 7*time.Second, got.Sub(t0))
}

func TestSagaDeadlineStopsRetriesAndCompensates(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{}, saga.WithTimeout(250*time.Millisecond))
	s.failWith("inventory", errFlaky, errFlaky, errFlaky)
	t0 := h.Clock.Now()
	id := h.Start(order{})
	snap, err := h.Get(context.Background(), id)
	require.NoError(t, err)
	assert.True(t, snap.Deadline.Equal(t0.Add(250*time.Millisecond)))

	e := h.WaitEvent(id, saga.EventRetryScheduled, 0) // at +100ms
	h.AdvanceWhenArmed(1, 100*time.Millisecond)
	e = h.WaitEvent(id, saga.EventRetryScheduled, e.Seq)
	assert.True(t, e.At.Equal(t0.Add(250*time.Millisecond)), "the retry due at +300ms is cut to the deadline, got %v", e.At.Sub(t0))
	h.AdvanceWhenArmed(1, 150*time.Millisecond)

	snap = h.WaitStatus(id, saga.StatusCompensated, saga.StatusCompleted)
	assert.Equal(t, saga.StatusCompensated, snap.Status)
	assert.Contains(t, snap.LastError, saga.ErrDeadline.Error())
	assert.Len(t, s.callsOf("inventory"), 2, "no attempt after the deadline")
	assert.Equal(t, []string{"undo payment"}, s.names()[len(s.names())-1:])
}

func TestSagaDeadlineCutsARunningAttempt(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	def, err := saga.NewDefinition("deadline", []saga.Step[order]{
		{Name: "payment", Action: s.action("payment"), Compensate: s.action("undo payment")},
		{Name: "shipping", Action: s.action("shipping"), Timeout: time.Hour},
	}, saga.WithTimeout(time.Minute))
	require.NoError(t, err)
	s.blockOn("shipping")
	h := newHarness(t, def, saga.Config{})
	id := h.Start(order{}, saga.WithDeadline(h.Clock.Now().Add(10*time.Second)))

	h.WaitEvent(id, saga.EventStepStarted, 3)
	h.AdvanceWhenArmed(1, 10*time.Second)
	snap := h.WaitStatus(id, saga.StatusCompensated, saga.StatusCompleted)
	assert.Contains(t, snap.LastError, saga.ErrDeadline.Error())
	assert.Len(t, s.callsOf("shipping"), 1, "a deadline is not retried")
	assert.Len(t, s.callsOf("undo payment"), 1)
}

func TestPanicsAreFailedAttempts(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	panics := 0
	s := newScript(t)
	def, err := saga.NewDefinition("panic", []saga.Step[order]{
		{
			Name:   "payment",
			Action: s.action("payment"),
			Compensate: func(ctx context.Context, st *order) error {
				if panics++; panics == 1 {
					panic("compensation bug")
				}
				return nil
			},
			CompensationRetry: saga.RetryPolicy{InitialBackoff: time.Millisecond, Jitter: -1},
		},
		{
			Name:   "shipping",
			Action: func(context.Context, *order) error { panic(boom) },
			Retry:  saga.RetryPolicy{MaxAttempts: 1},
		},
	})
	require.NoError(t, err)
	h := newHarness(t, def, saga.Config{})
	id := h.Start(order{})

	h.WaitEvent(id, saga.EventRetryScheduled, 0)
	h.AdvanceWhenArmed(1, time.Millisecond)
	snap := h.WaitStatus(id, saga.StatusCompensated, saga.StatusStuck)
	assert.Equal(t, saga.StatusCompensated, snap.Status)

	events := logOf(t, h, id)
	var failures []string
	for _, e := range events {
		if e.Type == saga.EventStepAttemptFailed || e.Type == saga.EventCompensationAttemptFailed {
			failures = append(failures, e.Error)
		}
	}
	assert.Equal(t, []string{"saga: panic: boom", "saga: panic: compensation bug"}, failures)
	assert.Equal(t, 2, panics)
}

func TestPanicErrorUnwrapsAnErrorValue(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	assert.ErrorIs(t, &saga.PanicError{Value: boom}, boom)
	assert.NoError(t, (&saga.PanicError{Value: "text"}).Unwrap())
}
