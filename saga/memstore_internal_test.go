package saga

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
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
	l, err := s.create(handleLog("x", 1, EventSagaStarted, EventStepStarted), false)
	require.NoError(t, err)

	// Another writer appends: the handle sees its events.
	require.NoError(t, s.Append(t.Context(), "x", 2, handleLog("x", 3, EventStepSucceeded)))
	assert.ErrorIs(t, s.append(&l, "x", 2, handleLog("x", 3, EventStepSucceeded), false), ErrConflict)
	require.NoError(t, s.append(&l, "x", 3, handleLog("x", 4, EventStepStarted), false))

	// Without a handle, append looks the log up and keeps its handle.
	var found *memLog
	require.NoError(t, s.append(&found, "x", 4, handleLog("x", 5, EventStepSucceeded), false))
	assert.Same(t, l, found)
	var none *memLog
	assert.ErrorIs(t, s.append(&none, "y", 1, handleLog("y", 2, EventStepStarted), false), ErrNotFound)
	assert.Nil(t, none)

	// An ended log refuses appends, also once the store has dropped it
	// and its ID has been started again.
	require.NoError(t, s.append(&l, "x", 5, handleLog("x", 6, EventSagaCompleted), false))
	assert.ErrorIs(t, s.append(&l, "x", 6, handleLog("x", 7, EventStepStarted), false), ErrFinished)
	_, err = s.create(handleLog("z", 1, EventSagaStarted, EventSagaCompleted), false) // drops x
	require.NoError(t, err)
	_, err = s.create(handleLog("x", 1, EventSagaStarted), false)
	require.NoError(t, err)
	assert.ErrorIs(t, s.append(&l, "x", 6, handleLog("x", 7, EventStepStarted), false), ErrFinished)
	events, err := s.Load(t.Context(), "x")
	require.NoError(t, err)
	assert.Len(t, events, 1, "the new log is untouched")

	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.append(&l, "x", 1, handleLog("x", 2, EventStepStarted), false), ErrClosed)
}

// A finished log costs the collector two objects to mark, its log and its
// packed bytes, besides its ID: not its states nor its run ID, which it
// copies. The test counts the objects of the whole heap, so it does not run
// in parallel with other tests.
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
	buf := make([]byte, 0, 2*len(state))
	for i, id := range ids {
		run := strconv.Itoa(i) // made per instance, as the engine makes it
		events := handleLog(id, 1, types...)
		for k := range events {
			events[k].Run = run
		}
		// As the engine does with a memory store, each state is encoded
		// into the same buffer once the one before is stored.
		events[0].State = append(buf[:0], state...)
		l, err := s.create(events[:2], true)
		require.NoError(t, err)
		events[2].State = append(buf[:0], state...)
		require.NoError(t, s.append(&l, id, 2, events[2:4], true))
		events[4].State = append(buf[:0], state...)
		require.NoError(t, s.append(&l, id, 4, events[4:], true))
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

// The logs of a saga, whose states differ in size from one instance to the
// next, fit in the room they are made with once a few have ended: none
// grows, and none leaves so much room unused that it is copied at its end.
func TestMemoryStoreLogsFitTheirRoom(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore(MemoryConfig{})
	types := []EventType{EventSagaStarted, EventStepStarted, EventStepSucceeded, EventStepStarted, EventStepSucceeded, EventSagaCompleted}
	write := func(i int) (made, grown, kept int) {
		id := "saga-" + strconv.Itoa(i)
		state := `{"items":[` + strings.Repeat(`{"name":"laptop","price":99999},`, 1+i%3) + `{}]}`
		events := handleLog(id, 1, types...)
		for k := range events {
			if k%2 == 0 {
				events[k].State = []byte(state + strings.Repeat(" ", 10*k)) // a state grows from step to step
			}
		}
		l, err := s.create(events[:2], false)
		require.NoError(t, err)
		made = cap(l.b)
		require.NoError(t, s.append(&l, id, 2, events[2:4], false))
		grown = cap(l.b)
		require.NoError(t, s.append(&l, id, 4, events[4:], false))
		return made, grown, cap(l.b)
	}
	for i := range 300 { // past the first 256, of which every one counts
		write(i)
	}
	for i := 300; i < 400; i++ {
		made, grown, kept := write(i)
		assert.Equal(t, made, grown, "log %d grew", i)
		assert.Equal(t, made, kept, "log %d was copied at its end", i)
	}
}
