package journal

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
)

// A write or fsync error poisons the journal: the call it hit fails with
// it, every later call fails wrapping it, and nothing is acknowledged that
// may not be on disk. Reopening the directory recovers every acknowledged
// record.
//
// The tests replace j.fsync right after Open, before any call: the writer
// goroutine reads it only after a call has handed it a batch, through
// j.mu and j.wake, so the replacement happens before every use.

var errInjected = errors.New("injected I/O error")

// failingFsync returns an fsync that fails with errInjected once fail
// reports true, and fsyncs for real before.
func failingFsync(fail func(f *os.File) bool) func(*os.File) error {
	return func(f *os.File) error {
		if fail(f) {
			return errInjected
		}
		return f.Sync()
	}
}

// assertPoisoned checks that every call of j fails with an error wrapping
// cause.
func assertPoisoned(t *testing.T, j *Journal, cause error) {
	t.Helper()
	ctx := t.Context()
	assert.ErrorIs(t, j.Create(ctx, logOf("poisoned-new", 1)), cause, "Create")
	assert.ErrorIs(t, j.Append(ctx, "b", 1, []saga.Event{stepEvent("b", 2)}), cause, "Append")
	_, err := j.Load(ctx, "a")
	assert.ErrorIs(t, err, cause, "Load")
	_, err = j.Unfinished(ctx, "transfer")
	assert.ErrorIs(t, err, cause, "Unfinished")
	assert.ErrorIs(t, j.Ping(ctx), cause, "Ping")
	assert.ErrorIs(t, j.Compact(ctx), cause, "Compact")
	assert.Contains(t, j.Ping(ctx).Error(), "reopen", "the error says what to do")
}

func TestFsyncErrorPoisons(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := openJournal(t, dir, Options{})
	var failing atomic.Bool
	j.fsync = failingFsync(func(*os.File) bool { return failing.Load() })
	ctx := t.Context()

	require.NoError(t, j.Create(ctx, logOf("a", 1)))
	require.NoError(t, j.Create(ctx, logOf("b", 1)))
	require.NoError(t, j.Append(ctx, "a", 1, logOf("a", 3)[1:]))

	failing.Store(true)
	err := j.Append(ctx, "a", 3, []saga.Event{stepEvent("a", 4)})
	require.ErrorIs(t, err, errInjected, "the Append whose fsync failed")
	assertPoisoned(t, j, errInjected)
	// Not even the log as the failed Append left it is writable.
	assert.ErrorIs(t, j.Append(ctx, "a", 4, []saga.Event{stepEvent("a", 5)}), errInjected)
	failing.Store(false) // the disk is back; the journal stays poisoned
	assert.ErrorIs(t, j.Ping(ctx), errInjected)
	require.NoError(t, j.Close())
	assert.ErrorIs(t, j.Ping(ctx), saga.ErrClosed)

	j = openJournal(t, dir, Options{})
	got, err := j.Load(ctx, "a")
	require.NoError(t, err)
	// The failed Append may or may not have reached the disk.
	if len(got) == 4 {
		assert.Equal(t, logOf("a", 4), got)
	} else {
		assert.Equal(t, logOf("a", 3), got)
	}
	b, err := j.Load(ctx, "b")
	require.NoError(t, err)
	assert.Equal(t, logOf("b", 1), b, "calls refused after the failure wrote nothing")
	_, err = j.Load(ctx, "poisoned-new")
	assert.ErrorIs(t, err, saga.ErrNotFound)
	require.NoError(t, j.Append(ctx, "a", uint64(len(got)), []saga.Event{stepEvent("a", uint64(len(got))+1)}), "writable again after reopening")
}

func TestFsyncErrorWithConcurrentWriters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := openJournal(t, dir, Options{})
	const writers, failAfter = 16, 40
	var syncs atomic.Int64
	j.fsync = failingFsync(func(*os.File) bool { return syncs.Add(1) > failAfter })

	// reported is set once some call has returned the injected error; a
	// call that starts after that must fail too.
	var reported atomic.Bool
	acked := make([]int, writers) // events acknowledged per writer
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			id := fmt.Sprintf("w%02d", w)
			events := logOf(id, 1000)
			for n := 0; n < len(events); n++ {
				after := reported.Load()
				var err error
				if n == 0 {
					err = j.Create(t.Context(), events[:1])
				} else {
					err = j.Append(t.Context(), id, uint64(n), events[n:n+1])
				}
				if err == nil {
					assert.False(t, after, "%s: event %d acknowledged after a failure was reported", id, n+1)
					acked[w]++
					continue
				}
				assert.ErrorIs(t, err, errInjected, "%s: event %d", id, n+1)
				reported.Store(true)
				assert.ErrorIs(t, j.Ping(t.Context()), errInjected, "%s: after the failure", id)
				return
			}
			assert.Fail(t, "no failure", "%s wrote every event", id)
		})
	}
	wg.Wait()
	require.True(t, reported.Load())
	assertPoisoned(t, j, errInjected)
	require.NoError(t, j.Close())

	j = openJournal(t, dir, Options{})
	total := 0
	for w := range writers {
		id := fmt.Sprintf("w%02d", w)
		got, err := j.Load(t.Context(), id)
		if acked[w] == 0 && errors.Is(err, saga.ErrNotFound) {
			continue
		}
		require.NoError(t, err, id)
		// Every acknowledged event is there; the one whose call failed
		// may be too.
		assert.Contains(t, []int{acked[w], acked[w] + 1}, len(got), "%s: %d events acknowledged", id, acked[w])
		assert.Equal(t, logOf(id, len(got)), got, id)
		total += acked[w]
	}
	assert.Positive(t, total, "events acknowledged before the failure")
}

