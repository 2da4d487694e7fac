package journal_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/journal"
)

func TestOptionsInvalid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts journal.Options
	}{
		{"negative SyncInterval", journal.Options{SyncInterval: -time.Nanosecond}},
		{"negative SegmentSize", journal.Options{SegmentSize: -1}},
		{"SegmentSize over 256 GiB", journal.Options{SegmentSize: 256<<30 + 1}},
		{"negative Retention", journal.Options{Retention: -time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tc.opts.Logger = quiet
			j, err := journal.Open(dir, tc.opts)
			require.ErrorIs(t, err, saga.ErrInvalidArgument)
			assert.Nil(t, j)
			assert.Empty(t, segmentFiles(t, dir), "nothing written")
		})
	}
}

func TestOptionsZeroValueWorks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j, err := journal.Open(dir, journal.Options{})
	require.NoError(t, err)
	h := new(history)
	h.create(t, j, "a", t0, 50)
	h.steps(t, j, "a", 2, t0, 50)
	j = reopen(t, j, dir, journal.Options{})
	assertPrefix(t, j, h, len(h.recs))
}

func TestSyncIntervalAcknowledgesWithoutFsync(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := clock.NewFake(time.Time{})
	opts := journal.Options{Clock: clk, SyncInterval: time.Second}
	j := open(t, dir, opts)
	synced := j.Stats().Syncs

	h := new(history)
	for i := range 5 {
		id := fmt.Sprintf("i%d", i)
		h.create(t, j, id, t0, 80)
		h.steps(t, j, id, 2, t0, 80)
	}
	st := j.Stats()
	assert.Equal(t, uint64(10), st.Records)
	assert.Equal(t, synced, st.Syncs, "no fsync before the interval has passed")

	// Close fsyncs what the interval has not covered yet.
	j = reopen(t, j, dir, opts)
	assertPrefix(t, j, h, len(h.recs))
}

func TestSegmentRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	opts := journal.Options{SegmentSize: 2048, CompactAfter: -1}
	j := open(t, dir, opts)
	h := new(history)
	for i := range 20 {
		id := fmt.Sprintf("i%02d", i)
		h.create(t, j, id, t0, 150)
		h.steps(t, j, id, 2, t0, 150)
		if i%3 == 0 {
			h.end(t, j, id, t0)
		}
	}
	assertPrefix(t, j, h, len(h.recs))
	st := j.Stats()
	names := segmentFiles(t, dir)
	assert.Greater(t, len(names), 4, "segments for %d bytes", st.Bytes)
	assert.LessOrEqual(t, uint64(len(names)-1), st.Bytes/2048, "a segment is full before the next starts")

	j = reopen(t, j, dir, opts)
	assertPrefix(t, j, h, len(h.recs))
	h.steps(t, j, "i01", 1, t0, 150)
	j = reopen(t, j, dir, opts)
	assertPrefix(t, j, h, len(h.recs))
}

func TestStatsCountWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := open(t, dir, journal.Options{})
	opened := j.Stats()
	assert.Zero(t, opened.Records)
	assert.Zero(t, opened.Writes)
	assert.Zero(t, opened.Bytes)

	h := new(history)
	h.create(t, j, "a", t0, 100)
	h.create(t, j, "b", t0, 100)
	for range 5 {
		h.steps(t, j, "a", 2, t0, 100)
	}
	// Refused calls are not records.
	require.ErrorIs(t, j.Append(t.Context(), "a", 1, stepsAt("a", 1, 1, t0, 10)), saga.ErrConflict)
	require.ErrorIs(t, j.Create(t.Context(), []saga.Event{startedAt("a", t0, 10)}), saga.ErrDuplicate)

	st := j.Stats()
	assert.Equal(t, uint64(7), st.Records)
	assert.Equal(t, uint64(7), st.Writes, "one write per call when they come one at a time")
	assert.Equal(t, opened.Syncs+7, st.Syncs, "one fsync per write")
	assert.Positive(t, st.Bytes)

	j = reopen(t, j, dir, journal.Options{})
	assert.Zero(t, j.Stats().Records, "counted since Open")
}

func TestGroupCommit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	j := open(t, dir, journal.Options{})
	const writers, appends = 64, 5
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			id := fmt.Sprintf("w%02d", w)
			if !assert.NoError(t, j.Create(t.Context(), []saga.Event{startedAt(id, t0, 100)})) {
				return
			}
			for n := uint64(1); n <= appends; n++ {
				if !assert.NoError(t, j.Append(t.Context(), id, n, stepsAt(id, n, 1, t0, 100))) {
					return
				}
			}
		})
	}
	wg.Wait()
	st := j.Stats()
	t.Logf("%d records, %d writes, %d fsyncs", st.Records, st.Writes, st.Syncs)
	require.Equal(t, uint64(writers*(appends+1)), st.Records)
	assert.Less(t, st.Syncs, st.Records, "fsyncs shared by concurrent writers")
	assert.Less(t, st.Writes, st.Records, "writes shared by concurrent writers")

	j = reopen(t, j, dir, journal.Options{})
	for w := range writers {
		id := fmt.Sprintf("w%02d", w)
		got, err := j.Load(t.Context(), id)
		require.NoError(t, err, id)
		assert.Equal(t, append([]saga.Event{startedAt(id, t0, 100)}, stepsAt(id, 1, appends, t0, 100)...), got, id)
	}
}
