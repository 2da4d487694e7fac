package saga

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sagaflow/sagaflow/clock"
)

// MemoryConfig configures a [MemoryStore]. The zero value keeps every
// instance forever.
type MemoryConfig struct {
	// Clock times the retention of finished instances. Defaults to
	// clock.Real().
	Clock clock.Clock

	// Retention drops finished instances once they have been finished this
	// long. The check runs whenever an instance finishes, so an expired
	// instance may stay readable until the next one does. Defaults to 0:
	// keep them (subject to MaxFinished).
	Retention time.Duration

	// MaxFinished keeps at most this many finished instances, dropping the
	// oldest first. Defaults to 0: no limit (subject to Retention).
	MaxFinished int
}

// MemoryStore is the default [Store]: logs in process memory, sharded so
// that instances do not contend. It is not durable: everything is lost with
// the process. Finished instances can be dropped by a retention policy so
// that memory stays bounded; a dropped instance is not found any more, and
// its ID may be started again. A finished log is kept packed, in a form
// the garbage collector need not scan: its events read back with their
// times in the location of its first event and without monotonic clock
// readings, as from a durable store.
type MemoryStore struct {
	// Every call reads these and none writes them (but Close): they are
	// kept off the cache lines that calls write, which would otherwise
	// move between processors with every write.
	cfg    MemoryConfig
	seed   maphash.Seed
	closed atomic.Bool
	_      [64]byte

	shards [memShards]memShard
	nextID atomic.Uint64

	finMu    sync.Mutex
	finished []finishedEntry // oldest first; finished[finHead:] are live
	finHead  int
}

const memShards = 64

type memShard struct {
	mu   sync.Mutex
	logs map[string]*memLog
	_    [64 - 16]byte // keep shards on separate cache lines
}

type memLog struct {
	shard      *memShard // that holds it, whose mutex guards it
	id         string
	run        string // empty once packed, which holds it
	definition string
	version    int
	startAt    time.Time // the first event's At: a saga's deadline
	order      uint64    // creation order, for Unfinished
	ended      bool
	n          int        // events in the log
	events     []memEvent // the events of a log that has not ended
	// packed holds the run and the events of a log that has ended (see
	// pack), in which the garbage collector has nothing to scan: a store
	// may keep many more finished logs than running ones. Their times are
	// in loc.
	packed []byte
	loc    *time.Location
}

// memFirst is how many events a new log has room for: enough for a saga of
// four or five steps that completes.
const memFirst = 12

// memEvent is an Event as a memory store keeps it, in a third of the space:
// without what every event of a log shares (saga ID, run, definition and
// version, which only the first event carries), without its sequence
// number (the log has no gaps, so an event's number is its place in it),
// and with the fields that few events have behind a pointer.
type memEvent struct {
	time    time.Time
	state   json.RawMessage
	step    string
	rare    *memRare // nil for most events
	attempt int32    // bigAttempt: see rare
	typ     EventType
}

// bigAttempt in memEvent.attempt says that the attempt number does not fit
// in an int32 and is in memRare.attempt.
const bigAttempt = math.MinInt32

// memRare holds the fields of an event that few events have: errors,
// times other than the first event's deadline, and signals.
type memRare struct {
	err              string
	at               time.Time
	signal, dedupKey string
	payload          json.RawMessage
	attempt          int
}

func (l *memLog) add(events []Event) {
	for i := range events {
		e := &events[i]
		m := memEvent{time: e.Time, state: e.State, step: e.Step, attempt: int32(e.Attempt), typ: e.Type}
		at := e.At
		if len(l.events) == 0 {
			l.startAt, at = e.At, time.Time{}
		}
		big := int(m.attempt) != e.Attempt || m.attempt == bigAttempt
		if e.Error != "" || !at.IsZero() || e.Signal != "" || e.DedupKey != "" || e.Payload != nil || big {
			m.rare = &memRare{err: e.Error, at: at, signal: e.Signal, dedupKey: e.DedupKey, payload: e.Payload, attempt: e.Attempt}
			if big {
				m.attempt = bigAttempt
			}
		}
		l.events = append(l.events, m)
	}
	l.n = len(l.events)
}

func (l *memLog) load() []Event {
	if l.packed != nil {
		return l.unpack()
	}
	out := make([]Event, len(l.events))
	for i := range l.events {
		m := &l.events[i]
		e := &out[i]
		e.SagaID, e.Run, e.Seq, e.Type, e.Time = l.id, l.run, uint64(i)+1, m.typ, m.time
		e.Step, e.Attempt, e.State = m.step, int(m.attempt), m.state
		if r := m.rare; r != nil {
			e.Error, e.At, e.Signal, e.DedupKey, e.Payload = r.err, r.at, r.signal, r.dedupKey, r.payload
			if m.attempt == bigAttempt {
				e.Attempt = r.attempt
			}
		}
	}
	if len(out) > 0 {
		out[0].Definition, out[0].Version, out[0].At = l.definition, l.version, l.startAt
	}
	return out
}

