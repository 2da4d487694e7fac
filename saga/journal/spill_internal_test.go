package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/sagatest"
)

// tinyTuning spills every 8 finished instances into runs of small blocks,
// and merges runs two at a time.
func tinyTuning() spillTuning {
	tune := defaultTuning
	tune.at, tune.fanIn, tune.block = 8, 2, 256
	return tune
}

// openSpilling opens a journal in dir tuned by tune and closes it when the
// test ends.
func openSpilling(t testing.TB, dir string, opts Options, tune spillTuning) *Journal {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discard
	}
	j, err := open(dir, opts, tune)
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	return j
}

// len returns how many instances d holds.
func (d *finIndex) len() int {
	n := 0
	for _, f := range d.tables() {
		n += f.len()
	}
	for _, r := range d.runs {
		n += r.n
	}
	return n
}

// settle waits until the index job has nothing left to do.
func settle(t testing.TB, j *Journal) {
	t.Helper()
	for {
		j.mu.Lock()
		idle := j.done.idle
		j.mu.Unlock()
		if idle == nil {
			return
		}
		select {
		case <-idle:
		case <-t.Context().Done():
			require.FailNow(t, "the index job never ended")
		}
	}
}

// finishAll writes n finished instances of four events (in three
// records), at at, named by name, and returns their logs. It lets the
// index job finish after each, so that the runs are always the same.
func finishAll(t *testing.T, j *Journal, name func(int) string, n int, at time.Time) map[string][]saga.Event {
	t.Helper()
	logs := map[string][]saga.Event{}
	for i := range n {
		id := name(i)
		log := append(logOf(id, 3), endEvent(id, 4, saga.EventSagaCompleted))
		for k := range log {
			log[k].Time = at
		}
		require.NoError(t, j.Create(t.Context(), log[:1]))
		require.NoError(t, j.Append(t.Context(), id, 1, log[1:3]))
		require.NoError(t, j.Append(t.Context(), id, 3, log[3:]))
		logs[id] = log
		settle(t, j)
	}
	return logs
}

// where says where the index keeps the finished instance id: "memory",
// "run" (of one table) or "merged".
func where(t *testing.T, j *Journal, id string) string {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	d := j.done
	h := d.tune.hash(id)
	if _, _, ok := d.mem.get(h, id); ok {
		return "memory"
	}
	for _, r := range d.runs {
		if _, _, ok, err := r.find(h, id, &d.buf); ok && err == nil {
			if r.n > d.tune.at {
				return "merged"
			}
			return "run"
		}
	}
	return "nowhere"
}

// assertFinished checks that j holds the finished instances of every one
// of logs: Load returns their logs, Create refuses them and Append says
// they ended.
func assertFinished(t *testing.T, j *Journal, logs ...map[string][]saga.Event) {
	t.Helper()
	ctx := t.Context()
	for _, logs := range logs {
		for id, want := range logs {
			got, err := j.Load(ctx, id)
			if assert.NoError(t, err, id) {
				assert.Equal(t, want, got, id)
			}
			assert.ErrorIs(t, j.Create(ctx, logOf(id, 1)), saga.ErrDuplicate, id)
			assert.ErrorIs(t, j.Append(ctx, id, 4, []saga.Event{stepEvent(id, 5)}), saga.ErrFinished, id)
		}
	}
}

// assertRunning checks that j holds the running instance id with the n
// events of logOf.
func assertRunning(t *testing.T, j *Journal, id string, n int) {
	t.Helper()
	got, err := j.Load(t.Context(), id)
	require.NoError(t, err, id)
	assert.Equal(t, logOf(id, n), got, id)
}

// numbered names instance i "<prefix>-<i>", i in three digits.
func numbered(prefix string) func(int) string {
	return func(i int) string { return fmt.Sprintf("%s-%03d", prefix, i) }
}

