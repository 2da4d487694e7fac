package saga_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

func TestBreakerOpensFailsFastAndHalfOpensAfterCoolDown(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	def, err := saga.NewDefinition("breaker", []saga.Step[order]{{
		Name:    "payment",
		Action:  s.action("payment"),
		Breaker: "payment",
		Retry:   saga.RetryPolicy{MaxAttempts: 1},
	}})
	require.NoError(t, err)
	// One worker makes the order in which woken instances run deterministic.
	h := newHarness(t, def, saga.Config{Workers: 1, Breaker: saga.BreakerPolicy{Failures: 3, CoolDown: 10 * time.Second}})
	t0 := h.Clock.Now()
	breakerState := func() saga.BreakerState { return h.Health(context.Background()).Breakers["payment"] }

	s.failWith("payment", errFlaky, errFlaky, errFlaky)
	for range 3 {
		require.Equal(t, saga.BreakerClosed, breakerState())
		h.WaitStatus(h.Start(order{}), saga.StatusCompensated)
	}
	require.Equal(t, saga.BreakerOpen, breakerState(), "open after 3 consecutive failures")
	health := h.Health(context.Background())
	assert.Equal(t, saga.HealthDegraded, health.State)
	assert.Contains(t, health.Reasons, "breaker payment open")

	// While open, no call goes through and no attempt is spent.
	a, b := h.Start(order{}), h.Start(order{})
	for _, id := range []string{a, b} {
		e := h.WaitEvent(id, saga.EventRetryScheduled, 0)
		assert.True(t, e.At.Equal(t0.Add(10*time.Second)), "retry when the cool-down ends")
		assert.Equal(t, 1, e.Attempt, "a rejected attempt is not spent")
		failed := h.WaitEvent(id, saga.EventStepAttemptFailed, 0)
		assert.Equal(t, saga.ErrBreakerOpen.Error(), failed.Error)
	}
	assert.Len(t, s.callsOf("payment"), 3)

	// After the cool-down exactly one probe goes through; it fails, so the
	// breaker opens again and the other instance waits another cool-down.
	s.failWith("payment", errFlaky)
	h.AdvanceWhenArmed(2, 10*time.Second)
	h.WaitStatus(a, saga.StatusCompensated)
	first := h.WaitEvent(b, saga.EventRetryScheduled, 0)
	e := h.WaitEvent(b, saga.EventRetryScheduled, first.Seq)
	assert.True(t, e.At.Equal(t0.Add(20*time.Second)), "reopened at +10s, got retry at %v", e.At.Sub(t0))
	assert.Len(t, s.callsOf("payment"), 4)
	assert.Equal(t, saga.BreakerOpen, breakerState())

	// The next probe succeeds and closes it.
	h.AdvanceWhenArmed(1, 10*time.Second)
	h.WaitStatus(b, saga.StatusCompleted)
	assert.Len(t, s.callsOf("payment"), 5)
	assert.Equal(t, saga.BreakerClosed, breakerState())
}

func TestBreakerIgnoresPermanentErrors(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	def, err := saga.NewDefinition("breaker", []saga.Step[order]{{
		Name: "payment", Action: s.action("payment"), Breaker: "payment",
	}})
	require.NoError(t, err)
	h := newHarness(t, def, saga.Config{Breaker: saga.BreakerPolicy{Failures: 1}})
	s.failWith("payment", saga.Permanent(errNoStock), saga.Permanent(errNoStock))
	h.WaitStatus(h.Start(order{}), saga.StatusCompensated)
	h.WaitStatus(h.Start(order{}), saga.StatusCompensated)
	assert.Equal(t, saga.BreakerClosed, h.Health(context.Background()).Breakers["payment"])
}
