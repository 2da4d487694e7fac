package clock_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
)

// The real clock is tested lightly: these are the only tests that wait for
// wall-clock time, and the waits are a millisecond.

// recvTime receives from c, failing after a generous guard instead of
// hanging.
func recvTime(t *testing.T, c <-chan time.Time) time.Time {
	t.Helper()
	guard := time.NewTimer(10 * time.Second)
	defer guard.Stop()
	select {
	case v := <-c:
		return v
	case <-guard.C:
		require.FailNow(t, "nothing received")
		return time.Time{}
	}
}

func TestRealIsShared(t *testing.T) {
	t.Parallel()
	assert.Equal(t, clock.Real(), clock.Real())
}

// Not parallel: AllocsPerRun counts allocations process-wide.
func TestRealAllocatesNothing(t *testing.T) {
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = clock.Real().Now() }))
}

func TestRealNow(t *testing.T) {
	t.Parallel()
	before := time.Now()
	got := clock.Real().Now()
	after := time.Now()
	assert.False(t, got.Before(before))
	assert.False(t, got.After(after))
}

func TestRealTimer(t *testing.T) {
	t.Parallel()
	c := clock.Real()

	tm := c.NewTimer(time.Millisecond)
	recvTime(t, tm.C())
	assert.False(t, tm.Stop())
	assert.False(t, tm.Reset(time.Hour))
	assert.True(t, tm.Stop())

	tm = c.NewTimer(0)
	recvTime(t, tm.C())
}

func TestRealAfterFunc(t *testing.T) {
	t.Parallel()
	c := clock.Real()

	ran := make(chan time.Time, 1)
	tm := c.AfterFunc(time.Millisecond, func() { ran <- time.Now() })
	assert.Nil(t, tm.C())
	recvTime(t, ran)
	assert.False(t, tm.Stop())

	tm = c.AfterFunc(time.Hour, nil)
	assert.True(t, tm.Reset(time.Hour))
	assert.True(t, tm.Stop())
}

func TestRealTicker(t *testing.T) {
	t.Parallel()
	c := clock.Real()

	tk := c.NewTicker(time.Millisecond)
	first := recvTime(t, tk.C())
	second := recvTime(t, tk.C())
	assert.True(t, second.After(first))
	tk.Reset(-time.Second) // no panic: treated as 1ns
	tk.Reset(time.Millisecond)
	recvTime(t, tk.C())
	tk.Stop()

	tk = c.NewTicker(0) // no panic: treated as 1ns
	recvTime(t, tk.C())
	tk.Stop()
}

func TestRealSleep(t *testing.T) {
	t.Parallel()
	for _, c := range []clock.Clock{clock.Real(), nil} {
		before := time.Now()
		require.NoError(t, clock.Sleep(t.Context(), c, time.Millisecond))
		assert.GreaterOrEqual(t, time.Since(before), time.Millisecond)
	}
}
