package journal_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/journal"
)

// Compaction drops the finished instances older than the retention period
// and rewrites the rest into a base segment that replaces the old ones.

// aging is a journal on a fake clock with instances of every kind that
// compaction tells apart, written over many small segments.
type aging struct {
	dir  string
	clk  *clock.Fake
	opts journal.Options
	j    *journal.Journal
	h    *history
	// expired are finished longer ago than the retention period; the
	// others are unfinished, or finished within it.
	expired, kept []string
}

// setupAging writes the instances: at t, finished and unfinished ones;
// an hour later more of both; then it moves the clock to 90 minutes after
// t, so that only the first finished ones are past the one-hour retention.
func setupAging(t *testing.T) *aging {
	t.Helper()
	a := &aging{dir: t.TempDir(), clk: clock.NewFake(t0), h: new(history)}
	a.opts = journal.Options{Clock: a.clk, Retention: time.Hour, SegmentSize: 4096, CompactAfter: -1}
	a.j = open(t, a.dir, a.opts)
	write := func(prefix string) {
		at := a.clk.Now()
		for i := range 8 {
			id := fmt.Sprintf("%s-%d", prefix, i)
			a.h.create(t, a.j, id, at, 300)
			for range 3 {
				a.h.steps(t, a.j, id, 2, at, 300)
			}
			switch {
			case i%2 == 0 && prefix == "old":
				a.h.end(t, a.j, id, at)
				a.expired = append(a.expired, id)
			case i%2 == 0:
				a.h.end(t, a.j, id, at)
				a.kept = append(a.kept, id)
			default:
				a.kept = append(a.kept, id)
			}
		}
	}
	write("old")
	a.clk.Advance(time.Hour)
	write("new")
	a.clk.Advance(30 * time.Minute)
	return a
}

// assertCompacted checks that j holds the logs of a except the expired ones.
func (a *aging) assertCompacted(t *testing.T, j *journal.Journal) {
	t.Helper()
	want, order := a.h.logs(len(a.h.recs))
	for _, id := range a.expired {
		delete(want, id)
	}
	order = slices.DeleteFunc(order, func(id string) bool { return slices.Contains(a.expired, id) })
	assertLogs(t, j, want, order, a.h.ids())
}

func TestCompactDropsExpiredAndKeepsTheRest(t *testing.T) {
	t.Parallel()
	a := setupAging(t)
	before := segmentFiles(t, a.dir)
	require.Greater(t, len(before), 5, "segments before compaction")
	kept := loadAll(t, a.j, a.kept)
	unfinished, err := a.j.Unfinished(t.Context(), def)
	require.NoError(t, err)

	require.NoError(t, a.j.Compact(t.Context()))
	a.assertCompacted(t, a.j)
	assert.Equal(t, kept, loadAll(t, a.j, a.kept))
	after := segmentFiles(t, a.dir)
	assert.Less(t, len(after), len(before), "segments after compaction: %v", after)

	j := reopen(t, a.j, a.dir, a.opts)
	a.assertCompacted(t, j)
	assert.Equal(t, kept, loadAll(t, j, a.kept), "after reopening")
	got, err := j.Unfinished(t.Context(), def)
	require.NoError(t, err)
	assert.Equal(t, unfinished, got, "Unfinished keeps the creation order")
}

func TestCompactThenWrite(t *testing.T) {
	t.Parallel()
	a := setupAging(t)
	require.NoError(t, a.j.Compact(t.Context()))
	// Appends to a kept instance, and a new one.
	now := a.clk.Now()
	a.h.steps(t, a.j, "old-1", 2, now, 100)
	a.h.create(t, a.j, "later", now, 100)
	require.NoError(t, a.j.Compact(t.Context()), "a second compaction")
	a.h.steps(t, a.j, "later", 1, now, 100)

	j := reopen(t, a.j, a.dir, a.opts)
	a.assertCompacted(t, j)
}

