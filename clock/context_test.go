package clock_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
)

var errBoom = errors.New("boom")

// requireDone fails unless ctx is already done.
func requireDone(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	default:
		require.FailNow(t, "context not done")
	}
}

// requireNotDone fails if ctx is done.
func requireNotDone(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
		require.FailNow(t, "context done", "err: %v", ctx.Err())
	default:
	}
	require.NoError(t, ctx.Err())
}

// waitDone waits for ctx to be done. The real-time guard only turns a
// broken test into a failure instead of a hang.
func waitDone(t *testing.T, ctx context.Context) {
	t.Helper()
	guard := clock.Real().NewTimer(10 * time.Second)
	defer guard.Stop()
	select {
	case <-ctx.Done():
	case <-guard.C():
		require.FailNow(t, "context never done")
	}
}

func TestWithTimeoutFakeDeadlinePasses(t *testing.T) {
	t.Parallel()
	f := setup(t)

	ctx, cancel := clock.WithTimeout(t.Context(), f, 5*time.Second)
	defer cancel()
	deadline, ok := ctx.Deadline()
	require.True(t, ok)
	assert.Equal(t, start.Add(5*time.Second), deadline)
	assert.Equal(t, 1, f.Timers())

	type key struct{}
	valued := context.WithValue(ctx, key{}, "v")
	before, cancelBefore := context.WithCancel(valued)
	defer cancelBefore()
	realChild, cancelReal := context.WithTimeout(ctx, time.Hour)
	defer cancelReal()

	f.Advance(5*time.Second - time.Nanosecond)
	requireNotDone(t, ctx)
	requireNotDone(t, before)

	// Advance cancels synchronously: no waiting needed.
	f.Advance(time.Nanosecond)
	after, cancelAfter := context.WithCancel(ctx)
	defer cancelAfter()
	for name, c := range map[string]context.Context{
		"ctx": ctx, "child before": before, "child after": after, "real child": realChild,
	} {
		requireDone(t, c)
		assert.ErrorIs(t, c.Err(), context.DeadlineExceeded, name)
		assert.ErrorIs(t, context.Cause(c), context.DeadlineExceeded, name)
	}
	assert.Equal(t, "v", before.Value(key{}))
	assert.Zero(t, f.Timers())

	cancel()
	assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded, "cancel after the deadline changes nothing")
}

func TestWithDeadlineFakeDoneAtOnce(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name         string
		make         func(f *clock.Fake, parent context.Context) (context.Context, context.CancelFunc)
		parentErr    error // cancel the parent with this cause first
		wantDeadline time.Duration
		wantErr      error
		wantCause    error
	}{
		{
			name: "deadline is now",
			make: func(f *clock.Fake, p context.Context) (context.Context, context.CancelFunc) {
				return clock.WithDeadline(p, f, f.Now())
			},
			wantErr:   context.DeadlineExceeded,
			wantCause: context.DeadlineExceeded,
		},
		{
			name: "deadline passed",
			make: func(f *clock.Fake, p context.Context) (context.Context, context.CancelFunc) {
				return clock.WithDeadline(p, f, f.Now().Add(-time.Hour))
			},
			wantDeadline: -time.Hour,
			wantErr:      context.DeadlineExceeded,
			wantCause:    context.DeadlineExceeded,
		},
		{
			name: "zero timeout",
			make: func(f *clock.Fake, p context.Context) (context.Context, context.CancelFunc) {
				return clock.WithTimeout(p, f, 0)
			},
			wantErr:   context.DeadlineExceeded,
			wantCause: context.DeadlineExceeded,
		},
		{
			name: "negative timeout",
			make: func(f *clock.Fake, p context.Context) (context.Context, context.CancelFunc) {
				return clock.WithTimeout(p, f, -time.Second)
			},
			wantDeadline: -time.Second,
			wantErr:      context.DeadlineExceeded,
			wantCause:    context.DeadlineExceeded,
		},
		{
			name: "parent already cancelled",
			make: func(f *clock.Fake, p context.Context) (context.Context, context.CancelFunc) {
				return clock.WithTimeout(p, f, time.Second)
			},
			parentErr:    errBoom,
			wantDeadline: time.Second,
			wantErr:      context.Canceled,
			wantCause:    errBoom,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			parent, cancelParent := context.WithCancelCause(t.Context())
			defer cancelParent(nil)
			if tt.parentErr != nil {
				cancelParent(tt.parentErr)
			}

			ctx, cancel := tt.make(f, parent)
			defer cancel()
			requireDone(t, ctx)
			assert.ErrorIs(t, ctx.Err(), tt.wantErr)
			assert.ErrorIs(t, context.Cause(ctx), tt.wantCause)
			deadline, ok := ctx.Deadline()
			assert.True(t, ok)
			assert.Equal(t, start.Add(tt.wantDeadline), deadline)
			assert.Zero(t, f.Timers())

			child, cancelChild := context.WithCancel(ctx)
			defer cancelChild()
			requireDone(t, child)
			assert.ErrorIs(t, child.Err(), tt.wantErr)
		})
	}
}