func TestSpilledInstancesAreFound(t *testing.T) {
	t.Parallel()
	j := openSpilling(t, t.TempDir(), Options{CompactAfter: -1}, tinyTuning())
	name := func(i int) string { return fmt.Sprintf("done-%03d", i) }
	logs := finishAll(t, j, name, 45, codecTime)
	require.NoError(t, j.Create(t.Context(), logOf("running", 2)))
	settle(t, j)

	j.mu.Lock()
	assert.Equal(t, 45, j.done.len())
	assert.Equal(t, 5, j.done.mem.len(), "45 = 5 x 8 spilled + 5")
	assert.Empty(t, j.done.frozen)
	sizes := []int{}
	for _, r := range j.done.runs {
		sizes = append(sizes, r.n)
	}
	j.mu.Unlock()
	assert.Equal(t, []int{8, 32}, sizes, "merged two at a time, newest first")
	assert.Equal(t, "merged", where(t, j, name(0)))
	assert.Equal(t, "run", where(t, j, name(39)))
	assert.Equal(t, "memory", where(t, j, name(44)))

	assertFinished(t, j, logs)
	ctx := t.Context()
	_, err := j.Load(ctx, "never")
	assert.ErrorIs(t, err, saga.ErrNotFound)
	assert.ErrorIs(t, j.Append(ctx, "never", 1, []saga.Event{stepEvent("never", 2)}), saga.ErrNotFound)
	ids, err := j.Unfinished(ctx, "transfer")
	require.NoError(t, err)
	assert.Equal(t, []string{"running"}, ids)
	live, done := indexOf(t, j)
	assert.Equal(t, []string{"running"}, live)
	assert.Len(t, done, 45)
}

// Without Bloom filters every lookup reads a block of every run: what
// they do not hold must be found missing all the same, and hashes that
// collide must not confuse IDs.
func TestSpilledLookupsCompareIDs(t *testing.T) {
	t.Parallel()
	tune := tinyTuning()
	tune.bloomBits = 0
	tune.hash = func(id string) uint64 { return uint64(len(id)) } // all the IDs below collide
	j := openSpilling(t, t.TempDir(), Options{CompactAfter: -1}, tune)
	name := func(i int) string { return fmt.Sprintf("id-%04d", i) }
	logs := finishAll(t, j, name, 40, codecTime)
	settle(t, j)
	j.mu.Lock()
	require.NotEmpty(t, j.done.runs)
	j.mu.Unlock()

	assertFinished(t, j, logs)
	for i := 40; i < 60; i++ {
		require.NoError(t, j.Create(t.Context(), logOf(name(i), 1)), "a new ID that collides with spilled ones")
	}
}

func TestSpillingSurvivesReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := openSpilling(t, dir, Options{CompactAfter: -1}, tinyTuning())
	name := func(i int) string { return fmt.Sprintf("done-%03d", i) }
	logs := finishAll(t, j, name, 30, codecTime)
	settle(t, j)
	j.mu.Lock()
	runs := j.done.runs
	j.mu.Unlock()
	require.NotEmpty(t, runs)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.NotContains(t, e.Name(), "finished", "runs are unlinked")
	}

	require.NoError(t, j.Close())
	for _, r := range runs {
		_, err := r.f.Stat()
		assert.ErrorIs(t, err, os.ErrClosed, "Close closes the runs")
	}
	// A crash between creating a run and unlinking it leaves it behind.
	stale := filepath.Join(dir, "finished-12345.tmp")
	require.NoError(t, os.WriteFile(stale, []byte("stale"), 0o644))

	j = openSpilling(t, dir, Options{CompactAfter: -1}, tinyTuning())
	_, err = os.Stat(stale)
	assert.ErrorIs(t, err, os.ErrNotExist, "Open removes a stale run")
	j.mu.Lock()
	assert.NotEmpty(t, j.done.runs, "recovery spills as it replays")
	assert.Equal(t, 30, j.done.len())
	j.mu.Unlock()
	assertFinished(t, j, logs)
	more := finishAll(t, j, func(i int) string { return fmt.Sprintf("more-%03d", i) }, 20, codecTime)
	settle(t, j)
	assertFinished(t, j, more)
}

