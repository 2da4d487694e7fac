package journal

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The writer writes a batch as soon as it is sealed (full), and one that
// is not once the settler says that its writers have run. The tests
// replace j.yield, the settler's way of letting them run, with one they
// hold, and j.seal with small limits, before any call.

// holdSettler makes the settler wait, each time it is asked, until the
// returned release is called; asked receives a value each time.
func holdSettler(j *Journal) (asked <-chan struct{}, release func()) {
	a, r := make(chan struct{}, 16), make(chan struct{})
	j.yield = func() {
		a <- struct{}{}
		<-r
	}
	return a, func() { close(r) }
}

// queueCreate queues the creation of instance id without waiting for it.
func queueCreate(t *testing.T, j *Journal, id string) *batch {
	t.Helper()
	b, err := j.queue(t.Context(), &record{kind: kindCreate, sagaID: id, events: logOf(id, 1)})
	require.NoError(t, err)
	return b
}

// written waits until b is written and fsynced, and checks that it was
// without error.
func written(t *testing.T, b *batch) {
	t.Helper()
	select {
	case <-b.done:
		require.NoError(t, b.err)
	case <-t.Context().Done():
		require.FailNow(t, "the batch was never written")
	}
}

func TestSealedBatchIsWrittenWithoutWaitingToSettle(t *testing.T) {
	t.Parallel()
	j := openJournal(t, t.TempDir(), Options{CompactAfter: -1})
	j.seal.records = 3
	asked, release := holdSettler(j)
	before := j.Stats()

	first := queueCreate(t, j, "a")
	<-asked // about the batch of a, which is not full
	assert.Same(t, first, queueCreate(t, j, "b"))
	assert.Same(t, first, queueCreate(t, j, "c"), "the record that fills the batch")
	written(t, first)
	st := j.Stats()
	assert.Equal(t, before.Writes+1, st.Writes)
	assert.Equal(t, before.Records+3, st.Records)

	// The next batch is not full: it waits until its writers have settled,
	// and the settler is still held on the question about the first.
	next := queueCreate(t, j, "d")
	assert.NotSame(t, first, next)
	select {
	case <-next.done:
		assert.Fail(t, "written before its writers settled")
	default:
	}
	release()
	written(t, next)
	assert.Equal(t, before.Records+4, j.Stats().Records)
	for _, id := range []string{"a", "b", "c", "d"} {
		got, err := j.Load(t.Context(), id)
		require.NoError(t, err, id)
		assert.Equal(t, logOf(id, 1), got, id)
	}
}

func TestSealedBatchesShareAnFsync(t *testing.T) {
	t.Parallel()
	j := openJournal(t, t.TempDir(), Options{CompactAfter: -1})
	j.seal.records = 2
	g := gateFsync(j, isSegment)
	g.arm()
	held := make(chan error, 1)
	go func() { held <- j.Create(context.WithoutCancel(t.Context()), logOf("held", 1)) }()
	g.wait(t) // the writer is in the fsync of held's batch

	var sealed []*batch
	for i := range 6 {
		b := queueCreate(t, j, fmt.Sprintf("i%d", i))
		if i%2 == 1 {
			sealed = append(sealed, b)
		}
	}
	j.mu.Lock()
	assert.Len(t, j.full, 3, "batches sealed while the writer was busy")
	assert.Nil(t, j.cur)
	j.mu.Unlock()
	before := j.Stats()
	g.release()
	require.NoError(t, <-held)
	for _, b := range sealed {
		written(t, b)
	}
	st := j.Stats()
	assert.Equal(t, before.Writes+3, st.Writes, "a write each")
	assert.Equal(t, before.Syncs+1, st.Syncs, "one fsync for all three")
}
