package saga_test

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
)

// memBase is the time of the events the memory store tests write.
var memBase = time.Date(2025, time.January, 1, 12, 0, 0, 0, time.UTC)

// memLogOf returns a valid log of saga id of definition "orders": a
// saga_started followed by events of the given types.
func memLogOf(id string, types ...saga.EventType) []saga.Event {
	events := []saga.Event{{
		SagaID: id, Run: "run-" + id, Seq: 1, Type: saga.EventSagaStarted, Time: memBase,
		Definition: "orders", Version: 1, State: []byte(`{"amount":100}`),
	}}
	return append(events, memAfter(id, 1, types...)...)
}

// memAfter returns events of the given types that follow event last in the
// log of saga id.
func memAfter(id string, last uint64, types ...saga.EventType) []saga.Event {
	events := make([]saga.Event, len(types))
	for i, typ := range types {
		seq := last + 1 + uint64(i)
		events[i] = saga.Event{
			SagaID: id, Run: "run-" + id, Seq: seq, Type: typ,
			Time: memBase.Add(time.Duration(seq) * time.Second), Step: "charge",
		}
	}
	return events
}

// memSetup returns a memory store with cfg and its fake clock, closed when
// the test ends.
func memSetup(t *testing.T, cfg saga.MemoryConfig) (*saga.MemoryStore, *clock.Fake) {
	t.Helper()
	fake := clock.NewFake(time.Time{})
	cfg.Clock = fake
	s := saga.NewMemoryStore(cfg)
	t.Cleanup(func() { _ = s.Close() })
	return s, fake
}

// memFinish creates instance id and ends it with saga_completed by an
// append.
func memFinish(t *testing.T, s *saga.MemoryStore, id string) {
	t.Helper()
	require.NoError(t, s.Create(t.Context(), memLogOf(id, saga.EventStepStarted)))
	require.NoError(t, s.Append(t.Context(), id, 2, memAfter(id, 2, saga.EventStepSucceeded, saga.EventSagaCompleted)))
}

// memPresent checks which of ids the store holds: those in want are found,
// the others are not.
func memPresent(t *testing.T, s *saga.MemoryStore, want map[string]bool) {
	t.Helper()
	for id, present := range want {
		_, err := s.Load(t.Context(), id)
		if present {
			assert.NoError(t, err, "%s should be kept", id)
		} else {
			assert.ErrorIs(t, err, saga.ErrNotFound, "%s should be dropped", id)
		}
	}
}

func TestMemoryStoreIsNotDurable(t *testing.T) {
	t.Parallel()
	s, _ := memSetup(t, saga.MemoryConfig{})
	assert.False(t, s.Durable())
}

func TestMemoryStoreZeroConfigKeepsEverything(t *testing.T) {
	t.Parallel()
	s := saga.NewMemoryStore(saga.MemoryConfig{})
	t.Cleanup(func() { _ = s.Close() })
	for i := range 100 {
		memFinish(t, s, fmt.Sprintf("done-%d", i))
	}
	assert.Equal(t, 100, s.Len())
}

func TestMemoryStoreClosed(t *testing.T) {
	t.Parallel()
	s, _ := memSetup(t, saga.MemoryConfig{})
	ctx := t.Context()
	require.NoError(t, s.Create(ctx, memLogOf("order-1")))
	require.NoError(t, s.Close())

	assert.ErrorIs(t, s.Create(ctx, memLogOf("order-2")), saga.ErrClosed)
	assert.ErrorIs(t, s.Append(ctx, "order-1", 1, memAfter("order-1", 1, saga.EventStepStarted)), saga.ErrClosed)
	_, err := s.Load(ctx, "order-1")
	assert.ErrorIs(t, err, saga.ErrClosed)
	_, err = s.Unfinished(ctx, "orders")
	assert.ErrorIs(t, err, saga.ErrClosed)
	assert.ErrorIs(t, s.Ping(ctx), saga.ErrClosed)
	// Invalid input after Close still reports the close, not the input.
	assert.ErrorIs(t, s.Create(ctx, nil), saga.ErrClosed)
	assert.ErrorIs(t, s.Append(ctx, "", 0, nil), saga.ErrClosed)
}

