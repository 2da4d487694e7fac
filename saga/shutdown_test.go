package saga_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// durable pretends a memory store survives restarts, to test what the
// coordinator does differently with durable stores.
type durable struct{ *saga.MemoryStore }

func (durable) Durable() bool { return true }

func TestShutdownWaitsForInstancesOnAMemoryStore(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{})
	s.failWith("payment", errFlaky)
	id := h.Start(order{})
	h.WaitEvent(id, saga.EventRetryScheduled, 0)

	done := make(chan error, 1)
	go func() { done <- h.Shutdown(context.Background()) }()
	// Once Shutdown has begun, Start refuses; until then it may create one
	// more instance, which completes on its own.
	for {
		_, err := h.Coordinator.Start(context.Background(), order{}, saga.WithID("probe"))
		if errors.Is(err, saga.ErrStopped) {
			break
		}
	}
	assert.Equal(t, saga.HealthShuttingDown, h.Health(context.Background()).State)
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned before the instance ended: %v", err)
	default:
	}

	h.AdvanceWhenArmed(1, 100*time.Millisecond) // the retry runs, the saga completes
	require.NoError(t, receive(t, done))
	assert.Equal(t, saga.HealthStopped, h.Health(context.Background()).State)
	_, err := h.Coordinator.Start(context.Background(), order{})
	assert.ErrorIs(t, err, saga.ErrStopped)
	events, err := h.Store.Load(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, saga.EventSagaCompleted, events[len(events)-1].Type)
}

func TestShutdownReportsWhatDidNotFinish(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{})
	s.blockOn("payment")
	s.failWith("validate", errFlaky)
	backingOff := h.Start(order{}, saga.WithID("backing-off"))
	h.WaitEvent(backingOff, saga.EventRetryScheduled, 0)
	running := h.Start(order{}, saga.WithID("running"))
	h.WaitEvent(running, saga.EventStepStarted, 3)
	sub := h.Subscribe(saga.SubscribeOptions{})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := h.Shutdown(ctx)
	var unfinished *saga.UnfinishedError
	require.ErrorAs(t, err, &unfinished)
	assert.ErrorIs(t, err, saga.ErrUnfinished)
	assert.Equal(t, []string{"backing-off", "running"}, unfinished.IDs)
	assert.Zero(t, h.Clock.Timers(), "no timer left armed")
	_, open := <-sub.Events()
	assert.False(t, open, "subscriptions are closed")
	// goleak in TestMain checks that no goroutine is left.
}

func TestShutdownOnADurableStoreLeavesInstancesToResume(t *testing.T) {
	t.Parallel()
	store := durable{saga.NewMemoryStore(saga.MemoryConfig{})}
	s := newScript(t)
	def := fourSteps(s)
	h := sagatest.New(t, def, saga.Config{Store: store})
	s.failWith("payment", errFlaky)
	id := h.Start(order{})
	retry := h.WaitEvent(id, saga.EventRetryScheduled, 0)

	require.NoError(t, h.Shutdown(context.Background()), "returns without waiting for the backoff")
	unfinished, err := store.Unfinished(context.Background(), "order")
	require.NoError(t, err)
	assert.Equal(t, []string{id}, unfinished)

	// The next coordinator resumes it at the recorded retry time.
	h2 := sagatest.New(t, def, saga.Config{Store: store, Clock: h.Clock})
	assert.Equal(t, 1, h2.Health(context.Background()).Recovered)
	h2.AdvanceWhenArmed(1, retry.At.Sub(h2.Clock.Now())-time.Nanosecond)
	snap, err := h2.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, saga.StatusRunning, snap.Status, "not before the recorded time")
	h2.Clock.Advance(time.Nanosecond)
	h2.WaitStatus(id, saga.StatusCompleted)
	assert.Len(t, s.callsOf("payment"), 2)
}

func TestRecoveryRerunsAnInterruptedStepWithTheSameKey(t *testing.T) {
	t.Parallel()
	store := saga.NewMemoryStore(saga.MemoryConfig{})
	s := newScript(t)
	def := fourSteps(s)
	h := sagatest.New(t, def, saga.Config{Store: store})
	s.blockOn("payment")
	id := h.Start(order{})
	h.WaitEvent(id, saga.EventStepStarted, 3)

	// Stop hard while payment runs: its outcome is never recorded.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, h.Shutdown(ctx), saga.ErrUnfinished)
	events, err := store.Load(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, "step_started payment #1", kinds(events)[len(events)-1])

	s.mu.Lock()
	s.block = map[string]bool{}
	s.mu.Unlock()
	h2 := sagatest.New(t, def, saga.Config{Store: store, Clock: h.Clock})
	snap := h2.WaitStatus(id, saga.StatusCompleted, saga.StatusCompensated)
	assert.Equal(t, saga.StatusCompleted, snap.Status)
	calls := s.callsOf("payment")
	require.Len(t, calls, 2)
	assert.Equal(t, calls[0].info, calls[1].info, "same attempt, same idempotency key")
	assert.Len(t, s.callsOf("validate"), 1, "a recorded success is never run again")
	requireConsistent(t, id, logOf(t, h2, id))
}

