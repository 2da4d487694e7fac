package sagatest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

// Capabilities says what a store under test can do beyond the basic contract.
type Capabilities struct {
	// Reopen closes s and opens the same store again (same directory, same
	// database), returning the new handle. It registers the cleanup of the
	// new handle itself. Nil means the store is not durable and the
	// durability tests are skipped.
	Reopen func(t *testing.T, s saga.Store) saga.Store

	// Share opens a second handle on the same store, as another process
	// would (same database, its own lease), registering its cleanup. Set it
	// for stores that implement saga.Claimer; nil skips the sharing tests.
	Share func(t *testing.T, s saga.Store) saga.Store

	// Expire makes the lease of s lapse as if its process had paused: s
	// stops renewing it and the clocks of all handles move past it, but s
	// still answers calls, unaware. Nil skips the lease tests.
	Expire func(t *testing.T, s saga.Store)
}

// Run runs the conformance suite against stores made by newStore (one
// fresh, empty store per subtest; newStore registers its own cleanup).
//
// Every subtest runs in parallel with the others. Some subtests close their
// store themselves (and Reopen closes its argument), so the cleanup that
// newStore registers must tolerate a store that is already closed.
//
// The suite compares times with time.Time.Equal, so a store may drop the
// monotonic clock reading and the location, but it must keep nanoseconds.
// State and Payload must come back byte for byte.
func Run(t *testing.T, newStore func(t *testing.T) saga.Store, caps Capabilities) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s saga.Store, caps Capabilities)
	}{
		{"CreateThenLoad", testCreateThenLoad},
		{"LoadUnknown", testLoadUnknown},
		{"CreateDuplicate", testCreateDuplicate},
		{"CreateDuplicateConcurrent", testCreateDuplicateConcurrent},
		{"CreateInvalid", testCreateInvalid},
		{"AppendInvalid", testAppendInvalid},
		{"AppendConflict", testAppendConflict},
		{"AppendUnknown", testAppendUnknown},
		{"AppendAfterEnd", testAppendAfterEnd},
		{"AppendBatchAtomic", testAppendBatchAtomic},
		{"AppendOrdering", testAppendOrdering},
		{"LargeState", testLargeState},
		{"ConcurrentAppendOneInstance", testConcurrentAppendOneInstance},
		{"ConcurrentAppendManyInstances", testConcurrentAppendManyInstances},
		{"Unfinished", testUnfinished},
		{"UnfinishedAfterAppend", testUnfinishedAfterAppend},
		{"Ping", testPing},
		{"LoadReturnsCopy", testLoadReturnsCopy},
		{"Closed", testClosed},
		{"ReopenKeepsLogs", testReopenKeepsLogs},
		{"ReopenThenAppend", testReopenThenAppend},
		{"SharedReads", testSharedReads},
		{"SharedWritesFenced", testSharedWritesFenced},
		{"SharedCreateDuplicate", testSharedCreateDuplicate},
		{"SharedRelease", testSharedRelease},
		{"SharedCloseHandsBack", testSharedCloseHandsBack},
		{"SharedClaimDisjoint", testSharedClaimDisjoint},
		{"SharedForward", testSharedForward},
		{"SharedOffer", testSharedOffer},
		{"SharedCensus", testSharedCensus},
		{"LeaseExpiry", testLeaseExpiry},
		{"LeaseFencesStaleOwner", testLeaseFencesStaleOwner},
		{"LeaseExpiryCensus", testLeaseExpiryCensus},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t), caps)
		})
	}
}

// Building logs.

// base is the time of the first event of every log the suite writes. It has
// nanoseconds so that a store that truncates times is caught.
var base = time.Date(2025, time.January, 1, 12, 0, 0, 123456789, time.UTC)

// timeOf returns the Time of event seq.
func timeOf(seq uint64) time.Time {
	return base.Add(time.Duration(seq) * time.Millisecond)
}

// runOf returns the run ID of saga id.
func runOf(id string) string { return "run-" + id }

// started returns the first event of saga id of definition def.
func started(id, def string) saga.Event {
	return saga.Event{
		SagaID:     id,
		Run:        runOf(id),
		Seq:        1,
		Type:       saga.EventSagaStarted,
		Time:       timeOf(1),
		At:         base.Add(24 * time.Hour),
		State:      json.RawMessage(`{"order":"` + id + `","amount":1250}`),
		Definition: def,
		Version:    3,
	}
}

// event returns event seq of type typ in the log of saga id, with the
// fields that type carries set.
func event(id string, seq uint64, typ saga.EventType) saga.Event {
	e := saga.Event{SagaID: id, Run: runOf(id), Seq: seq, Type: typ, Time: timeOf(seq)}
	step := fmt.Sprintf("step-%d", seq%4)
	attempt := int(seq%3) + 1
	switch typ {
	case saga.EventStepStarted:
		e.Step, e.Attempt = step, attempt
	case saga.EventStepSucceeded, saga.EventStepCompensated:
		e.Step = step
		e.State = json.RawMessage(fmt.Sprintf(`{"seq":%d,"trail":["%s"]}`, seq, step))
	case saga.EventStepAttemptFailed, saga.EventCompensationAttemptFailed:
		e.Step, e.Attempt = step, attempt
		e.Error = fmt.Sprintf("attempt %d failed: connection reset", attempt)
	case saga.EventRetryScheduled:
		e.Step, e.Attempt = step, attempt+1
		e.At = timeOf(seq).Add(1500 * time.Millisecond)
	case saga.EventStepFailed, saga.EventSagaStuck:
		e.Step = step
		e.Error = "card declined"
	case saga.EventCompensationStarted:
		e.Error = "card declined"
	case saga.EventSignalReceived:
		e.Signal = "approved"
		e.DedupKey = fmt.Sprintf("dedup-%d", seq)
		e.Payload = json.RawMessage(fmt.Sprintf(`{"by":"ops","seq":%d}`, seq))
	}
	return e
}

