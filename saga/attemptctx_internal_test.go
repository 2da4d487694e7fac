package saga

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
)

type otherKey struct{}

func newAttemptCtx(t *testing.T, parent context.Context) (*attemptCtx, *clock.Fake) {
	t.Helper()
	clk := clock.NewFake(time.Time{})
	sc := stepContext{key: "s1/payment", idLen: 2}
	return &attemptCtx{env: &attemptEnv{parent: parent, clock: clk}, deadline: clk.Now().Add(time.Second), step: sc}, clk
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestAttemptCtxEndsAtItsDeadlineWithoutATimerUnlessAsked(t *testing.T) {
	t.Parallel()
	a, clk := newAttemptCtx(t, context.Background())
	dl, ok := a.Deadline()
	assert.True(t, ok)
	assert.Equal(t, clk.Now().Add(time.Second), dl)
	assert.NoError(t, a.Err())
	assert.Zero(t, clk.Timers(), "no Done, no timer")

	clk.Advance(time.Second)
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded, "Err reads the clock")
	assert.True(t, closed(a.Done()), "Done after the end is closed at once")
	a.release()
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded, "the first reason stays")
}

func TestAttemptCtxDoneClosesWhenTheClockGetsThere(t *testing.T) {
	t.Parallel()
	a, clk := newAttemptCtx(t, context.Background())
	done := a.Done()
	assert.Equal(t, 1, clk.Timers())
	clk.Advance(time.Second - time.Nanosecond)
	assert.False(t, closed(done))
	assert.NoError(t, a.Err())
	clk.Advance(time.Nanosecond)
	assert.True(t, closed(done))
	assert.ErrorIs(t, a.Err(), context.DeadlineExceeded)
	assert.Zero(t, clk.Timers())
}

func TestAttemptCtxFollowsItsParentAndRelease(t *testing.T) {
	t.Parallel()
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), otherKey{}, "v"))
	a, clk := newAttemptCtx(t, parent)
	assert.Equal(t, "v", a.Value(otherKey{}), "other values come from the parent")
	info, ok := Info(a)
	require.True(t, ok)
	assert.Equal(t, "payment", info.Step)

	done := a.Done()
	child, stopChild := context.WithCancel(a) // derived contexts end with it
	defer stopChild()
	cancel()
	<-done // the parent's end reaches it through context.AfterFunc
	assert.ErrorIs(t, a.Err(), context.Canceled)
	<-child.Done()
	assert.Zero(t, clk.Timers(), "its timer is stopped")

	b, clk := newAttemptCtx(t, context.Background())
	bDone := b.Done()
	b.release()
	assert.True(t, closed(bDone))
	assert.ErrorIs(t, b.Err(), context.Canceled)
	assert.Zero(t, clk.Timers())
}

// An attempt's context is one small allocation: it keeps what every attempt
// of a coordinator shares behind one pointer, and its StepInfo as the
// idempotency key and a few numbers.
func TestAttemptCtxIsSmall(t *testing.T) {
	t.Parallel()
	assert.LessOrEqual(t, unsafe.Sizeof(attemptCtx{}), uintptr(112))
}

func TestStepInfoComesFromTheIdempotencyKey(t *testing.T) {
	t.Parallel()
	sc := stepContext{key: "order/7/charge/card", idLen: 7, attempt: 3, compensating: true}
	assert.Equal(t, StepInfo{
		SagaID: "order/7", Step: "charge/card", Attempt: 3, IdempotencyKey: "order/7/charge/card", Compensating: true,
	}, sc.info())
}