func TestCompactDropsSpilledInstances(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewFake(codecTime)
	opts := Options{Clock: clk, Retention: time.Hour, SegmentSize: 4096, CompactAfter: -1}
	j := openSpilling(t, dir, opts, tinyTuning())
	old := finishAll(t, j, func(i int) string { return fmt.Sprintf("old-%03d", i) }, 30, clk.Now())
	clk.Advance(time.Hour)
	kept := finishAll(t, j, func(i int) string { return fmt.Sprintf("new-%03d", i) }, 30, clk.Now())
	require.NoError(t, j.Create(t.Context(), logOf("running", 2)))
	clk.Advance(30 * time.Minute)
	settle(t, j)
	assert.Equal(t, "merged", where(t, j, "old-000"), "spilled before compacting")

	base := j.seg.n // the writer is idle: what Compact makes the base
	require.NoError(t, j.Compact(t.Context()))
	settle(t, j)
	check := func(j *Journal) {
		t.Helper()
		assertFinished(t, j, kept)
		for id := range old {
			_, err := j.Load(t.Context(), id)
			assert.ErrorIs(t, err, saga.ErrNotFound, id)
		}
		got, err := j.Load(t.Context(), "running")
		require.NoError(t, err)
		assert.Equal(t, logOf("running", 2), got)
		j.mu.Lock()
		assert.Equal(t, 30, j.done.len())
		j.mu.Unlock()
	}
	check(j)
	for _, l := range allLocs(t, j) {
		assert.Equal(t, base, l.seg(), "every record is in the base")
	}
	j.mu.Lock()
	assert.Len(t, j.done.runs, 1, "compaction rewrites the runs into one")
	j.mu.Unlock()
	assert.Equal(t, "merged", where(t, j, "new-000"))

	require.NoError(t, j.Create(t.Context(), logOf("old-000", 1)), "a dropped ID is free again")
	require.NoError(t, j.Close())
	j = openSpilling(t, dir, opts, tinyTuning())
	delete(old, "old-000")
	check(j)
}

// readGate holds the reads of runs, once hold is set, until released.
type readGate struct {
	hold    atomic.Bool
	reading chan struct{} // a token when a read is held
	resume  chan struct{}
}

// gateReads has tune's runs read through a new gate.
func gateReads(tune *spillTuning) *readGate {
	g := &readGate{reading: make(chan struct{}, 1), resume: make(chan struct{})}
	tune.readAt = func(f *os.File, b []byte, off int64) (int, error) {
		if g.hold.Load() {
			select {
			case g.reading <- struct{}{}:
			default:
			}
			<-g.resume
		}
		return f.ReadAt(b, off)
	}
	return g
}

// wait returns once a read is held.
func (g *readGate) wait(t *testing.T) {
	t.Helper()
	timer := time.NewTimer(sagatest.WaitTimeout)
	defer timer.Stop()
	select {
	case <-g.reading:
	case <-timer.C:
		t.Fatal("no run was read")
	}
}

// release lets the reads held go on, and the later ones through.
func (g *readGate) release() {
	g.hold.Store(false)
	close(g.resume)
}