// after returns events of the given types that follow event last in the
// log of saga id.
func after(id string, last uint64, types ...saga.EventType) []saga.Event {
	events := make([]saga.Event, len(types))
	for i, typ := range types {
		events[i] = event(id, last+1+uint64(i), typ)
	}
	return events
}

// newLog returns a log of saga id of definition def: saga_started followed
// by events of the given types.
func newLog(id, def string, types ...saga.EventType) []saga.Event {
	return append([]saga.Event{started(id, def)}, after(id, 1, types...)...)
}

// Shorthands for the event types, to keep the logs readable.
const (
	stepStarted      = saga.EventStepStarted
	stepSucceeded    = saga.EventStepSucceeded
	attemptFailed    = saga.EventStepAttemptFailed
	retryScheduled   = saga.EventRetryScheduled
	stepFailed       = saga.EventStepFailed
	compStarted      = saga.EventCompensationStarted
	stepCompensated  = saga.EventStepCompensated
	compFailed       = saga.EventCompensationAttemptFailed
	sagaCompleted    = saga.EventSagaCompleted
	sagaCompensated  = saga.EventSagaCompensated
	sagaStuck        = saga.EventSagaStuck
	signalReceived   = saga.EventSignalReceived
	invalidEventType = saga.EventType(200)
)

// Logs the suite uses in several tests.
var (
	completedTypes   = []saga.EventType{stepStarted, stepSucceeded, stepStarted, stepSucceeded, sagaCompleted}
	compensatedTypes = []saga.EventType{stepStarted, stepSucceeded, stepStarted, stepFailed, compStarted, stepCompensated, sagaCompensated}
	stuckTypes       = []saga.EventType{stepStarted, stepSucceeded, stepStarted, stepFailed, compStarted, compFailed, sagaStuck}
)

// Calling the store.

func mustCreate(t *testing.T, s saga.Store, events []saga.Event) {
	t.Helper()
	require.NoError(t, s.Create(t.Context(), events), "create %s", events[0].SagaID)
}

func mustAppend(t *testing.T, s saga.Store, id string, expected uint64, events []saga.Event) {
	t.Helper()
	require.NoError(t, s.Append(t.Context(), id, expected, events), "append to %s after %d", id, expected)
}

func mustLoad(t *testing.T, s saga.Store, id string) []saga.Event {
	t.Helper()
	events, err := s.Load(t.Context(), id)
	require.NoError(t, err, "load %s", id)
	return events
}

func mustUnfinished(t *testing.T, s saga.Store, def string) []string {
	t.Helper()
	ids, err := s.Unfinished(t.Context(), def)
	require.NoError(t, err, "unfinished %s", def)
	return ids
}

// Checking results.

// assertLog checks that the log of id is want.
func assertLog(t *testing.T, s saga.Store, id string, want []saga.Event) bool {
	t.Helper()
	got, err := s.Load(t.Context(), id)
	if !assert.NoError(t, err, "load %s", id) {
		return false
	}
	return assertEvents(t, want, got)
}

// assertNotFound checks that the store has no log for id.
func assertNotFound(t *testing.T, s saga.Store, id string) bool {
	t.Helper()
	_, err := s.Load(t.Context(), id)
	return assert.ErrorIs(t, err, saga.ErrNotFound, "load %s", id)
}

// assertUnfinished checks that Unfinished(def) returns want, in order.
func assertUnfinished(t *testing.T, s saga.Store, def string, want ...string) bool {
	t.Helper()
	got := mustUnfinished(t, s, def)
	if len(want) == 0 {
		return assert.Empty(t, got, "unfinished %s", def)
	}
	return assert.Equal(t, want, got, "unfinished %s", def)
}

// assertEvents compares two logs field by field: times with Equal, byte
// slices byte for byte (nil and empty are the same), and every other field
// with assert.Equal so that a field added to saga.Event later is compared
// too.
func assertEvents(t *testing.T, want, got []saga.Event) bool {
	t.Helper()
	ok := assert.Len(t, got, len(want), "number of events")
	for i := range min(len(want), len(got)) {
		w, g := want[i], got[i]
		where := fmt.Sprintf("event %d (seq %d, %v)", i, w.Seq, w.Type)
		ok = assert.Truef(t, w.Time.Equal(g.Time), "%s: Time is %v, want %v", where, g.Time, w.Time) && ok
		ok = assert.Truef(t, w.At.Equal(g.At), "%s: At is %v, want %v", where, g.At, w.At) && ok
		ok = assertBytes(t, w.State, g.State, where+": State") && ok
		ok = assertBytes(t, w.Payload, g.Payload, where+": Payload") && ok
		w.Time, g.Time, w.At, g.At = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		w.State, g.State, w.Payload, g.Payload = nil, nil, nil, nil
		ok = assert.Equal(t, w, g, where) && ok
	}
	return ok
}