type finishedEntry struct {
	id string
	at time.Time
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty memory store.
func NewMemoryStore(cfg MemoryConfig) *MemoryStore {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	s := &MemoryStore{cfg: cfg, seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].logs = make(map[string]*memLog)
	}
	return s
}

func (s *MemoryStore) shard(id string) *memShard {
	return &s.shards[maphash.String(s.seed, id)%memShards]
}

// Create implements [Store].
func (s *MemoryStore) Create(_ context.Context, events []Event) error {
	_, err := s.create(events)
	return err
}

// create is Create, returning a handle to the new log for append.
func (s *MemoryStore) create(events []Event) (*memLog, error) {
	if s.closed.Load() {
		return nil, errStoreClosed
	}
	if len(events) == 0 {
		return nil, fmt.Errorf("%w: no events", ErrInvalidArgument)
	}
	id := events[0].SagaID
	if err := CheckAppend(id, 0, events); err != nil {
		return nil, err
	}
	sh := s.shard(id)
	l := &memLog{
		shard:      sh,
		id:         id,
		run:        events[0].Run,
		definition: events[0].Definition,
		version:    events[0].Version,
		ended:      events[len(events)-1].Ends(),
	}
	l.events = newEvents(len(events))
	l.add(events)
	if l.ended {
		l.pack()
	}
	sh.mu.Lock()
	if _, ok := sh.logs[id]; ok {
		sh.mu.Unlock()
		return nil, fmt.Errorf("%w: %q", ErrDuplicate, id)
	}
	l.order = s.nextID.Add(1)
	sh.logs[id] = l
	sh.mu.Unlock()
	if l.ended {
		s.retire(id)
	}
	return l, nil
}

// Append implements [Store].
func (s *MemoryStore) Append(_ context.Context, sagaID string, expected uint64, events []Event) error {
	var l *memLog
	return s.append(&l, sagaID, expected, events)
}

// append is Append to the log that *l is a handle to, as create or an
// earlier append returned it, which spares looking it up by saga ID; if
// *l is nil, it looks the log up and leaves its handle in *l. The
// coordinator keeps an instance's handle: looking a log up at each step,
// often a cache miss in a map of every log the store holds, was 1.5% of
// the CPU of loadgen's orders (map lookups: 4.8 -> 3.3% of the profile).
func (s *MemoryStore) append(l **memLog, sagaID string, expected uint64, events []Event) error {
	if s.closed.Load() {
		return errStoreClosed
	}
	if err := CheckAppend(sagaID, expected, events); err != nil {
		return err
	}
	log := *l
	var sh *memShard
	if log != nil {
		sh = log.shard
	} else {
		sh = s.shard(sagaID)
	}
	sh.mu.Lock()
	if log == nil {
		if log = sh.logs[sagaID]; log == nil {
			sh.mu.Unlock()
			return fmt.Errorf("%w: %q", ErrNotFound, sagaID)
		}
		*l = log
	}
	switch {
	case log.ended:
		sh.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrFinished, sagaID)
	case uint64(log.n) != expected:
		n := log.n
		sh.mu.Unlock()
		return fmt.Errorf("%w: %q has %d events, expected %d", ErrConflict, sagaID, n, expected)
	case events[0].Run != log.run:
		sh.mu.Unlock()
		return fmt.Errorf("%w: run %q appended to the log of run %q", ErrInvalidEvent, events[0].Run, log.run)
	}
	log.add(events)
	log.ended = events[len(events)-1].Ends()
	ended := log.ended
	if ended {
		log.pack()
	}
	sh.mu.Unlock()
	if ended {
		s.retire(sagaID)
	}
	return nil
}

// retire records that id has ended and drops the finished instances that
// the retention policy no longer keeps.
func (s *MemoryStore) retire(id string) {
	if s.cfg.Retention <= 0 && s.cfg.MaxFinished <= 0 {
		return
	}
	var now time.Time
	if s.cfg.Retention > 0 { // only retention needs the time
		now = s.cfg.Clock.Now()
	}
	s.finMu.Lock()
	defer s.finMu.Unlock()
	s.finished = append(s.finished, finishedEntry{id: id, at: now})
	for s.finHead < len(s.finished) {
		oldest := s.finished[s.finHead]
		live := len(s.finished) - s.finHead
		overCount := s.cfg.MaxFinished > 0 && live > s.cfg.MaxFinished
		tooOld := s.cfg.Retention > 0 && now.Sub(oldest.at) >= s.cfg.Retention
		if !overCount && !tooOld {
			break
		}
		s.finished[s.finHead] = finishedEntry{}
		s.finHead++
		sh := s.shard(oldest.id)
		sh.mu.Lock()
		delete(sh.logs, oldest.id)
		sh.mu.Unlock()
	}
	// Reclaim the consumed prefix once it is at least half the slice.
	if s.finHead > 1024 && s.finHead*2 >= len(s.finished) {
		n := copy(s.finished, s.finished[s.finHead:])
		clear(s.finished[n:])
		s.finished = s.finished[:n]
		s.finHead = 0
	}
}

