package journal

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
)

// A run of the index of finished instances is derived data: when one
// cannot be written (the disk is full, the directory refuses new files),
// the journal keeps what it would have held in memory, goes on taking
// writes, and tries again later; a compaction that cannot rewrite the runs
// leaves the journal as it was. Neither poisons the journal, and a reopen
// rebuilds the index from the segments.

// failRunWrites has the writes of tune's runs fail with errInjected while
// the returned flag is set.
func failRunWrites(tune *spillTuning) *atomic.Bool {
	failing := new(atomic.Bool)
	tune.write = func(f *os.File, b []byte) (int, error) {
		if failing.Load() {
			return 0, errInjected
		}
		return f.Write(b)
	}
	return failing
}

// openRunFiles returns how many files of runs in dir the process has open
// (unlinked, they are still named there), or -1 where it cannot tell (no
// /proc/self/fd).
func openRunFiles(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	prefix := filepath.Join(dir, "finished-")
	n := 0
	for _, fd := range fds {
		// A descriptor may close meanwhile: an error is not one of ours.
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, prefix) {
			n++
		}
	}
	return n
}

// assertOpenRuns checks that the files of runs open are those of j's runs:
// none of a run that could not be written stays open.
func assertOpenRuns(t *testing.T, j *Journal) {
	t.Helper()
	j.mu.Lock()
	runs, dir := len(j.done.runs), j.done.dir
	j.mu.Unlock()
	if n := openRunFiles(t, dir); n >= 0 {
		assert.Equal(t, runs, n, "files of runs open")
	}
}

// indexShape returns how many memory tables the index of finished
// instances of j has frozen and how many runs it has.
func indexShape(j *Journal) (frozen, runs int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.done.frozen), len(j.done.runs)
}

func TestFailedRunWriteKeepsInstancesInMemory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// fail makes the runs of j, in dir, fail to be written, and
		// returns what makes them writable again. It runs before any call.
		fail func(t *testing.T, j *Journal, dir string, writes *atomic.Bool) (repair func())
	}{
		{"disk full", func(_ *testing.T, _ *Journal, _ string, writes *atomic.Bool) func() {
			writes.Store(true)
			return func() { writes.Store(false) }
		}},
		{"no file can be created", func(t *testing.T, j *Journal, dir string, _ *atomic.Bool) func() {
			runs := filepath.Join(dir, "runs") // not there yet
			j.mu.Lock()
			j.done.dir = runs
			j.mu.Unlock()
			return func() { require.NoError(t, os.Mkdir(runs, 0o755)) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tune := tinyTuning()
			writes := failRunWrites(&tune)
			errs := newSignalHandler(slog.LevelError)
			j := openSpilling(t, dir, Options{CompactAfter: -1, Logger: slog.New(errs)}, tune)
			repair := tc.fail(t, j, dir, writes)
			ctx := t.Context()
			a := finishAll(t, j, numbered("a"), tune.at, codecTime)
			assert.Contains(t, errs.wait(t).Message, "could not spill", "the failure is logged")
			b := finishAll(t, j, numbered("b"), tune.at, codecTime)
			frozen, runs := indexShape(j)
			assert.Equal(t, 2, frozen, "the tables that could not be written stay in memory")
			assert.Zero(t, runs)
			assertOpenRuns(t, j)
			require.NoError(t, j.Ping(ctx), "a run that cannot be written does not poison the journal")
			assertFinished(t, j, a, b)
			require.NoError(t, j.Create(ctx, logOf("running", 2)))

			repair()
			c := finishAll(t, j, numbered("c"), tune.at, codecTime) // the next spill writes them all
			frozen, runs = indexShape(j)
			assert.Zero(t, frozen, "written at the next spill")
			assert.Equal(t, 1, runs)
			assert.Equal(t, "merged", where(t, j, "a-000"))
			assertOpenRuns(t, j)
			assertFinished(t, j, a, b, c)
			require.NoError(t, j.Close())

			j = openSpilling(t, dir, Options{CompactAfter: -1}, tune)
			assertFinished(t, j, a, b, c)
			assertRunning(t, j, "running", 2)
		})
	}
}