// assertBytes compares two byte slices without printing them whole when
// they are large.
func assertBytes(t *testing.T, want, got []byte, what string) bool {
	t.Helper()
	if bytes.Equal(want, got) {
		return true
	}
	const show = 200
	if len(want) <= show && len(got) <= show {
		return assert.Failf(t, what+" differs", "got %q, want %q", got, want)
	}
	at := 0
	for at < min(len(want), len(got)) && want[at] == got[at] {
		at++
	}
	return assert.Failf(t, what+" differs", "got %d bytes, want %d; first difference at byte %d", len(got), len(want), at)
}

// assertInvalid checks that err rejects malformed input.
func assertInvalid(t *testing.T, err error, msgAndArgs ...any) bool {
	t.Helper()
	if errors.Is(err, saga.ErrInvalidEvent) || errors.Is(err, saga.ErrInvalidArgument) {
		return true
	}
	return assert.Fail(t, fmt.Sprintf("got error %v, want one wrapping %v or %v", err, saga.ErrInvalidEvent, saga.ErrInvalidArgument), msgAndArgs...)
}

// The tests.

func testCreateThenLoad(t *testing.T, s saga.Store, _ Capabilities) {
	logs := [][]saga.Event{
		newLog("only-started", "orders"),
		newLog("several", "orders", stepStarted, attemptFailed, retryScheduled, stepStarted, stepSucceeded, signalReceived),
		newLog("completed", "orders", completedTypes...),
		newLog("compensated", "orders", compensatedTypes...),
		newLog("stuck", "orders", stuckTypes...),
	}
	for _, log := range logs {
		mustCreate(t, s, log)
	}
	for _, log := range logs {
		assertLog(t, s, log[0].SagaID, log)
	}
}

func testLoadUnknown(t *testing.T, s saga.Store, _ Capabilities) {
	assertNotFound(t, s, "nobody")
	mustCreate(t, s, newLog("somebody", "orders"))
	assertNotFound(t, s, "nobody")
	assertNotFound(t, s, "somebody-else")
}

func testCreateDuplicate(t *testing.T, s saga.Store, _ Capabilities) {
	first := newLog("order-1", "orders", stepStarted)
	mustCreate(t, s, first)

	second := newLog("order-1", "other", stepStarted, stepSucceeded)
	for i := range second {
		second[i].Run = "second-run"
	}
	assert.ErrorIs(t, s.Create(t.Context(), second), saga.ErrDuplicate)
	assertLog(t, s, "order-1", first)
	assertUnfinished(t, s, "orders", "order-1")
	assertUnfinished(t, s, "other")

	// An ended log is a duplicate too.
	done := newLog("done", "orders", completedTypes...)
	mustCreate(t, s, done)
	assert.ErrorIs(t, s.Create(t.Context(), newLog("done", "orders")), saga.ErrDuplicate)
	assertLog(t, s, "done", done)
}

func testCreateDuplicateConcurrent(t *testing.T, s saga.Store, _ Capabilities) {
	const n = 16
	logs := make([][]saga.Event, n)
	for i := range logs {
		logs[i] = newLog("contested", "orders", stepStarted)
		for j := range logs[i] {
			logs[i][j].Run = fmt.Sprintf("run-%d", i)
		}
	}
	var (
		wg     sync.WaitGroup
		ready  = make(chan struct{})
		wins   atomic.Int32
		winner atomic.Int32
	)
	for i := range n {
		wg.Go(func() {
			<-ready
			err := s.Create(t.Context(), logs[i])
			if err == nil {
				wins.Add(1)
				winner.Store(int32(i))
				return
			}
			assert.ErrorIs(t, err, saga.ErrDuplicate, "goroutine %d", i)
		})
	}
	close(ready)
	wg.Wait()
	require.Equal(t, int32(1), wins.Load(), "successful creates")
	assertLog(t, s, "contested", logs[winner.Load()])
	assertUnfinished(t, s, "orders", "contested")
}