// Load implements [Store].
func (s *MemoryStore) Load(_ context.Context, sagaID string) ([]Event, error) {
	if s.closed.Load() {
		return nil, errStoreClosed
	}
	sh := s.shard(sagaID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	l, ok := sh.logs[sagaID]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, sagaID)
	}
	return l.load(), nil
}

// Unfinished implements [Store].
func (s *MemoryStore) Unfinished(_ context.Context, definition string) ([]string, error) {
	if s.closed.Load() {
		return nil, errStoreClosed
	}
	type entry struct {
		id    string
		order uint64
	}
	var found []entry
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for id, l := range sh.logs {
			if !l.ended && l.definition == definition {
				found = append(found, entry{id, l.order})
			}
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(found, func(a, b entry) int { return cmp.Compare(a.order, b.order) })
	ids := make([]string, len(found))
	for i, e := range found {
		ids[i] = e.id
	}
	return ids, nil
}

// Len returns the number of instances the store holds.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.logs)
		sh.mu.Unlock()
	}
	return n
}

// Ping implements [Store]; it fails only after Close.
func (s *MemoryStore) Ping(context.Context) error {
	if s.closed.Load() {
		return errStoreClosed
	}
	return nil
}

// Durable implements [Store]: a memory store is not durable.
func (s *MemoryStore) Durable() bool { return false }

// Close implements [Store]: every later call fails with ErrClosed.
func (s *MemoryStore) Close() error {
	s.closed.Store(true)
	return nil
}

var errStoreClosed = ErrClosed

// pack moves the run and the events of a log that has ended into
// l.packed, one byte slice without pointers, so that a finished log costs
// the collector two objects to mark, the log and its bytes, besides its
// ID. Keeping the states apart, where the engine encoded them, and the
// run, cost it twice as many (TestMemoryStoreFinishedLogIsTwoObjects: 4.3
// -> 2.0), and loadgen's mark phases, with 10,000 finished orders kept,
// were a third longer, for a copy of 1.4 KB per order.
//
// The run comes first, as a length and bytes. Each event is then its
// type; a byte of flags saying which of step, error, At, State, signal,
// dedup key and payload it has, and whether its time is written whole;
// its attempt; its time; and the fields its flags name, as lengths and
// bytes (At as seconds and nanoseconds). A time is written whole, as Unix
// seconds and nanoseconds, for the first event and any that is not within
// 34 years of the one before it; otherwise as the nanoseconds since the
// one before it, usually two or three bytes. That and flags set without a
// loop make packing a fifth cheaper than writing every time whole
// (BenchmarkMemoryStoreLog under callgrind: 3,440 -> 2,800 instructions
// per log for packing). Times come back in the location of the log's
// first event, without a monotonic clock reading; a log whose times are in
// several locations is left as it is.
func (l *memLog) pack() {
	loc := l.events[0].time.Location()
	b := packScratch.Get().(*[]byte)
	p := (*b)[:0]
	p = appendBytes(p, true, l.run)
	var prevSec, prevNsec int64 // the time of the event before
	for i := range l.events {
		m := &l.events[i]
		r := m.rare
		if r == nil {
			r = &noRare
		}
		at := r.at
		if i == 0 {
			at = l.startAt
		}
		if m.time.Location() != loc || (!at.IsZero() && at.Location() != loc) {
			*b = p
			packScratch.Put(b)
			return
		}
		var flags byte
		if m.step != "" {
			flags |= packStep
		}
		if r.err != "" {
			flags |= packErr
		}
		if !at.IsZero() {
			flags |= packAt
		}
		if m.state != nil {
			flags |= packState
		}
		if r.signal != "" {
			flags |= packSignal
		}
		if r.dedupKey != "" {
			flags |= packDedupKey
		}
		if r.payload != nil {
			flags |= packPayload
		}
		sec, nsec := m.time.Unix(), int64(m.time.Nanosecond())
		if i == 0 || sec-prevSec >= 1<<30 || sec-prevSec <= -1<<30 {
			flags |= packWholeTime
		}
		attempt := int64(m.attempt)
		if m.attempt == bigAttempt {
			attempt = int64(r.attempt)
		}
		p = append(p, byte(m.typ), flags)
		p = binary.AppendVarint(p, attempt)
		if flags&packWholeTime != 0 {
			p = appendTime(p, m.time)
		} else {
			p = binary.AppendVarint(p, (sec-prevSec)*1e9+nsec-prevNsec)
		}
		prevSec, prevNsec = sec, nsec
		p = appendBytes(p, flags&packStep != 0, m.step)
		p = appendBytes(p, flags&packErr != 0, r.err)
		if flags&packAt != 0 {
			p = appendTime(p, at)
		}
		p = appendBytes(p, flags&packState != 0, m.state)
		p = appendBytes(p, flags&packSignal != 0, r.signal)
		p = appendBytes(p, flags&packDedupKey != 0, r.dedupKey)
		p = appendBytes(p, flags&packPayload != 0, r.payload)
	}
	l.packed, l.loc, l.run = bytes.Clone(p), loc, ""
	freeEvents(l.events)
	l.events, l.startAt = nil, time.Time{}
	if cap(p) <= 64<<10 {
		*b = p
		packScratch.Put(b)
	}
}