func TestRecoveryContinuesACompensationAndKeepsStuckOnesStuck(t *testing.T) {
	t.Parallel()
	store := saga.NewMemoryStore(saga.MemoryConfig{})
	s := newScript(t)
	def := fourSteps(s)
	h := sagatest.New(t, def, saga.Config{Store: store})
	s.failWith("shipping", saga.Permanent(errNoStock))
	s.blockOn("undo payment")
	compensating := h.Start(order{}, saga.WithID("compensating"))
	h.WaitEvent(compensating, saga.EventStepCompensated, 0) // inventory undone, payment's undo running
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Error(t, h.Shutdown(ctx))

	s.mu.Lock()
	s.block = map[string]bool{}
	s.mu.Unlock()
	h2 := sagatest.New(t, def, saga.Config{Store: store, Clock: h.Clock})
	snap := h2.WaitStatus(compensating, saga.StatusCompensated)
	assert.Equal(t, "shipping", snap.Step)
	assert.Equal(t, []string{"undo inventory", "undo payment", "undo payment"}, filter(s.names(), "undo "))
}

func TestStartupSkipsLogsItCannotRead(t *testing.T) {
	t.Parallel()
	store := saga.NewMemoryStore(saga.MemoryConfig{})
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// A log that names a step the definition does not have.
	require.NoError(t, store.Create(context.Background(), []saga.Event{
		{SagaID: "alien", Run: "r", Seq: 1, Type: saga.EventSagaStarted, Time: now, Definition: "order", State: []byte(`{}`)},
		{SagaID: "alien", Run: "r", Seq: 2, Type: saga.EventStepStarted, Time: now, Step: "teleport", Attempt: 1},
	}))
	s := newScript(t)
	h := sagatest.New(t, fourSteps(s), saga.Config{Store: store})
	health := h.Health(context.Background())
	assert.Equal(t, saga.HealthDegraded, health.State)
	assert.Contains(t, health.Reasons, "1 instances could not be recovered")
	_, err := h.Get(context.Background(), "alien")
	assert.True(t, errors.Is(err, saga.ErrInvalidEvent))
}

func filter(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if len(n) >= len(prefix) && n[:len(prefix)] == prefix {
			out = append(out, n)
		}
	}
	return out
}

func TestShutdownReleasesStartsWaitingForCapacity(t *testing.T) {
	t.Parallel()
	h, s := setup(t, saga.Config{MaxInFlight: 1, WaitForCapacity: true})
	s.blockOn("payment")
	first := h.Start(order{})
	h.WaitEvent(first, saga.EventStepStarted, 3)

	waiting := make(chan error, 1)
	go func() {
		_, err := h.Coordinator.Start(context.Background(), order{})
		waiting <- err
	}()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, h.Shutdown(ctx), saga.ErrUnfinished)
	assert.ErrorIs(t, receive(t, waiting), saga.ErrStopped)
}

func TestShutdownLeavesNoTimerWhenAnAttemptFailsDuringIt(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	running := make(chan struct{}, 1)
	def, err := saga.NewDefinition("late", []saga.Step[order]{{
		Name: "payment",
		Action: func(context.Context, *order) error {
			running <- struct{}{}
			<-release
			return errFlaky // retryable: the worker wants to park for a backoff
		},
	}})
	require.NoError(t, err)
	store := durable{saga.NewMemoryStore(saga.MemoryConfig{})}
	h := sagatest.New(t, def, saga.Config{Store: store})
	id := h.Start(order{})
	receive(t, running)

	done := make(chan error, 1)
	go func() { done <- h.Shutdown(context.Background()) }()
	for {
		if _, err := h.Coordinator.Start(context.Background(), order{}, saga.WithID("probe")); errors.Is(err, saga.ErrStopped) {
			break
		}
	}
	close(release)
	require.NoError(t, receive(t, done))
	assert.Zero(t, h.Clock.Timers(), "the backoff timer must not outlive Shutdown")
	events, err := store.Load(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, saga.EventRetryScheduled, events[len(events)-1].Type, "the retry resumes at next Startup")
}

func TestRetryKeepsTheInstanceStuckWhileWaitingForCapacity(t *testing.T) {
	t.Parallel()
	s := newScript(t)
	def, err := saga.NewDefinition("stuck", []saga.Step[order]{
		{Name: "payment", Action: s.action("payment"), Compensate: s.action("undo payment"), CompensationRetry: saga.RetryPolicy{MaxAttempts: 1}},
		{Name: "shipping", Action: s.action("shipping")},
	})
	require.NoError(t, err)
	h := newHarness(t, def, saga.Config{MaxInFlight: 1, WaitForCapacity: true})
	s.failWith("shipping", saga.Permanent(errNoStock))
	s.failWith("undo payment", saga.Permanent(errFlaky))
	id := h.Start(order{})
	h.WaitStatus(id, saga.StatusStuck)

	s.blockOn("payment")
	blocker := h.Start(order{}) // takes the only slot
	h.WaitEvent(blocker, saga.EventStepStarted, 1)
	ctx, cancel := context.WithCancel(context.Background())
	retried := make(chan error, 1)
	go func() { retried <- h.Retry(ctx, id) }()

	health := h.Health(context.Background())
	assert.Equal(t, 1, health.Stuck, "still stuck while Retry waits")
	assert.NoError(t, h.Signal(context.Background(), id, "note", nil, ""), "a stuck instance still takes signals")
	cancel()
	assert.ErrorIs(t, receive(t, retried), saga.ErrOverloaded)
	assert.Equal(t, 1, h.Health(context.Background()).Stuck)
}
