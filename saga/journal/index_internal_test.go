package journal

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
)

// The index keeps where records are, not the logs: an instance in flight
// is a *live, a finished one whose records are all written a done.

func TestLocFields(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		seg int
		off int64
	}{{1, 16}, {maxSegment, maxOffset}, {1, 0}, {7, 1 << 39}} {
		l := diskLoc(tc.seg, tc.off)
		assert.False(t, l.pending(), "%v", tc)
		assert.Equal(t, tc.seg, l.seg(), "%v", tc)
		assert.Equal(t, tc.off, l.off(), "%v", tc)
	}
	for _, tc := range []struct {
		serial uint32
		i      int
	}{{1, 0}, {serialMask, min(math.MaxUint32, math.MaxInt)}, {serialMask + 5, 3}} {
		l := pendingLoc(tc.serial, tc.i)
		assert.True(t, l.pending(), "%v", tc)
		assert.Equal(t, tc.serial&serialMask, l.serial(), "%v", tc)
		assert.Equal(t, tc.i, l.index(), "%v", tc)
	}
}

func TestPackLocs(t *testing.T) {
	t.Parallel()
	for _, locs := range [][]loc{
		nil,
		{diskLoc(1, 16)},
		{diskLoc(1, 16), diskLoc(1, 400), diskLoc(1, 90_000), diskLoc(2, 16), diskLoc(9, 1<<30)},
		{diskLoc(maxSegment, maxOffset)},
		// Not in order (no log is, but packing does not rely on it).
		{diskLoc(5, 100), diskLoc(3, 50), diskLoc(5, 100), 0},
	} {
		packed := packLocs([]byte("kept"), locs)[4:]
		assert.Equal(t, len(locs), countLocs(packed), "%v", locs)
		got := unpackLocs([]loc{42}, packed)
		assert.Equal(t, append([]loc{42}, locs...), got, "%v", locs)
	}
	// A log's locations pack small: a few bytes each.
	log := []loc{diskLoc(3, 1<<20), diskLoc(3, 1<<20+40_000), diskLoc(3, 1<<20+95_000), diskLoc(4, 16)}
	assert.LessOrEqual(t, len(packLocs(nil, log)), 20)
}

func TestUnixNanoClamps(t *testing.T) {
	t.Parallel()
	assert.Equal(t, int64(math.MinInt64), unixNano(time.Time{}))
	assert.Equal(t, int64(math.MaxInt64), unixNano(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)))
	assert.Equal(t, codecTime.UnixNano(), unixNano(codecTime))
}

// indexOf returns the IDs of the instances in flight and of the finished
// ones.
func indexOf(t testing.TB, j *Journal) (live, done []string) {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	require.NoError(t, j.done.each(func(id, _ []byte, _ int64) bool {
		done = append(done, string(id))
		return true
	}))
	slices.Sort(done)
	return slices.Sorted(maps.Keys(j.live)), done
}

func TestFinishedInstancesLeaveTheIndex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := openJournal(t, dir, Options{})
	ctx := t.Context()
	logs := map[string][]saga.Event{
		"running":   logOf("running", 3),
		"completed": append(logOf("completed", 3), endEvent("completed", 4, saga.EventSagaCompleted)),
		"at-once":   append(logOf("at-once", 1), endEvent("at-once", 2, saga.EventSagaCompensated)),
	}
	require.NoError(t, j.Create(ctx, logs["running"][:1]))
	require.NoError(t, j.Append(ctx, "running", 1, logs["running"][1:]))
	require.NoError(t, j.Create(ctx, logs["completed"][:1]))
	require.NoError(t, j.Append(ctx, "completed", 1, logs["completed"][1:3]))
	require.NoError(t, j.Append(ctx, "completed", 3, logs["completed"][3:]))
	require.NoError(t, j.Create(ctx, logs["at-once"]))

	check := func(j *Journal) {
		t.Helper()
		live, done := indexOf(t, j)
		assert.Equal(t, []string{"running"}, live, "in flight")
		assert.Equal(t, []string{"at-once", "completed"}, done, "finished")
		for id, want := range logs {
			got, err := j.Load(ctx, id)
			require.NoError(t, err, id)
			assert.Equal(t, want, got, id)
		}
		ids, err := j.Unfinished(ctx, "transfer")
		require.NoError(t, err)
		assert.Equal(t, []string{"running"}, ids)
		assert.ErrorIs(t, j.Append(ctx, "completed", 4, []saga.Event{stepEvent("completed", 5)}), saga.ErrFinished)
		assert.ErrorIs(t, j.Create(ctx, logOf("completed", 1)), saga.ErrDuplicate)
	}
	check(j)
	require.NoError(t, j.Close())
	check(openJournal(t, dir, Options{}))
}