func TestMemoryStoreMaxFinishedDropsOldestFinished(t *testing.T) {
	t.Parallel()
	s, _ := memSetup(t, saga.MemoryConfig{MaxFinished: 2})
	ctx := t.Context()

	// Unfinished instances, one of them stuck, are never dropped.
	require.NoError(t, s.Create(ctx, memLogOf("running", saga.EventStepStarted)))
	require.NoError(t, s.Create(ctx, memLogOf("stuck",
		saga.EventStepFailed, saga.EventCompensationStarted, saga.EventSagaStuck)))

	memFinish(t, s, "done-1")
	// Ended at creation: it counts as finished too.
	require.NoError(t, s.Create(ctx, memLogOf("done-2", saga.EventStepSucceeded, saga.EventSagaCompleted)))
	assert.Equal(t, 4, s.Len())
	memPresent(t, s, map[string]bool{"running": true, "stuck": true, "done-1": true, "done-2": true})

	memFinish(t, s, "done-3")
	assert.Equal(t, 4, s.Len())
	memPresent(t, s, map[string]bool{"running": true, "stuck": true, "done-1": false, "done-2": true, "done-3": true})

	// Compensated instances are finished as well.
	require.NoError(t, s.Create(ctx, memLogOf("undone", saga.EventStepFailed, saga.EventCompensationStarted)))
	assert.Equal(t, 5, s.Len(), "an unfinished instance drops nothing")
	require.NoError(t, s.Append(ctx, "undone", 3, memAfter("undone", 3, saga.EventSagaCompensated)))
	assert.Equal(t, 4, s.Len())
	memPresent(t, s, map[string]bool{"running": true, "stuck": true, "done-2": false, "done-3": true, "undone": true})

	// Many more endings never touch the unfinished ones.
	for i := range 50 {
		memFinish(t, s, fmt.Sprintf("more-%d", i))
	}
	assert.Equal(t, 4, s.Len())
	memPresent(t, s, map[string]bool{"running": true, "stuck": true, "undone": false, "more-48": true, "more-49": true})
	ids, err := s.Unfinished(ctx, "orders")
	require.NoError(t, err)
	assert.Equal(t, []string{"running", "stuck"}, ids)

	// A dropped ID is free again.
	require.NoError(t, s.Create(ctx, memLogOf("done-1")))
	got, err := s.Load(ctx, "done-1")
	require.NoError(t, err)
	assert.Len(t, got, 1)
	ids, err = s.Unfinished(ctx, "orders")
	require.NoError(t, err)
	assert.Equal(t, []string{"running", "stuck", "done-1"}, ids)
}

func TestMemoryStoreRetentionDropsOldFinished(t *testing.T) {
	t.Parallel()
	s, fake := memSetup(t, saga.MemoryConfig{Retention: time.Hour})
	ctx := t.Context()

	require.NoError(t, s.Create(ctx, memLogOf("running")))
	memFinish(t, s, "done-1") // finished at 0:00
	fake.Advance(30 * time.Minute)
	memFinish(t, s, "done-2") // finished at 0:30
	assert.Equal(t, 3, s.Len())

	// Eviction is lazy: it happens when another instance ends. At 1:00
	// done-1 has been finished for exactly Retention, done-2 for half.
	fake.Advance(30 * time.Minute)
	memFinish(t, s, "done-3")
	memPresent(t, s, map[string]bool{"running": true, "done-1": false, "done-2": true, "done-3": true})
	assert.Equal(t, 3, s.Len())

	// At 1:29 done-2 is 59 minutes old, done-3 29: both stay.
	fake.Advance(29 * time.Minute)
	memFinish(t, s, "done-4")
	memPresent(t, s, map[string]bool{"done-2": true, "done-3": true, "done-4": true})
	assert.Equal(t, 4, s.Len())

	// At 3:00 everything finished before 2:00 goes; the running instance,
	// older than all of them, stays.
	fake.Advance(91 * time.Minute)
	memFinish(t, s, "done-5")
	memPresent(t, s, map[string]bool{"running": true, "done-2": false, "done-3": false, "done-4": false, "done-5": true})
	assert.Equal(t, 2, s.Len())

	// An evicted ID can be started again, and its new log is the one kept.
	require.NoError(t, s.Create(ctx, memLogOf("done-1", saga.EventStepStarted)))
	got, err := s.Load(ctx, "done-1")
	require.NoError(t, err)
	assert.Len(t, got, 2)
	ids, err := s.Unfinished(ctx, "orders")
	require.NoError(t, err)
	assert.Equal(t, []string{"running", "done-1"}, ids)
}

