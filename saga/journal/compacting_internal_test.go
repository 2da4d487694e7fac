package journal

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
)

func TestCompactWhileCompactingIsRefused(t *testing.T) {
	t.Parallel()
	j := openJournal(t, t.TempDir(), Options{CompactAfter: -1})
	writing, release := make(chan struct{}), make(chan struct{})
	var held atomic.Bool
	j.fsync = func(f *os.File) error {
		if strings.HasSuffix(f.Name(), ".tmp") && held.CompareAndSwap(false, true) { // the first base
			close(writing)
			<-release
		}
		return f.Sync()
	}
	ctx := t.Context()
	require.NoError(t, j.Create(ctx, logOf("a", 2)))

	first := make(chan error, 1)
	go func() { first <- j.Compact(ctx) }()
	<-writing
	assert.ErrorIs(t, j.Compact(ctx), ErrCompacting)
	close(release)
	require.NoError(t, <-first)
	require.NoError(t, j.Compact(ctx), "once it has ended, another may run")

	events, err := j.Load(ctx, "a")
	require.NoError(t, err)
	assert.Len(t, events, 2)
}

func TestMovesFind(t *testing.T) {
	t.Parallel()
	m := &moves{base: 9}
	// Segment 3: records at 16 and 116 kept, 216 dropped, 316 kept;
	// segment 4: 16 kept.
	to := int64(headerSize)
	for _, f := range []struct {
		seg        int
		from, size int64
	}{{3, 16, 100}, {3, 116, 100}, {3, 316, 50}, {4, 16, 70}} {
		m.add(f.seg, f.from, to, f.size)
		to += f.size
	}
	assert.Len(t, m.runs, 3, "contiguous frames share a run")
	for _, tc := range []struct {
		from loc
		to   loc
		ok   bool
	}{
		{diskLoc(3, 16), diskLoc(9, 16), true},
		{diskLoc(3, 116), diskLoc(9, 116), true},
		{diskLoc(3, 316), diskLoc(9, 216), true},
		{diskLoc(4, 16), diskLoc(9, 266), true},
		{diskLoc(3, 216), diskLoc(3, 216), false}, // dropped
		{diskLoc(3, 366), diskLoc(3, 366), false}, // past the last frame
		{diskLoc(2, 16), diskLoc(2, 16), false},
		{diskLoc(5, 16), diskLoc(5, 16), false},
	} {
		got, ok := m.find(tc.from)
		assert.Equal(t, tc.ok, ok, "%d/%d", tc.from.seg(), tc.from.off())
		assert.Equal(t, tc.to, got, "%d/%d", tc.from.seg(), tc.from.off())
	}
}

// spread writes instances over segments of 1 KiB: finished ones, and ones
// in flight, and returns their logs. Its events are at codecTime, so a
// journal that keeps them runs on a clock near it.
func spread(t *testing.T, j *Journal) map[string][]saga.Event {
	t.Helper()
	logs := map[string][]saga.Event{}
	for i := range 12 {
		id := fmt.Sprintf("i%02d", i)
		log := logOf(id, 4)
		if i%3 != 0 {
			log = append(log, endEvent(id, 5, saga.EventSagaCompleted))
		}
		require.NoError(t, j.Create(t.Context(), log[:1]))
		require.NoError(t, j.Append(t.Context(), id, 1, log[1:3]))
		require.NoError(t, j.Append(t.Context(), id, 3, log[3:]))
		logs[id] = log
	}
	return logs
}

// assertLoads checks that j holds logs.
func assertLoads(t *testing.T, j *Journal, logs map[string][]saga.Event) {
	t.Helper()
	for id, want := range logs {
		got, err := j.Load(t.Context(), id)
		if assert.NoError(t, err, id) {
			assert.Equal(t, want, got, id)
		}
	}
}

// allLocs returns the locations of every written record the index knows.
func allLocs(t testing.TB, j *Journal) []loc {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	var locs []loc
	for _, e := range j.live {
		locs = append(locs, e.locs[:len(e.locs)-e.pending]...)
	}
	require.NoError(t, j.done.each(func(_, packed []byte, _ int64) bool {
		locs = unpackLocs(locs, packed)
		return true
	}))
	return locs
}

func TestCompactMovesRecordsIntoTheBase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := Options{Clock: clock.NewFake(codecTime), SegmentSize: 1024, CompactAfter: -1}
	j := openJournal(t, dir, opts)
	logs := spread(t, j)
	old := j.seg.n
	require.Greater(t, old, 2, "segments written")

	require.NoError(t, j.Compact(t.Context()))
	for _, l := range allLocs(t, j) {
		assert.Equal(t, old, l.seg(), "every record is in the base")
	}
	assertLoads(t, j, logs)
	names, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	require.NoError(t, err)
	assert.Equal(t, []string{filepath.Join(dir, segmentName(old)), filepath.Join(dir, segmentName(old+1))}, names)

	// Written after it, and compacted again.
	require.NoError(t, j.Append(t.Context(), "i00", 4, []saga.Event{endEvent("i00", 5, saga.EventSagaCompensated)}))
	logs["i00"] = append(logs["i00"], endEvent("i00", 5, saga.EventSagaCompensated))
	assertLoads(t, j, logs)
	require.NoError(t, j.Compact(t.Context()))
	assertLoads(t, j, logs)
	require.NoError(t, j.Close())
	j = openJournal(t, dir, opts)
	assertLoads(t, j, logs)
}

func TestLoadWhileCompacting(t *testing.T) {
	t.Parallel()
	j := openJournal(t, t.TempDir(), Options{Clock: clock.NewFake(codecTime), SegmentSize: 1024, CompactAfter: -1})
	g := gateFsync(j, func(path string) bool { return strings.HasSuffix(path, ".tmp") })
	logs := spread(t, j)
	before := allLocs(t, j)

	g.arm()
	compacted := make(chan error, 1)
	go func() { compacted <- j.Compact(t.Context()) }()
	g.wait(t) // the base is written, not yet in place
	assertLoads(t, j, logs)
	assert.ElementsMatch(t, before, allLocs(t, j), "nothing has moved yet")
	// Writing goes on meanwhile, into the segment after the old ones.
	require.NoError(t, j.Append(t.Context(), "i03", 4, []saga.Event{stepEvent("i03", 5)}))
	logs["i03"] = append(logs["i03"], stepEvent("i03", 5))
	assertLoads(t, j, logs)

	g.release()
	require.NoError(t, <-compacted)
	assertLoads(t, j, logs)
	assert.NotEqual(t, before, allLocs(t, j), "moved")
}

func TestCompactReportsDamage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := openJournal(t, dir, Options{Clock: clock.NewFake(codecTime), SegmentSize: 1024, CompactAfter: -1})
	logs := spread(t, j)
	at := locsOf(t, j, "i01")[1]
	flipByte(t, segPath(j, at), at.off()+frameHeader+5)
	before, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)

	err = j.Compact(t.Context())
	require.ErrorIs(t, err, ErrCorrupt)
	var ce *CorruptionError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, segPath(j, at), ce.File)
	assert.Equal(t, at.off(), ce.Offset)
	require.NoError(t, j.Ping(t.Context()), "a compaction that found damage does not poison")
	after, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	// The segment compaction started is the only new file.
	assert.Len(t, after, len(before)+1)
	assert.Subset(t, after, before, "no segment removed")
	delete(logs, "i01")
	assertLoads(t, j, logs)
}
