package journal

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

// Helpers for the tests that need the journal's insides.

var discard = slog.New(slog.DiscardHandler)

// openJournal opens a journal in dir and closes it when the test ends.
func openJournal(t testing.TB, dir string, opts Options) *Journal {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discard
	}
	j, err := Open(dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = j.Close() })
	return j
}

// startEvent returns the first event of instance id.
func startEvent(id string) saga.Event {
	return saga.Event{
		SagaID: id, Run: "run-" + id, Seq: 1, Type: saga.EventSagaStarted,
		Time: codecTime, State: json.RawMessage(`{"id":"` + id + `"}`), Definition: "transfer",
	}
}

// stepEvent returns event seq of instance id: a step starting.
func stepEvent(id string, seq uint64) saga.Event {
	return saga.Event{
		SagaID: id, Run: "run-" + id, Seq: seq, Type: saga.EventStepStarted,
		Time: codecTime.Add(time.Duration(seq) * time.Second), Step: fmt.Sprintf("step-%d", seq), Attempt: 1,
	}
}

// logOf returns the first n events of instance id as startEvent and
// stepEvent make them.
func logOf(id string, n int) []saga.Event {
	events := make([]saga.Event, n)
	for i := range events {
		if i == 0 {
			events[i] = startEvent(id)
		} else {
			events[i] = stepEvent(id, uint64(i+1))
		}
	}
	return events
}

// signalHandler is a slog.Handler that reports each record at or above
// level on a channel (dropping it if the channel is full), so that a test
// can wait for something the journal logs.
type signalHandler struct {
	level slog.Level
	c     chan slog.Record
}

func newSignalHandler(level slog.Level) *signalHandler {
	return &signalHandler{level: level, c: make(chan slog.Record, 1)}
}

func (h *signalHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }

func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	select {
	case h.c <- r.Clone():
	default:
	}
	return nil
}

func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *signalHandler) WithGroup(string) slog.Handler      { return h }

// wait returns the next record, or fails the test if it ends first (go
// test's -timeout bounds the wait).
func (h *signalHandler) wait(t testing.TB) slog.Record {
	t.Helper()
	select {
	case r := <-h.c:
		return r
	case <-t.Context().Done():
		require.FailNow(t, "no log record", "waiting for one at %v", h.level)
		return slog.Record{}
	}
}
