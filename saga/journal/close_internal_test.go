package journal

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// Close may come while the index job merges runs or a compaction reads or
// rewrites them, work that takes as long as the runs take to read. It
// interrupts that work rather than wait for it, and leaves a directory
// that opens again with every acknowledged event.

// closeGate controls the reads and writes of runs around Close. Once
// armed, it holds the nth read of a run until Close has begun; from then
// on it stalls every read and write of a run until the test ends, so that
// work on the runs that goes on after Close has begun holds Close up
// (closeReturns then fails the test) rather than finishing unseen.
type closeGate struct {
	j       atomic.Pointer[Journal]
	nth     int64
	armed   atomic.Bool
	reads   atomic.Int64  // since armed
	reading chan struct{} // closed when the nth read starts
	stalled atomic.Int64  // reads and writes stalled after Close began
	end     chan struct{} // closed when the test ends
	ending  sync.Once
}

// gateClose has tune's runs read and written through a new gate that
// holds the nth read once armed.
func gateClose(t *testing.T, tune *spillTuning, nth int64) *closeGate {
	g := &closeGate{nth: nth, reading: make(chan struct{}), end: make(chan struct{})}
	t.Cleanup(g.release)
	after := func() {
		if j := g.j.Load(); j != nil && isClosed(j.quit) {
			g.stalled.Add(1)
			<-g.end
		}
	}
	tune.readAt = func(f *os.File, b []byte, off int64) (int, error) {
		after()
		if g.armed.Load() && g.reads.Add(1) == g.nth {
			close(g.reading)
			<-g.j.Load().quit
		}
		return f.ReadAt(b, off)
	}
	tune.write = func(f *os.File, b []byte) (int, error) {
		after()
		return f.Write(b)
	}
	return g
}

func (g *closeGate) release() { g.ending.Do(func() { close(g.end) }) }

// wait returns once the nth read is held.
func (g *closeGate) wait(t *testing.T) {
	t.Helper()
	select {
	case <-g.reading:
	case <-t.Context().Done():
		require.FailNow(t, "the runs were never read")
	}
}

// closeReturns closes j, and fails the test if Close does not return
// while the runs stall.
func (g *closeGate) closeReturns(t *testing.T, j *Journal) {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- j.Close() }()
	timer := time.NewTimer(sagatest.WaitTimeout)
	defer timer.Stop()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-timer.C:
		g.release()
		<-closed
		require.FailNow(t, "Close waited for work on the runs", "%d reads or writes of runs after Close began", g.stalled.Load())
	}
	assert.Zero(t, g.stalled.Load(), "reads or writes of runs after Close began")
}

func TestCloseInterruptsCompactionReadingTheRuns(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// past is how long after the instances end the compaction
		// runs: past the hour of retention, it reads the runs to list
		// the instances to drop; within it, the first read of a run is
		// the rewrite of the runs.
		past time.Duration
	}{
		{"listing the expired instances", 2 * time.Hour},
		{"rewriting the runs", 30 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			clk := clock.NewFake(codecTime)
			tune := tinyTuning()
			tune.bloomBits = 40 // so that no Create of a new ID reads a run
			g := gateClose(t, &tune, 1)
			opts := Options{Clock: clk, Retention: time.Hour, SegmentSize: 4096, CompactAfter: -1}
			errs := newSignalHandler(slog.LevelError)
			logged := opts
			logged.Logger = slog.New(errs)
			j := openSpilling(t, dir, logged, tune)
			g.j.Store(j)
			ctx := t.Context()
			logs := finishAll(t, j, numbered("done"), 2*tune.at, clk.Now())
			_, runs := indexShape(j)
			require.Equal(t, 1, runs, "merged into one run, read whole at once")
			require.NoError(t, j.Create(ctx, logOf("running", 2)))
			clk.Advance(tc.past)
			segments, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
			require.NoError(t, err)

			g.armed.Store(true)
			compacted := make(chan error, 1)
			go func() { compacted <- j.Compact(context.Background()) }()
			g.wait(t)
			// Writes go on meanwhile.
			require.NoError(t, j.Append(ctx, "running", 2, []saga.Event{stepEvent("running", 3)}))
			g.closeReturns(t, j)
			assert.ErrorIs(t, <-compacted, saga.ErrClosed, "Compact")
			assert.Empty(t, errs.c, "an interrupted compaction is no failure")
			tmps, err := filepath.Glob(filepath.Join(dir, "*.tmp"))
			require.NoError(t, err)
			assert.Empty(t, tmps, "no base left behind")
			after, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
			require.NoError(t, err)
			assert.Subset(t, after, segments, "no segment removed")

			j = openSpilling(t, dir, opts, tinyTuning())
			assertFinished(t, j, logs)
			assertRunning(t, j, "running", 3)
		})
	}
}

// TestCloseInterruptsMergingRuns closes the journal while the index job
// merges two runs: the merge stops, and the journal opens again with
// every instance.
func TestCloseInterruptsMergingRuns(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tune := tinyTuning()
	tune.bloomBits = 40 // so that no Create of a new ID reads a run
	// The merge reads the first blocks of both runs before it merges
	// them: the second read is its last before the merge.
	g := gateClose(t, &tune, 2)
	errs := newSignalHandler(slog.LevelError)
	j := openSpilling(t, dir, Options{CompactAfter: -1, Logger: slog.New(errs)}, tune)
	g.j.Store(j)
	ctx := t.Context()
	logs := finishAll(t, j, numbered("a"), tune.at, codecTime)
	for id, log := range finishAll(t, j, numbered("b"), tune.at-1, codecTime) {
		logs[id] = log
	}
	_, runs := indexShape(j)
	require.Equal(t, 1, runs)

	// The last of a table: the index job writes its run, then merges it
	// with the other.
	g.armed.Store(true)
	id := numbered("b")(tune.at - 1)
	logs[id] = append(logOf(id, 3), endEvent(id, 4, saga.EventSagaCompleted))
	require.NoError(t, j.Create(ctx, logs[id][:1]))
	require.NoError(t, j.Append(ctx, id, 1, logs[id][1:]))
	g.wait(t)
	require.NoError(t, j.Create(ctx, logOf("running", 2)), "writes go on meanwhile")
	g.closeReturns(t, j)
	assert.Empty(t, errs.c, "an interrupted merge is no failure")

	j = openSpilling(t, dir, Options{CompactAfter: -1}, tinyTuning())
	assertFinished(t, j, logs)
	assertRunning(t, j, "running", 2)
}