func TestWithTimeoutFakeParentCancelWins(t *testing.T) {
	t.Parallel()
	f := setup(t)

	parent, cancelParent := context.WithCancelCause(t.Context())
	defer cancelParent(nil)
	ctx, cancel := clock.WithTimeout(parent, f, time.Minute)
	defer cancel()
	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()

	cancelParent(errBoom)
	waitDone(t, child)
	for _, c := range []context.Context{ctx, child} {
		requireDone(t, c)
		assert.ErrorIs(t, c.Err(), context.Canceled)
		assert.ErrorIs(t, context.Cause(c), errBoom)
	}
	assert.Zero(t, f.Timers(), "the clock timer is stopped")

	f.Advance(time.Minute)
	assert.ErrorIs(t, ctx.Err(), context.Canceled, "the deadline comes too late")
}

func TestWithTimeoutFakeCancelFunc(t *testing.T) {
	t.Parallel()
	f := setup(t)

	ctx, cancel := clock.WithTimeout(t.Context(), f, time.Minute)
	child, cancelChild := context.WithCancel(ctx)
	defer cancelChild()
	require.Equal(t, 1, f.Timers())

	cancel()
	for _, c := range []context.Context{ctx, child} {
		requireDone(t, c)
		assert.ErrorIs(t, c.Err(), context.Canceled)
		assert.ErrorIs(t, context.Cause(c), context.Canceled)
	}
	assert.Zero(t, f.Timers(), "cancel stops the clock timer")

	f.Advance(time.Minute)
	assert.ErrorIs(t, ctx.Err(), context.Canceled)
	cancel() // a second call is harmless
}

func TestWithTimeoutFakeParentDeadlineEarlierWins(t *testing.T) {
	t.Parallel()
	f := setup(t)

	parent, cancelParent := clock.WithTimeout(t.Context(), f, time.Second)
	defer cancelParent()
	ctx, cancel := clock.WithTimeout(parent, f, time.Hour)
	defer cancel()

	deadline, ok := ctx.Deadline()
	require.True(t, ok)
	assert.Equal(t, start.Add(time.Second), deadline)
	assert.Equal(t, 1, f.Timers(), "only the parent's timer")

	f.Advance(time.Second)
	requireDone(t, ctx)
	assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
}

func TestWithTimeoutFakeNestedLaterParent(t *testing.T) {
	t.Parallel()
	f := setup(t)

	parent, cancelParent := clock.WithTimeout(t.Context(), f, time.Hour)
	defer cancelParent()
	ctx, cancel := clock.WithTimeout(parent, f, time.Second)
	defer cancel()
	require.Equal(t, 2, f.Timers())

	f.Advance(time.Second)
	requireDone(t, ctx)
	assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
	requireNotDone(t, parent)
	assert.Equal(t, 1, f.Timers())

	// Cancelling the parent after the child expired leaves its error alone.
	cancelParent()
	assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
	assert.ErrorIs(t, context.Cause(ctx), context.DeadlineExceeded)
	assert.Zero(t, f.Timers())
}