func testCreateInvalid(t *testing.T, s saga.Store, _ Capabilities) {
	const id = "order-1"
	valid := func() []saga.Event {
		return newLog(id, "orders", stepStarted, stepSucceeded)
	}
	tests := []struct {
		name   string
		events func() []saga.Event
	}{
		{"nil", func() []saga.Event { return nil }},
		{"empty", func() []saga.Event { return []saga.Event{} }},
		{"empty saga ID", func() []saga.Event {
			e := valid()
			for i := range e {
				e[i].SagaID = ""
			}
			return e
		}},
		{"no definition name", func() []saga.Event {
			e := valid()
			e[0].Definition = ""
			return e
		}},
		{"second event of another saga", func() []saga.Event {
			e := valid()
			e[1].SagaID = "order-2"
			return e
		}},
		{"last event of another saga", func() []saga.Event {
			e := valid()
			e[2].SagaID = "order-2"
			return e
		}},
		{"first seq 0", func() []saga.Event {
			e := valid()[:1]
			e[0].Seq = 0
			return e
		}},
		{"first seq 2", func() []saga.Event {
			e := valid()
			for i := range e {
				e[i].Seq++
			}
			return e
		}},
		{"gap", func() []saga.Event {
			e := valid()
			e[2].Seq = 4
			return e
		}},
		{"repeated seq", func() []saga.Event {
			e := valid()
			e[2].Seq = 2
			return e
		}},
		{"first not saga_started", func() []saga.Event {
			return []saga.Event{event(id, 1, stepStarted), event(id, 2, stepSucceeded)}
		}},
		{"saga_started twice", func() []saga.Event {
			e := valid()
			e[1] = started(id, "orders")
			e[1].Seq = 2
			return e
		}},
		{"type zero", func() []saga.Event {
			e := valid()
			e[1].Type = 0
			return e
		}},
		{"unknown type", func() []saga.Event {
			e := valid()
			e[2].Type = invalidEventType
			return e
		}},
		{"first type unknown", func() []saga.Event {
			e := valid()
			e[0].Type = invalidEventType
			return e
		}},
		{"event after the end", func() []saga.Event {
			return newLog(id, "orders", stepStarted, stepSucceeded, sagaCompleted, stepStarted)
		}},
		{"event after compensated", func() []saga.Event {
			return newLog(id, "orders", stepStarted, stepFailed, compStarted, sagaCompensated, signalReceived)
		}},
	}
	for _, tt := range tests {
		err := s.Create(t.Context(), tt.events())
		assertInvalid(t, err, tt.name)
		assertNotFound(t, s, id)
	}
	assertUnfinished(t, s, "orders")

	// Nothing was stored, so the ID is still free.
	mustCreate(t, s, valid())
	assertLog(t, s, id, valid())
}

func testAppendInvalid(t *testing.T, s saga.Store, _ Capabilities) {
	const id = "order-1"
	log := newLog(id, "orders", stepStarted)
	mustCreate(t, s, log)
	mustCreate(t, s, newLog("order-2", "orders"))
	last := uint64(len(log))
	valid := func() []saga.Event { return after(id, last, stepSucceeded, stepStarted) }

	tests := []struct {
		name   string
		id     string
		events func() []saga.Event
	}{
		{"nil", id, func() []saga.Event { return nil }},
		{"empty", id, func() []saga.Event { return []saga.Event{} }},
		{"empty saga ID", "", func() []saga.Event {
			e := valid()
			for i := range e {
				e[i].SagaID = ""
			}
			return e
		}},
		{"events of another saga", id, func() []saga.Event {
			e := valid()
			for i := range e {
				e[i].SagaID = "order-2"
			}
			return e
		}},
		{"second event of another saga", id, func() []saga.Event {
			e := valid()
			e[1].SagaID = "order-2"
			return e
		}},
		{"events of another run", id, func() []saga.Event {
			e := valid()
			for i := range e {
				e[i].Run = "another-run"
			}
			return e
		}},
		{"second event of another run", id, func() []saga.Event {
			e := valid()
			e[1].Run = "another-run"
			return e
		}},
		{"a definition after the first event", id, func() []saga.Event {
			e := valid()
			e[0].Definition = "orders"
			return e
		}},
		{"seq repeats the last", id, func() []saga.Event {
			e := valid()
			for i := range e {
				e[i].Seq--
			}
			return e
		}},
		{"seq skips one", id, func() []saga.Event {
			e := valid()
			for i := range e {
				e[i].Seq++
			}
			return e
		}},
		{"gap inside the batch", id, func() []saga.Event {
			e := valid()
			e[1].Seq++
			return e
		}},
		{"saga_started", id, func() []saga.Event {
			e := started(id, "orders")
			e.Seq = last + 1
			return []saga.Event{e}
		}},
		{"type zero", id, func() []saga.Event {
			e := valid()
			e[0].Type = 0
			return e
		}},
		{"unknown type", id, func() []saga.Event {
			e := valid()
			e[1].Type = invalidEventType
			return e
		}},
		{"event after the end", id, func() []saga.Event {
			return after(id, last, stepSucceeded, sagaCompleted, signalReceived)
		}},
	}
	for _, tt := range tests {
		err := s.Append(t.Context(), tt.id, last, tt.events())
		assertInvalid(t, err, tt.name)
		assertLog(t, s, id, log)
	}
	assertLog(t, s, "order-2", newLog("order-2", "orders"))
	assertUnfinished(t, s, "orders", id, "order-2")

	// The log is intact: the valid append goes through.
	mustAppend(t, s, id, last, valid())
	assertLog(t, s, id, append(log, valid()...))
}