// endEvent returns the event seq of instance id that ends its log.
func endEvent(id string, seq uint64, typ saga.EventType) saga.Event {
	return saga.Event{SagaID: id, Run: "run-" + id, Seq: seq, Type: typ, Time: codecTime.Add(time.Duration(seq) * time.Second)}
}

// fsyncGate holds the writer in its next fsync of a file that hold picks,
// once armed, until released.
type fsyncGate struct {
	hold     func(path string) bool
	armed    chan struct{} // a token while armed
	entered  chan struct{}
	released chan struct{}
}

// gateFsync replaces j.fsync (before any call, as fsync_internal_test.go
// explains) with one that a gate controls.
func gateFsync(j *Journal, hold func(path string) bool) *fsyncGate {
	g := &fsyncGate{hold: hold, armed: make(chan struct{}, 1), entered: make(chan struct{}), released: make(chan struct{})}
	j.fsync = func(f *os.File) error {
		if g.hold(f.Name()) {
			select {
			case <-g.armed:
				close(g.entered)
				<-g.released
			default:
			}
		}
		return f.Sync()
	}
	return g
}

func (g *fsyncGate) arm() { g.armed <- struct{}{} }

// wait returns once the writer is held.
func (g *fsyncGate) wait(t testing.TB) {
	t.Helper()
	select {
	case <-g.entered:
	case <-t.Context().Done():
		require.FailNow(t, "the writer never reached the gate")
	}
}

func (g *fsyncGate) release() { close(g.released) }

func isSegment(path string) bool { return strings.HasSuffix(path, ".log") }

func TestLoadSeesQueuedRecords(t *testing.T) {
	t.Parallel()
	j := openJournal(t, t.TempDir(), Options{CompactAfter: -1})
	g := gateFsync(j, isSegment)
	ctx := t.Context()
	log := append(logOf("a", 3), endEvent("a", 4, saga.EventSagaCompleted))
	require.NoError(t, j.Create(ctx, log[:1]))

	// Event 2 is written and its fsync held: its batch is in flight.
	g.arm()
	first := make(chan error, 1)
	go func() { first <- j.Append(context.WithoutCancel(ctx), "a", 1, log[1:2]) }()
	g.wait(t)
	got, err := j.Load(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, log[:2], got, "with the record being written")

	// Events 3 and 4 wait for the writer in the next batch.
	second, err := j.queue(ctx, &record{kind: kindAppend, sagaID: "a", expected: 2, events: log[2:]})
	require.NoError(t, err)
	got, err = j.Load(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, log, got, "with the record waiting for the writer")
	j.mu.Lock()
	assert.Equal(t, 2, j.live["a"].pending, "records not yet written")
	j.mu.Unlock()
	assert.ErrorIs(t, j.Append(ctx, "a", 4, []saga.Event{stepEvent("a", 5)}), saga.ErrFinished, "ended once queued")

	g.release()
	require.NoError(t, <-first)
	<-second.done
	require.NoError(t, second.err)
	live, done := indexOf(t, j)
	assert.Empty(t, live)
	assert.Equal(t, []string{"a"}, done, "retired once its last record was written")
	got, err = j.Load(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, log, got, "from the disk")
}

// locsOf returns the locations of the records of the finished instance id.
func locsOf(t testing.TB, j *Journal, id string) []loc {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	packed, _, ok, err := j.done.find(id)
	require.NoError(t, err)
	require.True(t, ok, "%s is finished", id)
	return unpackLocs(nil, packed)
}

// finishedPair writes two finished instances, a and b, of three records
// each, in segments of 1 KiB, and returns their logs.
func finishedPair(t *testing.T, j *Journal) map[string][]saga.Event {
	t.Helper()
	logs := map[string][]saga.Event{}
	for _, id := range []string{"a", "b"} {
		log := append(logOf(id, 3), endEvent(id, 4, saga.EventSagaCompleted))
		require.NoError(t, j.Create(t.Context(), log[:1]))
		require.NoError(t, j.Append(t.Context(), id, 1, log[1:3]))
		require.NoError(t, j.Append(t.Context(), id, 3, log[3:]))
		logs[id] = log
	}
	return logs
}