func TestMemoryStoreRetentionAndMaxFinished(t *testing.T) {
	t.Parallel()
	s, fake := memSetup(t, saga.MemoryConfig{Retention: time.Hour, MaxFinished: 2})

	memFinish(t, s, "a")
	memFinish(t, s, "b")
	memFinish(t, s, "c") // over the count: a goes
	memPresent(t, s, map[string]bool{"a": false, "b": true, "c": true})

	fake.Advance(time.Hour)
	memFinish(t, s, "d") // b and c are too old
	memPresent(t, s, map[string]bool{"b": false, "c": false, "d": true})
	assert.Equal(t, 1, s.Len())
}

func TestMemoryStoreEvictedIDIsRecycledCleanly(t *testing.T) {
	t.Parallel()
	s, _ := memSetup(t, saga.MemoryConfig{MaxFinished: 1})
	ctx := t.Context()

	memFinish(t, s, "reused")
	memFinish(t, s, "other") // drops the first "reused"
	memPresent(t, s, map[string]bool{"reused": false, "other": true})

	// The new "reused" is running; the old one's retirement must not drop
	// it, however many instances end afterwards.
	require.NoError(t, s.Create(ctx, memLogOf("reused")))
	for i := range 5 {
		memFinish(t, s, fmt.Sprintf("filler-%d", i))
	}
	memPresent(t, s, map[string]bool{"reused": true})

	// Once it ends, it is retired like any other.
	require.NoError(t, s.Append(ctx, "reused", 1, memAfter("reused", 1, saga.EventSagaCompleted)))
	memPresent(t, s, map[string]bool{"reused": true, "filler-4": false})
	assert.Equal(t, 1, s.Len())
}

