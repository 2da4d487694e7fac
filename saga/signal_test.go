package saga_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

type signalFixture struct {
	h        *sagatest.Harness[order]
	s        *script
	mu       sync.Mutex
	payloads []string
}

// setupSignals runs reserve → await "paid" (1 minute) → ship.
func setupSignals(t *testing.T) *signalFixture {
	t.Helper()
	f := &signalFixture{s: newScript(t)}
	await := func(ctx context.Context, st *order) error {
		p, ok := saga.SignalPayload(ctx)
		if !ok {
			return saga.Permanent(errNoStock)
		}
		f.mu.Lock()
		f.payloads = append(f.payloads, string(p))
		f.mu.Unlock()
		return json.Unmarshal(p, &st.Amount)
	}
	def, err := saga.NewDefinition("signals", []saga.Step[order]{
		{Name: "reserve", Action: f.s.action("reserve"), Compensate: f.s.action("undo reserve"), Retry: noJitter},
		{Name: "await", Action: await, Signal: "paid", SignalTimeout: time.Minute},
		{Name: "ship", Action: f.s.action("ship")},
	})
	require.NoError(t, err)
	f.h = newHarness(t, def, saga.Config{})
	return f
}

func (f *signalFixture) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.payloads...)
}

func TestSignalWakesTheWaitingStep(t *testing.T) {
	t.Parallel()
	f := setupSignals(t)
	id := f.h.Start(order{})
	f.h.WaitEvent(id, saga.EventStepStarted, 3) // await
	snap, err := f.h.Get(context.Background(), id)
	require.NoError(t, err)
	assert.Equal(t, "await", snap.Step)
	assert.Equal(t, saga.StatusRunning, snap.Status)

	require.NoError(t, f.h.Signal(context.Background(), id, "paid", []byte(`125`), "webhook-1"))
	snap = f.h.WaitStatus(id, saga.StatusCompleted, saga.StatusCompensated)
	assert.Equal(t, saga.StatusCompleted, snap.Status)
	assert.Equal(t, 125, snap.State.Amount)
	assert.Equal(t, []string{"125"}, f.seen())
}

func TestEarlySignalIsKeptUntilTheStepWaits(t *testing.T) {
	t.Parallel()
	f := setupSignals(t)
	f.s.failWith("reserve", errFlaky)
	id := f.h.Start(order{})
	f.h.WaitEvent(id, saga.EventRetryScheduled, 0) // still on reserve

	require.NoError(t, f.h.Signal(context.Background(), id, "paid", []byte(`7`), "early"))
	f.h.AdvanceWhenArmed(1, 100*time.Millisecond)
	snap := f.h.WaitStatus(id, saga.StatusCompleted, saga.StatusCompensated)
	assert.Equal(t, saga.StatusCompleted, snap.Status)
	assert.Equal(t, 7, snap.State.Amount)
	kinds := kinds(logOf(t, f.h, id))
	assert.Equal(t, "signal_received", kinds[4], "recorded while reserve was backing off")
}

func TestDuplicateSignalIsIgnored(t *testing.T) {
	t.Parallel()
	f := setupSignals(t)
	f.s.failWith("reserve", errFlaky)
	id := f.h.Start(order{})
	f.h.WaitEvent(id, saga.EventRetryScheduled, 0)
	require.NoError(t, f.h.Signal(context.Background(), id, "paid", []byte(`1`), "dup"))
	require.NoError(t, f.h.Signal(context.Background(), id, "paid", []byte(`2`), "dup"), "a duplicate is not an error")
	f.h.AdvanceWhenArmed(1, 100*time.Millisecond)
	f.h.WaitStatus(id, saga.StatusCompleted)

	received := 0
	for _, e := range logOf(t, f.h, id) {
		if e.Type == saga.EventSignalReceived {
			received++
			assert.Equal(t, "dup", e.DedupKey)
			assert.JSONEq(t, `1`, string(e.Payload))
		}
	}
	assert.Equal(t, 1, received)
	assert.Equal(t, []string{"1"}, f.seen())
}

func TestLateSignalIsRefused(t *testing.T) {
	t.Parallel()
	f := setupSignals(t)
	id := f.h.Start(order{})
	f.h.WaitEvent(id, saga.EventStepStarted, 3)
	require.NoError(t, f.h.Signal(context.Background(), id, "paid", []byte(`1`), "a"))
	f.h.WaitStatus(id, saga.StatusCompleted)
	err := f.h.Signal(context.Background(), id, "paid", []byte(`1`), "b")
	assert.ErrorIs(t, err, saga.ErrFinished)
}

func TestSignalWaitTimesOut(t *testing.T) {
	t.Parallel()
	f := setupSignals(t)
	id := f.h.Start(order{})
	f.h.WaitEvent(id, saga.EventStepStarted, 3)
	f.h.AdvanceWhenArmed(1, time.Minute)
	snap := f.h.WaitStatus(id, saga.StatusCompensated, saga.StatusCompleted)
	assert.Equal(t, saga.StatusCompensated, snap.Status)
	assert.Equal(t, "await", snap.Step)
	assert.Contains(t, snap.LastError, saga.ErrSignalTimeout.Error())
	assert.Equal(t, []string{"reserve", "undo reserve"}, f.s.names())

	// A signal after the wait gave up finds a finished saga.
	assert.ErrorIs(t, f.h.Signal(context.Background(), id, "paid", nil, ""), saga.ErrFinished)
}

func TestSignalRejectsBadInput(t *testing.T) {
	t.Parallel()
	f := setupSignals(t)
	id := f.h.Start(order{})
	f.h.WaitEvent(id, saga.EventStepStarted, 3)
	before := len(logOf(t, f.h, id))
	ctx := context.Background()
	assert.ErrorIs(t, f.h.Signal(ctx, "", "paid", nil, ""), saga.ErrInvalidArgument)
	assert.ErrorIs(t, f.h.Signal(ctx, id, "", nil, ""), saga.ErrInvalidArgument)
	assert.ErrorIs(t, f.h.Signal(ctx, id, "paid", []byte(`{not json`), ""), saga.ErrInvalidArgument)
	assert.ErrorIs(t, f.h.Signal(ctx, "missing", "paid", nil, ""), saga.ErrNotFound)
	assert.Len(t, logOf(t, f.h, id), before, "nothing recorded")
}
