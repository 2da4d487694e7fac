package journal_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sagaflow/sagaflow/clock"
	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/journal"
)

// BenchmarkAppend measures acknowledged Appends with an fsync each (the
// default options): appenders each append to their own instance, two
// events at a time with a few hundred bytes of state, and group commit
// shares the fsyncs among those waiting. Compare records/s with
// BenchmarkRawFsync's fsyncs/s, and records/fsync with the number of
// appenders.
func BenchmarkAppend(b *testing.B) {
	for _, appenders := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			benchmarkAppend(b, appenders)
		})
	}
}

func benchmarkAppend(b *testing.B, appenders int) {
	j, err := journal.Open(b.TempDir(), journal.Options{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	ctx := b.Context()
	ids := make([]string, appenders)
	var wg sync.WaitGroup
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%03d", i)
		wg.Go(func() {
			if err := j.Create(ctx, []saga.Event{startedAt(ids[i], t0, 300)}); err != nil {
				b.Error(err)
			}
		})
	}
	wg.Wait()
	// The events of an append differ only in their numbers: the state is
	// shared, as the contract allows.
	state := stateOf("bench", 0, 300)
	before := j.Stats()
	var next atomic.Int64 // appends handed out
	b.ReportAllocs()
	b.ResetTimer()
	for i := range ids {
		wg.Go(func() {
			id, last := ids[i], uint64(1)
			for next.Add(1) <= int64(b.N) {
				events := []saga.Event{
					{SagaID: id, Run: "run-" + id, Seq: last + 1, Type: saga.EventStepStarted, Time: t0, Step: "charge", Attempt: 1},
					{SagaID: id, Run: "run-" + id, Seq: last + 2, Type: saga.EventStepSucceeded, Time: t0, Step: "charge", State: state},
				}
				if err := j.Append(ctx, id, last, events); err != nil {
					b.Error(err)
					return
				}
				last += 2
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	st := j.Stats()
	records, syncs := st.Records-before.Records, st.Syncs-before.Syncs
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(records)/float64(max(syncs, 1)), "records/fsync")
}

// BenchmarkRawFsync measures what the machine can do without the journal:
// write 100 bytes to a file and fsync it, one after the other.
func BenchmarkRawFsync(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 100)
	for b.Loop() {
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "fsyncs/s")
}

// BenchmarkLoad measures reading a log back: an order's worth of records
// (a Create and five Appends, with a few hundred bytes of state each),
// finished, so that its records are read from the segment (from the page
// cache, as a recent log is).
func BenchmarkLoad(b *testing.B) {
	j, err := journal.Open(b.TempDir(), journal.Options{Logger: quiet, CompactAfter: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	ctx := b.Context()
	const id = "order"
	log := append([]saga.Event{startedAt(id, t0, 300)}, stepsAt(id, 1, 10, t0, 300)...)
	log = append(log, endAt(id, uint64(len(log)), t0))
	if err := j.Create(ctx, log[:1]); err != nil {
		b.Fatal(err)
	}
	for n := 1; n < len(log); n += 2 {
		if err := j.Append(ctx, id, uint64(n), log[n:min(n+2, len(log))]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		got, err := j.Load(ctx, id)
		if err != nil || len(got) != len(log) {
			b.Fatal(len(got), err)
		}
	}
}

// BenchmarkFinish measures creating and finishing instances in a journal
// that already holds many finished ones, so that each Create checks the
// index of finished instances for a duplicate and each end adds to it: 64
// goroutines each create an instance and append its end, over and over.
// Writes are acknowledged without an fsync (SyncInterval on a clock that
// never ticks), so that the index's share is not lost in the disk's.
func BenchmarkFinish(b *testing.B) {
	const held, workers = 300_000, 64
	j, err := journal.Open(b.TempDir(), journal.Options{
		Logger: quiet, Clock: clock.NewFake(t0), SyncInterval: time.Hour, CompactAfter: -1,
	})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	ctx := b.Context()
	finish := func(prefix string, n int) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := next.Add(1); i <= int64(n); i = next.Add(1) {
					id := fmt.Sprintf("%s-%09d", prefix, i)
					if err := j.Create(ctx, []saga.Event{startedAt(id, t0, 100)}); err != nil {
						b.Error(err)
						return
					}
					if err := j.Append(ctx, id, 1, []saga.Event{endAt(id, 1, t0)}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	finish("held", held)
	b.ReportAllocs()
	b.ResetTimer()
	finish("new", b.N)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "instances/s")
}
