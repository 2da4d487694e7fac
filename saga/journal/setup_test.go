package journal_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
	"github.com/sagaflow/sagaflow/saga/journal"
)

// Helpers shared by the journal's external tests: building valid logs,
// remembering what was acknowledged, checking a journal against it, and
// handling the directory's files.

// def is the definition every test instance belongs to.
const def = "transfer"

// t0 is where the tests' event times start; it has nanoseconds so that a
// store which rounds times is caught.
var t0 = time.Date(2025, time.March, 7, 9, 30, 0, 123456789, time.UTC)

// stateOf returns a JSON state of about size bytes for event seq of id.
func stateOf(id string, seq uint64, size int) json.RawMessage {
	s := fmt.Sprintf(`{"id":%q,"seq":%d,"pad":"`, id, seq)
	if pad := size - len(s) - 2; pad > 0 {
		s += strings.Repeat("x", pad)
	}
	return json.RawMessage(s + `"}`)
}

// startedAt returns the first event of instance id.
func startedAt(id string, at time.Time, stateSize int) saga.Event {
	return saga.Event{
		SagaID:     id,
		Run:        "run-" + id,
		Seq:        1,
		Type:       saga.EventSagaStarted,
		Time:       at,
		At:         at.Add(24 * time.Hour),
		State:      stateOf(id, 1, stateSize),
		Definition: def,
		Version:    2,
	}
}

// stepsAt returns n events that follow event last of instance id:
// alternately a step starting and succeeding.
func stepsAt(id string, last uint64, n int, at time.Time, stateSize int) []saga.Event {
	events := make([]saga.Event, n)
	for i := range events {
		seq := last + 1 + uint64(i)
		e := saga.Event{SagaID: id, Run: "run-" + id, Seq: seq, Time: at, Step: fmt.Sprintf("step-%d", seq/2)}
		if seq%2 == 0 {
			e.Type, e.Attempt = saga.EventStepStarted, 1
		} else {
			e.Type, e.State = saga.EventStepSucceeded, stateOf(id, seq, stateSize)
		}
		events[i] = e
	}
	return events
}

// endAt returns the event that completes instance id after event last.
func endAt(id string, last uint64, at time.Time) saga.Event {
	return saga.Event{SagaID: id, Run: "run-" + id, Seq: last + 1, Type: saga.EventSagaCompleted, Time: at}
}

// rec is one acknowledged Create or Append.
type rec struct {
	id     string
	events []saga.Event
}

// history remembers the records a test had acknowledged, in order, so that
// it can say what the logs were after any prefix of them.
type history struct {
	recs []rec
}

// create creates instance id with its first event.
func (h *history) create(t testing.TB, j saga.Store, id string, at time.Time, stateSize int) {
	t.Helper()
	events := []saga.Event{startedAt(id, at, stateSize)}
	require.NoError(t, j.Create(t.Context(), events), "create %s", id)
	h.recs = append(h.recs, rec{id, events})
}

// steps appends n step events to instance id.
func (h *history) steps(t testing.TB, j saga.Store, id string, n int, at time.Time, stateSize int) {
	t.Helper()
	last := h.last(id)
	events := stepsAt(id, last, n, at, stateSize)
	require.NoError(t, j.Append(t.Context(), id, last, events), "append to %s after %d", id, last)
	h.recs = append(h.recs, rec{id, events})
}

// end completes instance id.
func (h *history) end(t testing.TB, j saga.Store, id string, at time.Time) {
	t.Helper()
	last := h.last(id)
	events := []saga.Event{endAt(id, last, at)}
	require.NoError(t, j.Append(t.Context(), id, last, events), "end %s after %d", id, last)
	h.recs = append(h.recs, rec{id, events})
}

// last returns the last sequence number of instance id.
func (h *history) last(id string) uint64 {
	for i := len(h.recs) - 1; i >= 0; i-- {
		if r := h.recs[i]; r.id == id {
			return r.events[len(r.events)-1].Seq
		}
	}
	return 0
}

// ids returns every instance ID the history knows, in creation order.
func (h *history) ids() []string {
	_, order := h.logs(len(h.recs))
	return order
}