// TestWritesGoOnWhileCompactionReadsTheRuns holds a compaction in the
// middle of reading the runs for the instances it drops: appends and
// their fsyncs must go on meanwhile, as they did not when the writer read
// the runs under the journal's lock.
func TestWritesGoOnWhileCompactionReadsTheRuns(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(codecTime)
	tune := tinyTuning()
	reads := gateReads(&tune)
	j := openSpilling(t, t.TempDir(), Options{Clock: clk, Retention: time.Hour, CompactAfter: -1}, tune)
	old := finishAll(t, j, func(i int) string { return fmt.Sprintf("old-%03d", i) }, 30, clk.Now())
	require.NoError(t, j.Create(t.Context(), logOf("running", 2)))
	clk.Advance(2 * time.Hour)
	settle(t, j)
	require.Equal(t, "merged", where(t, j, "old-000"))

	reads.hold.Store(true)
	compacted := make(chan error, 1)
	go func() { compacted <- j.Compact(context.Background()) }()
	reads.wait(t)
	ctx, cancel := context.WithTimeout(t.Context(), sagatest.WaitTimeout)
	defer cancel()
	appended := make(chan error, 1)
	go func() { appended <- j.Append(t.Context(), "running", 2, []saga.Event{stepEvent("running", 3)}) }()
	var err error
	select {
	case err = <-appended:
	case <-ctx.Done():
		err = errors.New("it waited for the compaction")
	}
	reads.release()
	require.NoError(t, err, "an append while the runs are read")
	require.NoError(t, <-compacted)
	for id := range old {
		_, err := j.Load(t.Context(), id)
		assert.ErrorIs(t, err, saga.ErrNotFound, id)
	}
	got, err := j.Load(t.Context(), "running")
	require.NoError(t, err)
	assert.Len(t, got, 3)
}

// TestCompactionKeepsInstancesThatEndAfterItStarts makes instances that
// started before a compaction end after its first phase, with end times
// already past retention, and get into a run before the compaction lists
// the runs: it must keep them, whose last records are in a segment it does
// not rewrite, or the journal would hold records of instances it does not
// know, and not open again.
func TestCompactionKeepsInstancesThatEndAfterItStarts(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(codecTime)
	tune := tinyTuning()
	reads := gateReads(&tune)
	dir := t.TempDir()
	opts := Options{Clock: clk, Retention: time.Hour, CompactAfter: -1}
	j := openSpilling(t, dir, opts, tune)
	var gated atomic.Value // the name of the segment whose fsync the gate holds
	gated.Store("")
	g := gateFsync(j, func(path string) bool { return filepath.Base(path) == gated.Load() })
	ctx := t.Context()
	old := finishAll(t, j, func(i int) string { return fmt.Sprintf("old-%03d", i) }, 3*tune.at, clk.Now())
	late := make([]string, tune.at)
	for i := range late {
		late[i] = fmt.Sprintf("late-%d", i)
		require.NoError(t, j.Create(ctx, logOf(late[i], 2)))
	}
	for i := range tune.at {
		id := fmt.Sprintf("more-%d", i)
		require.NoError(t, j.Create(ctx, logOf(id, 2)))
		old[id] = append(logOf(id, 2), endEvent(id, 3, saga.EventSagaCompleted))
	}
	clk.Advance(2 * time.Hour)
	settle(t, j)

	// A table's worth more ends: the index job spills it, and then holds
	// j.idx while it reads runs to merge them, until resumed.
	reads.hold.Store(true)
	for i := range tune.at {
		id := fmt.Sprintf("more-%d", i)
		require.NoError(t, j.Append(ctx, id, 2, old[id][2:]))
	}
	reads.wait(t)
	// The compaction's first phase plans, then starts a segment: the late
	// ones end while the writer is held in that segment's fsync, and are
	// written to it.
	gated.Store(segmentName(j.seg.n + 1))
	g.arm()
	compacted := make(chan error, 1)
	j.compactReq <- compacted
	g.wait(t)
	var ends []*batch
	for _, id := range late {
		b, err := j.queue(ctx, &record{kind: kindAppend, sagaID: id, expected: 2, events: []saga.Event{endEvent(id, 3, saga.EventSagaCompleted)}})
		require.NoError(t, err)
		ends = append(ends, b)
	}
	g.release()
	for _, b := range ends {
		<-b.done
		require.NoError(t, b.err)
	}
	reads.release() // the index job spills the late ones before the compaction lists the runs
	require.NoError(t, <-compacted)
	settle(t, j)
	for _, id := range late {
		assert.Contains(t, []string{"run", "merged"}, where(t, j, id), "%s kept in the index", id)
	}

	check := func(j *Journal) {
		t.Helper()
		for _, id := range late {
			got, err := j.Load(ctx, id)
			require.NoError(t, err, id)
			assert.Len(t, got, 3, id)
		}
		for id := range old {
			_, err := j.Load(ctx, id)
			assert.ErrorIs(t, err, saga.ErrNotFound, id)
		}
	}
	check(j)
	require.NoError(t, j.Close())
	j = openSpilling(t, dir, opts, tinyTuning())
	check(j)
}