func BenchmarkMemoryStoreAppend(b *testing.B) {
	s := saga.NewMemoryStore(saga.MemoryConfig{})
	b.Cleanup(func() { _ = s.Close() })
	var n atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		id := fmt.Sprintf("bench-%d", n.Add(1))
		if err := s.Create(ctx, memLogOf(id)); err != nil {
			b.Error(err)
			return
		}
		batch := memAfter(id, 1, saga.EventStepStarted)
		for last := uint64(1); pb.Next(); last++ {
			batch[0].Seq = last + 1
			if err := s.Append(ctx, id, last, batch); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// A log that ends is kept in a packed form: it must read back as it was
// written, every field, in the location of its times.
func TestMemoryStoreFinishedLogReadsBackAsWritten(t *testing.T) {
	t.Parallel()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	for name, loc := range map[string]*time.Location{"UTC": time.UTC, "Local": time.Local, "Paris": paris} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, _ := memSetup(t, saga.MemoryConfig{})
			at := func(sec int) time.Time { return time.Date(2025, 1, 1, 12, 0, sec, 123456789, loc) }
			ev := func(seq uint64, typ saga.EventType) saga.Event {
				return saga.Event{SagaID: "s", Run: "r", Seq: seq, Type: typ, Time: at(int(seq))}
			}
			log := []saga.Event{ev(1, saga.EventSagaStarted), ev(2, saga.EventSignalReceived), ev(3, saga.EventSignalReceived),
				ev(4, saga.EventStepStarted), ev(5, saga.EventStepAttemptFailed), ev(6, saga.EventRetryScheduled),
				ev(7, saga.EventStepStarted), ev(8, saga.EventStepSucceeded), ev(9, saga.EventSagaCompleted)}
			log[0].Definition, log[0].Version, log[0].State, log[0].At = "orders", 3, []byte(`{"a":"b"}`), at(600)
			log[1].Signal, log[1].DedupKey, log[1].Payload = "paid", "d1", []byte(`{"x":1}`)
			log[2].Signal, log[2].Payload = "empty", []byte{}
			log[3].Step, log[3].Attempt = "charge", 1
			log[4].Step, log[4].Attempt, log[4].Error = "charge", 1, "card declined: ünïcode"
			log[5].Step, log[5].Attempt, log[5].At = "charge", math.MaxInt, at(30)
			log[6].Step, log[6].Attempt = "charge", -7
			log[7].Step, log[7].Attempt, log[7].State = "charge", 2, []byte{}
			require.NoError(t, s.Create(t.Context(), log[:1]))
			require.NoError(t, s.Append(t.Context(), "s", 1, log[1:]))

			got, err := s.Load(t.Context(), "s")
			require.NoError(t, err)
			require.Len(t, got, len(log))
			for i := range log {
				w, g := log[i], got[i]
				assert.True(t, w.Time.Equal(g.Time), "%d: time %v, want %v", i, g.Time, w.Time)
				assert.Equal(t, w.Time.Location().String(), g.Time.Location().String(), i)
				assert.True(t, w.At.Equal(g.At), "%d: at %v, want %v", i, g.At, w.At)
				assert.Equal(t, w.State == nil, g.State == nil, "%d: nil state", i)
				assert.Equal(t, w.Payload == nil, g.Payload == nil, "%d: nil payload", i)
				w.Time, g.Time, w.At, g.At = time.Time{}, time.Time{}, time.Time{}, time.Time{}
				assert.Equal(t, w, g, i)
			}

			// What Load returns may be kept, but appending to it cannot
			// reach the store.
			got[0].State = append(got[0].State, 'x')
			again, err := s.Load(t.Context(), "s")
			require.NoError(t, err)
			assert.Equal(t, `{"a":"b"}`, string(again[0].State))
			assert.ErrorIs(t, s.Append(t.Context(), "s", 9, []saga.Event{ev(10, saga.EventSignalReceived)}), saga.ErrFinished)
		})
	}
}

// Every time of a log, running or finished, reads back as the same instant
// in the location of the log's first event, as from a durable store.
func TestMemoryStoreTimesReadBackInTheFirstEventsLocation(t *testing.T) {
	t.Parallel()
	s, _ := memSetup(t, saga.MemoryConfig{})
	x, y := time.FixedZone("X", 7200), time.FixedZone("Y", -3600)
	log := memLogOf("m", saga.EventStepStarted, saga.EventStepSucceeded, saga.EventSagaCompleted)
	log[0].Time = log[0].Time.In(y)
	log[1].Time = log[1].Time.In(x)
	log[2].Time, log[2].At = log[2].Time.In(time.UTC), memBase.Add(time.Hour).In(x)
	check := func(n int) {
		t.Helper()
		got, err := s.Load(t.Context(), "m")
		require.NoError(t, err)
		require.Len(t, got, n)
		for i := range got {
			assert.True(t, log[i].Time.Equal(got[i].Time), "%d: time %v, want %v", i, got[i].Time, log[i].Time)
			assert.True(t, log[i].At.Equal(got[i].At), "%d: at %v, want %v", i, got[i].At, log[i].At)
			assert.Equal(t, y, got[i].Time.Location(), i)
		}
		assert.Equal(t, y, got[2].At.Location())
	}
	require.NoError(t, s.Create(t.Context(), log[:3]))
	check(3)
	require.NoError(t, s.Append(t.Context(), "m", 3, log[3:]))
	check(4)
}

// BenchmarkMemoryStoreLog writes whole logs of a saga of four steps, as
// the engine does, to a store that keeps the last 10,000 that ended.
func BenchmarkMemoryStoreLog(b *testing.B) {
	s := saga.NewMemoryStore(saga.MemoryConfig{MaxFinished: 10_000})
	b.Cleanup(func() { _ = s.Close() })
	state := []byte(`{"order_id":"42","customer":{"name":"Ada","email":"ada@example.com"},"total_amount":10.00,"status":"pending"}`)
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			id := fmt.Sprintf("log-%d", n.Add(1))
			log := memLogOf(id, saga.EventStepStarted)
			log[0].State = state
			if err := s.Create(ctx, log); err != nil {
				b.Error(err)
				return
			}
			last := uint64(2)
			for step := range 4 {
				batch := memAfter(id, last, saga.EventStepSucceeded, saga.EventStepStarted)
				batch[0].State = state
				if step == 3 {
					batch[1].Type, batch[1].Step = saga.EventSagaCompleted, ""
				}
				if err := s.Append(ctx, id, last, batch); err != nil {
					b.Error(err)
					return
				}
				last += 2
			}
		}
	})
}

