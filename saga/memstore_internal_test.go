package saga

import (
	"fmt"
	"runtime"
	"strconv"
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

// A finished log costs the collector two objects to mark, its log and its
// packed bytes, besides its ID: not its states, which the engine encodes
// into a buffer per instance, nor its run ID. The test counts the objects
// of the whole heap, so it does not run in parallel with other tests.
func TestMemoryStoreFinishedLogIsTwoObjects(t *testing.T) {
	const logs = 10_000
	s := NewMemoryStore(MemoryConfig{})
	ids := make([]string, logs)
	for i := range ids {
		ids[i] = fmt.Sprintf("saga-%d", i)
	}
	state := `{"order_id":"42","customer":{"name":"Ada","email":"ada@example.com"},"status":"pending"}`
	types := []EventType{EventSagaStarted, EventStepStarted, EventStepSucceeded, EventStepStarted, EventStepSucceeded, EventSagaCompleted}

	before := liveObjects()
	for i, id := range ids {
		run := strconv.Itoa(i) // made per instance, as the engine makes it
		buf := make([]byte, 0, 3*len(state))
		events := handleLog(id, 1, types...)
		for k := range events {
			events[k].Run = run
			if k%2 == 0 { // as the engine does, each state encoded after the last
				buf = append(buf, state...)
				events[k].State = buf[len(buf)-len(state) : len(buf) : len(buf)]
			}
		}
		l, err := s.create(events[:2])
		require.NoError(t, err)
		require.NoError(t, s.append(&l, id, 2, events[2:]))
	}
	perLog := float64(liveObjects()-before) / logs
	assert.LessOrEqual(t, perLog, 2.2, "objects per finished log")
	assert.Equal(t, logs, s.Len())

	// What was packed reads back.
	events, err := s.Load(t.Context(), ids[logs-1])
	require.NoError(t, err)
	require.Len(t, events, len(types))
	assert.Equal(t, strconv.Itoa(logs-1), events[5].Run)
	assert.JSONEq(t, state, string(events[4].State))
	assert.Nil(t, events[5].State)
}

// liveObjects returns the number of objects on the heap after a
// collection, sync.Pool's caches emptied.
func liveObjects() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapObjects
}
