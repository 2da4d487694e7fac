package saga

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// handleLog returns the events of a log of saga id from seq first on, one
// of each type.
func handleLog(id string, first uint64, types ...EventType) []Event {
	events := make([]Event, len(types))
	for i, typ := range types {
		events[i] = Event{SagaID: id, Run: "run", Seq: first + uint64(i), Type: typ, Time: time.Unix(0, 0), Step: "a"}
		if typ == EventSagaStarted {
			events[i].Definition, events[i].Step = "d", ""
		}
	}
	return events
}

func TestMemoryStoreAppendThroughAHandle(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore(MemoryConfig{MaxFinished: 1})
	l, err := s.create(handleLog("x", 1, EventSagaStarted, EventStepStarted))
	require.NoError(t, err)

	// Another writer appends: the handle sees its events.
	require.NoError(t, s.Append(t.Context(), "x", 2, handleLog("x", 3, EventStepSucceeded)))
	assert.ErrorIs(t, s.append(&l, "x", 2, handleLog("x", 3, EventStepSucceeded)), ErrConflict)
	require.NoError(t, s.append(&l, "x", 3, handleLog("x", 4, EventStepStarted)))

	// Without a handle, append looks the log up and keeps its handle.
	var found *memLog
	require.NoError(t, s.append(&found, "x", 4, handleLog("x", 5, EventStepSucceeded)))
	assert.Same(t, l, found)
	var none *memLog
	assert.ErrorIs(t, s.append(&none, "y", 1, handleLog("y", 2, EventStepStarted)), ErrNotFound)
	assert.Nil(t, none)

	// An ended log refuses appends, also once the store has dropped it
	// and its ID has been started again.
	require.NoError(t, s.append(&l, "x", 5, handleLog("x", 6, EventSagaCompleted)))
	assert.ErrorIs(t, s.append(&l, "x", 6, handleLog("x", 7, EventStepStarted)), ErrFinished)
	_, err = s.create(handleLog("z", 1, EventSagaStarted, EventSagaCompleted)) // drops x
	require.NoError(t, err)
	_, err = s.create(handleLog("x", 1, EventSagaStarted))
	require.NoError(t, err)
	assert.ErrorIs(t, s.append(&l, "x", 6, handleLog("x", 7, EventStepStarted)), ErrFinished)
	events, err := s.Load(t.Context(), "x")
	require.NoError(t, err)
	assert.Len(t, events, 1, "the new log is untouched")

	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.append(&l, "x", 1, handleLog("x", 2, EventStepStarted)), ErrClosed)
}