func TestLoadReportsDamage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// damage damages the log of a, given where its records are, and
		// returns the record that Load finds wrong.
		damage func(t *testing.T, j *Journal, a []loc) loc
		reason string
	}{
		{"bit flip", func(t *testing.T, j *Journal, a []loc) loc {
			flipByte(t, segPath(j, a[1]), a[1].off()+frameHeader+3)
			return a[1]
		}, "checksum"},
		{"cut short", func(t *testing.T, j *Journal, a []loc) loc {
			require.NoError(t, os.Truncate(segPath(j, a[1]), a[1].off()+frameHeader+2))
			return a[1]
		}, "cut short"},
		{"another log's record", func(t *testing.T, j *Journal, a []loc) loc {
			b := locsOf(t, j, "b")
			setLocs(j, "a", append(a[:1:1], b[1:]...))
			return b[1]
		}, `a record of "b" in the log of "a"`},
		{"a record left out", func(t *testing.T, j *Journal, a []loc) loc {
			setLocs(j, "a", append(a[:1:1], a[2:]...))
			return a[2]
		}, "expecting 3 events after 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			j := openJournal(t, t.TempDir(), Options{CompactAfter: -1})
			logs := finishedPair(t, j)
			at := tc.damage(t, j, locsOf(t, j, "a"))

			_, err := j.Load(t.Context(), "a")
			require.ErrorIs(t, err, ErrCorrupt)
			var ce *CorruptionError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, segPath(j, at), ce.File)
			assert.Equal(t, at.off(), ce.Offset)
			assert.Contains(t, ce.Reason, tc.reason)
			require.NoError(t, j.Ping(t.Context()), "reading damage does not poison the journal")
			if tc.name != "cut short" {
				got, err := j.Load(t.Context(), "b")
				require.NoError(t, err)
				assert.Equal(t, logs["b"], got, "the other log")
			}
		})
	}

	t.Run("segment missing", func(t *testing.T) {
		t.Parallel()
		j := openJournal(t, t.TempDir(), Options{CompactAfter: -1, SegmentSize: 256})
		finishedPair(t, j)
		at := locsOf(t, j, "a")[0]
		require.NoError(t, os.Remove(segPath(j, at)))
		_, err := j.Load(t.Context(), "a")
		assert.ErrorIs(t, err, fs.ErrNotExist)
		assert.NotErrorIs(t, err, ErrCorrupt)
	})
}

// setLocs points the index at other records for the finished instance id,
// which must be in the memory table.
func setLocs(j *Journal, id string, locs []loc) {
	j.mu.Lock()
	defer j.mu.Unlock()
	h := j.done.tune.hash(id)
	_, end, _ := j.done.mem.get(h, id)
	j.done.mem.replace(h, id, locs, end)
}

// segPath returns the path of the segment of a written record.
func segPath(j *Journal, at loc) string {
	return filepath.Join(j.dir, segmentName(at.seg()))
}

// flipByte inverts the byte at off of the file at path.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	require.NoError(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	b[0] ^= 0xff
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
}

// TestIndexMemoryFollowsInstancesInFlight is not parallel: it measures the
// heap of the whole process.
func TestIndexMemoryFollowsInstancesInFlight(t *testing.T) {
	const instances = 20_000
	// Acknowledged once written (the fake clock's interval never passes),
	// so that many instances take little time.
	clk := clock.NewFake(codecTime)
	j := openJournal(t, t.TempDir(), Options{Clock: clk, SyncInterval: time.Hour, CompactAfter: -1})
	ctx := t.Context()
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	state := []byte(`{"order":"` + strings.Repeat("x", 400) + `"}`)
	for i := range instances {
		id := fmt.Sprintf("order-%06d", i)
		log := append(logOf(id, 6), endEvent(id, 7, saga.EventSagaCompleted))
		for k := range log {
			log[k].State = state
		}
		require.NoError(t, j.Create(ctx, log[:2]))
		for k := 2; k < len(log); k += 2 {
			require.NoError(t, j.Append(ctx, id, uint64(k), log[k:min(k+2, len(log))]))
		}
	}
	after := heap()
	runtime.KeepAlive(j)
	live, done := indexOf(t, j)
	require.Empty(t, live)
	require.Len(t, done, instances)
	perInstance := float64(int64(after)-int64(before)) / instances
	t.Logf("%.0f bytes of heap per finished instance (%d bytes of log each on disk)", perInstance, j.Stats().Bytes/instances)
	assert.Less(t, perInstance, 100.0, "heap per finished instance")
}

func TestSegmentNumbersBeyondLocationsAreRefused(t *testing.T) {
	t.Parallel()
	j := openJournal(t, t.TempDir(), Options{})
	_, err := j.createSegment(maxSegment+1, 0)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "segment numbers are spent")
	_, err = os.Stat(filepath.Join(j.dir, segmentName(maxSegment+1)))
	assert.ErrorIs(t, err, fs.ErrNotExist, "nothing created")
}