func testAppendConflict(t *testing.T, s saga.Store, _ Capabilities) {
	const id = "order-1"
	log := newLog(id, "orders", stepStarted, stepSucceeded)
	mustCreate(t, s, log)
	last := uint64(len(log))

	for _, expected := range []uint64{0, 1, last - 1, last + 1, last + 5} {
		var events []saga.Event
		if expected == 0 {
			events = []saga.Event{started(id, "orders")}
		} else {
			events = after(id, expected, stepStarted)
		}
		err := s.Append(t.Context(), id, expected, events)
		assert.ErrorIs(t, err, saga.ErrConflict, "expected %d, log has %d", expected, last)
		assertLog(t, s, id, log)
	}

	// An ending event with a stale expectation does not end the log.
	err := s.Append(t.Context(), id, last-1, after(id, last-1, sagaCompleted))
	assert.ErrorIs(t, err, saga.ErrConflict)
	assertLog(t, s, id, log)
	assertUnfinished(t, s, "orders", id)

	next := after(id, last, stepStarted, stepSucceeded)
	mustAppend(t, s, id, last, next)
	log = append(log, next...)
	assertLog(t, s, id, log)

	// The expectation that just succeeded is now stale.
	err = s.Append(t.Context(), id, last, after(id, last, stepStarted))
	assert.ErrorIs(t, err, saga.ErrConflict)
	assertLog(t, s, id, log)
}

func testAppendUnknown(t *testing.T, s saga.Store, _ Capabilities) {
	mustCreate(t, s, newLog("known", "orders"))
	err := s.Append(t.Context(), "unknown", 1, after("unknown", 1, stepStarted))
	assert.ErrorIs(t, err, saga.ErrNotFound)
	assertNotFound(t, s, "unknown")
	assertUnfinished(t, s, "orders", "known")
}

func testAppendAfterEnd(t *testing.T, s saga.Store, _ Capabilities) {
	ends := []struct {
		id    string
		types []saga.EventType
	}{
		{"completed", completedTypes},
		{"compensated", compensatedTypes},
	}
	for _, end := range ends {
		// Ended by an append.
		byAppend := "appended-" + end.id
		log := newLog(byAppend, "orders")
		mustCreate(t, s, log)
		rest := after(byAppend, 1, end.types...)
		mustAppend(t, s, byAppend, 1, rest)
		log = append(log, rest...)

		// Ended at creation.
		created := "created-" + end.id
		createdLog := newLog(created, "orders", end.types...)
		mustCreate(t, s, createdLog)

		for id, log := range map[string][]saga.Event{byAppend: log, created: createdLog} {
			last := uint64(len(log))
			for _, typ := range []saga.EventType{stepStarted, signalReceived, sagaCompleted, sagaCompensated} {
				err := s.Append(t.Context(), id, last, after(id, last, typ))
				assert.ErrorIs(t, err, saga.ErrFinished, "%s: append %v", id, typ)
			}
			assertLog(t, s, id, log)
		}
	}
	assertUnfinished(t, s, "orders")
}

func testAppendBatchAtomic(t *testing.T, s saga.Store, _ Capabilities) {
	const id = "order-1"
	log := newLog(id, "orders", stepStarted)
	mustCreate(t, s, log)
	last := uint64(len(log))

	bad := [][]saga.Event{
		func() []saga.Event {
			e := after(id, last, stepSucceeded, stepStarted, stepSucceeded)
			e[1].Type = invalidEventType
			return e
		}(),
		func() []saga.Event {
			e := after(id, last, stepSucceeded, stepStarted, stepSucceeded)
			e[1].Seq = last + 3
			return e
		}(),
		func() []saga.Event {
			e := after(id, last, stepSucceeded, stepStarted, stepSucceeded)
			e[1].SagaID = "order-2"
			return e
		}(),
		after(id, last, stepSucceeded, sagaCompleted, stepStarted),
	}
	for i, events := range bad {
		assertInvalid(t, s.Append(t.Context(), id, last, events), "batch %d", i)
		assertLog(t, s, id, log)
	}
	assertUnfinished(t, s, "orders", id)

	// A valid batch is stored whole, ending event included.
	good := after(id, last, stepSucceeded, stepStarted, stepSucceeded, sagaCompleted)
	mustAppend(t, s, id, last, good)
	assertLog(t, s, id, append(log, good...))
	assertUnfinished(t, s, "orders")
}

func testAppendOrdering(t *testing.T, s saga.Store, _ Capabilities) {
	const id = "order-1"
	cycle := []saga.EventType{stepStarted, attemptFailed, retryScheduled, stepStarted, stepSucceeded, signalReceived, stepStarted}
	log := newLog(id, "orders")
	mustCreate(t, s, log)
	k := 0
	for i := range 200 {
		types := make([]saga.EventType, 1+i%3)
		for j := range types {
			types[j] = cycle[k%len(cycle)]
			k++
		}
		last := uint64(len(log))
		events := after(id, last, types...)
		mustAppend(t, s, id, last, events)
		log = append(log, events...)
	}
	got := mustLoad(t, s, id)
	require.Len(t, got, 1+k)
	for i, e := range got {
		assert.Equal(t, uint64(i+1), e.Seq, "seq of event %d", i)
	}
	assertEvents(t, log, got)
}

// jsonOfSize returns a JSON object of exactly n bytes (n >= 16) whose
// content varies, so that a store that garbles or reorders part of it is
// caught.
func jsonOfSize(n int) json.RawMessage {
	const head, tail = `{"blob":"`, `"}`
	var b strings.Builder
	b.Grow(n)
	b.WriteString(head)
	for i := 0; b.Len() < n-len(tail); i++ {
		b.WriteByte("abcdefghijklmnopqrstuvwxyz0123456789"[(i*7+i/36)%36])
	}
	b.WriteString(tail)
	return json.RawMessage(b.String())
}

