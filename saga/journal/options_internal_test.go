package journal

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
)

// SyncInterval mode, seen from inside: the test learns when the writer has
// fsynced through j.fsync (replaced before any call, as in
// fsync_internal_test.go), so it waits on that instead of sleeping.

func TestSyncIntervalFsyncsOnTick(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewFake(time.Time{})
	j := openJournal(t, dir, Options{Clock: clk, SyncInterval: time.Second})
	synced := make(chan struct{}, 1)
	j.fsync = func(f *os.File) error {
		err := f.Sync()
		select {
		case synced <- struct{}{}:
		default:
		}
		return err
	}
	ctx := t.Context()
	waitSync := func() {
		t.Helper()
		select {
		case <-synced:
		case <-ctx.Done():
			require.FailNow(t, "no fsync")
		}
	}
	start := j.Stats().Syncs

	require.NoError(t, j.Create(ctx, logOf("a", 1)))
	require.NoError(t, j.Append(ctx, "a", 1, logOf("a", 3)[1:]))
	assert.Equal(t, start, j.Stats().Syncs, "acknowledged before any fsync")

	require.NoError(t, clk.BlockUntil(ctx, 1), "the writer's ticker")
	clk.Advance(time.Second)
	waitSync()
	assert.Equal(t, start+1, j.Stats().Syncs, "the tick fsynced what was written")

	require.NoError(t, j.Create(ctx, logOf("b", 1)))
	clk.Advance(time.Second)
	waitSync()
	assert.Equal(t, start+2, j.Stats().Syncs, "and again on the next tick")

	require.NoError(t, j.Append(ctx, "b", 1, logOf("b", 2)[1:]))
	require.NoError(t, j.Close())
	assert.Equal(t, start+3, j.Stats().Syncs, "Close fsyncs what no tick covered")
	assert.Equal(t, uint64(4), j.Stats().Records)

	j = openJournal(t, dir, Options{})
	for id, n := range map[string]int{"a": 3, "b": 2} {
		got, err := j.Load(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, logOf(id, n), got, id)
	}
}