// logs returns the logs after the first n records, and the instances in
// creation order.
func (h *history) logs(n int) (map[string][]saga.Event, []string) {
	logs := make(map[string][]saga.Event)
	var order []string
	for _, r := range h.recs[:n] {
		if _, ok := logs[r.id]; !ok {
			order = append(order, r.id)
		}
		logs[r.id] = append(slices.Clip(logs[r.id]), r.events...)
	}
	return logs, order
}

// assertPrefix checks that j holds exactly the logs of the first n records
// of h: every log equal, every later instance unknown, and Unfinished in
// creation order.
func assertPrefix(t testing.TB, j saga.Store, h *history, n int) bool {
	t.Helper()
	want, order := h.logs(n)
	return assertLogs(t, j, want, order, h.ids())
}

// assertLogs checks that j holds the logs want (created in the order
// order) and no log for the other IDs of all.
func assertLogs(t testing.TB, j saga.Store, want map[string][]saga.Event, order, all []string) bool {
	t.Helper()
	ok := true
	for _, id := range all {
		got, err := j.Load(t.Context(), id)
		if w, has := want[id]; has {
			ok = assert.NoError(t, err, "load %s", id) && assert.Equal(t, w, got, "log of %s", id) && ok
		} else {
			ok = assert.ErrorIs(t, err, saga.ErrNotFound, "load %s", id) && ok
		}
	}
	var unfinished []string
	for _, id := range order {
		if log := want[id]; !log[len(log)-1].Ends() {
			unfinished = append(unfinished, id)
		}
	}
	got, err := j.Unfinished(t.Context(), def)
	ok = assert.NoError(t, err, "unfinished") && ok
	if len(unfinished) == 0 {
		return assert.Empty(t, got, "unfinished") && ok
	}
	return assert.Equal(t, unfinished, got, "unfinished") && ok
}

// loadAll returns the logs of ids, failing the test if one is missing.
func loadAll(t testing.TB, j saga.Store, ids []string) map[string][]saga.Event {
	t.Helper()
	logs := make(map[string][]saga.Event, len(ids))
	for _, id := range ids {
		events, err := j.Load(t.Context(), id)
		require.NoError(t, err, "load %s", id)
		logs[id] = events
	}
	return logs
}

// reopen closes j and opens its directory again.
func reopen(t testing.TB, j *journal.Journal, dir string, opts journal.Options) *journal.Journal {
	t.Helper()
	require.NoError(t, j.Close())
	return open(t, dir, opts)
}

// segmentFiles returns the names of the segment files in dir, in order.
func segmentFiles(t testing.TB, dir string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	require.NoError(t, err)
	names := make([]string, len(matches))
	for i, m := range matches {
		names[i] = filepath.Base(m)
	}
	slices.Sort(names)
	return names
}

// copyDir copies the regular files of src into dst, which it creates.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dst, 0o755))
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		if e.Type().IsRegular() {
			copyFile(t, filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()))
		}
	}
}

// copyFile copies the file src to dst.
func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	data, err := os.ReadFile(src)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(dst, data, 0o644))
}

// frames returns the offsets at which the records of a segment start,
// followed by the segment's size. The format is record.go's: a 16-byte
// segment header, then frames of a little-endian uint32 length, a checksum
// and the payload.
func frames(t testing.TB, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	const headerSize, frameHeader = 16, 8
	require.GreaterOrEqual(t, len(data), headerSize, "segment %s", path)
	offs := []int{headerSize}
	for off := headerSize; off < len(data); {
		require.LessOrEqual(t, off+frameHeader, len(data), "frame header at %d of %s", off, path)
		n := int(data[off]) | int(data[off+1])<<8 | int(data[off+2])<<16 | int(data[off+3])<<24
		off += frameHeader + n
		require.LessOrEqual(t, off, len(data), "frame of %d bytes in %s", n, path)
		offs = append(offs, off)
	}
	return offs
}

// syncBuffer is an io.Writer that a test may read while a journal's
// goroutines still log into it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// capture returns a logger that writes into the returned buffer.
func capture() (*slog.Logger, *syncBuffer) {
	buf := new(syncBuffer)
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

var _ io.Writer = (*syncBuffer)(nil)