func testLargeState(t *testing.T, s saga.Store, _ Capabilities) {
	const id = "big"
	state := jsonOfSize(1 << 20)
	payload := jsonOfSize(256 << 10)
	require.True(t, json.Valid(state))
	require.True(t, json.Valid(payload))

	log := newLog(id, "orders")
	log[0].State = state
	mustCreate(t, s, log)

	more := after(id, 1, stepStarted, stepSucceeded, signalReceived)
	more[1].State = jsonOfSize(1<<20 + 1)
	more[2].Payload = payload
	mustAppend(t, s, id, 1, more)
	log = append(log, more...)

	got := mustLoad(t, s, id)
	require.Len(t, got, len(log))
	assert.Len(t, got[0].State, 1<<20)
	assert.Len(t, got[3].Payload, 256<<10)
	assertEvents(t, log, got)
}

func testConcurrentAppendOneInstance(t *testing.T, s saga.Store, _ Capabilities) {
	const (
		id      = "contested"
		writers = 8
		total   = 400
	)
	mustCreate(t, s, newLog(id, "orders"))

	var (
		wg        sync.WaitGroup
		ready     = make(chan struct{})
		successes [writers]int
	)
	for w := range writers {
		wg.Go(func() {
			<-ready
			for {
				events, err := s.Load(t.Context(), id)
				if !assert.NoError(t, err, "writer %d: load", w) || !assert.NotEmpty(t, events) {
					return
				}
				last := events[len(events)-1].Seq
				if last >= total+1 {
					return
				}
				e := event(id, last+1, stepStarted)
				e.Step = fmt.Sprintf("writer-%d", w)
				e.Attempt = successes[w] + 1
				err = s.Append(t.Context(), id, last, []saga.Event{e})
				if errors.Is(err, saga.ErrConflict) {
					continue
				}
				if !assert.NoError(t, err, "writer %d: append after %d", w, last) {
					return
				}
				successes[w]++
			}
		})
	}
	close(ready)
	wg.Wait()

	got := mustLoad(t, s, id)
	require.Len(t, got, total+1)
	sum := 0
	for _, n := range successes {
		sum += n
	}
	assert.Equal(t, total, sum, "successful appends")

	written := map[string]int{}
	for i, e := range got {
		assert.Equal(t, uint64(i+1), e.Seq, "seq of event %d", i)
		if i == 0 {
			continue
		}
		written[e.Step]++
		// Each writer numbered its own events 1, 2, 3 …: a lost or
		// doubled append shows as a skipped or repeated number.
		assert.Equal(t, written[e.Step], e.Attempt, "event %d by %s", i, e.Step)
	}
	for w, n := range successes {
		assert.Equal(t, n, written[fmt.Sprintf("writer-%d", w)], "events of writer %d", w)
	}
}

func testConcurrentAppendManyInstances(t *testing.T, s saga.Store, _ Capabilities) {
	const (
		instances = 50
		appends   = 20
	)
	logs := make([][]saga.Event, instances)
	var wg sync.WaitGroup
	ready := make(chan struct{})
	for i := range instances {
		wg.Go(func() {
			<-ready
			id := fmt.Sprintf("order-%02d", i)
			log := newLog(id, "orders")
			if !assert.NoError(t, s.Create(t.Context(), log), "create %s", id) {
				return
			}
			for j := range appends {
				last := uint64(len(log))
				typ := stepStarted
				if j%2 == 1 {
					typ = stepSucceeded
				}
				events := after(id, last, typ)
				if !assert.NoError(t, s.Append(t.Context(), id, last, events), "append to %s after %d", id, last) {
					return
				}
				log = append(log, events...)
			}
			if i%2 == 0 { // the even ones end
				last := uint64(len(log))
				events := after(id, last, sagaCompleted)
				if !assert.NoError(t, s.Append(t.Context(), id, last, events), "complete %s", id) {
					return
				}
				log = append(log, events...)
			}
			logs[i] = log
		})
	}
	close(ready)
	wg.Wait()

	var unfinished []string
	for i, log := range logs {
		require.NotNil(t, log, "instance %d", i)
		assertLog(t, s, log[0].SagaID, log)
		if i%2 == 1 {
			unfinished = append(unfinished, log[0].SagaID)
		}
	}
	assert.ElementsMatch(t, unfinished, mustUnfinished(t, s, "orders"))
}

func testUnfinished(t *testing.T, s saga.Store, _ Capabilities) {
	assertUnfinished(t, s, "orders")

	mustCreate(t, s, newLog("u1", "orders"))
	mustCreate(t, s, newLog("completed", "orders", completedTypes...))
	mustCreate(t, s, newLog("stuck", "orders", stuckTypes...))
	mustCreate(t, s, newLog("other", "shipping", stepStarted))
	mustCreate(t, s, newLog("u2", "orders", stepStarted, attemptFailed, retryScheduled))
	mustCreate(t, s, newLog("compensated", "orders", compensatedTypes...))
	mustCreate(t, s, newLog("other-done", "shipping", completedTypes...))
	mustCreate(t, s, newLog("u3", "orders", stepStarted, stepSucceeded, signalReceived))

	assertUnfinished(t, s, "orders", "u1", "stuck", "u2", "u3")
	assertUnfinished(t, s, "shipping", "other")
	assertUnfinished(t, s, "unknown")
	assertUnfinished(t, s, "")
}