// A compaction whose plan finds nothing to drop in the tallies of the runs
// does not go ahead on its own.
func TestAutomaticCompactionCountsSpilledRecords(t *testing.T) {
	t.Parallel()
	clk := clock.NewFake(codecTime)
	j := openSpilling(t, t.TempDir(), Options{Clock: clk, Retention: time.Hour, CompactAfter: -1}, tinyTuning())
	finishAll(t, j, func(i int) string { return fmt.Sprintf("old-%03d", i) }, 24, clk.Now())
	clk.Advance(2 * time.Hour)
	finishAll(t, j, func(i int) string { return fmt.Sprintf("new-%03d", i) }, 8, clk.Now())
	settle(t, j)
	j.mu.Lock()
	defer j.mu.Unlock()
	require.Equal(t, 0, j.done.mem.len(), "all spilled")
	c := j.plan(clk.Now())
	assert.Equal(t, 32*3, c.records)
	assert.Equal(t, 24*3, c.dropped)
	c = j.plan(codecTime.Add(30 * time.Minute))
	assert.Equal(t, 0, c.dropped)
}

func TestRunReadErrorsSurface(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	broken := errors.New("disk on fire")
	tune := tinyTuning()
	tune.bloomBits = 0 // every lookup reads the runs,
	// and every ID hashes alike, so that no lookup can tell from the
	// blocks' first hashes that an ID is not in a run without reading it.
	tune.hash = func(string) uint64 { return 1 << 63 }
	tune.readAt = func(f *os.File, b []byte, off int64) (int, error) {
		if failing.Load() {
			return 0, broken
		}
		return f.ReadAt(b, off)
	}
	dir := t.TempDir()
	j := openSpilling(t, dir, Options{CompactAfter: -1}, tune)
	logs := finishAll(t, j, func(i int) string { return fmt.Sprintf("done-%03d", i) }, 12, codecTime)
	settle(t, j)
	require.Equal(t, "run", where(t, j, "done-000"))

	failing.Store(true)
	ctx := t.Context()
	var re *runError
	_, err := j.Load(ctx, "done-000")
	require.ErrorIs(t, err, broken, "Load")
	assert.ErrorAs(t, err, &re)
	assert.NotErrorIs(t, err, saga.ErrNotFound)
	err = j.Create(ctx, logOf("done-000", 1))
	assert.ErrorIs(t, err, broken, "Create of a spilled ID")
	assert.NotErrorIs(t, err, saga.ErrDuplicate)
	assert.ErrorIs(t, j.Create(ctx, logOf("new", 1)), broken, "Create of a new ID, which the index cannot rule out")
	assert.ErrorIs(t, j.Append(ctx, "new", 1, []saga.Event{stepEvent("new", 2)}), broken, "Append of an unknown ID")
	assert.ErrorIs(t, j.Compact(ctx), broken, "Compact, which lists what to drop")
	require.NoError(t, j.Ping(ctx), "a read error does not poison the journal")

	failing.Store(false)
	assertFinished(t, j, logs)
	require.NoError(t, j.Create(ctx, logOf("new", 1)))
	require.NoError(t, j.Close())

	// Recovery looks the instances it replays up in the runs it spills.
	failing.Store(true)
	_, err = open(dir, Options{Logger: discard}, tune)
	require.ErrorIs(t, err, broken, "Open")
	assert.NotErrorIs(t, err, ErrCorrupt, "not damage to a segment")
	failing.Store(false)
	j = openSpilling(t, dir, Options{CompactAfter: -1}, tune)
	assertFinished(t, j, logs)
}