// Recovery spills the index as it replays the segments: if it cannot
// write a run, Open still succeeds, with the instances in memory.
func TestOpenWithRunsFailingToWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tune := tinyTuning()
	failing := failRunWrites(&tune)
	j := openSpilling(t, dir, Options{CompactAfter: -1}, tune)
	logs := finishAll(t, j, numbered("done"), 3*tune.at, codecTime)
	require.NoError(t, j.Close())

	failing.Store(true)
	j = openSpilling(t, dir, Options{CompactAfter: -1}, tune)
	frozen, runs := indexShape(j)
	assert.Equal(t, 3, frozen, "every table tried, none written")
	assert.Zero(t, runs)
	assertOpenRuns(t, j)
	assertFinished(t, j, logs)
	failing.Store(false)
	more := finishAll(t, j, numbered("more"), tune.at, codecTime)
	frozen, runs = indexShape(j)
	assert.Zero(t, frozen, "written at the next spill")
	assert.NotZero(t, runs)
	assertFinished(t, j, logs)
	assertFinished(t, j, more)
}

// TestFailedRebaseKeepsTheJournal fails the write of the run into which a
// compaction rewrites the index of finished instances, after it has
// written the base: the compaction fails, and the journal holds what it
// held, runs and all, until a later compaction succeeds.
func TestFailedRebaseKeepsTheJournal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewFake(codecTime)
	tune := tinyTuning()
	failing := failRunWrites(&tune)
	opts := Options{Clock: clk, Retention: time.Hour, SegmentSize: 4096, CompactAfter: -1}
	j := openSpilling(t, dir, opts, tune)
	ctx := t.Context()
	old := finishAll(t, j, numbered("old"), 20, clk.Now())
	clk.Advance(time.Hour)
	kept := finishAll(t, j, numbered("new"), 20, clk.Now())
	require.NoError(t, j.Create(ctx, logOf("running", 2)))
	clk.Advance(30 * time.Minute)
	settle(t, j)
	j.mu.Lock()
	runs := append([]*finRun(nil), j.done.runs...)
	j.mu.Unlock()
	require.NotEmpty(t, runs)
	segments, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	require.NoError(t, err)

	failing.Store(true)
	err = j.Compact(ctx)
	require.ErrorIs(t, err, errInjected)
	require.NoError(t, j.Ping(ctx), "a failed compaction does not poison")
	j.mu.Lock()
	now := append([]*finRun(nil), j.done.runs...)
	j.mu.Unlock()
	require.Len(t, now, len(runs), "the runs stay")
	for i, r := range runs {
		assert.Same(t, r, now[i], "run %d stays", i)
		_, err := r.f.Stat()
		assert.NoError(t, err, "run %d stays open", i)
	}
	assertOpenRuns(t, j)
	after, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	assert.Subset(t, after, segments, "no segment removed")
	tmps, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
	require.NoError(t, err)
	assert.Empty(t, tmps, "the base is removed")
	assertFinished(t, j, old) // past retention, but not dropped
	assertFinished(t, j, kept)
	require.NoError(t, j.Append(ctx, "running", 2, []saga.Event{stepEvent("running", 3)}))

	failing.Store(false)
	require.NoError(t, j.Compact(ctx), "once the runs can be written")
	check := func(j *Journal) {
		t.Helper()
		assertFinished(t, j, kept)
		for id := range old {
			_, err := j.Load(ctx, id)
			assert.ErrorIs(t, err, saga.ErrNotFound, id)
		}
		got, err := j.Load(ctx, "running")
		require.NoError(t, err)
		assert.Equal(t, logOf("running", 3), got)
	}
	check(j)
	assertOpenRuns(t, j)
	require.NoError(t, j.Close())
	check(openSpilling(t, dir, opts, tune))
}