func TestWriteErrorPoisons(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := openJournal(t, dir, Options{})
	ctx := t.Context()
	require.NoError(t, j.Create(ctx, logOf("a", 1)))
	require.NoError(t, j.Create(ctx, logOf("b", 1)))
	require.NoError(t, j.Append(ctx, "a", 1, logOf("a", 2)[1:]))

	// Every call has returned, so the writer is idle; the next write finds
	// the segment closed.
	require.NoError(t, j.seg.f.Close())
	err := j.Append(ctx, "a", 2, []saga.Event{stepEvent("a", 3)})
	require.ErrorIs(t, err, os.ErrClosed)
	assertPoisoned(t, j, os.ErrClosed)
	_ = j.Close() // closing the segment again fails; the lock is released anyway

	j = openJournal(t, dir, Options{})
	for id, want := range map[string][]saga.Event{"a": logOf("a", 2), "b": logOf("b", 1)} {
		got, err := j.Load(ctx, id)
		require.NoError(t, err, id)
		assert.Equal(t, want, got, id)
	}
	require.NoError(t, j.Append(ctx, "a", 2, []saga.Event{stepEvent("a", 3)}), "writable again after reopening")
}

func TestFsyncErrorOnSyncIntervalTickPoisons(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewFake(time.Time{})
	errs := newSignalHandler(slog.LevelError)
	j := openJournal(t, dir, Options{Clock: clk, SyncInterval: time.Second, Logger: slog.New(errs)})
	j.fsync = failingFsync(func(*os.File) bool { return true })
	ctx := t.Context()

	// Acknowledged once written: the fsync comes with the next tick.
	require.NoError(t, j.Create(ctx, logOf("a", 1)))
	require.NoError(t, j.Create(ctx, logOf("b", 1)))
	require.NoError(t, clk.BlockUntil(ctx, 1), "the writer's ticker")
	clk.Advance(time.Second)
	r := errs.wait(t)
	assert.Contains(t, r.Message, "write failed")
	assertPoisoned(t, j, errInjected)
	require.NoError(t, j.Close())

	// The process did not crash: what was written is in the file.
	j = openJournal(t, dir, Options{})
	got, err := j.Load(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, logOf("a", 1), got)
}

func TestCompactionFsyncErrorKeepsTheJournal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := Options{SegmentSize: 1024, CompactAfter: -1}
	j := openJournal(t, dir, opts)
	j.fsync = failingFsync(func(f *os.File) bool { return strings.HasSuffix(f.Name(), ".tmp") })
	ctx := t.Context()
	ids := make([]string, 20)
	for i := range ids {
		ids[i] = fmt.Sprintf("i%02d", i)
		require.NoError(t, j.Create(ctx, logOf(ids[i], 1)))
		require.NoError(t, j.Append(ctx, ids[i], 1, logOf(ids[i], 3)[1:]))
	}

	err := j.Compact(ctx)
	require.ErrorIs(t, err, errInjected)
	require.NoError(t, j.Ping(ctx), "a failed compaction does not poison")
	tmps, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	require.NoError(t, err)
	assert.Empty(t, tmps, "the failed base is removed")
	for _, id := range ids {
		require.NoError(t, j.Append(ctx, id, 3, []saga.Event{stepEvent(id, 4)}))
	}
	require.NoError(t, j.Close())

	j = openJournal(t, dir, opts)
	for _, id := range ids {
		got, err := j.Load(ctx, id)
		require.NoError(t, err, id)
		assert.Equal(t, logOf(id, 4), got, id)
	}
}

func TestAutomaticCompactionFailureDoesNotRotateEveryBatch(t *testing.T) {
	t.Parallel()
	// While the base cannot be written, each automatic attempt rotates the
	// segment first. Retrying after every batch would give every batch a
	// segment of its own (and rewrite the whole index each time). Every
	// instance ends past retention, so that every attempt goes ahead.
	dir := t.TempDir()
	const segmentSize, compactAfter = 4096, 2
	clk := clock.NewFake(codecTime.Add(2 * time.Hour))
	errs := newSignalHandler(slog.LevelError)
	j := openJournal(t, dir, Options{Clock: clk, Retention: time.Hour, SegmentSize: segmentSize,
		CompactAfter: compactAfter, Logger: slog.New(errs)})
	j.fsync = failingFsync(func(f *os.File) bool { return strings.HasSuffix(f.Name(), ".tmp") })
	ctx := t.Context()
	for i := range 100 {
		id := fmt.Sprintf("i%03d", i)
		require.NoError(t, j.Create(ctx, logOf(id, 1)))
		require.NoError(t, j.Append(ctx, id, 1, append(logOf(id, 3)[1:], endEvent(id, 4, saga.EventSagaCompleted))))
	}
	require.NoError(t, j.Close())
	assert.Contains(t, errs.wait(t).Message, "compaction failed", "automatic compaction was attempted")

	st := j.Stats()
	bySize := int(st.Bytes/segmentSize) + 1
	segs, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	require.NoError(t, err)
	// Each failed attempt may add one segment, and a retry may come once
	// compactAfter more have accumulated.
	assert.LessOrEqual(t, len(segs), 2*bySize+compactAfter, "segments for %d records of %d bytes", st.Records, st.Bytes)
	j = openJournal(t, dir, Options{Clock: clk, CompactAfter: -1})
	for i := range 100 {
		id := fmt.Sprintf("i%03d", i)
		got, err := j.Load(ctx, id)
		require.NoError(t, err, id)
		assert.Equal(t, append(logOf(id, 3), endEvent(id, 4, saga.EventSagaCompleted)), got, id)
	}
}