// TestFailedMergeKeepsTheRuns fails the index job's reads while it merges
// two runs: both stay, and every instance in them is still found; the
// next spill merges them.
func TestFailedMergeKeepsTheRuns(t *testing.T) {
	t.Parallel()
	var failing atomic.Bool
	tune := tinyTuning()
	tune.bloomBits = 40 // so that no Create of a new ID reads a run
	tune.readAt = func(f *os.File, b []byte, off int64) (int, error) {
		if failing.Load() {
			return 0, errors.New("disk on fire")
		}
		return f.ReadAt(b, off)
	}
	j := openSpilling(t, t.TempDir(), Options{CompactAfter: -1}, tune)
	named := func(prefix string) func(int) string {
		return func(i int) string { return fmt.Sprintf("%s-%03d", prefix, i) }
	}
	a := finishAll(t, j, named("a"), tune.at, codecTime)
	settle(t, j)
	require.Equal(t, "run", where(t, j, "a-000"))

	failing.Store(true)
	b := finishAll(t, j, named("b"), tune.at, codecTime) // a second run, which the job then fails to merge
	settle(t, j)
	failing.Store(false)
	j.mu.Lock()
	assert.Len(t, j.done.runs, 2, "both runs stay")
	j.mu.Unlock()
	assertFinished(t, j, a)
	assertFinished(t, j, b)

	c := finishAll(t, j, named("c"), tune.at, codecTime)
	settle(t, j)
	assert.Equal(t, "merged", where(t, j, "a-000"), "merged at the next spill")
	for _, logs := range []map[string][]saga.Event{a, b, c} {
		assertFinished(t, j, logs)
	}
}

// TestSpilledIndexMemory is not parallel: it measures the heap of the
// whole process. With the memory table spilled every 1,024 instances, a
// finished instance costs the heap a few bytes (its Bloom filter bits and
// its share of its run's block index) beyond a constant.
func TestSpilledIndexMemory(t *testing.T) {
	const instances = 40_000
	clk := clock.NewFake(codecTime)
	tune := defaultTuning
	tune.at = 1024
	j := openSpilling(t, t.TempDir(), Options{Clock: clk, SyncInterval: time.Hour, CompactAfter: -1}, tune)
	ctx := t.Context()
	before := heapAlloc()
	for i := range instances {
		id := fmt.Sprintf("order-%06d", i)
		log := append(logOf(id, 6), endEvent(id, 7, saga.EventSagaCompleted))
		require.NoError(t, j.Create(ctx, log[:2]))
		for k := 2; k < len(log); k += 2 {
			require.NoError(t, j.Append(ctx, id, uint64(k), log[k:min(k+2, len(log))]))
		}
	}
	settle(t, j)
	after := heapAlloc()
	j.mu.Lock()
	require.Equal(t, instances, j.done.len())
	mem := j.done.mem.len()
	runs := len(j.done.runs)
	j.mu.Unlock()
	perInstance := float64(int64(after)-int64(before)) / instances
	t.Logf("%.1f bytes of heap per finished instance (%d in memory, %d runs)", perInstance, mem, runs)
	// 1,024 instances in memory cost some 2 bytes each of 40,000.
	assert.Less(t, perInstance, 6.0, "heap per finished instance")
}

// heapAlloc returns the live heap after a garbage collection.
func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// each calls fn for every instance of d, in no particular order, until fn
// returns false. The slices are valid during the call. It reads the runs,
// and returns the first error doing so.
func (d *finIndex) each(fn func(id, packed []byte, end int64) bool) error {
	for _, f := range d.tables() {
		if !f.each(func(_ uint64, id, packed []byte, end int64) bool { return fn(id, packed, end) }) {
			return nil
		}
	}
	for _, r := range d.runs {
		more := true
		err := r.eachEntry(func(e runEntry) bool {
			more = fn(e.id, e.packed, e.end)
			return more
		})
		if err != nil || !more {
			return err
		}
	}
	return nil
}