func testUnfinishedAfterAppend(t *testing.T, s saga.Store, _ Capabilities) {
	ids := []string{"a", "b", "c", "d", "e"}
	for _, id := range ids {
		mustCreate(t, s, newLog(id, "orders", stepStarted))
	}
	assertUnfinished(t, s, "orders", ids...)

	// Appending does not make an instance younger.
	mustAppend(t, s, "a", 2, after("a", 2, stepSucceeded, stepStarted))
	assertUnfinished(t, s, "orders", ids...)

	mustAppend(t, s, "b", 2, after("b", 2, stepSucceeded, sagaCompleted))
	assertUnfinished(t, s, "orders", "a", "c", "d", "e")

	mustAppend(t, s, "d", 2, after("d", 2, stepFailed, compStarted, sagaCompensated))
	assertUnfinished(t, s, "orders", "a", "c", "e")

	// A stuck instance stays unfinished until it ends.
	mustAppend(t, s, "c", 2, after("c", 2, stepFailed, compStarted, compFailed, sagaStuck))
	assertUnfinished(t, s, "orders", "a", "c", "e")
	mustAppend(t, s, "c", 6, after("c", 6, compStarted, stepCompensated, sagaCompensated))
	assertUnfinished(t, s, "orders", "a", "e")

	mustCreate(t, s, newLog("f", "orders"))
	assertUnfinished(t, s, "orders", "a", "e", "f")
}

func testPing(t *testing.T, s saga.Store, _ Capabilities) {
	assert.NoError(t, s.Ping(t.Context()))
	mustCreate(t, s, newLog("order-1", "orders"))
	assert.NoError(t, s.Ping(t.Context()))
}

func testLoadReturnsCopy(t *testing.T, s saga.Store, _ Capabilities) {
	const id = "order-1"
	log := newLog(id, "orders", stepStarted, stepSucceeded)
	mustCreate(t, s, log)

	got := mustLoad(t, s, id)
	got[0].Type = sagaCompleted
	got[0].Definition = "changed"
	got[1].Step = "changed"
	got[2].Time = time.Time{}
	got[2].State = json.RawMessage(`{"changed":true}`)
	got = append(got, event(id, 4, sagaCompleted))
	require.Len(t, got, 4)
	assertLog(t, s, id, log)
	assertUnfinished(t, s, "orders", id)

	// Appending to a loaded log and to the store do not see each other.
	mine := mustLoad(t, s, id)
	extra := event(id, 4, stepStarted)
	extra.Step = "caller's own"
	mine = append(mine, extra)

	next := after(id, 3, stepStarted, stepSucceeded)
	mustAppend(t, s, id, 3, next)
	log = append(log, next...)
	assertLog(t, s, id, log)
	require.Len(t, mine, 4)
	assert.Equal(t, "caller's own", mine[3].Step)

	again := mustLoad(t, s, id)
	again[len(again)-1].Type = sagaCompleted
	assertLog(t, s, id, log)
}

func testClosed(t *testing.T, s saga.Store, _ Capabilities) {
	mustCreate(t, s, newLog("order-1", "orders"))
	require.NoError(t, s.Close())

	ctx := t.Context()
	assert.ErrorIs(t, s.Create(ctx, newLog("order-2", "orders")), saga.ErrClosed, "Create after Close")
	assert.ErrorIs(t, s.Append(ctx, "order-1", 1, after("order-1", 1, stepStarted)), saga.ErrClosed, "Append after Close")
	_, err := s.Load(ctx, "order-1")
	assert.ErrorIs(t, err, saga.ErrClosed, "Load after Close")
	_, err = s.Unfinished(ctx, "orders")
	assert.ErrorIs(t, err, saga.ErrClosed, "Unfinished after Close")
	assert.ErrorIs(t, s.Ping(ctx), saga.ErrClosed, "Ping after Close")

	c, ok := s.(saga.Claimer)
	if !ok {
		return
	}
	assert.ErrorIs(t, c.Offer(ctx, newLog("order-3", "orders")), saga.ErrClosed, "Offer after Close")
	_, err = c.Census(ctx, "orders")
	assert.ErrorIs(t, err, saga.ErrClosed, "Census after Close")
	assert.ErrorIs(t, c.Leave(ctx, "orders"), saga.ErrClosed, "Leave after Close")
	_, err = c.Claim(ctx, "orders", 10)
	assert.ErrorIs(t, err, saga.ErrClosed, "Claim after Close")
	assert.ErrorIs(t, c.Release(ctx, []string{"order-1"}), saga.ErrClosed, "Release after Close")
	assert.ErrorIs(t, c.Forward(ctx, saga.ForwardedSignal{SagaID: "order-1", Name: "paid"}), saga.ErrClosed, "Forward after Close")
	_, err = c.Inbox(ctx, "orders", 10)
	assert.ErrorIs(t, err, saga.ErrClosed, "Inbox after Close")
	assert.ErrorIs(t, c.Delivered(ctx, []int64{1}), saga.ErrClosed, "Delivered after Close")
}