func TestCompactRepeatedlyWhileAppending(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := journal.Options{SegmentSize: 4096, CompactAfter: -1}
	j := open(t, dir, opts)
	const writers, perWriter = 8, 60
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			id := fmt.Sprintf("w%d", w)
			if !assert.NoError(t, j.Create(t.Context(), []saga.Event{startedAt(id, t0, 100)})) {
				return
			}
			for n := uint64(1); n < perWriter; n++ {
				if !assert.NoError(t, j.Append(t.Context(), id, n, stepsAt(id, n, 1, t0, 100)), "%s after %d", id, n) {
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	defer func() { <-done }() // the writers' calls end before the journal is closed
	compactions := 0
	for running := true; running; compactions++ {
		select {
		case <-done:
			running = false
		default:
		}
		require.NoError(t, j.Compact(t.Context()), "compaction %d", compactions)
	}
	t.Logf("%d compactions", compactions)

	want := map[string][]saga.Event{}
	var ids []string
	for w := range writers {
		id := fmt.Sprintf("w%d", w)
		ids = append(ids, id)
		want[id] = append([]saga.Event{startedAt(id, t0, 100)}, stepsAt(id, 1, perWriter-1, t0, 100)...)
	}
	check := func(j *journal.Journal) {
		t.Helper()
		for _, id := range ids {
			got, err := j.Load(t.Context(), id)
			require.NoError(t, err, id)
			assert.Equal(t, want[id], got, id)
		}
	}
	check(j)
	check(reopen(t, j, dir, opts))
	assert.LessOrEqual(t, len(segmentFiles(t, dir)), 3, "segments after the last compaction")
}

func TestAutomaticCompactionBoundsSegments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewFake(t0)
	const compactAfter = 2
	opts := journal.Options{Clock: clk, Retention: time.Hour, SegmentSize: 4096, CompactAfter: compactAfter}
	j := open(t, dir, opts)
	h := new(history)
	most, highest := 0, ""
	for round := range 30 {
		at := clk.Now()
		for i := range 4 { // about 3 KiB
			id := fmt.Sprintf("r%02d-%d", round, i)
			h.create(t, j, id, at, 300)
			h.steps(t, j, id, 2, at, 300)
			h.end(t, j, id, at)
		}
		clk.Advance(2 * time.Hour) // this round's instances expire
		// Compaction runs in the background; Close waits for it, so the
		// files are counted when none is under way, whatever the timing.
		require.NoError(t, j.Close())
		names := segmentFiles(t, dir)
		most = max(most, len(names))
		highest = max(highest, names[len(names)-1])
		j = open(t, dir, opts)
	}
	h.create(t, j, "last", clk.Now(), 300)
	require.NoError(t, j.Close())

	t.Logf("at most %d segment files; the highest was %s", most, highest)
	assert.Greater(t, highest, "seg-00000030.log", "segments written")
	// A base, the segments written while it was being written, and fewer
	// than compactAfter since.
	assert.LessOrEqual(t, most, compactAfter+3, "segment files after each round")
	assert.LessOrEqual(t, len(segmentFiles(t, dir)), compactAfter+3, "segment files at the end")

	j = open(t, dir, opts)
	want, _ := h.logs(len(h.recs))
	got, err := j.Load(t.Context(), "last")
	require.NoError(t, err)
	assert.Equal(t, want["last"], got)
	unfinished, err := j.Unfinished(t.Context(), def)
	require.NoError(t, err)
	assert.Equal(t, []string{"last"}, unfinished)
	expired := 0
	for _, id := range h.ids() {
		if _, err := j.Load(t.Context(), id); err != nil {
			require.ErrorIs(t, err, saga.ErrNotFound, id)
			expired++
			continue
		}
	}
	assert.Positive(t, expired, "instances compaction dropped")
}

func TestCompactionCrashAfterRename(t *testing.T) {
	t.Parallel()
	a := setupAging(t)
	require.NoError(t, a.j.Close())
	pre := filepath.Join(t.TempDir(), "pre")
	copyDir(t, a.dir, pre)
	preSegments := segmentFiles(t, pre)

	j := open(t, a.dir, a.opts)
	require.NoError(t, j.Compact(t.Context()))
	want := loadAll(t, j, a.kept)
	require.NoError(t, j.Close())
	post := segmentFiles(t, a.dir)
	require.Less(t, len(post), len(preSegments))

	// The state a crash leaves between the rename of the base and the
	// removal of the segments it replaces: the old segments next to it.
	crashed := filepath.Join(t.TempDir(), "crashed")
	copyDir(t, a.dir, crashed)
	restored := 0
	for _, name := range preSegments {
		if !slices.Contains(post, name) {
			copyFile(t, filepath.Join(pre, name), filepath.Join(crashed, name))
			restored++
		}
	}
	require.Positive(t, restored)
	require.Greater(t, len(segmentFiles(t, crashed)), len(post))

	logger, logs := capture()
	opts := a.opts
	opts.Logger = logger
	j = open(t, crashed, opts)
	a.assertCompacted(t, j)
	assert.Equal(t, want, loadAll(t, j, a.kept))
	assert.Equal(t, post, segmentFiles(t, crashed), "the superseded segments are removed")
	assert.Contains(t, logs.String(), "superseded")

	j = reopen(t, j, crashed, a.opts)
	a.assertCompacted(t, j)
}

func TestCompactionCrashBeforeRename(t *testing.T) {
	t.Parallel()
	a := setupAging(t)
	require.NoError(t, a.j.Close())
	pre := filepath.Join(t.TempDir(), "pre")
	copyDir(t, a.dir, pre)
	preSegments := segmentFiles(t, pre)

	j := open(t, a.dir, a.opts)
	require.NoError(t, j.Compact(t.Context()))
	require.NoError(t, j.Close())
	post := segmentFiles(t, a.dir)

	// A crash while the base was being written: the old segments, the new
	// one compaction started, and a partial base in a temporary file.
	crashed := filepath.Join(t.TempDir(), "crashed")
	copyDir(t, pre, crashed)
	newest := post[len(post)-1]
	require.NotContains(t, preSegments, newest)
	copyFile(t, filepath.Join(a.dir, newest), filepath.Join(crashed, newest))
	base, err := os.ReadFile(filepath.Join(a.dir, post[0]))
	require.NoError(t, err)
	tmp := filepath.Join(crashed, post[0]+".tmp")
	require.NoError(t, os.WriteFile(tmp, base[:len(base)/2], 0o644))
	other := filepath.Join(crashed, "anything.tmp")
	require.NoError(t, os.WriteFile(other, []byte("garbage"), 0o644))

	j = open(t, crashed, a.opts)
	assertPrefix(t, j, a.h, len(a.h.recs)) // nothing dropped: the base never took over
	for _, path := range []string{tmp, other} {
		_, err := os.Stat(path)
		assert.ErrorIs(t, err, os.ErrNotExist, "%s removed", filepath.Base(path))
	}
	assert.Equal(t, append(slices.Clone(preSegments), newest), segmentFiles(t, crashed))

	require.NoError(t, j.Compact(t.Context()), "compacting again")
	a.assertCompacted(t, j)
	j = reopen(t, j, crashed, a.opts)
	a.assertCompacted(t, j)
}

func TestCompactAfterClose(t *testing.T) {
	t.Parallel()
	j := open(t, t.TempDir(), journal.Options{})
	require.NoError(t, j.Close())
	assert.ErrorIs(t, j.Compact(t.Context()), saga.ErrClosed)
}

func TestCompactInstanceLargerThanOneRecord(t *testing.T) {
	t.Parallel()
	// One record holds at most 64 MiB, but a log may grow past that over
	// many Appends. Compaction must still be able to keep it.
	dir := t.TempDir()
	opts := journal.Options{CompactAfter: -1}
	j := open(t, dir, opts)
	state := json.RawMessage(`"` + strings.Repeat("s", 4<<20) + `"`) // shared by every event
	log := []saga.Event{startedAt("big", t0, 100)}
	require.NoError(t, j.Create(t.Context(), log))
	for len(log) < 36 { // 18 states of 4 MiB: 72 MiB
		events := stepsAt("big", uint64(len(log)), 2, t0, 0)
		events[1].State = state
		require.NoError(t, j.Append(t.Context(), "big", uint64(len(log)), events))
		log = append(log, events...)
	}
	h := new(history)
	h.create(t, j, "small", t0, 100)

	require.NoError(t, j.Compact(t.Context()))
	got, err := j.Load(t.Context(), "big")
	require.NoError(t, err)
	assert.True(t, slices.EqualFunc(log, got, eventsEqual), "log after compaction")
	assert.Len(t, segmentFiles(t, dir), 2, "the base and the segment after it")

	j = reopen(t, j, dir, opts)
	got, err = j.Load(t.Context(), "big")
	require.NoError(t, err)
	assert.True(t, slices.EqualFunc(log, got, eventsEqual), "log after reopening")
	small, err := j.Load(t.Context(), "small")
	require.NoError(t, err)
	assert.Equal(t, h.recs[0].events, small)
	unfinished, err := j.Unfinished(t.Context(), def)
	require.NoError(t, err)
	assert.Equal(t, []string{"big", "small"}, unfinished)
}

// eventsEqual compares two events without printing them, for logs too big
// for a readable diff.
func eventsEqual(a, b saga.Event) bool { return reflect.DeepEqual(a, b) }

func TestAutomaticCompactionWaitsUntilItPays(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewFake(t0)
	logger, logs := capture()
	opts := journal.Options{Clock: clk, Logger: logger, Retention: time.Hour, SegmentSize: 4096, CompactAfter: 2}
	j := open(t, dir, opts)
	h := new(history)
	var first []string
	for i := range 24 { // finished, but within retention: nothing to drop
		id := fmt.Sprintf("first-%02d", i)
		h.create(t, j, id, clk.Now(), 300)
		h.steps(t, j, id, 2, clk.Now(), 300)
		h.end(t, j, id, clk.Now())
		first = append(first, id)
	}
	require.NoError(t, j.Close()) // waits for a compaction under way, if any
	written := segmentFiles(t, dir)
	require.Greater(t, len(written), 2*opts.CompactAfter, "segments: automatic compaction looked at them")
	assert.Equal(t, "seg-00000001.log", written[0], "no compaction removed a segment")
	assert.NotContains(t, logs.String(), "compacted")

	// Once they are past retention, most of what the segments hold can
	// go, and compaction does it on its own.
	clk.Advance(2 * time.Hour)
	j = open(t, dir, opts)
	for i := range 8 {
		id := fmt.Sprintf("second-%02d", i)
		h.create(t, j, id, clk.Now(), 300)
		h.steps(t, j, id, 2, clk.Now(), 300)
	}
	require.NoError(t, j.Close())
	assert.Contains(t, logs.String(), "compacted")
	assert.NotContains(t, segmentFiles(t, dir), "seg-00000001.log")

	j = open(t, dir, opts)
	for _, id := range first {
		_, err := j.Load(t.Context(), id)
		assert.ErrorIs(t, err, saga.ErrNotFound, id)
	}
	want, _ := h.logs(len(h.recs))
	for i := range 8 {
		id := fmt.Sprintf("second-%02d", i)
		got, err := j.Load(t.Context(), id)
		require.NoError(t, err, id)
		assert.Equal(t, want[id], got, id)
	}
}

func TestLoadDuringCompactionsAndAppends(t *testing.T) {
	t.Parallel()
	// Loads run while records move: every one sees a whole log as far as
	// it had got, never a damaged or missing one.
	dir := t.TempDir()
	clk := clock.NewFake(t0)
	opts := journal.Options{Clock: clk, SegmentSize: 4096, CompactAfter: -1}
	j := open(t, dir, opts)
	const writers, perWriter = 6, 40
	full := func(id string) []saga.Event {
		log := append([]saga.Event{startedAt(id, t0, 100)}, stepsAt(id, 1, perWriter-2, t0, 100)...)
		return append(log, endAt(id, perWriter-1, t0))
	}
	var writing, loading sync.WaitGroup
	for w := range writers {
		id := fmt.Sprintf("w%d", w)
		log := full(id)
		require.NoError(t, j.Create(t.Context(), log[:1]))
		writing.Go(func() {
			for n := 1; n < len(log); n++ {
				if !assert.NoError(t, j.Append(t.Context(), id, uint64(n), log[n:n+1]), "%s after %d", id, n) {
					return
				}
			}
		})
		loading.Go(func() {
			seen := 0
			for seen < len(log) {
				got, err := j.Load(t.Context(), id)
				if !assert.NoError(t, err, id) {
					return
				}
				if !assert.GreaterOrEqual(t, len(got), seen, id) || !assert.Equal(t, log[:len(got)], got, id) {
					return
				}
				seen = len(got)
			}
		})
	}
	done := make(chan struct{})
	go func() {
		writing.Wait()
		loading.Wait()
		close(done)
	}()
	defer func() { <-done }()
	compactions := 0
	for running := true; running; compactions++ {
		select {
		case <-done:
			running = false
		default:
		}
		require.NoError(t, j.Compact(t.Context()), "compaction %d", compactions)
	}
	t.Logf("%d compactions", compactions)
	j = reopen(t, j, dir, opts)
	for w := range writers {
		id := fmt.Sprintf("w%d", w)
		got, err := j.Load(t.Context(), id)
		require.NoError(t, err, id)
		assert.Equal(t, full(id), got, id)
	}
}
