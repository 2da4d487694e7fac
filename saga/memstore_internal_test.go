package saga

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
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

// A finished log costs the collector no object to mark but its ID: not its
// states nor its run ID, which it copies, nor a log of its own; its record
// shares a chunk with others. The test counts the objects of the whole
// heap, so it does not run in parallel with other tests.
func TestMemoryStoreFinishedLogIsItsID(t *testing.T) {
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
	assert.LessOrEqual(t, perLog, 0.1, "objects per finished log besides its ID")
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
// grows.
func TestMemoryStoreLogsFitTheirRoom(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore(MemoryConfig{})
	types := []EventType{EventSagaStarted, EventStepStarted, EventStepSucceeded, EventStepStarted, EventStepSucceeded, EventSagaCompleted}
	write := func(i int) (made, grown int) {
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
		require.NoError(t, s.append(&l, id, 4, events[4:], false))
		return made, cap(l.b)
	}
	for i := range 300 { // past the first 256, of which every one counts
		write(i)
	}
	for i := 300; i < 400; i++ {
		made, grown := write(i)
		assert.Equal(t, made, grown, "log %d grew", i)
	}
}

// finishLog writes a finished log of saga id whose states are state, and
// returns its events as written.
func finishLog(t *testing.T, s *MemoryStore, id, state string) []Event {
	t.Helper()
	events := handleLog(id, 1, EventSagaStarted, EventStepStarted, EventStepSucceeded, EventSagaCompleted)
	events[0].State, events[2].State = []byte(state), []byte(state+" ")
	l, err := s.create(events[:2], false)
	require.NoError(t, err)
	require.NoError(t, s.append(&l, id, 2, events[2:], false))
	return events
}

// Finished logs are records in chunks that the store lets go of once the
// retention policy has dropped every record in them: the logs it keeps
// read back as written, whatever chunk they are in, including logs larger
// than any chunk, and the chunks it holds are those of the logs it keeps.
func TestMemoryStoreFinishedLogsSpanChunks(t *testing.T) {
	t.Parallel()
	const keep = 40
	s := NewMemoryStore(MemoryConfig{MaxFinished: keep})
	var written [][]Event
	for i := range 600 {
		state := `{"i":"` + strings.Repeat("x", i%7*50) + `"}`
		if i%101 == 100 {
			state = `{"big":"` + strings.Repeat("y", 2*maxChunk) + `"}`
		}
		written = append(written, finishLog(t, s, "saga-"+strconv.Itoa(i), state))
	}
	assert.Equal(t, keep, s.Len())
	kept := 0
	for i, want := range written {
		id := want[0].SagaID
		got, err := s.Load(t.Context(), id)
		if i < len(written)-keep {
			assert.ErrorIs(t, err, ErrNotFound, id)
			continue
		}
		require.NoError(t, err, id)
		require.Len(t, got, len(want), id)
		for k := range want {
			assert.Equal(t, want[k].Type, got[k].Type, "%s event %d", id, k)
			assert.Equal(t, string(want[k].State), string(got[k].State), "%s event %d", id, k)
		}
		ref := s.shard(id).logs[id].fin
		l, ok := s.fin.log(ref, id)
		require.True(t, ok, id)
		kept += len(l.b) + 64 // and the record's ID and lengths
	}
	held := 0
	for _, c := range s.fin.chunks {
		held += cap(c)
	}
	// Besides the records kept: the room left in the chunk written to, and
	// the dropped records in the oldest chunk.
	assert.LessOrEqual(t, held, kept+2*maxChunk, "bytes held in %d chunks", len(s.fin.chunks))
}

// The events of a finished log read from the store share no bytes with the
// chunk that holds its record: an event kept does not keep a chunk from the
// collector, nor see what the chunk holds later.
func TestMemoryStoreFinishedLogLoadsACopy(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore(MemoryConfig{})
	finishLog(t, s, "a", `{"a":1}`)
	got, err := s.Load(t.Context(), "a")
	require.NoError(t, err)
	for _, c := range s.fin.chunks {
		for i := range c {
			c[i] = 0xff
		}
	}
	assert.JSONEq(t, `{"a":1}`, string(got[0].State))
	assert.JSONEq(t, `{"a":1}`, string(got[2].State))
}

// What finished logs share (definition, version, the location of their
// times) is kept once for the records of it, and forgotten with the last
// of them: a store whose logs each come in a location of their own keeps
// only the locations of the logs it keeps.
func TestMemoryStoreForgetsKindsOfDroppedLogs(t *testing.T) {
	t.Parallel()
	const keep = 5
	s := NewMemoryStore(MemoryConfig{MaxFinished: keep})
	zone := func(i int) *time.Location { return time.FixedZone("zone-"+strconv.Itoa(i), 60*i) }
	for i := range 100 {
		id := "saga-" + strconv.Itoa(i)
		events := handleLog(id, 1, EventSagaStarted, EventStepStarted, EventSagaCompleted)
		for k := range events {
			events[k].Time = time.Unix(int64(i), 0).In(zone(i))
		}
		_, err := s.create(events, false)
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, len(s.fin.kinds), keep+1, "kinds made")
	assert.Len(t, s.fin.kindOf, keep, "kinds held")
	for i := 100 - keep; i < 100; i++ {
		got, err := s.Load(t.Context(), "saga-"+strconv.Itoa(i))
		require.NoError(t, err)
		assert.Equal(t, "zone-"+strconv.Itoa(i), got[2].Time.Location().String(), i)
		assert.Equal(t, "d", got[0].Definition)
	}
}

// A finished log keeps each state as what changed since the one before;
// whatever its states, they read back as written: equal ones, empty and
// missing ones, longer and shorter ones, ones sharing a prefix, a suffix,
// both or nothing.
func TestMemoryStoreFinishedStatesReadBackAsWritten(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore(MemoryConfig{})
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab{}\"\x00\xff")
	word := func(n int) []byte {
		w := make([]byte, n)
		for i := range w {
			w[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return w
	}
	for i := range 2000 {
		id := "saga-" + strconv.Itoa(i)
		types := []EventType{EventSagaStarted}
		for range 1 + rng.IntN(8) {
			types = append(types, EventStepStarted, EventStepSucceeded)
		}
		events := handleLog(id, 1, append(types, EventSagaCompleted)...)
		var prev []byte
		for k := range events {
			switch rng.IntN(6) {
			case 0: // none
			case 1:
				events[k].State = []byte{}
			case 2:
				events[k].State = slices.Clone(prev)
			default: // a change somewhere in the state before, which may be cut or grown
				a, b := rng.IntN(len(prev)+1), rng.IntN(len(prev)+1)
				a, b = min(a, b), max(a, b)
				events[k].State = slices.Concat(prev[:a], word(rng.IntN(20)), prev[b:])
			}
			if events[k].State != nil {
				prev = events[k].State
			}
		}
		_, err := s.create(events, false)
		require.NoError(t, err)
		got, err := s.Load(t.Context(), id)
		require.NoError(t, err)
		require.Len(t, got, len(events))
		for k := range events {
			assert.Equal(t, events[k].State == nil, got[k].State == nil, "%s event %d: nil", id, k)
			assert.Equal(t, string(events[k].State), string(got[k].State), "%s event %d", id, k)
		}
	}
}

// The states of a saga change a little from step to step, and its
// finished log keeps little more than one of them.
func TestMemoryStoreFinishedLogKeepsStatesAsChanges(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore(MemoryConfig{})
	base := `{"order_id":"0b6f2a5e-7c1d-4d8e-9f3a-2b1c4d5e6f70","customer":{"name":"Ada","email":"ada@example.com",` +
		`"address":"1 Main St"},"items":[{"name":"laptop","price":999.99,"quantity":1}],"total_amount":999.99,"status":"%s"%s}`
	events := handleLog("a", 1, EventSagaStarted, EventStepStarted, EventStepSucceeded, EventStepStarted, EventStepSucceeded,
		EventStepStarted, EventStepSucceeded, EventSagaCompleted)
	events[0].State = fmt.Appendf(nil, base, "pending", "")
	events[2].State = fmt.Appendf(nil, base, "paid", `,"charge_id":"ch_1"`)
	events[4].State = fmt.Appendf(nil, base, "reserved", `,"charge_id":"ch_1","reservation_id":"res_1"`)
	events[6].State = fmt.Appendf(nil, base, "shipped", `,"charge_id":"ch_1","reservation_id":"res_1","tracking_number":"tr_1"`)
	l, err := s.create(events, false)
	require.NoError(t, err)
	rec, ok := s.fin.log(s.shard("a").logs["a"].fin, "a")
	require.True(t, ok)
	assert.Less(t, len(rec.b), len(l.b)/2, "a record's bytes, to the log's as it ran")
}

func TestCommonPrefixAndSuffix(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	naivePrefix := func(a, b []byte) int {
		i := 0
		for i < len(a) && i < len(b) && a[i] == b[i] {
			i++
		}
		return i
	}
	naiveSuffix := func(a, b []byte) int {
		i := 0
		for i < len(a) && i < len(b) && a[len(a)-1-i] == b[len(b)-1-i] {
			i++
		}
		return i
	}
	for range 10_000 {
		shared := make([]byte, rng.IntN(40))
		for i := range shared {
			shared[i] = byte(rng.IntN(3))
		}
		a := slices.Concat(shared, []byte{byte(rng.IntN(3))}, shared[:rng.IntN(len(shared)+1)])
		b := slices.Concat(shared[:rng.IntN(len(shared)+1)], []byte{byte(rng.IntN(3))}, shared)
		assert.Equal(t, naivePrefix(a, b), commonPrefix(a, b), "prefix of %v and %v", a, b)
		assert.Equal(t, naiveSuffix(a, b), commonSuffix(a, b), "suffix of %v and %v", a, b)
	}
}

// A finished log's reference may be read after its record was dropped, by
// a Load that found it before: it then finds nothing, whether the chunk
// that held the record is still held or not.
func TestMemoryStoreDroppedRecordIsNotFound(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore(MemoryConfig{MaxFinished: 1})
	finishLog(t, s, "a", `{"a":1}`)
	ref := s.shard("a").logs["a"].fin
	_, ok := s.fin.log(ref, "a")
	require.True(t, ok, "held")
	assert.False(t, func() bool { _, ok := s.fin.log(ref, "b"); return ok }(), "another saga's reference")

	finishLog(t, s, "b", `{"b":1}`) // drops a; its chunk holds b
	require.Equal(t, s.fin.first, uint32(ref>>32), "a's chunk is held")
	_, ok = s.fin.log(ref, "a")
	assert.False(t, ok, "a dropped, its chunk held")

	for i := 0; uint32(ref>>32) == s.fin.first; i++ { // until a's chunk goes
		finishLog(t, s, "c"+strconv.Itoa(i), `{"c":`+strconv.Itoa(i)+`}`)
	}
	_, ok = s.fin.log(ref, "a")
	assert.False(t, ok, "a's chunk dropped")
	_, err := s.Load(t.Context(), "a")
	assert.ErrorIs(t, err, ErrNotFound)
}

// A store that keeps few finished logs keeps them in small chunks.
func TestMemoryStoreFewFinishedLogsTakeSmallChunks(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore(MemoryConfig{MaxFinished: 1})
	for i := range 1000 {
		finishLog(t, s, "saga-"+strconv.Itoa(i), `{"i":`+strconv.Itoa(i)+`}`)
	}
	for _, c := range s.fin.chunks {
		assert.Equal(t, minChunk, cap(c))
	}
}

// A store under random logs (of any size, some larger than a chunk, their
// IDs used again once dropped) and random retention policies holds exactly
// what a plain model of the policies holds, and reads it back as written.
func TestMemoryStoreMatchesAModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(10) {
		rng := rand.New(rand.NewPCG(seed, 9))
		fake := clock.NewFake(time.Unix(1000, 0))
		cfg := MemoryConfig{Clock: fake, MaxFinished: rng.IntN(30)}
		if rng.IntN(2) == 0 {
			cfg.Retention = time.Duration(1+rng.IntN(50)) * time.Second
		}
		s := NewMemoryStore(cfg)
		type ended struct {
			id string
			at time.Time
		}
		model := map[string][]Event{} // the logs the store should hold
		var queue []ended             // the finished ones, oldest first
		for step := range 1500 {
			id := "id" + strconv.Itoa(rng.IntN(200))
			fake.Advance(time.Duration(rng.IntN(2000)) * time.Millisecond)
			if want, ok := model[id]; ok {
				got, err := s.Load(t.Context(), id)
				require.NoError(t, err, "seed %d step %d: %s", seed, step, id)
				require.Len(t, got, len(want), "seed %d step %d: %s", seed, step, id)
				for k := range want {
					assert.Equal(t, want[k].State == nil, got[k].State == nil, "seed %d step %d: %s event %d", seed, step, id, k)
					assert.Equal(t, string(want[k].State), string(got[k].State), "seed %d step %d: %s event %d", seed, step, id, k)
					assert.Equal(t, string(want[k].Payload), string(got[k].Payload), "seed %d step %d: %s event %d", seed, step, id, k)
				}
				continue
			}
			_, err := s.Load(t.Context(), id)
			require.ErrorIs(t, err, ErrNotFound, "seed %d step %d: %s", seed, step, id)

			types := []EventType{EventSagaStarted}
			for range rng.IntN(6) {
				types = append(types, EventStepStarted)
			}
			events := handleLog(id, 1, append(types, EventSagaCompleted)...)
			big := rng.IntN(20) == 0
			for k := range events {
				if rng.IntN(3) > 0 {
					n := rng.IntN(300)
					if big {
						n = maxChunk + rng.IntN(1024)
					}
					events[k].State = []byte(strings.Repeat(string(rune('a'+rng.IntN(3))), n))
				}
				if rng.IntN(3) == 0 {
					events[k].Payload = []byte(strconv.Itoa(k))
				}
				events[k].Time = fake.Now()
			}
			_, err = s.create(slices.Clone(events), false)
			require.NoError(t, err)
			model[id] = events
			queue = append(queue, ended{id, fake.Now()})
			for len(queue) > 0 {
				over := cfg.MaxFinished > 0 && len(queue) > cfg.MaxFinished
				old := cfg.Retention > 0 && fake.Now().Sub(queue[0].at) >= cfg.Retention
				if !over && !old {
					break
				}
				delete(model, queue[0].id)
				queue = queue[1:]
			}
			require.Equal(t, len(model), s.Len(), "seed %d step %d", seed, step)
		}
	}
}

// Writers run logs under a few IDs, each started again as soon as the
// store drops it, while readers read them: a log read is of the ID asked
// for, and whole once it has ended; or it is not found, once dropped.
func TestMemoryStoreLogsReadWhileDroppedAndStartedAgain(t *testing.T) {
	t.Parallel()
	s := NewMemoryStore(MemoryConfig{MaxFinished: 3})
	const writers, ids = 4, 8
	var wg sync.WaitGroup
	var done atomic.Int64
	for w := range writers {
		wg.Go(func() {
			defer done.Add(1)
			for i := range 2000 {
				id := "id" + strconv.Itoa((i*7+w)%ids)
				events := handleLog(id, 1, EventSagaStarted, EventStepStarted, EventStepSucceeded, EventSagaCompleted)
				state := strings.Repeat(id, 1+i%700)
				events[0].State, events[2].State = []byte(state), []byte(state+"!")
				l, err := s.create(events[:2], false)
				if errors.Is(err, ErrDuplicate) {
					continue
				}
				if !assert.NoError(t, err) || !assert.NoError(t, s.append(&l, id, 2, events[2:], false)) {
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for i := 0; done.Load() < writers; i++ {
				id := "id" + strconv.Itoa(i%ids)
				got, err := s.Load(t.Context(), id)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if !assert.NoError(t, err, id) {
					return
				}
				switch len(got) {
				case 2: // running
				case 4:
					assert.Equal(t, string(got[0].State)+"!", string(got[2].State), id)
					assert.Equal(t, EventSagaCompleted, got[3].Type, id)
				default:
					t.Errorf("%s: %d events", id, len(got))
					return
				}
				assert.Equal(t, id, got[0].SagaID)
				assert.True(t, strings.HasPrefix(string(got[0].State), id), "%s: state %.20q", id, got[0].State)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, 3, s.Len())
}