func TestWithDeadlineRealClock(t *testing.T) {
	t.Parallel()

	for name, c := range map[string]clock.Clock{"Real": clock.Real(), "nil": nil} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			deadline := clock.Real().Now().Add(time.Hour)
			ctx, cancel := clock.WithDeadline(t.Context(), c, deadline)
			got, ok := ctx.Deadline()
			require.True(t, ok)
			assert.True(t, deadline.Equal(got))
			requireNotDone(t, ctx)
			cancel()
			assert.ErrorIs(t, ctx.Err(), context.Canceled)

			ctx, cancel = clock.WithTimeout(t.Context(), c, 0)
			defer cancel()
			requireDone(t, ctx)
			assert.ErrorIs(t, ctx.Err(), context.DeadlineExceeded)
		})
	}
}

// TestWithTimeoutRealAllocations checks the hot path costs exactly what
// package context costs. Not parallel: AllocsPerRun counts allocations
// process-wide.
func TestWithTimeoutRealAllocations(t *testing.T) {
	ctx := context.Background()
	want := testing.AllocsPerRun(100, func() {
		_, cancel := context.WithTimeout(ctx, time.Hour)
		cancel()
	})
	got := testing.AllocsPerRun(100, func() {
		_, cancel := clock.WithTimeout(ctx, clock.Real(), time.Hour)
		cancel()
	})
	assert.Equal(t, want, got)
}

func TestSleepReturnsAtOnce(t *testing.T) {
	t.Parallel()

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		d       time.Duration
		wantErr error
	}{
		{"zero", t.Context(), 0, nil},
		{"negative", t.Context(), -time.Second, nil},
		{"zero, ctx done", cancelled, 0, context.Canceled},
		{"positive, ctx done", cancelled, time.Hour, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			err := clock.Sleep(tt.ctx, f, tt.d)
			if tt.wantErr == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			assert.Zero(t, f.Timers())
			assert.Equal(t, start, f.Now())
		})
	}
}

func TestSleepFake(t *testing.T) {
	t.Parallel()

	t.Run("wakes after Advance", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		done := make(chan error, 1)
		go func() { done <- clock.Sleep(t.Context(), f, time.Second) }()
		require.NoError(t, f.BlockUntil(t.Context(), 1))
		f.Advance(time.Second)
		require.NoError(t, <-done)
		assert.Zero(t, f.Timers())
	})

	t.Run("ctx cancelled", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- clock.Sleep(ctx, f, time.Hour) }()
		require.NoError(t, f.BlockUntil(t.Context(), 1))
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		assert.Zero(t, f.Timers(), "Sleep stops its timer")
	})

	t.Run("fake timeout", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		ctx, cancel := clock.WithTimeout(t.Context(), f, time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- clock.Sleep(ctx, f, time.Hour) }()
		require.NoError(t, f.BlockUntil(t.Context(), 2))
		f.Advance(time.Second)
		require.ErrorIs(t, <-done, context.DeadlineExceeded)
		assert.Zero(t, f.Timers())
	})
}

func BenchmarkWithTimeout(b *testing.B) {
	ctx := context.Background()
	b.Run("context", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, cancel := context.WithTimeout(ctx, time.Hour)
			cancel()
		}
	})
	b.Run("Real", func(b *testing.B) {
		c := clock.Real()
		b.ReportAllocs()
		for b.Loop() {
			_, cancel := clock.WithTimeout(ctx, c, time.Hour)
			cancel()
		}
	})
	b.Run("Fake", func(b *testing.B) {
		c := clock.NewFake(time.Time{})
		b.ReportAllocs()
		for b.Loop() {
			_, cancel := clock.WithTimeout(ctx, c, time.Hour)
			cancel()
		}
	})
}