// The flags of a packed event.
const (
	packStep byte = 1 << iota
	packErr
	packAt
	packState
	packSignal
	packDedupKey
	packPayload
	packWholeTime
)

// noRare stands for the rare fields of an event that has none.
var noRare memRare

// spareEvents holds the event arrays of packed logs, for new logs: packing
// copies everything out of them, so a new log can have the array, cleared,
// instead of allocating one.
var spareEvents = sync.Pool{New: func() any { return new([memFirst]memEvent) }}

// newEvents returns an empty slice with room for n events, and memFirst at
// least.
func newEvents(n int) []memEvent {
	if n > memFirst {
		return make([]memEvent, 0, n)
	}
	return spareEvents.Get().(*[memFirst]memEvent)[:0]
}

// freeEvents gives the slice of a packed log to newEvents, if it is one
// that newEvents made.
func freeEvents(events []memEvent) {
	if cap(events) != memFirst {
		return
	}
	a := (*[memFirst]memEvent)(events[:memFirst])
	clear(a[:])
	spareEvents.Put(a)
}

// packScratch holds buffers that logs are packed into before they are
// copied out at their size.
var packScratch = sync.Pool{New: func() any { return new([]byte) }}

func appendTime(p []byte, t time.Time) []byte {
	p = binary.AppendVarint(p, t.Unix())
	return binary.AppendUvarint(p, uint64(t.Nanosecond()))
}

func appendBytes[T ~string | ~[]byte](p []byte, has bool, v T) []byte {
	if !has {
		return p
	}
	p = binary.AppendUvarint(p, uint64(len(v)))
	return append(p, v...)
}

// unpack returns the events that pack packed. State and Payload share the
// packed bytes, which never change, with their capacity cut to their
// length.
func (l *memLog) unpack() []Event {
	out := make([]Event, 0, l.n)
	loc, p := l.loc, l.packed
	varint := func() int64 {
		v, k := binary.Varint(p)
		p = p[k:]
		return v
	}
	uvarint := func() uint64 {
		v, k := binary.Uvarint(p)
		p = p[k:]
		return v
	}
	timeOf := func() time.Time {
		sec := varint()
		return time.Unix(sec, int64(uvarint())).In(loc)
	}
	field := func(has bool) []byte {
		if !has {
			return nil
		}
		n := uvarint()
		v := p[:n:n]
		p = p[n:]
		return v
	}
	var sec, nsec int64 // the time of the event before
	run := string(field(true))
	for len(p) > 0 {
		e := Event{SagaID: l.id, Run: run, Seq: uint64(len(out)) + 1, Type: EventType(p[0])}
		flags := p[1]
		p = p[2:]
		e.Attempt = int(varint())
		if flags&packWholeTime != 0 {
			sec, nsec = varint(), int64(uvarint())
		} else {
			n := nsec + varint() // time.Unix takes a negative nsec too
			sec, nsec = sec+n/1e9, n%1e9
		}
		e.Time = time.Unix(sec, nsec).In(loc)
		e.Step = string(field(flags&packStep != 0))
		e.Error = string(field(flags&packErr != 0))
		if flags&packAt != 0 {
			e.At = timeOf()
		}
		e.State = field(flags&packState != 0)
		e.Signal = string(field(flags&packSignal != 0))
		e.DedupKey = string(field(flags&packDedupKey != 0))
		e.Payload = field(flags&packPayload != 0)
		out = append(out, e)
	}
	if len(out) > 0 {
		out[0].Definition, out[0].Version = l.definition, l.version
	}
	return out
}