func TestMemoryStoreFinishedLogKeepsEveryTime(t *testing.T) {
	t.Parallel()
	s, _ := memSetup(t, saga.MemoryConfig{})
	base := time.Date(2025, 1, 1, 12, 0, 0, 999_999_999, time.UTC)
	times := []time.Time{
		base, base.Add(time.Nanosecond), base.Add(-1500 * time.Millisecond), // back, across a second
		base.AddDate(40, 0, 0), base.AddDate(-100, 0, 0), base.AddDate(-100, 0, 0).Add(33 * 365 * 24 * time.Hour),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(1969, 12, 31, 23, 59, 59, 5, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 1, 0, time.UTC), base.Add(-time.Nanosecond), base,
	}
	log := make([]saga.Event, len(times)+1)
	for i := range log {
		log[i] = saga.Event{SagaID: "s", Run: "r", Seq: uint64(i + 1), Type: saga.EventSignalReceived, Signal: "x", Time: base}
		if i < len(times) {
			log[i].Time = times[i]
		}
	}
	log[0].Type, log[0].Signal, log[0].Definition = saga.EventSagaStarted, "", "orders"
	log[len(log)-1].Type, log[len(log)-1].Signal = saga.EventSagaCompensated, ""
	require.NoError(t, s.Create(t.Context(), log[:1]))
	require.NoError(t, s.Append(t.Context(), "s", 1, log[1:]))

	got, err := s.Load(t.Context(), "s")
	require.NoError(t, err)
	require.Len(t, got, len(log))
	for i := range log {
		assert.True(t, log[i].Time.Equal(got[i].Time), "%d: time %v, want %v", i, got[i].Time, log[i].Time)
	}
}

// The store keeps copies of what it is given, and leaves the caller's
// events as they were: changing the caller's bytes afterwards changes
// nothing in the log, running or finished.
func TestMemoryStoreCopiesWhatItIsGiven(t *testing.T) {
	t.Parallel()
	s, _ := memSetup(t, saga.MemoryConfig{})
	log := memLogOf("c", saga.EventStepStarted, saga.EventStepSucceeded, saga.EventSagaCompleted)
	log[2].State = []byte(`{"amount":200}`)
	first, second := log[0].State, log[2].State
	check := func(n int) {
		t.Helper()
		got, err := s.Load(t.Context(), "c")
		require.NoError(t, err)
		require.Len(t, got, n)
		assert.Equal(t, `{"amount":100}`, string(got[0].State))
		if n > 2 {
			assert.Equal(t, `{"amount":200}`, string(got[2].State))
		}
	}
	require.NoError(t, s.Create(t.Context(), log[:2]))
	assert.Same(t, &first[0], &log[0].State[0], "the caller's events still hold their own bytes")
	copy(first, `{"amount":999}`)
	check(2)
	require.NoError(t, s.Append(t.Context(), "c", 2, log[2:]))
	assert.Same(t, &second[0], &log[2].State[0])
	copy(second, `{"amount":999}`)
	check(4)
}

// BenchmarkMemoryStoreCollectFinished measures a garbage collection of a
// heap that holds a store of 100,000 finished logs, as a store with a
// retention of a day holds the instances of the day: what the collector
// marks of each log is a cost paid at every collection of the process.
func BenchmarkMemoryStoreCollectFinished(b *testing.B) {
	s := saga.NewMemoryStore(saga.MemoryConfig{})
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	for i := range 100_000 {
		id := fmt.Sprintf("log-%d", i)
		if err := s.Create(ctx, memLogOf(id, saga.EventStepStarted, saga.EventStepSucceeded, saga.EventSagaCompleted)); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
	}
}