// durable skips the test unless the store can be reopened.
func durable(t *testing.T, s saga.Store, caps Capabilities) {
	t.Helper()
	if caps.Reopen == nil {
		t.Skip("the store is not durable (Capabilities.Reopen is nil)")
	}
	require.True(t, s.Durable(), "Durable() with Capabilities.Reopen set")
}

// reopen reopens s. A store shared between processes lets only the owner
// of an instance write it, so the reopened handle then claims every
// unfinished instance of the suite's definitions, as a coordinator's
// Startup would.
func reopen(t *testing.T, s saga.Store, caps Capabilities) saga.Store {
	t.Helper()
	s = caps.Reopen(t, s)
	require.NotNil(t, s, "Reopen returned nil")
	if c, ok := s.(saga.Claimer); ok {
		for _, def := range []string{"orders", "shipping"} {
			_, err := c.Claim(t.Context(), def, 1<<20)
			require.NoError(t, err, "claim %s after reopening", def)
		}
	}
	return s
}

func testReopenKeepsLogs(t *testing.T, s saga.Store, caps Capabilities) {
	durable(t, s, caps)

	logs := map[string][]saga.Event{}
	create := func(log []saga.Event) {
		mustCreate(t, s, log)
		logs[log[0].SagaID] = log
	}
	appendTo := func(id string, types ...saga.EventType) {
		last := uint64(len(logs[id]))
		events := after(id, last, types...)
		mustAppend(t, s, id, last, events)
		logs[id] = append(logs[id], events...)
	}

	create(newLog("running", "orders"))
	appendTo("running", stepStarted)
	appendTo("running", attemptFailed, retryScheduled)
	appendTo("running", stepStarted, stepSucceeded, signalReceived)

	create(newLog("completed-later", "orders", stepStarted))
	appendTo("completed-later", stepSucceeded)
	appendTo("completed-later", stepStarted, stepSucceeded, sagaCompleted)

	create(newLog("completed-at-once", "orders", completedTypes...))
	create(newLog("compensated", "orders", compensatedTypes...))

	create(newLog("stuck", "orders", stepStarted, stepFailed))
	appendTo("stuck", compStarted, compFailed, sagaStuck)

	big := newLog("big", "shipping")
	big[0].State = jsonOfSize(1 << 20)
	create(big)
	appendTo("big", signalReceived)

	create(newLog("young", "orders"))

	wantOrders := mustUnfinished(t, s, "orders")
	require.Equal(t, []string{"running", "stuck", "young"}, wantOrders)
	wantShipping := mustUnfinished(t, s, "shipping")

	s = reopen(t, s, caps)
	for id, log := range logs {
		assertLog(t, s, id, log)
	}
	assertNotFound(t, s, "never-created")
	assertUnfinished(t, s, "orders", wantOrders...)
	assertUnfinished(t, s, "shipping", wantShipping...)
	assert.NoError(t, s.Ping(t.Context()))
}

func testReopenThenAppend(t *testing.T, s saga.Store, caps Capabilities) {
	durable(t, s, caps)

	running := newLog("running", "orders", stepStarted)
	mustCreate(t, s, running)
	done := newLog("done", "orders", completedTypes...)
	mustCreate(t, s, done)

	s = reopen(t, s, caps)
	last := uint64(len(running))

	// The reopened store knows where every log ends.
	err := s.Append(t.Context(), "running", last-1, after("running", last-1, stepStarted))
	assert.ErrorIs(t, err, saga.ErrConflict)
	err = s.Append(t.Context(), "done", uint64(len(done)), after("done", uint64(len(done)), stepStarted))
	assert.ErrorIs(t, err, saga.ErrFinished)
	assert.ErrorIs(t, s.Create(t.Context(), newLog("done", "orders")), saga.ErrDuplicate)
	assert.ErrorIs(t, s.Create(t.Context(), newLog("running", "orders")), saga.ErrDuplicate)

	next := after("running", last, stepSucceeded, stepStarted)
	mustAppend(t, s, "running", last, next)
	running = append(running, next...)
	last = uint64(len(running))
	assert.ErrorIs(t, s.Append(t.Context(), "running", last-2, after("running", last-2, stepStarted)), saga.ErrConflict)

	fresh := newLog("fresh", "orders", stepStarted)
	mustCreate(t, s, fresh)
	assertUnfinished(t, s, "orders", "running", "fresh")

	// What was written after the first reopen survives the second.
	s = reopen(t, s, caps)
	assertLog(t, s, "running", running)
	assertLog(t, s, "done", done)
	assertLog(t, s, "fresh", fresh)
	assertUnfinished(t, s, "orders", "running", "fresh")

	end := after("running", last, stepSucceeded, sagaCompleted)
	mustAppend(t, s, "running", last, end)
	running = append(running, end...)
	assertUnfinished(t, s, "orders", "fresh")

	s = reopen(t, s, caps)
	assertLog(t, s, "running", running)
	assertUnfinished(t, s, "orders", "fresh")
}
