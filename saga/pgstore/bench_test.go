package pgstore_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

// BenchmarkAppend appends one event at a time to many instances from
// parallel goroutines, as a busy coordinator does. Compare it with
// BenchmarkRawCommit, the database's single-row commit rate, in one run:
//
//	go test -run '^$' -bench . -cpu 1,16 ./saga/pgstore/
func BenchmarkAppend(b *testing.B) {
	c := newCluster(b)
	s := c.open("")
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprintf("saga-%d", next.Add(1))
		run := "run-" + id
		require.NoError(b, s.Create(b.Context(), []saga.Event{{
			SagaID: id, Run: run, Seq: 1, Type: saga.EventSagaStarted, Definition: "bench", State: []byte(`{"n":1}`),
		}}))
		seq := uint64(1)
		for pb.Next() {
			e := saga.Event{SagaID: id, Run: run, Seq: seq + 1, Type: saga.EventStepStarted, Step: "step", Attempt: 1}
			if err := s.Append(b.Context(), id, seq, []saga.Event{e}); err != nil {
				b.Error(err)
				return
			}
			seq++
		}
	})
}

// BenchmarkRawCommit inserts one row per transaction: the floor under any
// durable append on this database.
func BenchmarkRawCommit(b *testing.B) {
	c := newCluster(b)
	_, err := c.db.ExecContext(b.Context(), `CREATE SCHEMA "`+c.schema+`"`)
	require.NoError(b, err)
	_, err = c.db.ExecContext(b.Context(), `CREATE TABLE "`+c.schema+`".rows (id bigserial PRIMARY KEY, v text)`)
	require.NoError(b, err)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.db.ExecContext(b.Context(), `INSERT INTO "`+c.schema+`".rows (v) VALUES ($1)`, "x"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
